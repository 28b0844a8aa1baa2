/**
 * The OAuth connect flow over real HTTP: calendar-auth-start through the gateway process, the
 * sandbox's consent page, and calendar-auth-callback writing to a scratch Postgres with the
 * migrations and RLS. Covers the consent URL, the state row, who may start a flow, the happy path
 * (a pending grant confirmed by the app with the initiating user's session; tokens encrypted and
 * bound to their row; the account from the verified ID token), and every refusal: replayed, expired
 * and tampered states, access_denied, an unticked scope, a failing token endpoint, a foreign `iss`,
 * a consent link finished in someone else's browser, a confirmation by anyone but the initiator or
 * too late, an account outside the allowed email domains, a flood of auth-start calls; and a
 * reconnect after the grant was revoked.
 */
import assert from "node:assert/strict";
import * as jose from "jose";
import { calculatePKCECodeChallenge } from "oauth4webapi";
import { parseConfig } from "../../supabase/functions/_shared/config.ts";
import {
  connectionTokenBinding,
  DecryptionError,
  decryptToken,
  encryptToken,
} from "../../supabase/functions/_shared/crypto.ts";
import {
  flowIdHash,
  signStateToken,
  verifierBinding,
  verifyStateToken,
} from "../../supabase/functions/_shared/oauth-state.ts";
import type { Narrow, Row } from "../../supabase/functions/_shared/db/rows.ts";
import { assertEnvelope, json } from "../support/assertions.ts";
import { startTestStack, type TestStack, type TestStaff } from "../support/stack.ts";

const SCOPE = (name: string) => `https://www.googleapis.com/auth/${name}`;
const RETURN_TO = "http://127.0.0.1:3000/settings/calendar?tab=sync";

/** What the callback told the browser: from the Location's markers, or from the HTML fallback page. */
interface Outcome {
  status: number;
  location: string | null;
  body: string;
  calendarStatus: string | null;
  calendarError: string | null;
  params: URLSearchParams;
}

/** The staff_calendar_connections columns these tests read. */
/** `select *` of a connection the flow stored: its tokens and expiry are set. */
type ConnectionRecord = Narrow<
  Row<"staff_calendar_connections">,
  { access_token_encrypted: string; refresh_token_encrypted: string; token_expires_at: Date }
>;

async function outcome(res: Response): Promise<Outcome> {
  const body = await res.text();
  const location = res.headers.get("location");
  if (location) {
    const params = new URL(location).searchParams;
    return {
      status: res.status,
      location,
      body,
      calendarStatus: params.get("calendar_status"),
      calendarError: params.get("calendar_error"),
      params,
    };
  }
  // No usable return URL: the callback answers a small HTML page naming the error code.
  const code = /Error code: <code>([a-z_]+)<\/code>/.exec(body)?.[1] ?? null;
  return {
    status: res.status,
    location: null,
    body,
    calendarStatus: code ? "error" : res.status === 200 ? "connected" : null,
    calendarError: code,
    params: new URLSearchParams(),
  };
}

/** Token text must never reach the browser: Google access tokens start `ya29.`, refresh tokens `1//`. */
function assertNoTokenShown(o: Outcome, what: string) {
  for (const text of [o.body, o.location ?? ""]) {
    assert.ok(
      !/ya29\.|1\/\/0|access_token|refresh_token/.test(decodeURIComponent(text)),
      `${what} shows a token`,
    );
  }
}

Deno.test("calendar-auth-start and calendar-auth-callback over HTTP against Postgres and the sandbox", async (t) => {
  // The start bucket refills once an hour here, so the flood steps count exactly however slow the
  // machine is (the default refill is 30 s).
  const stack: TestStack = await startTestStack({ env: { CALENDAR_AUTH_START_REFILL_SECONDS: "3600" } });
  const config = parseConfig(stack.env);
  const sql = stack.sql;
  try {
    const tenantId = await stack.createTenant("Auth flow clinic");

    /** Authorization codes and states handed out during the test: none may appear in a log line. */
    const secretsSeen = new Set<string>();
    /** auth-start for a staff member; returns the consent URL. */
    const start = async (staff: TestStaff, body: Record<string, unknown> = { return_to: RETURN_TO }) => {
      const res = await stack.invoke("calendar-auth-start", { body, jwt: staff.jwt });
      const answer = await json<{ url: string; expires_at: string; flow_id: string }>(res);
      assert.equal(res.status, 200, JSON.stringify(answer));
      flowIds.set(answer.url, answer.flow_id);
      return answer;
    };
    /** Who started the flow behind each state: the app that confirms its pending grant. */
    const owners = new Map<string, { staff: TestStaff; flowId: string | undefined }>();
    /** The flow id auth-start gave the app, by consent URL; and by pending grant, once the callback ran. */
    const flowIds = new Map<string, string>();
    const pendingFlows = new Map<string, string>();
    /**
     * What a browser does on the consent page, signed in at the provider as `login` (default: the
     * staff member's own account); returns the callback URL the sandbox redirects to.
     */
    const consent = async (
      url: string,
      staff: TestStaff,
      o: { decision?: "approve" | "deny"; scopes?: string[]; login?: string } = {},
    ) => {
      const answer = await stack.sandbox.admin<{ redirect: string }>("POST", "/_admin/authorize", {
        authorizationUrl: url,
        login: o.login ?? staff.email,
        decision: o.decision ?? "approve",
        ...(o.scopes ? { scopes: o.scopes } : {}),
      });
      assert.ok(answer.redirect.startsWith(stack.functionsUrl), `consent redirected to ${answer.redirect}`);
      const params = new URL(answer.redirect).searchParams;
      for (const key of ["code", "state"]) if (params.get(key)) secretsSeen.add(params.get(key)!);
      owners.set(params.get("state") ?? "", { staff, flowId: flowIds.get(url) });
      return answer.redirect;
    };
    /** The app's confirmation of a pending grant, as `who`, with the flow's id unless `flowId` is given. */
    const confirm = async (pendingId: string | null, who: TestStaff | string, flowId?: string) =>
      await stack.invoke("calendar-auth-confirm", {
        jwt: typeof who === "string" ? who : who.jwt,
        body: { pending_id: pendingId, flow_id: flowId ?? pendingFlows.get(pendingId ?? "") },
      });
    /**
     * The browser following the callback; a pending grant is then confirmed by the app of the staff
     * member who started the flow (unless `confirm: false`), and `calendarStatus` says `connected`.
     */
    const callback = async (url: string, o: { confirm?: boolean } = {}) => {
      const res = await outcome(await fetch(url, { redirect: "manual" }));
      assertNoTokenShown(res, "the callback");
      const owner = owners.get(new URL(url).searchParams.get("state") ?? "");
      const pendingId = res.params.get("calendar_pending");
      if (pendingId && owner?.flowId) pendingFlows.set(pendingId, owner.flowId);
      if (res.calendarStatus !== "pending" || o.confirm === false) return res;
      assert.ok(owner, "a pending grant of a flow this test started");
      const confirmed = await confirm(pendingId, owner.staff);
      const body = await json<Record<string, unknown>>(confirmed);
      assert.equal(confirmed.status, 200, JSON.stringify(body));
      return { ...res, calendarStatus: "connected" };
    };
    const pendingCount = async () =>
      (await sql<{ n: number }[]>`select count(*)::int as n from public.calendar_pending_grants`)[0].n;
    const connectionOf = async (staffId: string) => {
      const rows = await sql<ConnectionRecord[]>`
        select * from public.staff_calendar_connections where staff_id = ${staffId}`;
      return rows[0];
    };
    const grants = async (email: string) =>
      (await stack.sandbox.admin<{ grants: { revoked: boolean; scopes: string[]; refreshCount: number }[] }>(
        "GET",
        `/_admin/grants?email=${encodeURIComponent(email)}`,
      )).grants;

    await t.step(
      "auth-start answers {url} with the configured scopes, offline access, prompt, PKCE S256 and a signed state",
      async () => {
        const staff = await stack.createStaff({ tenantId });
        const { url, expires_at, flow_id } = await start(staff);
        const consentUrl = new URL(url);
        assert.match(flow_id, /^[A-Za-z0-9_-]{43}$/, "a flow id for the app");
        assert.ok(!url.includes(flow_id), "the flow id never travels in a URL");
        assert.equal(`${consentUrl.origin}${consentUrl.pathname}`, config.google!.authorizationEndpoint);
        const p = consentUrl.searchParams;
        const scopes = p.get("scope")!.split(" ");
        assert.deepEqual(scopes, [...config.google!.scopes, "openid", "email"], "openid email always asked");
        assert.match(p.get("nonce")!, /^[A-Za-z0-9_-]{43}$/, "an OpenID Connect nonce");
        assert.ok(scopes.includes(SCOPE("calendar.events")));
        assert.ok(scopes.includes(SCOPE("calendar.freebusy")));
        assert.equal(p.get("access_type"), "offline");
        assert.equal(p.get("prompt"), config.google!.prompt);
        assert.equal(p.get("include_granted_scopes"), "true");
        assert.equal(p.get("response_type"), "code");
        assert.equal(p.get("client_id"), config.google!.clientId);
        assert.equal(p.get("redirect_uri"), config.google!.redirectUri);
        assert.equal(p.get("code_challenge_method"), "S256");
        assert.match(p.get("code_challenge")!, /^[A-Za-z0-9_-]{43}$/);

        const claims = await verifyStateToken(config, p.get("state")!);
        assert.equal(claims.expired, false);
        assert.equal(claims.staffId, staff.id);
        assert.equal(claims.tenantId, tenantId);
        assert.equal(claims.provider, "google");
        const header = jose.decodeProtectedHeader(p.get("state")!);
        assert.equal(header.alg, "HS256");
        const exp = jose.decodeJwt(p.get("state")!).exp!;
        assert.equal(new Date(expires_at).getTime(), exp * 1000);

        const [row] = await sql`
        select staff_id, tenant_id, provider, code_verifier_encrypted, return_to, consumed_at,
          initiated_by, flow_secret_hash, expires_at - created_at as ttl
        from public.calendar_oauth_states where nonce = ${claims.nonce}`;
        assert.ok(row, "a calendar_oauth_states row for the state's nonce");
        assert.equal(row.staff_id, staff.id);
        assert.equal(row.initiated_by, staff.profileId, "the flow remembers who started it");
        assert.equal(row.flow_secret_hash, await flowIdHash(flow_id), "and only a hash of the app's flow id");
        assert.equal(row.return_to, RETURN_TO);
        assert.equal(row.consumed_at, null);
        assert.match(row.code_verifier_encrypted, /^v1\./);
        const verifier = await decryptToken(
          row.code_verifier_encrypted,
          verifierBinding(claims.nonce),
          config.encryption,
        );
        assert.ok(!row.code_verifier_encrypted.includes(verifier), "the verifier is stored encrypted");
        assert.equal(await calculatePKCECodeChallenge(verifier), p.get("code_challenge"));
        // Bound to its nonce: the same envelope read as another row's verifier fails.
        await assert.rejects(
          decryptToken(row.code_verifier_encrypted, verifierBinding("x".repeat(43)), config.encryption),
          DecryptionError,
        );

        // The same through GET with query parameters, as a browser link would.
        const viaGet = await stack.invoke("calendar-auth-start", {
          method: "GET",
          jwt: staff.jwt,
          query: { return_to: RETURN_TO, login_hint: staff.email },
        });
        const got = await json<{ url: string }>(viaGet);
        assert.equal(viaGet.status, 200, JSON.stringify(got));
        assert.equal(new URL(got.url).searchParams.get("login_hint"), staff.email);
      },
    );

    await t.step(
      "auth-start refuses a return_to outside the allowed origins, and callers that are not signed-in staff",
      async () => {
        const staff = await stack.createStaff({ tenantId });
        const before = await sql`select count(*)::int as n from public.calendar_oauth_states`;
        for (
          const bad of [
            "https://evil.example.com/cb",
            "http://127.0.0.1:3001/x",
            "javascript:alert(1)",
            "/relative",
          ]
        ) {
          await assertEnvelope(
            await stack.invoke("calendar-auth-start", { body: { return_to: bad }, jwt: staff.jwt }),
            400,
            "invalid_return_to",
          );
        }
        await assertEnvelope(
          await stack.invoke("calendar-auth-start", { body: {}, jwt: null }),
          401,
          "missing_authorization",
        );
        await assertEnvelope(
          await stack.invoke("calendar-auth-start", { body: {}, jwt: stack.anonJwt }),
          403,
          "forbidden_role",
        );
        await assertEnvelope(
          await stack.invoke("calendar-auth-start", { body: {}, jwt: stack.serviceRoleJwt }),
          403,
          "user_required",
        );
        const stranger = await stack.userJwt(crypto.randomUUID());
        await assertEnvelope(
          await stack.invoke("calendar-auth-start", { body: {}, jwt: stranger }),
          403,
          "not_staff",
        );
        const after = await sql`select count(*)::int as n from public.calendar_oauth_states`;
        assert.equal(after[0].n, before[0].n, "no state row written for a refused start");
      },
    );

    await t.step(
      "auth-start refuses a second provider while another connection is active, before any consent page",
      async () => {
        const staff = await stack.createStaff({ tenantId });
        await sql`insert into public.staff_calendar_connections
            (tenant_id, staff_id, provider, refresh_token_encrypted, connection_status)
          values (${tenantId}, ${staff.id}, 'microsoft', 'v1.k.iv.ct', 'connected')`;
        const before = await sql`select count(*)::int as n from public.calendar_oauth_states`;
        await assertEnvelope(
          await stack.invoke("calendar-auth-start", { body: { return_to: RETURN_TO }, jwt: staff.jwt }),
          409,
          "other_provider_connected",
        );
        const after = await sql`select count(*)::int as n from public.calendar_oauth_states`;
        assert.equal(after[0].n, before[0].n, "no state row written for a refused start");
        await sql`update public.staff_calendar_connections set connection_status = 'disconnected',
          refresh_token_encrypted = null where staff_id = ${staff.id}`;
        assert.match((await start(staff)).url, /^http/, "after the disconnect Google may be connected");
      },
    );

    let connected: TestStaff;
    await t.step(
      "callback happy path: the grant waits (pending, nothing attached) until the initiator's app confirms it; tokens encrypted and bound to their row",
      async () => {
        const staff = connected = await stack.createStaff({ tenantId });
        const { url } = await start(staff);
        const callbackUrl = await consent(url, staff);
        assert.equal(
          new URL(callbackUrl).searchParams.get("iss"),
          config.google!.issuer,
          "the sandbox sends RFC 9207 iss",
        );
        const o = await callback(callbackUrl, { confirm: false });
        assert.equal(o.status, 302);
        const location = new URL(o.location!);
        assert.equal(`${location.origin}${location.pathname}`, "http://127.0.0.1:3000/settings/calendar");
        assert.equal(location.searchParams.get("tab"), "sync", "the app's own query survives");
        assert.equal(o.calendarStatus, "pending");
        assert.equal(o.params.get("calendar_provider"), "google");
        assert.equal(o.params.get("calendar_account_email"), staff.email, "the verified account is shown");
        const pendingId = o.params.get("calendar_pending");
        assert.match(pendingId ?? "", /^[0-9a-f-]{36}$/);
        assert.equal(o.calendarError, null);
        assert.equal(await connectionOf(staff.id), undefined, "nothing attached before the confirmation");
        const [pending] = await sql`
          select staff_id, initiated_by, account_email, access_token_encrypted, refresh_token_encrypted
          from public.calendar_pending_grants where id = ${pendingId}`;
        assert.equal(pending.staff_id, staff.id);
        assert.equal(pending.initiated_by, staff.profileId);
        assert.equal(pending.account_email, staff.email);
        assert.match(pending.access_token_encrypted, /^v1\./, "pending tokens are encrypted too");
        assert.match(pending.refresh_token_encrypted, /^v1\./);

        const confirmed = await confirm(pendingId, staff);
        assert.equal(confirmed.status, 200);
        assert.deepEqual(await confirmed.json(), {
          status: "connected",
          provider: "google",
          account_email: staff.email,
        });
        assert.equal(await pendingCount(), 0, "the pending grant is used up");
        await assertEnvelope(await confirm(pendingId, staff), 404, "pending_grant_not_found");

        const row = await connectionOf(staff.id);
        assert.equal(row.connection_status, "connected");
        assert.equal(row.selected_calendar_id, "primary");
        assert.equal(row.tenant_id, tenantId);
        assert.equal(row.provider, "google");
        assert.ok(
          row.token_expires_at.getTime() > Date.now() + 50 * 60_000,
          "expiry from expires_in (3599 s)",
        );
        for (const s of [SCOPE("calendar.events"), SCOPE("calendar.freebusy")]) {
          assert.ok(row.granted_scopes.includes(s));
        }

        const access = await decryptToken(
          row.access_token_encrypted,
          connectionTokenBinding(row, "access_token"),
          config.encryption,
        );
        const refresh = await decryptToken(
          row.refresh_token_encrypted,
          connectionTokenBinding(row, "refresh_token"),
          config.encryption,
        );
        assert.match(access, /^ya29\./);
        assert.match(refresh, /^1\/\//);
        for (
          const [envelope, plain] of [[row.access_token_encrypted, access], [
            row.refresh_token_encrypted,
            refresh,
          ]]
        ) {
          assert.match(envelope, /^v1\./);
          assert.ok(!envelope.includes(plain), "the stored column is ciphertext, not the sandbox's token");
          assert.ok(!envelope.includes(plain.slice(5, 25)), "no fragment of the token is stored in clear");
        }
        // The plaintext is the sandbox's real token: it works against the Calendar API.
        const list = await fetch(`${config.google!.calendarApiBase}/users/me/calendarList`, {
          headers: { authorization: `Bearer ${access}` },
        });
        assert.equal(list.status, 200);
        await list.body?.cancel();
        // Bound to row and field: another staff member's row, or the other column, cannot read it.
        const other = { ...row, staff_id: crypto.randomUUID() };
        await assert.rejects(
          decryptToken(
            row.access_token_encrypted,
            connectionTokenBinding(other, "access_token"),
            config.encryption,
          ),
          DecryptionError,
        );
        await assert.rejects(
          decryptToken(
            row.access_token_encrypted,
            connectionTokenBinding(row, "refresh_token"),
            config.encryption,
          ),
          DecryptionError,
        );
        const live = (await grants(staff.email)).filter((g) => !g.revoked);
        assert.equal(live.length, 1, "one live grant at the provider");
        const [stored] = await sql`select account_email from public.staff_calendar_connections
          where staff_id = ${staff.id}`;
        assert.equal(stored.account_email, staff.email, "account_email from the verified ID token");
        // The status view shows it to the staff member, under RLS as PostgREST runs it.
        const viewed = await sql.begin(async (tx) => {
          await tx.unsafe("set local role authenticated");
          await tx`select set_config('request.jwt.claims', ${
            JSON.stringify({ sub: staff.profileId, role: "authenticated" })
          }, true)`;
          return await tx`select staff_id, account_email from public.calendar_sync_status`;
        });
        assert.deepEqual([...viewed], [{ staff_id: staff.id, account_email: staff.email }]);
        // The pending grants and the start buckets are for the functions only.
        for (const table of ["calendar_pending_grants", "calendar_auth_rate_limits"]) {
          await assert.rejects(
            sql.begin(async (tx) => {
              await tx.unsafe("set local role authenticated");
              await tx.unsafe(`select * from public.${table}`);
            }),
            (err: { code?: string }) => err.code === "42501",
            `authenticated cannot read ${table}`,
          );
        }
      },
    );

    await t.step("a replayed callback URL is refused with state_replayed and changes nothing", async () => {
      const staff = await stack.createStaff({ tenantId });
      const { url } = await start(staff);
      const callbackUrl = await consent(url, staff);
      const first = await callback(callbackUrl);
      assert.equal(first.calendarStatus, "connected");
      const rowBefore = await connectionOf(staff.id);
      const callsBefore = await stack.sandbox.calls();

      const second = await callback(callbackUrl);
      assert.equal(second.status, 302, "a signed state keeps its return_to, so the app gets the error");
      assert.equal(second.calendarStatus, "error");
      assert.equal(second.calendarError, "state_replayed");
      assert.ok(second.location!.startsWith("http://127.0.0.1:3000/settings/calendar"));
      assert.deepEqual(await connectionOf(staff.id), rowBefore, "the connection row is untouched");
      const callsAfter = await stack.sandbox.calls();
      assert.equal(
        callsAfter.byEndpoint["oauth.token.authorization_code"] ?? 0,
        callsBefore.byEndpoint["oauth.token.authorization_code"] ?? 0,
        "the replayed code is not even sent to the provider",
      );
    });

    await t.step(
      "an expired state is refused with state_expired (signed past exp, or the row past expires_at)",
      async () => {
        const staff = await stack.createStaff({ tenantId });
        // (a) a state signed with the right secret and the real nonce, but exp in the past.
        const { url } = await start(staff);
        const callbackUrl = new URL(await consent(url, staff));
        const claims = await verifyStateToken(config, callbackUrl.searchParams.get("state")!);
        const stale = await signStateToken(
          config,
          { jti: claims.nonce, sub: claims.staffId, tid: claims.tenantId, prv: claims.provider },
          new Date(Date.now() - 60_000),
        );
        callbackUrl.searchParams.set("state", stale);
        const a = await callback(callbackUrl.toString());
        assert.equal(a.calendarStatus, "error");
        assert.equal(a.calendarError, "state_expired");
        assert.equal(await connectionOf(staff.id), undefined, "no connection written");
        const [row] =
          await sql`select consumed_at from public.calendar_oauth_states where nonce = ${claims.nonce}`;
        assert.equal(row.consumed_at, null, "an expired state never consumes its nonce");

        // (b) a genuine state whose row expired in the database (the database clock decides).
        const second = await start(staff);
        const url2 = await consent(second.url, staff);
        const nonce2 = (await verifyStateToken(config, new URL(url2).searchParams.get("state")!)).nonce;
        await sql`update public.calendar_oauth_states set expires_at = now() - interval '1 second'
        where nonce = ${nonce2}`;
        const b = await callback(url2);
        assert.equal(b.calendarError, "state_expired");
        assert.equal(await connectionOf(staff.id), undefined, "no connection written");
      },
    );

    await t.step(
      "a tampered or foreign-signed state is refused with invalid_state and writes nothing",
      async () => {
        const staff = await stack.createStaff({ tenantId });
        const { url } = await start(staff);
        const callbackUrl = new URL(await consent(url, staff));
        const state = callbackUrl.searchParams.get("state")!;
        const claims = await verifyStateToken(config, state);
        const [header, payload, signature] = state.split(".");
        const flip = (s: string, i: number) => s.slice(0, i) + (s[i] === "A" ? "B" : "A") + s.slice(i + 1);
        // Claims rewritten to another staff member, original signature kept.
        const forgedPayload = jose.base64url.encode(
          JSON.stringify({ ...jose.decodeJwt(state), sub: connected.id }),
        );
        const foreign = await signStateToken(
          { stateSigningSecret: "another-secret-that-is-long-enough-000000" },
          { jti: claims.nonce, sub: claims.staffId, tid: claims.tenantId, prv: claims.provider },
          new Date(Date.now() + 300_000),
        );
        const variants = {
          "flipped signature char": `${header}.${payload}.${flip(signature, 10)}`,
          "flipped payload char": `${header}.${flip(payload, 20)}.${signature}`,
          "claims swapped": `${header}.${forgedPayload}.${signature}`,
          "signed with another secret": foreign,
          "alg none": `${jose.base64url.encode('{"alg":"none","typ":"JWT"}')}.${payload}.`,
          "not a JWT": "hello",
        };
        const connectedBefore = await connectionOf(connected.id);
        for (const [what, value] of Object.entries(variants)) {
          callbackUrl.searchParams.set("state", value);
          const o = await callback(callbackUrl.toString());
          assert.equal(o.calendarStatus, "error", what);
          assert.equal(o.calendarError, "invalid_state", what);
          assert.ok(o.status === 302 || o.status === 400, `${what}: ${o.status}`);
        }
        assert.equal(await connectionOf(staff.id), undefined, "no connection written");
        assert.deepEqual(
          await connectionOf(connected.id),
          connectedBefore,
          "the other staff member is untouched",
        );
        const [row] =
          await sql`select consumed_at from public.calendar_oauth_states where nonce = ${claims.nonce}`;
        assert.equal(row.consumed_at, null, "a forged state never consumes the real nonce");
        // The genuine state still works afterwards.
        callbackUrl.searchParams.set("state", state);
        assert.equal((await callback(callbackUrl.toString())).calendarStatus, "connected");
      },
    );

    await t.step(
      "access_denied on the consent page: 302 with calendar_error=access_denied and no connection",
      async () => {
        const staff = await stack.createStaff({ tenantId });
        const { url } = await start(staff);
        const o = await callback(await consent(url, staff, { decision: "deny" }));
        assert.equal(o.status, 302);
        assert.equal(o.calendarStatus, "error");
        assert.equal(o.calendarError, "access_denied");
        assert.equal(await connectionOf(staff.id), undefined);
        assert.equal((await grants(staff.email)).length, 0, "no grant at the provider");
      },
    );

    await t.step(
      "a grant with an unticked required scope is refused with missing_scopes, revoked, and not stored",
      async () => {
        const staff = await stack.createStaff({ tenantId });
        const { url } = await start(staff);
        const partial = config.google!.scopes.filter((s) => s !== SCOPE("calendar.freebusy"));
        const o = await callback(await consent(url, staff, { scopes: partial }));
        assert.equal(o.status, 302);
        assert.equal(o.calendarStatus, "error");
        assert.equal(o.calendarError, "missing_scopes");
        assert.equal(o.params.get("calendar_missing_scopes"), SCOPE("calendar.freebusy"));
        assert.equal(await connectionOf(staff.id), undefined, "no connection row");
        const g = await grants(staff.email);
        assert.equal(g.length, 1);
        assert.equal(g[0].revoked, true, "the refused grant is revoked at the provider");
        const [{ n }] =
          await sql`select count(*)::int as n from public.calendar_sync_log where staff_id = ${staff.id}`;
        assert.equal(n, 0);
      },
    );

    await t.step(
      "a 500 from the token endpoint: calendar_error=exchange_failed and nothing half-written",
      async () => {
        const staff = await stack.createStaff({ tenantId });
        await stack.createAppointment({
          tenantId,
          staffId: staff.id,
          startsAt: new Date(Date.now() + 86_400_000).toISOString(),
          endsAt: new Date(Date.now() + 86_400_000 + 1_800_000).toISOString(),
        });
        const logBefore =
          await sql`select * from public.calendar_sync_log where staff_id = ${staff.id} order by id`;
        const { url } = await start(staff);
        const callbackUrl = await consent(url, staff);
        await stack.sandbox.fault({
          match: { endpoint: "oauth.token.authorization_code" },
          response: { status: 500 },
          times: 1,
        });
        try {
          const o = await callback(callbackUrl);
          assert.equal(o.status, 302);
          assert.equal(o.calendarStatus, "error");
          assert.equal(o.calendarError, "exchange_failed");
        } finally {
          await stack.sandbox.clearFaults();
        }
        assert.equal(await connectionOf(staff.id), undefined, "no connection row");
        assert.deepEqual(
          await sql`select * from public.calendar_sync_log where staff_id = ${staff.id} order by id`,
          logBefore,
          "no backfill queued",
        );
        // The flow can be started again and then succeeds.
        const again = await start(staff);
        assert.equal((await callback(await consent(again.url, staff))).calendarStatus, "connected");
      },
    );

    await t.step(
      "reconnecting a needs_reconnect connection restores connected and a working token",
      async () => {
        const staff = connected;
        await stack.sandbox.admin("POST", "/_admin/grants/revoke", { email: staff.email });
        const refused = await stack.invoke("calendar-list-calendars", { jwt: staff.jwt });
        await assertEnvelope(refused, 409, "needs_reconnect");
        const broken = await connectionOf(staff.id);
        assert.equal(broken.connection_status, "needs_reconnect");
        await sql`update public.staff_calendar_connections set selected_calendar_id = 'team-calendar'
        where id = ${broken.id}`;

        const { url } = await start(staff);
        const o = await callback(await consent(url, staff));
        assert.equal(o.calendarStatus, "connected");
        const row = await connectionOf(staff.id);
        assert.equal(row.id, broken.id, "the same row is reused (unique tenant, staff, provider)");
        assert.equal(row.connection_status, "connected");
        assert.equal(row.last_error, null);
        assert.equal(row.selected_calendar_id, "team-calendar", "the chosen calendar survives a reconnect");
        assert.notEqual(
          row.refresh_token_encrypted,
          broken.refresh_token_encrypted,
          "the new grant is stored",
        );
        const list = await stack.invoke("calendar-list-calendars", { jwt: staff.jwt });
        assert.equal(list.status, 200);
        await list.body?.cancel();
      },
    );

    await t.step(
      "the seed's google-calendar-auth-start / -auth-callback names run the same flow",
      async () => {
        const staff = await stack.createStaff({ tenantId });
        const { location, response } = await stack.connect(staff, {
          functionPrefix: "google-calendar",
          returnTo: RETURN_TO,
        });
        assert.equal(response.status, 302);
        assert.equal(new URL(location).searchParams.get("calendar_status"), "connected");
        assert.equal((await connectionOf(staff.id)).connection_status, "connected");
      },
    );

    await t.step(
      "two concurrent callbacks with the same state: exactly one connects, the other is state_replayed",
      async () => {
        const staff = await stack.createStaff({ tenantId });
        const { url } = await start(staff);
        const callbackUrl = await consent(url, staff);
        await stack.sandbox.latency(30);
        const outcomes = await Promise.all([
          callback(callbackUrl),
          callback(callbackUrl),
          callback(callbackUrl),
        ])
          .finally(() => stack.sandbox.latency(0));
        const statuses = outcomes.map((o) => o.calendarError ?? o.calendarStatus).sort();
        assert.deepEqual(statuses, ["connected", "state_replayed", "state_replayed"]);
        assert.equal((await connectionOf(staff.id)).connection_status, "connected");
        assert.equal((await grants(staff.email)).length, 1, "the code was redeemed once");
      },
    );

    await t.step(
      "a code from one flow redeemed with another flow's state fails PKCE: exchange_failed, nothing stored",
      async () => {
        // Authorization code injection: the attacker's own code pasted into the victim's callback.
        const attacker = await stack.createStaff({ tenantId });
        const victim = await stack.createStaff({ tenantId });
        const attackerCallback = new URL(await consent((await start(attacker)).url, attacker));
        const victimCallback = new URL(await consent((await start(victim)).url, victim));
        victimCallback.searchParams.set("code", attackerCallback.searchParams.get("code")!);
        const o = await callback(victimCallback.toString());
        assert.equal(o.calendarStatus, "error");
        assert.equal(o.calendarError, "exchange_failed");
        assert.equal(await connectionOf(victim.id), undefined);
        assert.equal(await connectionOf(attacker.id), undefined);
      },
    );

    await t.step(
      "any other provider error, or neither code nor error, is an error marker without a connection",
      async () => {
        const staff = await stack.createStaff({ tenantId });
        const cases: [Record<string, string>, string, string | null][] = [
          [{ error: "temporarily_unavailable" }, "provider_error", "temporarily_unavailable"],
          [{ error: "<script>alert(1)</script>" }, "provider_error", "unknown"],
          [{}, "invalid_request", null],
        ];
        for (const [extra, code, providerCode] of cases) {
          const callbackUrl = new URL(await consent((await start(staff)).url, staff));
          callbackUrl.searchParams.delete("code");
          callbackUrl.searchParams.delete("scope");
          for (const [k, v] of Object.entries(extra)) callbackUrl.searchParams.set(k, v);
          const o = await callback(callbackUrl.toString());
          assert.equal(o.status, 302);
          assert.equal(o.calendarError, code, JSON.stringify(extra));
          assert.equal(o.params.get("calendar_provider_error"), providerCode);
          assert.ok(!o.location!.includes("<script>"), "the provider's text is never reflected");
        }
        assert.equal(await connectionOf(staff.id), undefined);
      },
    );

    await t.step(
      "the callback refuses methods other than GET with 405 and a missing state with invalid_state",
      async () => {
        const post = await fetch(`${stack.functionsUrl}/calendar-auth-callback?state=x&code=y`, {
          method: "POST",
          redirect: "manual",
        });
        await assertEnvelope(post, 405, "method_not_allowed");
        const o = await callback(`${stack.functionsUrl}/calendar-auth-callback?code=abc`);
        assert.equal(o.calendarError, "invalid_state");
      },
    );

    await t.step(
      "attack: A's consent link finished in B's browser attaches nothing to A; B's confirmation is refused and the grant revoked",
      async () => {
        const alice = await stack.createStaff({ tenantId });
        const bob = await stack.createStaff({ tenantId });
        const callsBefore = await stack.sandbox.calls();
        // Alice's app starts a flow; the consent URL reaches Bob, who signs in to his own account.
        const { url } = await start(alice);
        const o = await callback(await consent(url, alice, { login: bob.email }), { confirm: false });
        assert.equal(o.calendarStatus, "pending");
        assert.equal(
          o.params.get("calendar_account_email"),
          bob.email,
          "the app can show whose account it is",
        );
        assert.equal(await connectionOf(alice.id), undefined, "nothing attached to Alice by the callback");
        // Bob's browser lands in the app, signed in as Bob: his app confirms and is refused.
        const refused = await confirm(o.params.get("calendar_pending"), bob);
        const body = await assertEnvelope(refused, 403, "consent_not_yours");
        assert.match(String(body.error?.message), /started by another user/);
        assert.match(String(body.error?.message), /revoked/);
        assert.equal(await connectionOf(alice.id), undefined, "nothing attached to Alice");
        assert.equal(await connectionOf(bob.id), undefined, "nor to Bob");
        assert.equal(await pendingCount(), 0, "the pending grant is gone");
        const g = await grants(bob.email);
        assert.equal(g.length, 1);
        assert.equal(g[0].revoked, true, "Bob's grant is revoked at the provider");
        const callsAfter = await stack.sandbox.calls();
        assert.equal(
          (callsAfter.byEndpoint["oauth.revoke"] ?? 0) - (callsBefore.byEndpoint["oauth.revoke"] ?? 0),
          1,
          "one revocation request",
        );
        // And Alice cannot pick it up afterwards either.
        await assertEnvelope(
          await confirm(o.params.get("calendar_pending"), alice),
          404,
          "pending_grant_not_found",
        );
        const [{ n }] =
          await sql`select count(*)::int as n from public.calendar_sync_log where staff_id = ${alice.id}`;
        assert.equal(n, 0, "no backfill for Alice");
      },
    );

    await t.step(
      "attack: a return URL forwarded to the initiator (another tab or browser, another flow id) is refused and revoked",
      async () => {
        const alice = await stack.createStaff({ tenantId });
        const bob = await stack.createStaff({ tenantId });
        // Bob gets hold of Alice's consent link and finishes it with his own account...
        const first = await start(alice);
        const o = await callback(await consent(first.url, alice, { login: bob.email }), { confirm: false });
        const pendingId = o.params.get("calendar_pending");
        // ...then sends Alice the return URL. Her app has no flow id for it (zod refuses before any
        // database work), or the id of another flow of hers: refused, revoked, nothing attached.
        await assertEnvelope(
          await stack.invoke("calendar-auth-confirm", { jwt: alice.jwt, body: { pending_id: pendingId } }),
          400,
          "invalid_request",
        );
        assert.equal(await pendingCount(), 1, "an incomplete request consumes nothing");
        const other = await start(alice);
        const refused = await confirm(pendingId, alice, other.flow_id);
        const body = await assertEnvelope(refused, 403, "consent_not_yours");
        assert.match(String(body.error?.message), /another app session/);
        assert.equal(await connectionOf(alice.id), undefined, "Bob's calendar is not attached to Alice");
        assert.equal((await grants(bob.email))[0].revoked, true, "Bob's grant is revoked");
        assert.equal(await pendingCount(), 0);
      },
    );

    await t.step(
      "attack: a pending grant confirmed by another tenant's user, the service role or the anon key is refused",
      async () => {
        const alice = await stack.createStaff({ tenantId });
        const outsider = await stack.createStaff({});
        const { url } = await start(alice);
        const o = await callback(await consent(url, alice), { confirm: false });
        const pendingId = o.params.get("calendar_pending");
        await assertEnvelope(await confirm(pendingId, stack.anonJwt), 403, "forbidden_role");
        await assertEnvelope(await confirm(pendingId, stack.serviceRoleJwt), 403, "user_required");
        assert.equal(await pendingCount(), 1, "a caller that is no user changes nothing");
        await assertEnvelope(await confirm(pendingId, outsider), 403, "consent_not_yours");
        assert.equal(await connectionOf(alice.id), undefined);
        assert.equal((await grants(alice.email))[0].revoked, true, "revoked once another user tried it");
        // Malformed input never reaches the database.
        await assertEnvelope(await confirm("not-a-uuid", alice), 400, "invalid_request");
        await assertEnvelope(
          await stack.invoke("calendar-auth-confirm", {
            jwt: alice.jwt,
            body: { pending_id: pendingId, staff_id: "x" },
          }),
          400,
          "invalid_request",
        );
        await assertEnvelope(
          await stack.invoke("calendar-auth-confirm", { method: "GET", jwt: alice.jwt }),
          405,
          "method_not_allowed",
        );
      },
    );

    await t.step(
      "a pending grant nobody confirms in time is revoked and deleted; a late confirmation gets pending_grant_expired",
      async () => {
        const alice = await stack.createStaff({ tenantId });
        const late = await callback(await consent((await start(alice)).url, alice), { confirm: false });
        await sql`update public.calendar_pending_grants set expires_at = now() - interval '1 second'
          where id = ${late.params.get("calendar_pending")}`;
        await assertEnvelope(
          await confirm(late.params.get("calendar_pending"), alice),
          410,
          "pending_grant_expired",
        );
        assert.equal(await connectionOf(alice.id), undefined);
        assert.equal((await grants(alice.email))[0].revoked, true);

        // Abandoned (nobody ever confirms): the next consent flow anywhere revokes and deletes it.
        const carol = await stack.createStaff({ tenantId });
        const abandoned = await callback(await consent((await start(carol)).url, carol), { confirm: false });
        await sql`update public.calendar_pending_grants set expires_at = now() - interval '1 second'
          where id = ${abandoned.params.get("calendar_pending")}`;
        const dave = await stack.createStaff({ tenantId });
        await start(dave);
        assert.equal(await pendingCount(), 0, "swept by the next auth-start");
        assert.equal((await grants(carol.email))[0].revoked, true, "and revoked at the provider");
        assert.equal(await connectionOf(carol.id), undefined);
      },
    );

    await t.step(
      "an abandoned pending grant is revoked by the worker's next run, with no consent call needed",
      async () => {
        const erin = await stack.createStaff({ tenantId });
        const abandoned = await callback(await consent((await start(erin)).url, erin), { confirm: false });
        await sql`update public.calendar_pending_grants set expires_at = now() - interval '1 second'
          where id = ${abandoned.params.get("calendar_pending")}`;
        const run = await stack.invoke("calendar-sync-worker", { jwt: stack.secrets.workerSecret, body: {} });
        assert.equal(run.status, 200);
        await run.body?.cancel();
        assert.equal(await pendingCount(), 0, "swept by the worker");
        assert.equal((await grants(erin.email))[0].revoked, true, "and revoked at the provider");
        assert.equal(await connectionOf(erin.id), undefined);
      },
    );

    await t.step(
      "attack: an authorization response naming another issuer (RFC 9207 mix-up) or none is refused before the token endpoint",
      async () => {
        const staff = await stack.createStaff({ tenantId });
        const before = (await stack.sandbox.calls()).byEndpoint["oauth.token.authorization_code"] ?? 0;
        const foreign = new URL(await consent((await start(staff)).url, staff));
        foreign.searchParams.set("iss", "https://evil.example");
        const a = await callback(foreign.toString());
        assert.equal(a.calendarError, "issuer_mismatch");
        const missing = new URL(await consent((await start(staff)).url, staff));
        missing.searchParams.delete("iss");
        const b = await callback(missing.toString());
        assert.equal(b.calendarError, "issuer_mismatch", "GOOGLE_OAUTH_ISS_PARAMETER=required demands iss");
        // An error answer from another server is not shown as Google's either.
        const injected = new URL(await consent((await start(staff)).url, staff));
        injected.searchParams.delete("code");
        injected.searchParams.set("error", "temporarily_unavailable");
        injected.searchParams.set("iss", "https://evil.example");
        assert.equal((await callback(injected.toString())).calendarError, "issuer_mismatch");
        const after = (await stack.sandbox.calls()).byEndpoint["oauth.token.authorization_code"] ?? 0;
        assert.equal(after, before, "no code was sent to the token endpoint");
        assert.equal(await connectionOf(staff.id), undefined);
        assert.equal(await pendingCount(), 0);
      },
    );

    await t.step(
      "auth-start: at most 5 live links per staff member (older ones stop working); a flood gets 429 with Retry-After",
      async () => {
        const staff = await stack.createStaff({ tenantId });
        const urls: string[] = [];
        for (let i = 0; i < 7; i++) urls.push((await start(staff)).url);
        const [{ live }] = await sql`select count(*)::int as live from public.calendar_oauth_states
          where staff_id = ${staff.id} and consumed_at is null and expires_at > now()`;
        assert.equal(live, 5);
        const oldest = await callback(await consent(urls[0], staff));
        assert.equal(oldest.calendarError, "invalid_state", "a superseded link is refused");
        const newest = await callback(await consent(urls[6], staff));
        assert.equal(newest.calendarStatus, "connected");

        // The burst is 10 starts: 7 used above, so 3 more succeed and the next is refused.
        for (let i = 0; i < 3; i++) await start(staff);
        const flood = await stack.invoke("calendar-auth-start", {
          body: { return_to: RETURN_TO },
          jwt: staff.jwt,
        });
        await assertEnvelope(flood, 429, "too_many_attempts");
        const retryAfter = Number(flood.headers.get("retry-after"));
        assert.ok(
          Number.isInteger(retryAfter) && retryAfter >= 3000 && retryAfter <= 3600,
          `Retry-After ${retryAfter}`,
        );
        const [{ states }] = await sql`select count(*)::int as states from public.calendar_oauth_states
          where staff_id = ${staff.id} and consumed_at is null and expires_at > now()`;
        assert.equal(states, 5, "a refused start writes no state");
        // Another staff member is not affected.
        await start(await stack.createStaff({ tenantId }));
      },
    );

    await t.step(
      "auth-start's limit holds under concurrency: 25 simultaneous starts of one staff member, exactly 10 succeed",
      async () => {
        const staff = await stack.createStaff({ tenantId });
        const answers = await Promise.all(
          Array.from(
            { length: 25 },
            () =>
              stack.invoke("calendar-auth-start", { body: { return_to: RETURN_TO }, jwt: staff.jwt })
                .then(async (res) => {
                  await res.body?.cancel();
                  return res.status;
                }),
          ),
        );
        assert.equal(answers.filter((s) => s === 200).length, 10, answers.join(","));
        assert.equal(answers.filter((s) => s === 429).length, 15, answers.join(","));
        const [{ live }] = await sql`select count(*)::int as live from public.calendar_oauth_states
          where staff_id = ${staff.id} and consumed_at is null and expires_at > now()`;
        assert.equal(live, 5);
      },
    );

    await t.step("the gateway's logs never contain a token, an authorization code or a state", () => {
      const logs = stack.gatewayLogs().join("\n");
      assert.ok(logs.includes("oauth_callback"), "the callback does log its outcomes");
      assert.ok(!/ya29\.|1\/\/0/.test(logs), "no Google token text in the logs");
      for (const secret of secretsSeen) assert.ok(!logs.includes(secret), "no code or state in the logs");
    });
  } finally {
    await stack.close();
  }
});

Deno.test("prompt=select_account and no default return URL: no dead refresh token revived; HTML result pages", async (t) => {
  // Google issues a refresh token only on the first offline consent of an account (or with
  // prompt=consent). A connection in needs_reconnect holds a refresh token that is known to be
  // bad, so a reconnect that brings no new one must not resurrect it as `connected`.
  const stack: TestStack = await startTestStack({
    env: { GOOGLE_OAUTH_PROMPT: "select_account", CALENDAR_DEFAULT_RETURN_URL: "" },
  });
  const config = parseConfig(stack.env);
  const sql = stack.sql;
  try {
    const staff = await stack.createStaff({});
    const connectOnce = async () => {
      const { location } = await stack.connect(staff, { returnTo: RETURN_TO });
      return new URL(location).searchParams;
    };
    const row = async () =>
      (await sql<ConnectionRecord[]>`select * from public.staff_calendar_connections
        where staff_id = ${staff.id}`)[0];

    await t.step(
      "the consent URL carries the configured prompt and the first consent stores a refresh token",
      async () => {
        const res = await stack.invoke("calendar-auth-start", {
          jwt: staff.jwt,
          body: { return_to: RETURN_TO },
        });
        const { url } = await res.json();
        assert.equal(new URL(url).searchParams.get("prompt"), "select_account");
        assert.equal((await connectOnce()).get("calendar_status"), "connected");
        assert.ok((await row()).refresh_token_encrypted);
      },
    );

    await t.step(
      "a reconnect without a new refresh token is refused while the stored one is dead",
      async () => {
        // The stored refresh token stops working (e.g. expired by Google); the grant itself lives on.
        const current = await row();
        const dead = await encryptToken(
          "1//0dead-refresh-token",
          connectionTokenBinding(current, "refresh_token"),
          config.encryption,
        );
        await sql`update public.staff_calendar_connections set refresh_token_encrypted = ${dead},
        token_expires_at = now() - interval '1 minute' where id = ${current.id}`;
        const refused = await stack.invoke("calendar-list-calendars", { jwt: staff.jwt });
        assert.equal(refused.status, 409);
        assert.equal((await refused.json()).error.code, "needs_reconnect");
        const broken = await row();

        const params = await connectOnce();
        assert.equal(params.get("calendar_status"), "error");
        assert.equal(params.get("calendar_error"), "missing_refresh_token");
        const after = await row();
        assert.equal(after.connection_status, "needs_reconnect", "not resurrected with the dead token");
        assert.equal(after.refresh_token_encrypted, broken.refresh_token_encrypted);
      },
    );

    await t.step("the next attempt gets a fresh refresh token and refreshing works", async () => {
      assert.equal((await connectOnce()).get("calendar_status"), "connected");
      await sql`update public.staff_calendar_connections set token_expires_at = now() - interval '1 minute'
        where staff_id = ${staff.id}`;
      const res = await stack.invoke("calendar-list-calendars", { jwt: staff.jwt });
      assert.equal(res.status, 200, await res.clone().text());
      assert.equal((await res.json()).length, 3);
      assert.equal((await row()).connection_status, "connected");
    });

    await t.step(
      "without return_to or a default URL: auth-start refuses (the app must confirm somewhere); an unusable callback answers an HTML page",
      async () => {
        const other = await stack.createStaff({});
        await assertEnvelope(
          await stack.invoke("calendar-auth-start", { jwt: other.jwt, body: {} }),
          400,
          "return_to_required",
        );
        const refused = await fetch(`${stack.functionsUrl}/calendar-auth-callback?state=forged&code=x`, {
          redirect: "manual",
        });
        assert.equal(refused.status, 400);
        assert.match(refused.headers.get("content-type") ?? "", /^text\/html/);
        assert.equal(refused.headers.get("cache-control"), "no-store");
        assert.match(refused.headers.get("content-security-policy") ?? "", /default-src 'none'/);
        const text = await refused.text();
        assert.match(text, /Error code: <code>invalid_state<\/code>/);
        assert.ok(!text.includes("forged"), "the request's own text is not reflected");
      },
    );
  } finally {
    await stack.close();
  }
});

Deno.test("CALENDAR_ALLOWED_EMAIL_DOMAINS refuses other accounts; CALENDAR_CONSENT_CONFIRMATION=none is the seed's one-step flow", async (t) => {
  const stack: TestStack = await startTestStack({
    env: {
      CALENDAR_ALLOWED_EMAIL_DOMAINS: "clinic.example, @Branch.Clinic.Example",
      CALENDAR_CONSENT_CONFIRMATION: "none",
      CALENDAR_DEFAULT_RETURN_URL: "",
    },
  });
  const sql = stack.sql;
  const connection = async (staffId: string) =>
    (await sql`select connection_status, account_email from public.staff_calendar_connections
      where staff_id = ${staffId}`)[0];
  const grantsOf = async (email: string) =>
    (await stack.sandbox.admin<{ grants: { revoked: boolean }[] }>(
      "GET",
      `/_admin/grants?email=${encodeURIComponent(email)}`,
    )).grants;
  try {
    const tenantId = await stack.createTenant("Domain clinic");

    await t.step(
      "an account of an allowed domain connects in one step, its email in the redirect",
      async () => {
        const staff = await stack.createStaff({ tenantId, email: "dr.allowed@clinic.example" });
        const { location, confirmation } = await stack.connect(staff, { returnTo: RETURN_TO });
        assert.equal(confirmation, undefined, "no confirmation step in this mode");
        const params = new URL(location).searchParams;
        assert.equal(params.get("calendar_status"), "connected");
        assert.equal(params.get("calendar_account_email"), "dr.allowed@clinic.example");
        assert.equal(params.get("calendar_pending"), null);
        assert.deepEqual({ ...await connection(staff.id) }, {
          connection_status: "connected",
          account_email: "dr.allowed@clinic.example",
        });
        const second = await stack.createStaff({ tenantId, email: "dr.branch@branch.clinic.example" });
        const other = await stack.connect(second, { returnTo: RETURN_TO });
        assert.equal(
          new URL(other.location).searchParams.get("calendar_status"),
          "connected",
          "second domain",
        );
      },
    );

    await t.step(
      "attack: accounts outside the allowed domains (look-alikes included) are refused, revoked, and nothing stored",
      async () => {
        const staff = await stack.createStaff({ tenantId, email: "dr.refused@clinic.example" });
        for (
          const login of [
            "dr.personal@gmail.example",
            "mallory@clinic.example.evil.test",
            "mallory@evilclinic.example",
            "mallory@sub.clinic.example",
          ]
        ) {
          await stack.sandbox.admin("POST", "/_admin/accounts", { email: login });
          const { location } = await stack.connect(staff, { returnTo: RETURN_TO, login });
          const params = new URL(location).searchParams;
          assert.equal(params.get("calendar_status"), "error", login);
          assert.equal(params.get("calendar_error"), "account_not_allowed", login);
          assert.equal(params.get("calendar_account_email"), login, "the refused account is named");
          const g = await grantsOf(login);
          assert.ok(g.length >= 1 && g.every((x) => x.revoked), `${login}: the grant is revoked`);
        }
        assert.equal(await connection(staff.id), undefined, "nothing stored");
        const [{ n }] = await sql`select count(*)::int as n from public.calendar_pending_grants`;
        assert.equal(n, 0);
      },
    );

    await t.step(
      "without return_to or a default URL the callback answers an HTML page, never a token",
      async () => {
        const staff = await stack.createStaff({ tenantId, email: "dr.page@clinic.example" });
        const { response } = await stack.connect(staff);
        assert.equal(response.status, 200);
        assert.match(response.headers.get("content-type") ?? "", /^text\/html/);
        assert.equal(response.headers.get("cache-control"), "no-store");
        assert.match(response.headers.get("content-security-policy") ?? "", /default-src 'none'/);
        const page = await response.text();
        assert.match(page, /Calendar connected/);
        assert.ok(!/ya29\.|1\/\/0|code=/.test(page));
        assert.equal((await connection(staff.id)).connection_status, "connected");
      },
    );
  } finally {
    await stack.close();
  }
});
