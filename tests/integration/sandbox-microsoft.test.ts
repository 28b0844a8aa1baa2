/**
 * The Microsoft half of the provider sandbox (dev/sandbox/CONTRACT.md "Microsoft") through real HTTP: consent with PKCE S256, the token endpoint with refresh-token
 * rotation and reuse detection, AADSTS errors, the ID token against the published keys, Graph
 * `/me/calendars` paging, getSchedule (Windows zones, statuses, all-day and multi-day, per-schedule
 * errors, limits), calendarView (window, Prefer zones, floating all-day events, `$select`, paging), events with transactionId de-duplication and 404s, MailboxConcurrency, injected
 * faults and the state file. Response shapes are checked against real bodies in tests/fixtures/microsoft.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import * as jose from "jose";
import { startSandbox } from "../../dev/sandbox/server.ts";

const CLIENT_ID = "11112222-bbbb-3333-cccc-4444dddd5555";
const SECRET = "it-ms-secret";
const REDIRECT = "http://127.0.0.1:54321/functions/v1/calendar-auth-callback";
const MS_CLIENTS = [{ clientId: CLIENT_ID, clientSecret: SECRET, redirectUris: [REDIRECT] }];
const ALL_SCOPES = "openid profile email offline_access Calendars.ReadWrite User.Read";
const VERIFIER = "it-verifier-0123456789-0123456789-0123456789";
const CHALLENGE = createHash("sha256").update(VERIFIER).digest("base64url");

const fixture = async (name: string) =>
  JSON.parse(await Deno.readTextFile(new URL(`../fixtures/microsoft/${name}`, import.meta.url)));

interface Answer {
  status: number;
  headers: Headers;
  // deno-lint-ignore no-explicit-any
  json: any;
}

async function call(url: string, init: RequestInit = {}): Promise<Answer> {
  const res = await fetch(url, init);
  const text = await res.text();
  let json: unknown;
  try {
    json = text ? JSON.parse(text) : undefined;
  } catch {
    json = text;
  }
  return { status: res.status, headers: res.headers, json };
}

/** Helpers bound to one sandbox. */
function harness(base: string) {
  const admin = async (method: string, path: string, body?: unknown) => {
    const a = await call(`${base}/_admin${path}`, {
      method,
      headers: body === undefined ? {} : { "content-type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    assert.ok(a.status < 300, `admin ${method} ${path} -> ${a.status} ${JSON.stringify(a.json)}`);
    return a.json;
  };
  const authUrl = (p: Record<string, string | undefined> = {}, tenant = "common") => {
    const url = new URL(`${base}/microsoft/${tenant}/oauth2/v2.0/authorize`);
    const all: Record<string, string | undefined> = {
      client_id: CLIENT_ID,
      redirect_uri: REDIRECT,
      response_type: "code",
      scope: ALL_SCOPES,
      state: "st-1",
      code_challenge: CHALLENGE,
      code_challenge_method: "S256",
      ...p,
    };
    for (const [k, v] of Object.entries(all)) if (v !== undefined) url.searchParams.set(k, v);
    return url.href;
  };
  const consent = async (login: string, o: { scopes?: string[]; decision?: string; url?: string } = {}) => {
    const a = await call(`${base}/_admin/authorize`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({
        authorizationUrl: o.url ?? authUrl(),
        login,
        decision: o.decision ?? "approve",
        ...(o.scopes ? { scopes: o.scopes } : {}),
      }),
    });
    return a;
  };
  const token = (form: Record<string, string>, tenant = "common") =>
    call(`${base}/microsoft/${tenant}/oauth2/v2.0/token`, {
      method: "POST",
      body: new URLSearchParams({ client_id: CLIENT_ID, client_secret: SECRET, ...form }),
    });
  const connect = async (login: string, scopes?: string[]) => {
    const c = await consent(login, scopes ? { scopes } : {});
    assert.equal(c.status, 200, JSON.stringify(c.json));
    const code = new URL(c.json.redirect).searchParams.get("code")!;
    const t = await token({
      grant_type: "authorization_code",
      code,
      redirect_uri: REDIRECT,
      code_verifier: VERIFIER,
    });
    assert.equal(t.status, 200, JSON.stringify(t.json));
    return t.json as { access_token: string; refresh_token?: string; id_token?: string; scope: string };
  };
  const graph = (
    accessToken: string,
    method: string,
    path: string,
    body?: unknown,
    headers: Record<string, string> = {},
  ) =>
    call(`${base}/microsoft/graph/v1.0${path}`, {
      method,
      headers: {
        authorization: `Bearer ${accessToken}`,
        ...(body === undefined ? {} : { "content-type": "application/json" }),
        ...headers,
      },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  return { admin, authUrl, consent, token, connect, graph };
}

/** Assert an AADSTS body: error, `AADSTS<code>:` description, error_codes, trace ids, timestamp. */
function assertAadsts(a: Answer, status: number, error: string, code: number) {
  assert.equal(a.status, status, JSON.stringify(a.json));
  assert.equal(a.json.error, error);
  assert.match(a.json.error_description, new RegExp(`^AADSTS${code}: `));
  assert.deepEqual(a.json.error_codes, [code]);
  for (const k of ["timestamp", "trace_id", "correlation_id"]) assert.equal(typeof a.json[k], "string", k);
}

/** Assert Graph's error envelope with innerError and the request-id headers. */
function assertGraphError(a: Answer, status: number, code: string) {
  assert.equal(a.status, status, JSON.stringify(a.json));
  assert.equal(a.json.error.code, code);
  assert.equal(typeof a.json.error.message, "string");
  assert.deepEqual(Object.keys(a.json.error.innerError).sort(), ["client-request-id", "date", "request-id"]);
  assert.match(a.json.error.innerError.date, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d$/);
  assert.ok(a.headers.get("request-id"));
}

Deno.test("consent, code exchange, ID token, refresh rotation and reuse detection", async (t) => {
  const sb = await startSandbox({ microsoftClients: MS_CLIENTS });
  const h = harness(sb.url);
  try {
    await h.admin("POST", "/microsoft/accounts", {
      email: "Ann.Lee@Contoso.com",
      displayName: "Ann Lee",
      tenantId: "aaaabbbb-0000-cccc-1111-dddd2222eeee",
    });

    await t.step(
      "approve: code + state; the token answer has rotated-ready tokens and an ID token",
      async () => {
        const c = await h.consent("ann.lee@contoso.com");
        const back = new URL(c.json.redirect);
        assert.equal(back.origin + back.pathname, REDIRECT);
        assert.equal(back.searchParams.get("state"), "st-1");
        const code = back.searchParams.get("code")!;
        const redeem = {
          grant_type: "authorization_code",
          code,
          redirect_uri: REDIRECT,
          code_verifier: VERIFIER,
        };
        const tok = await h.token(redeem);
        assert.equal(tok.status, 200);
        assert.equal(tok.json.token_type, "Bearer");
        assert.ok(tok.json.expires_in >= 3599 && tok.json.expires_in <= 5399);
        assert.equal(typeof tok.json.ext_expires_in, "number");
        assert.ok(tok.json.refresh_token);
        assert.ok(tok.json.scope.split(" ").includes("https://graph.microsoft.com/Calendars.ReadWrite"));
        // The ID token verifies against the key set the OpenID configuration names.
        const conf = (await call(
          `${sb.url}/microsoft/aaaabbbb-0000-cccc-1111-dddd2222eeee/v2.0/.well-known/openid-configuration`,
        )).json;
        assert.equal(conf.revocation_endpoint, undefined);
        const jwks = jose.createRemoteJWKSet(new URL(conf.jwks_uri));
        const { payload, protectedHeader } = await jose.jwtVerify(tok.json.id_token, jwks, {
          issuer: conf.issuer,
          audience: CLIENT_ID,
        });
        assert.equal(protectedHeader.alg, "RS256");
        assert.equal(payload.tid, "aaaabbbb-0000-cccc-1111-dddd2222eeee");
        assert.equal(payload.email, "ann.lee@contoso.com");
        assert.equal(payload.preferred_username, "ann.lee@contoso.com");
        assert.match(String(payload.oid), /^[0-9a-f-]{36}$/);
        // The common endpoint's issuer is Entra's template.
        const common = (await call(`${sb.url}/microsoft/common/v2.0/.well-known/openid-configuration`)).json;
        assert.equal(common.issuer, `${sb.url}/microsoft/{tenantid}/v2.0`);

        // The code is single use: AADSTS54005.
        assertAadsts(await h.token(redeem), 400, "invalid_grant", 54005);

        // Rotation: every refresh returns a new refresh token; the newest keeps working.
        const r1 = await h.token({ grant_type: "refresh_token", refresh_token: tok.json.refresh_token });
        assert.equal(r1.status, 200);
        assert.notEqual(r1.json.refresh_token, tok.json.refresh_token);
        const r2 = await h.token({ grant_type: "refresh_token", refresh_token: r1.json.refresh_token });
        assert.equal(r2.status, 200);
        assert.notEqual(r2.json.refresh_token, r1.json.refresh_token);
        // Reuse of a rotated token is detected; the newest still works afterwards.
        const reuse = await h.token({ grant_type: "refresh_token", refresh_token: tok.json.refresh_token });
        assertAadsts(reuse, 400, "invalid_grant", 70000);
        const r3 = await h.token({ grant_type: "refresh_token", refresh_token: r2.json.refresh_token });
        assert.equal(r3.status, 200);
        const grants = (await h.admin("GET", "/microsoft/grants?email=ann.lee@contoso.com")).grants;
        assert.equal(grants[0].refreshCount, 3);
        assert.equal(grants[0].reuseCount, 1);

        // revoke_grant mode: reuse kills the whole family (OAuth 2.1 reuse detection).
        await h.admin("POST", "/microsoft/settings", { refreshTokenReuse: "revoke_grant" });
        assertAadsts(
          await h.token({ grant_type: "refresh_token", refresh_token: r1.json.refresh_token }),
          400,
          "invalid_grant",
          70000,
        );
        assertAadsts(
          await h.token({ grant_type: "refresh_token", refresh_token: r3.json.refresh_token }),
          400,
          "invalid_grant",
          50173,
        );
        // allow mode: Entra's documented behaviour (old refresh tokens stay valid until they expire).
        await h.admin("POST", "/microsoft/settings", { refreshTokenReuse: "allow" });
        const fresh = await h.connect("ann.lee@contoso.com");
        const f1 = await h.token({ grant_type: "refresh_token", refresh_token: fresh.refresh_token! });
        assert.equal(f1.status, 200);
        assert.equal(
          (await h.token({ grant_type: "refresh_token", refresh_token: fresh.refresh_token! })).status,
          200,
        );
      },
    );

    await t.step("AADSTS bodies match the identity platform's real error shape", async () => {
      const real = await fixture("oauth-error-invalid-scope.json");
      const a = await h.token({ grant_type: "refresh_token", refresh_token: "0.AVnot-a-token" });
      for (const k of Object.keys(real)) assert.ok(k in a.json, `missing ${k}`);
      assert.match(a.json.error_description, /\r\nTrace ID: .+\r\nCorrelation ID: .+\r\nTimestamp: /);
      // Wrong client secret: 401 invalid_client AADSTS7000215.
      const bad = await call(`${sb.url}/microsoft/common/oauth2/v2.0/token`, {
        method: "POST",
        body: new URLSearchParams({
          client_id: CLIENT_ID,
          client_secret: "wrong",
          grant_type: "refresh_token",
          refresh_token: "x",
        }),
      });
      assertAadsts(bad, 401, "invalid_client", 7000215);
      // A scope outside the consent on refresh: 65001 consent_required.
      const t2 = await h.connect("ann.lee@contoso.com", ["openid", "offline_access", "User.Read"]);
      const wider = await h.token({
        grant_type: "refresh_token",
        refresh_token: t2.refresh_token!,
        scope: "Calendars.ReadWrite",
      });
      assertAadsts(wider, 400, "invalid_grant", 65001);
      assert.equal(wider.json.suberror, "consent_required");
      const unknown = await h.token({
        grant_type: "refresh_token",
        refresh_token: t2.refresh_token!,
        scope: "Mail.Nope",
      });
      assertAadsts(unknown, 400, "invalid_scope", 70011);
    });

    await t.step("PKCE S256 is required and checked", async () => {
      const noPkce = await h.consent("ann.lee@contoso.com", {
        url: h.authUrl({ code_challenge: undefined, code_challenge_method: undefined }),
      });
      const back = new URL(noPkce.json.redirect);
      assert.equal(back.searchParams.get("error"), "invalid_request");
      assert.match(back.searchParams.get("error_description")!, /^AADSTS9002325: /);
      assert.equal(back.searchParams.get("state"), "st-1");
      const plain = await h.consent("ann.lee@contoso.com", {
        url: h.authUrl({ code_challenge_method: "plain" }),
      });
      assert.equal(new URL(plain.json.redirect).searchParams.get("error"), "invalid_request");
      const c = await h.consent("ann.lee@contoso.com");
      const code = new URL(c.json.redirect).searchParams.get("code")!;
      const wrong = await h.token({
        grant_type: "authorization_code",
        code,
        redirect_uri: REDIRECT,
        code_verifier: `x${VERIFIER}`,
      });
      assertAadsts(wrong, 400, "invalid_grant", 501481);
    });

    await t.step("deny, fewer scopes, prompt=none, bad client and scope errors", async () => {
      const deny = await h.consent("ann.lee@contoso.com", { decision: "deny" });
      const d = new URL(deny.json.redirect).searchParams;
      assert.equal(d.get("error"), "access_denied");
      assert.match(d.get("error_description")!, /^AADSTS65004: /);
      assert.equal(d.get("state"), "st-1");
      // Unticking offline_access and Calendars.ReadWrite: no refresh token, calendars refused.
      const narrow = await h.connect("ann.lee@contoso.com", ["openid", "User.Read"]);
      assert.equal(narrow.refresh_token, undefined);
      assert.equal(narrow.scope, "openid https://graph.microsoft.com/User.Read");
      assert.equal((await h.graph(narrow.access_token, "GET", "/me")).status, 200);
      assertGraphError(await h.graph(narrow.access_token, "GET", "/me/calendars"), 403, "ErrorAccessDenied");
      const none = await h.consent("ann.lee@contoso.com", { url: h.authUrl({ prompt: "none" }) });
      assert.equal(new URL(none.json.redirect).searchParams.get("error"), "login_required");
      const badScope = await h.consent("ann.lee@contoso.com", {
        url: h.authUrl({ scope: "openid Files.Nope" }),
      });
      assert.equal(new URL(badScope.json.redirect).searchParams.get("error"), "invalid_scope");
      // Client and redirect problems are shown, never redirected.
      const badClient = await h.consent("ann.lee@contoso.com", { url: h.authUrl({ client_id: "nope" }) });
      assert.equal(badClient.status, 400);
      const badRedirect = await h.consent("ann.lee@contoso.com", {
        url: h.authUrl({ redirect_uri: "https://evil.example/cb" }),
      });
      assert.equal(badRedirect.status, 400);
      assert.match(badRedirect.json.error.message, /AADSTS50011/);
      // A specific tenant refuses an account of another tenant (AADSTS50020).
      await h.admin("POST", "/microsoft/accounts", { email: "zed@fabrikam.com" });
      const other = await h.consent("zed@fabrikam.com", {
        url: h.authUrl({}, "aaaabbbb-0000-cccc-1111-dddd2222eeee"),
      });
      assert.equal(other.status, 400);
      assert.match(other.json.error.message, /AADSTS50020/);
    });

    await t.step(
      "revocations answer their AADSTS code; Graph answers 401 InvalidAuthenticationToken",
      async () => {
        await h.admin("POST", "/microsoft/settings", { refreshTokenReuse: "reject" });
        for (
          const [reason, code] of [["password_change", 50173], ["consent_revoked", 65001], [
            "inactivity",
            700082,
          ], ["mfa_required", 50076]] as const
        ) {
          const tok = await h.connect("bo@contoso.com");
          assert.equal((await h.graph(tok.access_token, "GET", "/me")).status, 200);
          const r = await h.admin("POST", "/microsoft/grants/revoke", { email: "bo@contoso.com", reason });
          assert.ok(r.revoked >= 1);
          assertAadsts(
            await h.token({ grant_type: "refresh_token", refresh_token: tok.refresh_token! }),
            400,
            "invalid_grant",
            code,
          );
          const api = await h.graph(tok.access_token, "GET", "/me");
          assertGraphError(api, 401, "InvalidAuthenticationToken");
          assert.match(api.headers.get("www-authenticate")!, /^Bearer /);
        }
        // Expired access token: 401, and a refresh brings the API back.
        const tok = await h.connect("cy@contoso.com");
        await h.admin("POST", "/microsoft/tokens/expire", { email: "cy@contoso.com" });
        assertGraphError(
          await h.graph(tok.access_token, "GET", "/me/calendars"),
          401,
          "InvalidAuthenticationToken",
        );
        const r = await h.token({ grant_type: "refresh_token", refresh_token: tok.refresh_token! });
        assert.equal((await h.graph(r.json.access_token, "GET", "/me/calendars")).status, 200);
        assertGraphError(await h.graph("", "GET", "/me"), 401, "InvalidAuthenticationToken");
      },
    );
  } finally {
    await sb.close();
  }
});

Deno.test("Graph calendars, getSchedule and events", async (t) => {
  const sb = await startSandbox({ microsoftClients: MS_CLIENTS });
  const h = harness(sb.url);
  try {
    await h.admin("POST", "/microsoft/accounts", {
      email: "dr.kim@contoso.com",
      timeZone: "W. Europe Standard Time",
      calendars: Array.from({ length: 9 }, (_, i) => ({
        name: `Shared ${i}`,
        canEdit: i % 2 === 0,
        owner: { name: "Front Desk", address: "desk@contoso.com" },
      })),
    });
    await h.admin("POST", "/microsoft/accounts", { email: "nurse@contoso.com" });
    const tok = await h.connect("dr.kim@contoso.com");
    const at = tok.access_token;

    await t.step(
      "/me and /me/calendars with canEdit, isDefaultCalendar, owner and nextLink paging",
      async () => {
        const me = await h.graph(at, "GET", "/me");
        assert.equal(me.json.userPrincipalName, "dr.kim@contoso.com");
        const real = (await fixture("calendars-list.json")).value[0];
        const seen: Array<Record<string, unknown>> = [];
        let next: string | undefined = `${sb.url}/microsoft/graph/v1.0/me/calendars`;
        let pages = 0;
        while (next) {
          const page: Answer = await call(next, { headers: { authorization: `Bearer ${at}` } });
          assert.equal(page.status, 200);
          seen.push(...page.json.value);
          next = page.json["@odata.nextLink"];
          pages++;
        }
        assert.equal(pages, 2); // 12 calendars, 10 per page
        assert.equal(seen.length, 12);
        assert.equal(new Set(seen.map((c) => c.id)).size, 12);
        for (const k of Object.keys(real).filter((k) => k !== "@odata.id")) {
          assert.ok(k in seen[0], `calendar lacks ${k}`);
        }
        assert.equal(
          seen.filter((c) => c.isDefaultCalendar).length,
          1,
        );
        const shared = seen.filter((c) => (c.owner as { address: string }).address === "desk@contoso.com");
        assert.equal(shared.length, 9);
        assert.equal(shared.filter((c) => c.canEdit).length, 5);
        const top = await h.graph(at, "GET", "/me/calendars?$top=5");
        assert.equal(top.json.value.length, 5);
        assert.match(top.json["@odata.nextLink"], /\$skip=5/);
      },
    );

    await t.step(
      "getSchedule: statuses, Windows zones, all-day and multi-day, per-schedule errors, limits",
      async () => {
        const add = (
          subject: string,
          start: string,
          end: string,
          showAs: string,
          tz = "UTC",
          isAllDay = false,
        ) =>
          h.admin("POST", "/microsoft/accounts/dr.kim@contoso.com/calendars/default/events", {
            subject,
            start: { dateTime: start, timeZone: tz },
            end: { dateTime: end, timeZone: tz },
            showAs,
            isAllDay,
          });
        // Monday 2026-03-02, window 08:00-13:00 UTC in hour slots.
        await add("free", "2026-03-02T08:00:00", "2026-03-02T09:00:00", "free");
        await add("tentative", "2026-03-02T09:00:00", "2026-03-02T10:00:00", "tentative");
        await add("busy", "2026-03-02T11:00:00", "2026-03-02T12:00:00", "busy", "GMT Standard Time"); // London is on UTC in early March
        await add("oof", "2026-03-02T12:00:00", "2026-03-02T13:00:00", "oof");
        await add("elsewhere", "2026-03-02T10:00:00", "2026-03-02T11:00:00", "workingElsewhere");
        await add("allday", "2026-03-04T00:00:00", "2026-03-05T00:00:00", "busy", "UTC", true);
        await add("trip", "2026-03-05T15:00:00", "2026-03-08T09:00:00", "oof", "Eastern Standard Time");
        await h.admin("PATCH", "/microsoft/accounts/nurse@contoso.com", {
          scheduleError: { responseCode: "5016", message: "The user does not have a mailbox." },
        });
        const ask = (body: Record<string, unknown>, prefer?: string) =>
          h.graph(at, "POST", "/me/calendar/getSchedule", body, prefer ? { prefer } : {});
        const day = {
          schedules: ["dr.kim@contoso.com", "nobody@contoso.com", "nurse@contoso.com"],
          startTime: { dateTime: "2026-03-02T08:00:00", timeZone: "UTC" },
          endTime: { dateTime: "2026-03-02T13:00:00", timeZone: "UTC" },
          availabilityViewInterval: 60,
        };
        const utc = await ask(day);
        assert.equal(utc.status, 200);
        const [mine, nobody, nurse] = utc.json.value;
        assert.equal(mine.availabilityView, "01023"); // free, tentative, workingElsewhere as 0, busy, oof
        assert.deepEqual(mine.scheduleItems.map((i: { status: string }) => i.status), [
          "free",
          "tentative",
          "workingElsewhere",
          "busy",
          "oof",
        ]);
        assert.deepEqual(mine.scheduleItems[3].start, {
          dateTime: "2026-03-02T11:00:00.0000000",
          timeZone: "UTC",
        });
        assert.equal(mine.workingHours.timeZone.name, "W. Europe Standard Time");
        const real = await fixture("getschedule-response.json");
        for (const k of Object.keys(real.value[1].scheduleItems[0])) {
          assert.ok(k in mine.scheduleItems[0], `item lacks ${k}`);
        }
        // Unknown address: exactly the body Graph answers (no items, responseCode 5009).
        assert.deepEqual(nobody, (await fixture("getschedule-error-unresolvable.json")).value[0]);
        assert.equal(nurse.error.responseCode, "5016");
        assert.equal(nurse.scheduleItems, null);

        // Prefer with a Windows name: answers in that zone, named the Windows way; IANA asked -> Windows echoed.
        const pst = await ask(day, 'outlook.timezone="Pacific Standard Time"');
        assert.deepEqual(pst.json.value[0].scheduleItems[3].start, {
          dateTime: "2026-03-02T03:00:00.0000000",
          timeZone: "Pacific Standard Time",
        });
        assert.equal(pst.headers.get("preference-applied"), 'outlook.timezone="Pacific Standard Time"');
        const berlin = await ask(day, 'outlook.timezone="Europe/Berlin"');
        assert.equal(berlin.json.value[0].scheduleItems[0].start.timeZone, "W. Europe Standard Time");
        assertGraphError(
          await ask(day, 'outlook.timezone="Mars/Olympus"'),
          400,
          "TimeZoneNotSupportedException",
        );

        // All-day floats (midnight to midnight in the asked zone); multi-day items keep their full span.
        const week = {
          ...day,
          schedules: ["dr.kim@contoso.com"],
          startTime: { dateTime: "2026-03-03T00:00:00", timeZone: "UTC" },
          endTime: { dateTime: "2026-03-10T00:00:00", timeZone: "UTC" },
          availabilityViewInterval: 1440,
        };
        const w = (await ask(week, 'outlook.timezone="Tokyo Standard Time"')).json.value[0];
        const allDay = w.scheduleItems.find((i: { status: string }) => i.status === "busy");
        assert.deepEqual(allDay.start, {
          dateTime: "2026-03-04T00:00:00.0000000",
          timeZone: "Tokyo Standard Time",
        });
        assert.deepEqual(allDay.end, {
          dateTime: "2026-03-05T00:00:00.0000000",
          timeZone: "Tokyo Standard Time",
        });
        const trip = w.scheduleItems.find((i: { status: string }) => i.status === "oof");
        assert.deepEqual(trip.start, {
          dateTime: "2026-03-06T05:00:00.0000000",
          timeZone: "Tokyo Standard Time",
        });
        // US daylight saving starts on 2026-03-08: 09:00 EDT is 13:00 UTC.
        assert.deepEqual(trip.end, {
          dateTime: "2026-03-08T22:00:00.0000000",
          timeZone: "Tokyo Standard Time",
        });
        assert.equal(w.availabilityView.length, 7);

        // Limits: 62 days accepted, 63 refused; more than 20 schedules refused.
        const span = (days: number) => ({
          schedules: ["dr.kim@contoso.com"],
          startTime: { dateTime: "2026-03-01T00:00:00", timeZone: "UTC" },
          endTime: {
            dateTime: new Date(Date.UTC(2026, 2, 1 + days)).toISOString().slice(0, 19),
            timeZone: "UTC",
          },
          availabilityViewInterval: 1440,
        });
        assert.equal((await ask(span(62))).status, 200);
        const tooLong = await ask(span(63));
        assertGraphError(tooLong, 400, "ErrorTimeIntervalTooBig");
        assert.match(tooLong.json.error.message, /62 days.*63 days/);
        const many = await ask({
          ...day,
          schedules: Array.from({ length: 21 }, (_, i) => `u${i}@contoso.com`),
        });
        assertGraphError(many, 400, "ErrorInvalidParameter");
      },
    );

    await t.step(
      "events: transactionId de-duplication, GET in the preferred zone, PATCH, DELETE, 404s",
      async () => {
        const cals = (await h.graph(at, "GET", "/me/calendars?$top=20")).json.value;
        const def = cals.find((c: { isDefaultCalendar: boolean }) => c.isDefaultCalendar);
        const readOnly = cals.find((c: { canEdit: boolean }) => !c.canEdit);
        const body = {
          subject: "Appointment",
          start: { dateTime: "2026-04-01T09:00:00", timeZone: "W. Europe Standard Time" },
          end: { dateTime: "2026-04-01T09:30:00", timeZone: "W. Europe Standard Time" },
          showAs: "busy",
          transactionId: "appt-42",
        };
        const path = `/me/calendars/${encodeURIComponent(def.id)}/events`;
        const first = await h.graph(at, "POST", path, body);
        assert.equal(first.status, 201);
        assert.equal(first.json.transactionId, "appt-42");
        assert.deepEqual(first.json.start, {
          dateTime: "2026-04-01T09:00:00.0000000",
          timeZone: "W. Europe Standard Time",
        });
        const real = await fixture("event-create-response.json");
        for (const k of Object.keys(real).filter((k) => !k.startsWith("@odata.context"))) {
          assert.ok(
            k in first.json,
            `event lacks ${k}`,
          );
        }
        const retry = await h.graph(at, "POST", path, body);
        assert.equal(retry.status, 201);
        assert.equal(retry.json.id, first.json.id);
        const viaMe = await h.graph(at, "POST", "/me/events", body);
        assert.equal(viaMe.json.id, first.json.id);
        const listed = (await h.admin(
          "GET",
          `/microsoft/accounts/dr.kim@contoso.com/calendars/${encodeURIComponent(def.id)}/events`,
        )).items;
        assert.equal(
          listed.filter((e: { transactionId?: string }) => e.transactionId === "appt-42").length,
          1,
        );
        // Without transactionId nothing is de-duplicated, and none is echoed.
        const plain = await h.graph(at, "POST", "/me/events", { ...body, transactionId: undefined });
        assert.equal(plain.json.transactionId, undefined);
        assert.notEqual(plain.json.id, first.json.id);
        assertGraphError(
          await h.graph(at, "POST", `/me/calendars/${encodeURIComponent(readOnly.id)}/events`, body),
          403,
          "ErrorAccessDenied",
        );
        assertGraphError(
          await h.graph(at, "POST", "/me/events", {
            ...body,
            start: { dateTime: "2026-04-01T09:00:00", timeZone: "Nowhere/City" },
          }),
          400,
          "TimeZoneNotSupportedException",
        );
        assertGraphError(
          await h.graph(at, "POST", "/me/events", { ...body, patientName: "x" }),
          400,
          "RequestBodyRead",
        );

        const id = encodeURIComponent(first.json.id);
        const got = await h.graph(at, "GET", `/me/events/${id}`);
        assert.deepEqual(got.json.start, { dateTime: "2026-04-01T07:00:00.0000000", timeZone: "UTC" });
        const tokyo = await h.graph(at, "GET", `/me/events/${id}`, undefined, {
          prefer: 'outlook.timezone="Tokyo Standard Time"',
        });
        assert.deepEqual(tokyo.json.start, {
          dateTime: "2026-04-01T16:00:00.0000000",
          timeZone: "Tokyo Standard Time",
        });

        const moved = await h.graph(at, "PATCH", `/me/events/${id}`, {
          start: { dateTime: "2026-04-01T10:00:00", timeZone: "W. Europe Standard Time" },
          end: { dateTime: "2026-04-01T10:30:00", timeZone: "W. Europe Standard Time" },
        }, { "if-match": got.json["@odata.etag"] });
        assert.equal(moved.status, 200);
        assert.equal(moved.json.subject, "Appointment");
        assert.notEqual(moved.json.changeKey, got.json.changeKey);
        assertGraphError(
          await h.graph(at, "PATCH", `/me/events/${id}`, { subject: "y" }, {
            "if-match": got.json["@odata.etag"],
          }),
          412,
          "ErrorIrresolvableConflict",
        );
        assertGraphError(
          await h.graph(at, "PATCH", `/me/events/${id}`, { transactionId: "other" }),
          400,
          "ErrorInvalidRequest",
        );

        const del = await h.graph(at, "DELETE", `/me/events/${id}`);
        assert.equal(del.status, 204);
        const again = await h.graph(at, "DELETE", `/me/events/${id}`);
        assertGraphError(again, 404, "ErrorItemNotFound");
        const realNotFound = await fixture("error-404-itemnotfound.json");
        assert.equal(again.json.error.message, realNotFound.error.message);
        assertGraphError(await h.graph(at, "GET", `/me/events/${id}`), 404, "ErrorItemNotFound");
        assertGraphError(
          await h.graph(at, "PATCH", "/me/events/AAMkAGnope", { subject: "z" }),
          404,
          "ErrorItemNotFound",
        );
        const all = (await h.admin(
          "GET",
          `/microsoft/accounts/dr.kim@contoso.com/calendars/${
            encodeURIComponent(def.id)
          }/events?includeDeleted=true`,
        )).items;
        assert.ok(all.find((e: { id: string; deletedAt?: string }) => e.id === first.json.id && e.deletedAt));
        // After deletion the transactionId no longer answers with the deleted event.
        const recreated = await h.graph(at, "POST", path, body);
        assert.equal(recreated.status, 201);
        assert.notEqual(recreated.json.id, first.json.id);
      },
    );
  } finally {
    await sb.close();
  }
});

Deno.test("Graph calendarView: window, Prefer zones, all-day floating, $select, paging", async (t) => {
  const sb = await startSandbox({ microsoftClients: MS_CLIENTS });
  const h = harness(sb.url);
  try {
    const acct = await h.admin("POST", "/microsoft/accounts", {
      email: "dr.lee@contoso.com",
      calendars: [{ name: "Clinic", canEdit: true }],
    });
    const clinic = acct.calendars.find((c: { name: string }) => c.name === "Clinic").id as string;
    const at = (await h.connect("dr.lee@contoso.com")).access_token;
    const add = (cal: string, body: Record<string, unknown>) =>
      h.admin(
        "POST",
        `/microsoft/accounts/dr.lee@contoso.com/calendars/${encodeURIComponent(cal)}/events`,
        body,
      );
    const utc = (dateTime: string) => ({ dateTime, timeZone: "UTC" });
    // Tuesday 2026-03-03 in the Clinic calendar; one event in the default calendar that must not show.
    await add(clinic, { subject: "a", start: utc("2026-03-03T09:00:00"), end: utc("2026-03-03T10:00:00") });
    await add(clinic, {
      subject: "b",
      start: { dateTime: "2026-03-03T11:00:00", timeZone: "Pacific Standard Time" },
      end: { dateTime: "2026-03-03T12:00:00", timeZone: "Pacific Standard Time" },
      showAs: "tentative",
    });
    await add(clinic, {
      subject: "c",
      start: utc("2026-03-04T00:00:00"),
      end: utc("2026-03-05T00:00:00"),
      isAllDay: true,
      showAs: "oof",
    });
    await add(clinic, {
      subject: "d",
      start: utc("2026-03-03T13:00:00"),
      end: utc("2026-03-03T14:00:00"),
      isCancelled: true,
    });
    await add("default", {
      subject: "x",
      start: utc("2026-03-03T09:00:00"),
      end: utc("2026-03-03T10:00:00"),
    });
    const view = (query: string, headers: Record<string, string> = {}, cal = clinic) =>
      h.graph(
        at,
        "GET",
        `/me/calendars/${encodeURIComponent(cal)}/calendarView?${query}`,
        undefined,
        headers,
      );
    const window = "startDateTime=2026-03-03T00:00:00Z&endDateTime=2026-03-04T00:00:00Z";

    await t.step("the window's events of that calendar only, earliest first, in UTC by default", async () => {
      const a = await view(window);
      assert.equal(a.status, 200, JSON.stringify(a.json));
      assert.match(a.json["@odata.context"], /calendarView$/);
      assert.deepEqual(a.json.value.map((e: { subject: string }) => e.subject), ["a", "d", "b"]);
      assert.deepEqual(a.json.value[2].start, { dateTime: "2026-03-03T19:00:00.0000000", timeZone: "UTC" });
      assert.equal(a.json.value[1].isCancelled, true);
      assert.equal(a.json.value[0].isCancelled, false);
      const real = await fixture("event-create-response.json");
      for (const k of Object.keys(real).filter((k) => !["@odata.context", "transactionId"].includes(k))) {
        assert.ok(k in a.json.value[0], `event lacks ${k}`);
      }
      assert.equal(a.headers.get("preference-applied"), null);
      // The default calendar: /me/calendarView and /me/calendar/calendarView.
      for (const path of ["/me/calendarView", "/me/calendar/calendarView"]) {
        const d = await h.graph(at, "GET", `${path}?${window}`);
        assert.deepEqual(d.json.value.map((e: { subject: string }) => e.subject), ["x"], path);
      }
    });

    await t.step(
      "Prefer: answers in the asked zone under its Windows name; all-day events float",
      async () => {
        const two = "startDateTime=2026-03-03T00:00:00Z&endDateTime=2026-03-05T00:00:00Z";
        const pst = await view(two, { prefer: 'outlook.timezone="America/Los_Angeles"' });
        assert.equal(pst.status, 200);
        assert.equal(pst.headers.get("preference-applied"), 'outlook.timezone="America/Los_Angeles"');
        const b = pst.json.value.find((e: { subject: string }) => e.subject === "b");
        assert.deepEqual(b.start, {
          dateTime: "2026-03-03T11:00:00.0000000",
          timeZone: "Pacific Standard Time",
        });
        const c = pst.json.value.find((e: { subject: string }) => e.subject === "c");
        assert.deepEqual(c.start, {
          dateTime: "2026-03-04T00:00:00.0000000",
          timeZone: "Pacific Standard Time",
        });
        assert.equal(c.isAllDay, true);
        // All-day events are matched as days of the answer's zone: 4 March in Tokyo starts 3 March 15:00 UTC.
        const late = "startDateTime=2026-03-03T16:00:00Z&endDateTime=2026-03-03T17:00:00Z";
        assert.deepEqual((await view(late)).json.value.map((e: { subject: string }) => e.subject), []);
        const tokyo = await view(late, { prefer: 'outlook.timezone="Tokyo Standard Time"' });
        assert.deepEqual(tokyo.json.value.map((e: { subject: string }) => e.subject), ["c"]);
        assertGraphError(
          await view(window, { prefer: 'outlook.timezone="Mars/Olympus"' }),
          400,
          "TimeZoneNotSupportedException",
        );
        // A bound without offset is UTC, whatever Prefer says.
        const local = await view("startDateTime=2026-03-03T09:00:00&endDateTime=2026-03-03T10:00:00", {
          prefer: 'outlook.timezone="Tokyo Standard Time"',
        });
        assert.deepEqual(local.json.value.map((e: { subject: string }) => e.subject), ["a"]);
      },
    );

    await t.step("$select keeps id and @odata.etag; an unknown property is a 400", async () => {
      const a = await view(`${window}&$select=showAs,start,end,isAllDay,isCancelled`);
      assert.deepEqual(Object.keys(a.json.value[0]).sort(), [
        "@odata.etag",
        "end",
        "id",
        "isAllDay",
        "isCancelled",
        "showAs",
        "start",
      ]);
      assert.match(a.json["@odata.context"], /calendarView\(showAs,start,end,isAllDay,isCancelled\)$/);
      assertGraphError(await view(`${window}&$select=showAs,colour`), 400, "RequestBroker--ParseUri");
    });

    await t.step("paging: 10 by default, $top, odata.maxpagesize and the server's own cap", async () => {
      for (let i = 0; i < 12; i++) {
        const hh = String(i + 8).padStart(2, "0");
        await add(clinic, {
          subject: `p${i}`,
          start: utc(`2026-03-10T${hh}:00:00`),
          end: utc(`2026-03-10T${hh}:30:00`),
        });
      }
      const day = "startDateTime=2026-03-10T00:00:00Z&endDateTime=2026-03-11T00:00:00Z";
      const walk = async (first: string, headers: Record<string, string> = {}) => {
        const sizes: number[] = [];
        const subjects: string[] = [];
        let next: string | undefined = first;
        while (next) {
          const page: Answer = await call(next, { headers: { authorization: `Bearer ${at}`, ...headers } });
          assert.equal(page.status, 200, JSON.stringify(page.json));
          sizes.push(page.json.value.length);
          subjects.push(...page.json.value.map((e: { subject: string }) => e.subject));
          next = page.json["@odata.nextLink"];
          if (next) assert.ok(next.startsWith(`${sb.url}/microsoft/graph/v1.0/me/calendars/`), next);
        }
        assert.deepEqual(subjects, Array.from({ length: 12 }, (_, i) => `p${i}`));
        return sizes;
      };
      const base = `${sb.url}/microsoft/graph/v1.0/me/calendars/${
        encodeURIComponent(clinic)
      }/calendarView?${day}`;
      assert.deepEqual(await walk(base), [10, 2]);
      assert.deepEqual(await walk(`${base}&$top=5`), [5, 5, 2]);
      assert.deepEqual(await walk(base, { prefer: "odata.maxpagesize=4" }), [4, 4, 4]);
      const first = await call(`${base}&$top=5&$select=showAs`, {
        headers: { authorization: `Bearer ${at}` },
      });
      assert.match(first.json["@odata.nextLink"], /startDateTime=.*&\$top=5&\$select=showAs&\$skip=5$/);
      await h.admin("POST", "/microsoft/settings", { calendarViewMaxPageSize: 3 });
      assert.deepEqual(await walk(`${base}&$top=250`), [3, 3, 3, 3]);
      assert.deepEqual((await h.admin("GET", "/microsoft/settings")).calendarViewMaxPageSize, 3);
      await h.admin("POST", "/microsoft/settings", { calendarViewMaxPageSize: null });
      assert.deepEqual(await walk(`${base}&$top=250`), [12]);
      assertGraphError(await view(`${day}&$top=1001`), 400, "ErrorInvalidUrlQuery");
    });

    await t.step(
      "errors: a missing bound, over 1825 days, an inverted window, an unknown calendar",
      async () => {
        assertGraphError(await view("startDateTime=2026-03-03T00:00:00Z"), 400, "ErrorInvalidParameter");
        assertGraphError(
          await view("startDateTime=2026-01-01T00:00:00Z&endDateTime=2031-01-02T00:00:00Z"),
          400,
          "ErrorInvalidRequest",
        );
        assert.equal(
          (await view("startDateTime=2026-01-01T00:00:00Z&endDateTime=2030-12-31T00:00:00Z")).status,
          200,
        );
        assertGraphError(
          await view("startDateTime=2026-03-04T00:00:00Z&endDateTime=2026-03-03T00:00:00Z"),
          400,
          "ErrorInvalidParameter",
        );
        assertGraphError(
          await view("startDateTime=soon&endDateTime=2026-03-03T00:00:00Z"),
          400,
          "ErrorInvalidParameter",
        );
        assertGraphError(await view(window, {}, "AAMkNoSuchCalendar="), 404, "ErrorItemNotFound");
        const counted = await h.admin("GET", "/calls");
        assert.ok(JSON.stringify(counted).includes("microsoft.calendar.calendarView"));
      },
    );
  } finally {
    await sb.close();
  }
});

Deno.test("MailboxConcurrency, injected faults, counters and the state file", async (t) => {
  const dir = await Deno.makeTempDir();
  const stateFile = `${dir}/state.json`;
  let sb = await startSandbox({ microsoftClients: MS_CLIENTS, stateFile });
  let h = harness(sb.url);
  try {
    const tok = await h.connect("eve@contoso.com");

    await t.step("a 5th concurrent request on one mailbox answers 429 ApplicationThrottled", async () => {
      await h.admin("POST", "/latency", { ms: 400 });
      const answers = await Promise.all(
        Array.from({ length: 5 }, () => h.graph(tok.access_token, "GET", "/me/calendars")),
      );
      await h.admin("POST", "/latency", { ms: 0 });
      const statuses = answers.map((a) => a.status).sort();
      assert.deepEqual(statuses, [200, 200, 200, 200, 429]);
      const refused = answers.find((a) => a.status === 429)!;
      const real = await fixture("error-429-mailboxconcurrency.json");
      assert.equal(refused.json.error.code, real.error.code);
      assert.equal(refused.json.error.message, real.error.message);
      assert.equal(refused.headers.get("retry-after"), "1");
      const report = await h.admin("GET", "/microsoft/concurrency");
      assert.equal(report.limit, 4);
      const eve = report.mailboxes.find((m: { mailbox: string }) => m.mailbox === "eve@contoso.com");
      assert.equal(eve.maxInFlight, 4);
      assert.equal(eve.throttled, 1);
      assert.equal(eve.inFlight, 0);
      // Sequential calls are never throttled.
      for (let i = 0; i < 6; i++) assert.equal((await h.graph(tok.access_token, "GET", "/me")).status, 200);
    });

    await t.step(
      "faults answer in Graph's and the identity platform's shapes; counters use endpoint names",
      async () => {
        await h.admin("POST", "/calls/reset");
        await h.admin("POST", "/faults", {
          match: { endpoint: "microsoft.calendar.getSchedule" },
          response: { status: 429, retryAfterSeconds: 7 },
        });
        const body = {
          schedules: ["eve@contoso.com"],
          startTime: { dateTime: "2026-03-02T08:00:00", timeZone: "UTC" },
          endTime: { dateTime: "2026-03-02T09:00:00", timeZone: "UTC" },
        };
        const throttled = await h.graph(tok.access_token, "POST", "/me/calendar/getSchedule", body, {
          "client-request-id": "cr-1",
        });
        assertGraphError(throttled, 429, (await fixture("error-429-toomanyrequests.json")).error.code);
        assert.equal(throttled.headers.get("retry-after"), "7");
        assert.equal(throttled.json.error.innerError["client-request-id"], "cr-1");
        await h.admin("POST", "/faults", {
          match: { endpoint: "microsoft.events.create" },
          response: { status: 503 },
        });
        assertGraphError(
          await h.graph(tok.access_token, "POST", "/me/events", {}),
          503,
          "ServiceNotAvailable",
        );
        await h.admin("POST", "/faults", {
          match: { endpoint: "microsoft.events.get" },
          response: { status: 504 },
        });
        assert.equal((await h.graph(tok.access_token, "GET", "/me/events/x")).status, 504);
        await h.admin("POST", "/faults", {
          match: { endpoint: "microsoft.oauth.token.refresh_token", email: "eve@contoso.com" },
          response: { status: 429, retryAfterSeconds: 3 },
        });
        const tokenThrottled = await h.token({
          grant_type: "refresh_token",
          refresh_token: tok.refresh_token!,
        });
        assert.equal(tokenThrottled.status, 429);
        assert.equal(tokenThrottled.json.error, "temporarily_unavailable");
        assert.match(tokenThrottled.json.error_description, /^AADSTS\d+: /);
        const calls = await h.admin("GET", "/calls");
        assert.equal(calls.byEndpoint["microsoft.calendar.getSchedule"], 1);
        assert.equal(calls.byEndpoint["microsoft.events.create"], 1);
        assert.equal(calls.byEndpoint["microsoft.oauth.token.refresh_token"], 1);
        // The injected token fault consumed nothing: the refresh token still works and rotates.
        const r = await h.token({ grant_type: "refresh_token", refresh_token: tok.refresh_token! });
        assert.equal(r.status, 200);
        tok.refresh_token = r.json.refresh_token;
        tok.access_token = r.json.access_token;
        const ev = await h.graph(tok.access_token, "POST", "/me/events", {
          subject: "kept",
          start: { dateTime: "2026-05-01T09:00:00", timeZone: "UTC" },
          end: { dateTime: "2026-05-01T10:00:00", timeZone: "UTC" },
          transactionId: "persist-1",
        });
        assert.equal(ev.status, 201);
      },
    );

    await t.step(
      "accounts, events, grants and rotated tokens survive a restart through the state file",
      async () => {
        await sb.close();
        sb = await startSandbox({ microsoftClients: MS_CLIENTS, stateFile });
        h = harness(sb.url);
        const r = await h.token({ grant_type: "refresh_token", refresh_token: tok.refresh_token! });
        assert.equal(r.status, 200);
        const again = await h.graph(r.json.access_token, "POST", "/me/events", {
          subject: "kept",
          start: { dateTime: "2026-05-01T09:00:00", timeZone: "UTC" },
          end: { dateTime: "2026-05-01T10:00:00", timeZone: "UTC" },
          transactionId: "persist-1",
        });
        assert.equal(again.status, 201);
        const items =
          (await h.admin("GET", "/microsoft/accounts/eve@contoso.com/calendars/default/events")).items;
        assert.equal(items.length, 1);
        assert.equal(items[0].id, again.json.id);
        // A token rotated away before the restart is still recognised as reused.
        assertAadsts(
          await h.token({ grant_type: "refresh_token", refresh_token: tok.refresh_token! }),
          400,
          "invalid_grant",
          70000,
        );
      },
    );
  } finally {
    await sb.close();
    await Deno.remove(dir, { recursive: true });
  }
});
