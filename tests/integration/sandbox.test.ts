/**
 * The Google provider sandbox's own fidelity (dev/sandbox/CONTRACT.md, docs/providers/google.md Part E) where
 * tests/integration/google-provider.test.ts does not reach: the consent page and its validation,
 * denial and partial consent, code and PKCE rules, refresh-token issuance, revocation, Calendar v3
 * error rules, the admin API's faults, latency, counters and concurrency report, and the state file.
 * Real HTTP against sandboxes started in this process; nothing is stubbed.
 */
import assert from "node:assert/strict";
import * as oauth from "oauth4webapi";
import { optionsFromEnv } from "../../dev/sandbox/main.ts";
import { startSandbox } from "../../dev/sandbox/server.ts";

const CLIENT_ID = "it-sandbox.apps.googleusercontent.com";
const CLIENT_SECRET = "it-sandbox-secret";
const REDIRECT = "http://127.0.0.1:54321/functions/v1/calendar-auth-callback";
const CLIENTS = [{ clientId: CLIENT_ID, clientSecret: CLIENT_SECRET, redirectUris: [REDIRECT] }];
const S = (name: string) => `https://www.googleapis.com/auth/${name}`;
const SCOPES = [S("calendar.events"), S("calendar.freebusy"), S("calendar.calendarlist.readonly")];
const enc = encodeURIComponent;

interface Answer {
  status: number;
  headers: Headers;
  text: string;
  // deno-lint-ignore no-explicit-any
  json: any;
}

async function answer(res: Response): Promise<Answer> {
  const text = await res.text();
  let json: unknown;
  try {
    json = text ? JSON.parse(text) : undefined;
  } catch {
    json = undefined;
  }
  return { status: res.status, headers: res.headers, text, json };
}

/** Helpers bound to one sandbox URL. */
function client(base: string) {
  const admin = async (method: string, path: string, body?: unknown) =>
    await answer(
      await fetch(`${base}${path}`, {
        method,
        headers: body === undefined ? {} : { "content-type": "application/json" },
        body: body === undefined ? undefined : JSON.stringify(body),
      }),
    );
  const adminOk = async (method: string, path: string, body?: unknown) => {
    const a = await admin(method, path, body);
    assert.ok(a.status >= 200 && a.status < 300, `admin ${method} ${path} -> ${a.status} ${a.text}`);
    return a.json;
  };
  const authUrl = (p: Record<string, string>) => {
    const url = new URL(`${base}/google/o/oauth2/v2/auth`);
    const all: Record<string, string> = {
      client_id: CLIENT_ID,
      redirect_uri: REDIRECT,
      response_type: "code",
      scope: SCOPES.join(" "),
      access_type: "offline",
      prompt: "consent",
      state: "st-1",
      ...p,
    };
    for (const [k, v] of Object.entries(all)) if (v !== "") url.searchParams.set(k, v);
    return url;
  };
  const token = async (form: Record<string, string>, headers: Record<string, string> = {}) =>
    await answer(
      await fetch(`${base}/google/token`, {
        method: "POST",
        headers: { "content-type": "application/x-www-form-urlencoded", ...headers },
        body: new URLSearchParams(form),
      }),
    );
  /** Consent through the admin API and redeem the code; returns the token response. */
  const connect = async (
    login: string,
    o: { prompt?: string; scopes?: string[]; accessType?: string; request?: string[] } = {},
  ) => {
    const verifier = oauth.generateRandomCodeVerifier();
    const url = authUrl({
      ...(o.request ? { scope: o.request.join(" ") } : {}),
      prompt: o.prompt ?? "consent",
      access_type: o.accessType ?? "offline",
      code_challenge: await oauth.calculatePKCECodeChallenge(verifier),
      code_challenge_method: "S256",
    });
    const { redirect } = await adminOk("POST", "/_admin/authorize", {
      authorizationUrl: url.href,
      login,
      decision: "approve",
      ...(o.scopes ? { scopes: o.scopes } : {}),
    });
    const code = new URL(redirect).searchParams.get("code")!;
    const res = await token({
      grant_type: "authorization_code",
      code,
      redirect_uri: REDIRECT,
      code_verifier: verifier,
      client_id: CLIENT_ID,
      client_secret: CLIENT_SECRET,
    });
    assert.equal(res.status, 200, res.text);
    return res.json as { access_token: string; refresh_token?: string; scope: string; expires_in: number };
  };
  const api = async (method: string, path: string, accessToken?: string, body?: unknown, extra = {}) =>
    await answer(
      await fetch(`${base}/google/calendar/v3${path}`, {
        method,
        headers: {
          ...(accessToken ? { authorization: `Bearer ${accessToken}` } : {}),
          ...(body === undefined ? {} : { "content-type": "application/json" }),
          ...extra,
        },
        body: body === undefined ? undefined : JSON.stringify(body),
      }),
    );
  return { admin, adminOk, authUrl, token, connect, api };
}

const reasonOf = (a: Answer) => a.json?.error?.errors?.[0]?.reason;

Deno.test("Google sandbox fidelity and admin API", async (t) => {
  const sb = await startSandbox({ port: 0, hostname: "127.0.0.1", clients: CLIENTS, seed: 7 });
  const { admin, adminOk, authUrl, token, connect, api } = client(sb.url);
  try {
    await t.step("the consent page renders the contract's form for a valid request", async () => {
      const page = await answer(await fetch(authUrl({ login_hint: "dr.form@example.com" })));
      assert.equal(page.status, 200);
      assert.match(page.headers.get("content-type")!, /text\/html/);
      assert.match(page.text, /<form method="post" action="\/google\/o\/oauth2\/v2\/auth\/decision">/);
      assert.match(page.text, /<input type="hidden" name="request_id" value="[^"]+">/);
      assert.match(page.text, /name="login" value="dr.form@example.com"/);
      for (const s of SCOPES) assert.ok(page.text.includes(`name="scope" value="${s}" checked`), s);
      assert.match(page.text, /name="decision" value="approve"/);
      assert.match(page.text, /name="decision" value="deny"/);
      const noHint = await answer(await fetch(authUrl({})));
      assert.match(noHint.text, /name="login" value="clinician@example.com"/);
    });

    await t.step(
      "an unknown client or unregistered redirect URI is shown as an error page, not redirected",
      async () => {
        const unknown = await fetch(authUrl({ client_id: "nobody.apps.googleusercontent.com" }), {
          redirect: "manual",
        });
        const u = await answer(unknown);
        assert.equal(u.status, 400);
        assert.equal(u.headers.get("location"), null);
        assert.match(u.text, /invalid_client/);
        // A trailing slash is a different URI: Google compares exactly.
        const mismatch = await answer(
          await fetch(authUrl({ redirect_uri: `${REDIRECT}/` }), { redirect: "manual" }),
        );
        assert.equal(mismatch.status, 400);
        assert.equal(mismatch.headers.get("location"), null);
        assert.match(mismatch.text, /redirect_uri_mismatch/);
        const viaAdmin = await admin("POST", "/_admin/authorize", {
          authorizationUrl: authUrl({ redirect_uri: "http://evil.example/cb" }).href,
          login: "dr.form@example.com",
          decision: "approve",
        });
        assert.equal(viaAdmin.status, 400);
        assert.equal(viaAdmin.json.error.code, "redirect_uri_mismatch");
      },
    );

    await t.step("deny on the consent form redirects with error=access_denied and the state", async () => {
      const page = await answer(await fetch(authUrl({ state: "deny-state" })));
      const requestId = /name="request_id" value="([^"]+)"/.exec(page.text)![1];
      const form = new URLSearchParams({
        request_id: requestId,
        login: "dr.deny@example.com",
        decision: "deny",
      });
      const res = await fetch(`${sb.url}/google/o/oauth2/v2/auth/decision`, {
        method: "POST",
        body: form,
        redirect: "manual",
      });
      await res.body?.cancel();
      assert.equal(res.status, 302);
      const loc = new URL(res.headers.get("location")!);
      assert.equal(`${loc.origin}${loc.pathname}`, REDIRECT);
      assert.equal(loc.searchParams.get("error"), "access_denied");
      assert.equal(loc.searchParams.get("state"), "deny-state");
      assert.equal(loc.searchParams.get("code"), null);
      // The consent request is used up.
      const again = await fetch(`${sb.url}/google/o/oauth2/v2/auth/decision`, { method: "POST", body: form });
      assert.equal((await answer(again)).status, 400);
    });

    await t.step(
      "approving a subset of scopes: the redirect, token and API all reflect the subset",
      async () => {
        const page = await answer(await fetch(authUrl({ prompt: "consent" })));
        const requestId = /name="request_id" value="([^"]+)"/.exec(page.text)![1];
        const form = new URLSearchParams({
          request_id: requestId,
          login: "Dr.Partial@Example.com",
          decision: "approve",
        });
        form.append("scope", S("calendar.events"));
        const res = await fetch(`${sb.url}/google/o/oauth2/v2/auth/decision`, {
          method: "POST",
          body: form,
          redirect: "manual",
        });
        await res.body?.cancel();
        assert.equal(res.status, 302);
        const loc = new URL(res.headers.get("location")!);
        assert.equal(loc.searchParams.get("scope"), S("calendar.events"));
        assert.equal(loc.searchParams.get("state"), "st-1");
        assert.equal(loc.searchParams.get("authuser"), "0");
        const tok = await token({
          grant_type: "authorization_code",
          code: loc.searchParams.get("code")!,
          redirect_uri: REDIRECT,
          client_id: CLIENT_ID,
          client_secret: CLIENT_SECRET,
        });
        assert.equal(tok.status, 200);
        assert.equal(tok.json.scope, S("calendar.events"));
        const list = await api("GET", "/users/me/calendarList", tok.json.access_token);
        assert.equal(list.status, 403);
        assert.equal(reasonOf(list), "insufficientPermissions");
        assert.match(list.headers.get("www-authenticate")!, /insufficient_scope/);
        // The login is the account, lowercased; events work with the granted scope.
        const ev = await api(
          "GET",
          `/calendars/${enc("dr.partial@example.com")}/events`,
          tok.json.access_token,
        );
        assert.equal(ev.status, 200);
      },
    );

    await t.step("codes are single use, PKCE is checked, and client and redirect must match", async () => {
      const verifier = oauth.generateRandomCodeVerifier();
      const url = authUrl({
        code_challenge: await oauth.calculatePKCECodeChallenge(verifier),
        code_challenge_method: "S256",
      });
      const { redirect } = await adminOk("POST", "/_admin/authorize", {
        authorizationUrl: url.href,
        login: "dr.pkce@example.com",
        decision: "approve",
      });
      const code = new URL(redirect).searchParams.get("code")!;
      assert.match(code, /^4\/0/);
      const base = { grant_type: "authorization_code", code, redirect_uri: REDIRECT, client_id: CLIENT_ID };
      const secret = { client_secret: CLIENT_SECRET };
      const wrongVerifier = await token({
        ...base,
        ...secret,
        code_verifier: oauth.generateRandomCodeVerifier(),
      });
      assert.equal(wrongVerifier.status, 400);
      assert.equal(wrongVerifier.json.error, "invalid_grant");
      const noVerifier = await token({ ...base, ...secret });
      assert.equal(noVerifier.json.error, "invalid_grant");
      const badSecret = await token({ ...base, client_secret: "nope", code_verifier: verifier });
      assert.equal(badSecret.status, 401);
      assert.equal(badSecret.json.error, "invalid_client");
      const unknownClient = await token({ ...base, client_id: "x.apps.googleusercontent.com", ...secret });
      assert.equal(unknownClient.status, 401);
      assert.equal(unknownClient.json.error_description, "The OAuth client was not found.");
      const otherRedirect = await token({
        ...base,
        ...secret,
        code_verifier: verifier,
        redirect_uri: `${REDIRECT}x`,
      });
      assert.equal(otherRedirect.status, 400);
      assert.equal(otherRedirect.json.error, "redirect_uri_mismatch");
      // HTTP Basic client authentication works as well as client_secret_post.
      const basic = `Basic ${btoa(`${enc(CLIENT_ID)}:${enc(CLIENT_SECRET)}`)}`;
      const { client_id: _omit, ...withoutId } = base;
      const ok = await token({ ...withoutId, code_verifier: verifier }, { authorization: basic });
      assert.equal(ok.status, 200, ok.text);
      assert.match(ok.json.access_token, /^ya29\./);
      assert.match(ok.json.refresh_token, /^1\/\/0/);
      assert.equal(ok.json.token_type, "Bearer");
      assert.equal(ok.json.expires_in, 3599);
      assert.equal(ok.headers.get("cache-control"), "no-store");
      const reused = await token({ ...base, ...secret, code_verifier: verifier });
      assert.equal(reused.status, 400);
      assert.deepEqual(reused.json, {
        error: "invalid_grant",
        error_description: "Code was already redeemed.",
      });
      const garbage = await token({ ...base, ...secret, code: "4/0Anot-a-code", code_verifier: verifier });
      assert.equal(garbage.json.error, "invalid_grant");
      const grantType = await token({ grant_type: "password", ...secret, client_id: CLIENT_ID });
      assert.equal(grantType.json.error, "unsupported_grant_type");
    });

    await t.step(
      "refresh tokens: first offline consent or prompt=consent only, and never rotated",
      async () => {
        const login = "dr.refresh@example.com";
        const first = await connect(login, { prompt: "" });
        assert.ok(first.refresh_token, "first offline consent returns a refresh token");
        const second = await connect(login, { prompt: "" });
        assert.equal(second.refresh_token, undefined, "a repeat consent without prompt=consent does not");
        const online = await connect("dr.online@example.com", { prompt: "consent", accessType: "online" });
        assert.equal(online.refresh_token, undefined, "access_type=online never does");
        const forced = await connect(login, { prompt: "consent" });
        assert.ok(forced.refresh_token && forced.refresh_token !== first.refresh_token);
        const refreshed = await token({
          grant_type: "refresh_token",
          refresh_token: first.refresh_token!,
          client_id: CLIENT_ID,
          client_secret: CLIENT_SECRET,
        });
        assert.equal(refreshed.status, 200);
        assert.equal(refreshed.json.refresh_token, undefined);
        assert.equal(refreshed.json.scope, SCOPES.join(" "));
        assert.notEqual(refreshed.json.access_token, first.access_token);
        const { grants } = await adminOk("GET", `/_admin/grants?email=${enc(login)}`);
        assert.equal(grants.length, 2);
        assert.deepEqual(grants.map((g: { refreshCount: number }) => g.refreshCount), [1, 0]);
        assert.ok(
          grants.every((g: { revoked: boolean; scopes: string[] }) => !g.revoked && g.scopes.length === 3),
        );
      },
    );

    await t.step(
      "revoke: an access token takes its refresh token with it; unknown tokens are 400",
      async () => {
        const tokens = await connect("dr.revoke@example.com");
        const revoke = async (t: string) =>
          await answer(await fetch(`${sb.url}/google/revoke?token=${enc(t)}`, { method: "POST" }));
        assert.equal((await revoke(tokens.access_token)).status, 200);
        const refresh = await token({
          grant_type: "refresh_token",
          refresh_token: tokens.refresh_token!,
          client_id: CLIENT_ID,
          client_secret: CLIENT_SECRET,
        });
        assert.equal(refresh.status, 400);
        assert.deepEqual(refresh.json, {
          error: "invalid_grant",
          error_description: "Token has been expired or revoked.",
        });
        const list = await api("GET", "/users/me/calendarList", tokens.access_token);
        assert.equal(list.status, 401);
        assert.equal(reasonOf(list), "authError");
        assert.match(list.headers.get("www-authenticate")!, /error="invalid_token"/);
        const again = await revoke(tokens.refresh_token!);
        assert.equal(again.status, 400);
        assert.deepEqual(again.json, {
          error: "invalid_token",
          error_description: "Token expired or revoked",
        });
        // The token may also travel in the form body.
        const other = await connect("dr.revoke2@example.com");
        const byForm = await fetch(`${sb.url}/google/revoke`, {
          method: "POST",
          body: new URLSearchParams({ token: other.refresh_token! }),
        });
        assert.equal((await answer(byForm)).status, 200);
        assert.equal((await api("GET", "/users/me/calendarList", other.access_token)).status, 401);
      },
    );

    const email = "dr.events@example.com";
    let at = "";
    const ev = (id?: string) => ({
      ...(id ? { id } : {}),
      summary: "Session",
      start: { dateTime: "2026-04-01T09:00:00Z" },
      end: { dateTime: "2026-04-01T09:50:00Z" },
    });

    await t.step("events.insert: client id rules, 200, and 409 for an existing or deleted id", async () => {
      at = (await connect(email)).access_token;
      const path = `/calendars/${enc(email)}/events`;
      for (const bad of ["abcd", "ABCDEF123", "abcdefw12", "abc_def12", "a".repeat(1025)]) {
        const res = await api("POST", path, at, ev(bad));
        assert.equal(res.status, 400, bad);
        assert.equal(reasonOf(res), "invalid", bad);
        assert.equal(res.json.error.errors[0].message, "Invalid resource id value.");
      }
      const created = await api("POST", path, at, ev("vvvvv00000"));
      assert.equal(created.status, 200);
      assert.equal(created.json.id, "vvvvv00000");
      assert.equal(created.json.status, "confirmed");
      const dup = await api("POST", path, at, ev("vvvvv00000"));
      assert.equal(dup.status, 409);
      assert.equal(reasonOf(dup), "duplicate");
      const del = await api("DELETE", `${path}/vvvvv00000`, at);
      assert.equal(del.status, 204);
      assert.equal(del.text, "");
      const dupDeleted = await api("POST", path, at, ev("vvvvv00000"));
      assert.equal(dupDeleted.status, 409, "a deleted id is still taken");
      const delAgain = await api("DELETE", `${path}/vvvvv00000`, at);
      assert.equal(delAgain.status, 410);
      assert.equal(reasonOf(delAgain), "deleted");
      const unknown = await api("DELETE", `${path}/vvvvv99999`, at);
      assert.equal(unknown.status, 404);
      assert.equal(reasonOf(unknown), "notFound");
      const got = await api("GET", `${path}/vvvvv00000`, at);
      assert.equal(got.status, 200);
      assert.equal(got.json.status, "cancelled");
      const revived = await api("PATCH", `${path}/vvvvv00000`, at, { status: "confirmed" });
      assert.equal(revived.status, 200);
      assert.equal(revived.json.status, "confirmed");
      const stale = await api("PATCH", `${path}/vvvvv00000`, at, { summary: "x" }, {
        "if-match": got.json.etag,
      });
      assert.equal(stale.status, 412);
      assert.equal(reasonOf(stale), "conditionNotMet");
      assert.equal(stale.json.error.errors[0].location, "If-Match");
      const missing = await api("GET", `${path}/vvvvv00000`);
      assert.equal(missing.status, 401);
      assert.ok(missing.headers.get("www-authenticate"));
    });

    await t.step("freeBusy: range limits, too many calendars, unknown calendars", async () => {
      const q = (body: unknown) => api("POST", "/freeBusy", at, body);
      const tooLong = await q({
        timeMin: "2026-01-01T00:00:00Z",
        timeMax: "2026-04-02T00:00:00Z",
        items: [{ id: email }],
      });
      assert.equal(tooLong.status, 400);
      assert.equal(reasonOf(tooLong), "timeRangeTooLong");
      assert.equal(tooLong.json.error.message, "The requested time range is too long.");
      const empty = await q({ timeMin: "2026-01-02T00:00:00Z", timeMax: "2026-01-02T00:00:00Z", items: [] });
      assert.equal(empty.status, 400);
      assert.equal(reasonOf(empty), "timeRangeEmpty");
      // 50 answered (one unknown, the account's calendar, 48 fillers), then one past the limit.
      const items = [{ id: "nobody@example.com" }, { id: email }];
      for (let i = 0; i < 48; i++) items.push({ id: `filler${i}@example.com` });
      items.push({ id: "late@example.com" });
      const many = await q({ timeMin: "2026-04-01T00:00:00Z", timeMax: "2026-04-02T00:00:00Z", items });
      assert.equal(many.status, 200);
      assert.deepEqual(many.json.calendars["nobody@example.com"], {
        errors: [{ domain: "global", reason: "notFound" }],
        busy: [],
      });
      assert.equal(many.json.calendars["filler47@example.com"].errors[0].reason, "notFound");
      assert.deepEqual(many.json.calendars["late@example.com"].errors, [{
        domain: "global",
        reason: "tooManyCalendarsRequested",
      }]);
      assert.deepEqual(many.json.calendars[email].busy, [{
        start: "2026-04-01T09:00:00Z",
        end: "2026-04-01T09:50:00Z",
      }]);
    });

    await t.step(
      "a write to a deleted event that does not revive it is 403 forbidden, as Google answers",
      async () => {
        const path = `/calendars/${enc(email)}/events`;
        assert.equal((await api("POST", path, at, ev("fffff00000"))).status, 200);
        assert.equal((await api("DELETE", `${path}/fffff00000`, at)).status, 204);
        for (const method of ["PATCH", "PUT"]) {
          const body = method === "PATCH" ? { summary: "Moved" } : ev();
          const refused = await api(method, `${path}/fffff00000`, at, body);
          assert.equal(refused.status, 403, method);
          assert.deepEqual(refused.json.error.errors, [{
            domain: "global",
            reason: "forbidden",
            message: "Forbidden",
          }]);
          assert.equal(refused.json.error.code, 403);
          assert.equal(refused.json.error.message, "Forbidden");
        }
        const still = await api("GET", `${path}/fffff00000`, at);
        assert.equal(still.json.status, "cancelled", "a refused write changes nothing");
        const revived = await api("PUT", `${path}/fffff00000`, at, { ...ev(), status: "confirmed" });
        assert.equal(revived.status, 200);
        assert.equal(revived.json.status, "confirmed");
      },
    );

    await t.step("admin purge and move: the old calendar answers 404, the id stays taken there", async () => {
      const { calendars } = await adminOk("GET", `/_admin/accounts/${enc(email)}`);
      const team = calendars.find((c: { summary: string }) => c.summary === "Team").id;
      const holidays = calendars.find((c: { accessRole: string }) => c.accessRole === "reader").id;
      const path = `/calendars/${enc(email)}/events`;
      const adminEvent = (cal: string, id: string, action: string) =>
        `/_admin/accounts/${enc(email)}/calendars/${enc(cal)}/events/${id}/${action}`;
      for (const id of ["ggggg00000", "hhhhh00000"]) {
        assert.equal((await api("POST", path, at, ev(id))).status, 200);
      }
      await adminOk("POST", adminEvent(email, "ggggg00000", "purge"));
      const moved = await adminOk("POST", adminEvent(email, "hhhhh00000", "move"), { destination: team });
      assert.equal(moved.id, "hhhhh00000");
      for (const id of ["ggggg00000", "hhhhh00000"]) {
        for (const method of ["GET", "PATCH", "DELETE"]) {
          const res = await api(
            method,
            `${path}/${id}`,
            at,
            method === "PATCH" ? { summary: "x" } : undefined,
          );
          assert.equal(res.status, 404, `${method} ${id}`);
          assert.equal(reasonOf(res), "notFound");
        }
        const dup = await api("POST", path, at, ev(id));
        assert.equal(dup.status, 409, `${id} stays taken`);
        assert.equal(reasonOf(dup), "duplicate");
      }
      const there = await api("GET", `/calendars/${enc(team)}/events/hhhhh00000`, at);
      assert.equal(there.status, 200);
      assert.equal(there.json.summary, "Session");
      // Mistakes are the admin API's 4xx, never a 500.
      assert.equal((await admin("POST", adminEvent(email, "nosuch0000", "purge"))).status, 404);
      assert.equal(
        (await admin("POST", adminEvent(team, "hhhhh00000", "move"), { destination: team })).status,
        400,
      );
      assert.equal(
        (await admin("POST", adminEvent(team, "hhhhh00000", "move"), { destination: "x@y" })).status,
        404,
      );
      assert.equal((await admin("POST", adminEvent(team, "hhhhh00000", "move"), {})).status, 400);
      assert.equal((await api("POST", `/calendars/${enc(holidays)}/events`, at, ev())).status, 403);
    });

    await t.step("time zones per calendar: calendarList.list/get and calendars.get report them", async () => {
      const { calendars } = await adminOk("GET", `/_admin/accounts/${enc(email)}`);
      const team = calendars.find((c: { summary: string }) => c.summary === "Team").id;
      const patched = await adminOk("PATCH", `/_admin/accounts/${enc(email)}/calendars/${enc(team)}`, {
        timeZone: "Europe/Berlin",
      });
      assert.equal(patched.timeZone, "Europe/Berlin");
      await adminOk("POST", "/_admin/accounts", {
        email,
        calendars: [{ id: "tokyo@group.calendar.google.com", summary: "Tokyo", timeZone: "Asia/Tokyo" }],
      });
      const list = await api("GET", "/users/me/calendarList", at);
      const zones = Object.fromEntries(
        list.json.items.map((i: { id: string; timeZone: string }) => [i.id, i.timeZone]),
      );
      assert.equal(zones[team], "Europe/Berlin");
      assert.equal(zones["tokyo@group.calendar.google.com"], "Asia/Tokyo");
      assert.equal(zones[email], "UTC");
      const entry = await api("GET", `/users/me/calendarList/${enc(team)}`, at);
      assert.equal(entry.status, 200);
      assert.equal(entry.json.kind, "calendar#calendarListEntry");
      assert.equal(entry.json.accessRole, "writer");
      assert.equal(entry.json.timeZone, "Europe/Berlin");
      const primary = await api("GET", "/users/me/calendarList/primary", at);
      assert.equal(primary.json.id, email);
      assert.equal(primary.json.primary, true);
      const unknown = await api("GET", `/users/me/calendarList/${enc("nobody@example.com")}`, at);
      assert.equal(unknown.status, 404);
      assert.equal(reasonOf(unknown), "notFound");
      // calendars.get needs a calendar or calendar.calendars scope, which this grant lacks.
      const scoped = await api("GET", `/calendars/${enc(team)}`, at);
      assert.equal(scoped.status, 403);
      assert.equal(reasonOf(scoped), "insufficientPermissions");
      const wide =
        (await connect("dr.zones@example.com", { request: [S("calendar.readonly")] })).access_token;
      const own = await api("GET", "/calendars/primary", wide);
      assert.equal(own.status, 200);
      assert.deepEqual(
        { kind: own.json.kind, id: own.json.id, timeZone: own.json.timeZone },
        { kind: "calendar#calendar", id: "dr.zones@example.com", timeZone: "UTC" },
      );
      assert.equal(own.json.accessRole, undefined, "the access role is the calendar list's business");
      const bad = await admin("PATCH", `/_admin/accounts/${enc(email)}/calendars/${enc(team)}`, {
        timeZone: "Mars/Olympus",
      });
      assert.equal(bad.status, 400);
      assert.equal(bad.json.error.code, "invalid_request");
    });

    await t.step(
      "freeBusy: an injected per-calendar error is answered with busy [] and the reason",
      async () => {
        const cal = `/_admin/accounts/${enc(email)}/calendars/${enc(email)}`;
        await adminOk("PATCH", cal, { freeBusyError: "internalError" });
        const body = {
          timeMin: "2026-04-01T00:00:00Z",
          timeMax: "2026-04-02T00:00:00Z",
          items: [{ id: email }],
        };
        const failed = await api("POST", "/freeBusy", at, body);
        assert.equal(failed.status, 200);
        assert.deepEqual(failed.json.calendars[email], {
          errors: [{ domain: "global", reason: "internalError" }],
          busy: [],
        });
        await adminOk("PATCH", cal, { freeBusyError: null });
        const healed = await api("POST", "/freeBusy", at, body);
        assert.equal(healed.json.calendars[email].errors, undefined);
        assert.ok(healed.json.calendars[email].busy.length > 0);
      },
    );

    await t.step(
      "admin: a deleted calendar is notFound; expired tokens are 401 until refreshed",
      async () => {
        const { calendars } = await adminOk("GET", `/_admin/accounts/${enc(email)}`);
        const team = calendars.find((c: { summary: string }) => c.summary === "Team").id;
        assert.equal((await api("GET", `/calendars/${enc(team)}/events`, at)).status, 200);
        await adminOk("DELETE", `/_admin/accounts/${enc(email)}/calendars/${enc(team)}`);
        const gone = await api("GET", `/calendars/${enc(team)}/events`, at);
        assert.equal(gone.status, 404);
        assert.equal(reasonOf(gone), "notFound");
        const { expired } = await adminOk("POST", "/_admin/tokens/expire", { email });
        assert.ok(expired >= 1);
        assert.equal((await api("GET", "/users/me/calendarList", at)).status, 401);
        const bad = await admin("POST", "/_admin/faults", { match: {}, response: { status: 200 } });
        assert.equal(bad.status, 400);
        assert.equal(bad.json.error.code, "invalid_request");
        assert.ok(bad.json.request_id);
        assert.equal((await admin("GET", "/_admin/nope")).status, 404);
      },
    );

    await t.step(
      "faults: status faults fire `times` times, match by endpoint/method/path/email",
      async () => {
        at = (await connect(email)).access_token;
        await adminOk("POST", "/_admin/faults", {
          match: { endpoint: "calendarList.list", email },
          response: { status: 403 },
          times: 2,
        });
        const first = await api("GET", "/users/me/calendarList", at);
        assert.equal(first.status, 403);
        assert.equal(reasonOf(first), "rateLimitExceeded");
        assert.equal(first.json.error.errors[0].domain, "usageLimits");
        assert.equal((await api("GET", "/users/me/calendarList", at)).status, 403);
        assert.equal((await api("GET", "/users/me/calendarList", at)).status, 200);

        await adminOk("POST", "/_admin/faults", {
          match: { method: "GET", pathPrefix: "/google/calendar/v3/calendars/" },
          response: { status: 500 },
          times: -1,
        });
        for (let i = 0; i < 3; i++) {
          const res = await api("GET", `/calendars/${enc(email)}/events`, at);
          assert.equal(res.status, 500);
          assert.equal(reasonOf(res), "backendError");
        }
        assert.equal(
          (await api("POST", "/freeBusy", at, {
            timeMin: "2026-04-01T00:00:00Z",
            timeMax: "2026-04-02T00:00:00Z",
          })).status,
          200,
        );
        await adminOk("DELETE", "/_admin/faults");
        assert.equal((await api("GET", `/calendars/${enc(email)}/events`, at)).status, 200);

        await adminOk("POST", "/_admin/faults", {
          match: { email: "someone.else@example.com" },
          response: { status: 503 },
        });
        assert.equal((await api("GET", "/users/me/calendarList", at)).status, 200, "another account's fault");
        await adminOk("POST", "/_admin/faults", {
          match: {},
          response: { status: 503 },
          probability: 0,
          times: -1,
        });
        assert.equal(
          (await api("GET", "/users/me/calendarList", at)).status,
          200,
          "probability 0 never fires",
        );
        await adminOk("DELETE", "/_admin/faults");
      },
    );

    await t.step(
      "faults: a timeout holds the answer until the client gives up; executed keeps the write",
      async () => {
        await adminOk("POST", "/_admin/faults", {
          match: { endpoint: "events.insert" },
          response: { timeout: true, hangMs: 60_000 },
        });
        const path = `/calendars/${enc(email)}/events`;
        const send = (id: string) =>
          fetch(`${sb.url}/google/calendar/v3${path}`, {
            method: "POST",
            headers: { authorization: `Bearer ${at}`, "content-type": "application/json" },
            body: JSON.stringify(ev(id)),
            signal: AbortSignal.timeout(200),
          });
        await assert.rejects(send("ttttt00001"), (e: Error) => e.name === "TimeoutError");
        assert.equal((await api("GET", `${path}/ttttt00001`, at)).status, 404, "not carried out");

        await adminOk("POST", "/_admin/faults", {
          match: { endpoint: "events.insert" },
          response: { timeout: true, hangMs: 60_000, executed: true },
        });
        await assert.rejects(send("ttttt00002"), (e: Error) => e.name === "TimeoutError");
        // The write happened although its answer was lost (visible once the held request is released).
        const deadline = Date.now() + 5_000;
        let status = 0;
        while (Date.now() < deadline && status !== 200) {
          status = (await api("GET", `${path}/ttttt00002`, at)).status;
          if (status !== 200) await new Promise((r) => setTimeout(r, 20));
        }
        assert.equal(status, 200);

        // A short hang with a patient client is just a slow call.
        await adminOk("POST", "/_admin/faults", {
          match: { endpoint: "events.insert" },
          response: { timeout: true, hangMs: 20 },
        });
        assert.equal((await api("POST", path, at, ev("ttttt00003"))).status, 200);
      },
    );

    await t.step("counters: per endpoint, recent calls with status and email, and reset", async () => {
      await adminOk("POST", "/_admin/calls/reset");
      await api("GET", "/users/me/calendarList", at);
      await api("GET", "/users/me/calendarList", "ya29.unknown");
      await api("GET", `/calendars/${enc(email)}/events/ttttt00003`, at);
      const calls = await adminOk("GET", "/_admin/calls");
      assert.equal(calls.total, 3);
      assert.deepEqual(calls.byEndpoint, { "calendarList.list": 2, "events.get": 1 });
      assert.deepEqual(
        calls.recent.map((c: { endpoint: string; status: number; email: string | null; method: string }) => [
          c.endpoint,
          c.method,
          c.status,
          c.email,
        ]),
        [["calendarList.list", "GET", 200, email], ["calendarList.list", "GET", 401, null], [
          "events.get",
          "GET",
          200,
          email,
        ]],
      );
      assert.equal(calls.recent[2].path, `/google/calendar/v3/calendars/${enc(email)}/events/ttttt00003`);
      await adminOk("POST", "/_admin/calls/reset");
      assert.deepEqual(await adminOk("GET", "/_admin/calls"), { total: 0, byEndpoint: {}, recent: [] });
    });

    await t.step(
      "latency holds every call; the concurrency report sees overlapping writes to one event, not a retry after a call its client gave up on",
      async () => {
        await adminOk("POST", "/_admin/concurrency/reset");
        const path = `/calendars/${enc(email)}/events/ttttt00003`;
        await api("PATCH", path, at, { summary: "one" });
        await api("PATCH", path, at, { summary: "two" });
        assert.deepEqual(await adminOk("GET", "/_admin/concurrency"), {
          maxInFlightPerEvent: 1,
          violations: [],
          abandonedOverlaps: 0,
        });
        // Latency keeps each request in flight long enough that three parallel ones overlap.
        await adminOk("POST", "/_admin/latency", { ms: 250 });
        const parallel = await Promise.all(
          [1, 2, 3].map((n) => api("PATCH", path, at, { summary: `p${n}` })),
        );
        assert.deepEqual(parallel.map((r) => r.status), [200, 200, 200]);
        await adminOk("POST", "/_admin/latency", { ms: 0 });
        const report = await adminOk("GET", "/_admin/concurrency");
        assert.equal(report.maxInFlightPerEvent, 3);
        assert.deepEqual(report.violations, [{ calendarId: email, eventId: "ttttt00003", maxInFlight: 3 }]);
        assert.equal((await admin("POST", "/_admin/latency", { ms: -1 })).status, 400);

        // A call its client gave up on (a timeout) is no violation for the call that follows it: the
        // sandbox may notice the client left only after the retry arrived.
        await adminOk("POST", "/_admin/concurrency/reset");
        await adminOk("POST", "/_admin/faults", {
          match: { endpoint: "events.patch" },
          response: { timeout: true },
        });
        const gaveUp = new AbortController();
        const held = fetch(`${sb.url}/google/calendar/v3${path}`, {
          method: "PATCH",
          headers: { authorization: `Bearer ${at}`, "content-type": "application/json" },
          body: JSON.stringify({ summary: "held" }),
          signal: gaveUp.signal,
        }).catch((err) => err);
        await new Promise((r) => setTimeout(r, 100));
        assert.equal((await api("PATCH", path, at, { summary: "retry" })).status, 200);
        gaveUp.abort();
        assert.equal((await held).name, "AbortError");
        let abandoned;
        for (
          let i = 0;
          i < 50 && !(abandoned = await adminOk("GET", "/_admin/concurrency")).abandonedOverlaps;
          i++
        ) {
          await new Promise((r) => setTimeout(r, 20));
        }
        assert.deepEqual(abandoned, { maxInFlightPerEvent: 2, violations: [], abandonedOverlaps: 1 });
      },
    );

    await t.step("reset forgets accounts, grants, faults and counters", async () => {
      await adminOk("POST", "/_admin/faults", { match: {}, response: { status: 500 }, times: -1 });
      await adminOk("POST", "/_admin/reset");
      assert.equal((await admin("GET", `/_admin/accounts/${enc(email)}`)).status, 404);
      assert.deepEqual((await adminOk("GET", "/_admin/grants")).grants, []);
      assert.deepEqual((await adminOk("GET", "/_admin/faults")).faults, []);
      assert.equal((await api("GET", "/users/me/calendarList", at)).status, 401);
    });
  } finally {
    await sb.close();
  }
});

Deno.test("probabilistic faults repeat exactly for the same seed", async () => {
  const pattern = async () => {
    const sb = await startSandbox({ port: 0, clients: CLIENTS, seed: 1234 });
    try {
      const { adminOk, connect, api } = client(sb.url);
      const { access_token } = await connect("dr.dice@example.com");
      await adminOk("POST", "/_admin/faults", {
        match: { endpoint: "calendarList.list" },
        response: { status: 503 },
        times: -1,
        probability: 0.5,
      });
      const out: number[] = [];
      for (let i = 0; i < 24; i++) {
        out.push((await api("GET", "/users/me/calendarList", access_token)).status);
      }
      return out;
    } finally {
      await sb.close();
    }
  };
  const a = await pattern();
  const b = await pattern();
  assert.deepEqual(a, b);
  assert.ok(a.includes(200) && a.includes(503), `both outcomes occur: ${a}`);
});

Deno.test("the state file keeps accounts, events and grants across a restart", async () => {
  const dir = await Deno.makeTempDir({ prefix: "sandbox-state-" });
  const stateFile = `${dir}/nested/sandbox.json`;
  try {
    const first = await startSandbox({ port: 0, clients: CLIENTS, stateFile });
    let tokens: { access_token: string; refresh_token?: string };
    try {
      const { adminOk, connect } = client(first.url);
      tokens = await connect("dr.persist@example.com");
      await adminOk("POST", `/_admin/accounts/${enc("dr.persist@example.com")}/calendars/primary/events`, {
        start: "2026-05-04T10:00:00Z",
        end: "2026-05-04T11:00:00Z",
        summary: "kept",
      });
    } finally {
      await first.close();
    }
    const saved = JSON.parse(await Deno.readTextFile(stateFile));
    assert.equal(saved.version, 1);
    assert.ok(saved.accounts["dr.persist@example.com"]);

    const second = await startSandbox({ port: 0, clients: CLIENTS, stateFile });
    try {
      const { adminOk, token, api } = client(second.url);
      const { items } = await adminOk(
        "GET",
        `/_admin/accounts/${enc("dr.persist@example.com")}/calendars/primary/events`,
      );
      assert.deepEqual(items.map((e: { summary: string }) => e.summary), ["kept"]);
      assert.equal((await api("GET", "/users/me/calendarList", tokens.access_token)).status, 200);
      const refreshed = await token({
        grant_type: "refresh_token",
        refresh_token: tokens.refresh_token!,
        client_id: CLIENT_ID,
        client_secret: CLIENT_SECRET,
      });
      assert.equal(refreshed.status, 200);
    } finally {
      await second.close();
    }

    await Deno.writeTextFile(stateFile, '{"not":"sandbox state"}');
    await assert.rejects(
      startSandbox({ port: 0, clients: CLIENTS, stateFile }),
      /does not look like sandbox state/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("the CLI reads its port, client and redirect URIs from the environment", () => {
  const defaults = optionsFromEnv(() => undefined);
  assert.equal(defaults.port, 54329);
  assert.deepEqual(defaults.clients[0].redirectUris, [
    "http://127.0.0.1:54321/functions/v1/calendar-auth-callback",
    "http://127.0.0.1:54321/functions/v1/google-calendar-auth-callback",
  ]);
  const env: Record<string, string> = {
    SANDBOX_PORT: "0",
    GOOGLE_CLIENT_ID: "cli.apps.googleusercontent.com",
    GOOGLE_CLIENT_SECRET: "cli-secret",
    SANDBOX_REDIRECT_URIS: "http://localhost:9/cb, http://localhost:9/cb2",
    SANDBOX_STATE_FILE: ".local/sandbox.json",
  };
  const o = optionsFromEnv((n) => env[n]);
  assert.equal(o.port, 0);
  assert.equal(o.stateFile, ".local/sandbox.json");
  assert.deepEqual(o.clients, [{
    clientId: "cli.apps.googleusercontent.com",
    clientSecret: "cli-secret",
    redirectUris: ["http://localhost:9/cb", "http://localhost:9/cb2"],
  }]);
  assert.throws(() => optionsFromEnv((n) => (n === "SANDBOX_PORT" ? "http" : undefined)), /SANDBOX_PORT/);
});
