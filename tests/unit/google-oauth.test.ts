/**
 * GoogleOAuth against scripted token/revocation answers (the shapes of docs/providers/google.md A1 and the
 * google-oauth-* payloads); no network. The sandbox round trip is in tests/integration.
 */
import assert from "node:assert/strict";
import * as oauth from "oauth4webapi";
import {
  GoogleOAuth,
  type GoogleOAuthConfig,
} from "../../supabase/functions/_shared/providers/google/oauth.ts";
import { ProviderError } from "../../supabase/functions/_shared/providers/types.ts";
import { rejectedWith } from "../support/assertions.ts";

const S = (name: string) => `https://www.googleapis.com/auth/${name}`;
const SCOPES = [S("calendar.events"), S("calendar.freebusy"), S("calendar.calendarlist.readonly")];

function config(over: Partial<GoogleOAuthConfig> = {}): GoogleOAuthConfig {
  return {
    clientId: "client-1.apps.googleusercontent.com",
    clientSecret: "s3cret-value",
    redirectUri: "https://app.example.com/functions/v1/calendar-auth-callback",
    scopes: SCOPES,
    prompt: "consent",
    accessType: "offline",
    authorizationEndpoint: "https://accounts.google.com/o/oauth2/v2/auth",
    tokenEndpoint: "https://oauth2.googleapis.com/token",
    revocationEndpoint: "https://oauth2.googleapis.com/revoke",
    ...over,
  };
}

interface Seen {
  url: string;
  method: string;
  form: URLSearchParams;
}

/** A fetch that records each request and answers from `answer`. */
function scripted(answer: (req: Seen) => Response | Promise<Response>) {
  const seen: Seen[] = [];
  const fetchFn = (async (input: string | URL | Request, init?: RequestInit) => {
    const req: Seen = {
      url: String(input),
      method: init?.method ?? "GET",
      form: new URLSearchParams(init?.body as URLSearchParams | string | undefined),
    };
    seen.push(req);
    return await answer(req);
  }) as typeof fetch;
  return { seen, fetchFn };
}

const json = (status: number, body: unknown, headers: Record<string, string> = {}) =>
  new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json", ...headers } });

Deno.test("authorizationUrl: Google's parameters, PKCE S256, scopes space-delimited", async () => {
  const g = new GoogleOAuth(config());
  const verifier = oauth.generateRandomCodeVerifier();
  const challenge = await oauth.calculatePKCECodeChallenge(verifier);
  const url = g.authorizationUrl({ state: "st-1", codeChallenge: challenge, loginHint: "dr@example.com" });
  assert.equal(url.origin + url.pathname, "https://accounts.google.com/o/oauth2/v2/auth");
  const p = url.searchParams;
  assert.equal(p.get("client_id"), "client-1.apps.googleusercontent.com");
  assert.equal(p.get("redirect_uri"), "https://app.example.com/functions/v1/calendar-auth-callback");
  assert.equal(p.get("response_type"), "code");
  assert.equal(p.get("scope"), SCOPES.join(" "));
  assert.equal(p.get("access_type"), "offline");
  assert.equal(p.get("prompt"), "consent");
  assert.equal(p.get("include_granted_scopes"), "true");
  assert.equal(p.get("code_challenge"), challenge);
  assert.equal(p.get("code_challenge_method"), "S256");
  assert.equal(p.get("state"), "st-1");
  assert.equal(p.get("login_hint"), "dr@example.com");
  assert.equal(p.get("client_secret"), null, "the secret never goes to the browser");
  const noHint = g.authorizationUrl({ state: "s", codeChallenge: challenge });
  assert.equal(noHint.searchParams.has("login_hint"), false);
  const select = new GoogleOAuth(config({ prompt: "select_account", accessType: "online" }))
    .authorizationUrl({ state: "s", codeChallenge: challenge });
  assert.equal(select.searchParams.get("prompt"), "select_account");
  assert.equal(select.searchParams.get("access_type"), "online");
});

Deno.test("exchangeCode: client_secret_post, PKCE verifier, granted scopes, refresh token", async () => {
  const granted = `${S("calendar.events")} ${S("calendar.freebusy")}`;
  const { seen, fetchFn } = scripted(() =>
    json(200, {
      access_token: "ya29.access",
      expires_in: 3599,
      refresh_token: "1//refresh",
      scope: granted,
      token_type: "Bearer",
    })
  );
  const g = new GoogleOAuth(config(), { fetch: fetchFn });
  const before = Date.now();
  const tokens = await g.exchangeCode({
    callbackUrl: new URL(
      `${config().redirectUri}?state=st-1&code=4%2Fcode&scope=${encodeURIComponent(granted)}`,
    ),
    codeVerifier: "verifier-verifier-verifier-verifier-verifier-1",
    state: "st-1",
  });
  assert.equal(seen.length, 1);
  assert.equal(seen[0].url, "https://oauth2.googleapis.com/token");
  assert.equal(seen[0].method, "POST");
  const form = seen[0].form;
  assert.equal(form.get("grant_type"), "authorization_code");
  assert.equal(form.get("code"), "4/code");
  assert.equal(form.get("redirect_uri"), config().redirectUri);
  assert.equal(form.get("code_verifier"), "verifier-verifier-verifier-verifier-verifier-1");
  assert.equal(form.get("client_id"), config().clientId);
  assert.equal(form.get("client_secret"), "s3cret-value");
  assert.equal(tokens.accessToken, "ya29.access");
  assert.equal(tokens.refreshToken, "1//refresh");
  assert.deepEqual(tokens.scopes, [S("calendar.events"), S("calendar.freebusy")]);
  assert.ok(
    tokens.expiresAt.getTime() >= before + 3599_000 && tokens.expiresAt.getTime() <= Date.now() + 3599_000,
  );
});

Deno.test("exchangeCode: state mismatch and ?error=access_denied never reach the token endpoint", async () => {
  const { seen, fetchFn } = scripted(() => json(500, {}));
  const g = new GoogleOAuth(config(), { fetch: fetchFn });
  const mismatch = await rejectedWith(
    ProviderError,
    g.exchangeCode({
      callbackUrl: new URL(`${config().redirectUri}?state=other&code=c`),
      codeVerifier: "v",
      state: "st",
    }),
  );
  assert.equal(mismatch.kind, "invalid");
  const denied = await rejectedWith(
    ProviderError,
    g.exchangeCode({
      callbackUrl: new URL(`${config().redirectUri}?error=access_denied&state=st`),
      codeVerifier: "v",
      state: "st",
    }),
  );
  assert.equal(denied.kind, "auth");
  assert.equal(denied.details.reason, "access_denied");
  assert.equal(seen.length, 0);
});

Deno.test("exchangeCode: token endpoint errors are classified (A1.4)", async () => {
  const cases: [Response, string, string | undefined][] = [
    [
      json(400, { error: "invalid_grant", error_description: "Code was already redeemed." }),
      "auth",
      "invalid_grant",
    ],
    [
      json(401, { error: "invalid_client", error_description: "The OAuth client was not found." }),
      "invalid",
      "invalid_client",
    ],
    [json(400, { error: "unauthorized_client" }), "invalid", "unauthorized_client"],
    [json(400, { error: "redirect_uri_mismatch" }), "invalid", "redirect_uri_mismatch"],
    [json(503, { error: { code: 503, message: "Backend Error" } }), "transient", undefined],
    [
      new Response("<html>bad gateway</html>", { status: 502, headers: { "content-type": "text/html" } }),
      "transient",
      undefined,
    ],
  ];
  for (const [response, kind, reason] of cases) {
    const g = new GoogleOAuth(config(), { fetch: scripted(() => response.clone()).fetchFn });
    const err = await rejectedWith(
      ProviderError,
      g.exchangeCode({
        callbackUrl: new URL(`${config().redirectUri}?state=s&code=c`),
        codeVerifier: "v",
        state: "s",
      }),
    );
    assert.equal(err.kind, kind, `${response.status} ${reason}`);
    assert.equal(err.details.reason, reason);
    assert.equal(err.details.status, response.status);
  }
});

Deno.test("refresh: no new refresh token from Google; scopes from the answer", async () => {
  const { seen, fetchFn } = scripted(() =>
    json(200, {
      access_token: "ya29.new",
      expires_in: 3920,
      scope: S("calendar.readonly"),
      token_type: "Bearer",
    })
  );
  const tokens = await new GoogleOAuth(config(), { fetch: fetchFn }).refresh("1//stored-refresh");
  assert.equal(seen[0].form.get("grant_type"), "refresh_token");
  assert.equal(seen[0].form.get("refresh_token"), "1//stored-refresh");
  assert.equal(seen[0].form.get("client_secret"), "s3cret-value");
  assert.equal(tokens.accessToken, "ya29.new");
  assert.equal(tokens.refreshToken, undefined, "Google does not rotate; the caller keeps its refresh token");
  assert.deepEqual(tokens.scopes, [S("calendar.readonly")]);
});

Deno.test("refresh: revoked grant -> auth/invalid_grant; 429 -> rate_limited with Retry-After; network -> transient", async () => {
  const revoked = await rejectedWith(
    ProviderError,
    new GoogleOAuth(config(), {
      fetch: scripted(() =>
        json(400, { error: "invalid_grant", error_description: "Token has been expired or revoked." })
      ).fetchFn,
    }).refresh("1//r"),
  );
  assert.equal(revoked.kind, "auth");
  assert.equal(revoked.details.reason, "invalid_grant");
  assert.doesNotMatch(revoked.message, /1\/\/r/, "the refresh token is not in the message");

  const limited = await rejectedWith(
    ProviderError,
    new GoogleOAuth(config(), {
      fetch: scripted(() => json(429, { error: "rate_limit_exceeded" }, { "retry-after": "3" })).fetchFn,
    }).refresh("1//r"),
  );
  assert.equal(limited.kind, "rate_limited");
  assert.equal(limited.details.retryAfterMs, 3000);

  const limitedEnvelope = await rejectedWith(
    ProviderError,
    new GoogleOAuth(config(), {
      fetch: scripted(() =>
        json(429, { error: { code: 429, errors: [{ reason: "rateLimitExceeded" }] } }, { "retry-after": "4" })
      ).fetchFn,
    }).refresh("1//r"),
  );
  assert.equal(limitedEnvelope.kind, "rate_limited");
  assert.equal(limitedEnvelope.details.retryAfterMs, 4000);

  const network = await rejectedWith(
    ProviderError,
    new GoogleOAuth(config(), {
      fetch: scripted(() => Promise.reject(new TypeError("connection refused"))).fetchFn,
    }).refresh("1//r"),
  );
  assert.equal(network.kind, "transient");
});

Deno.test("refresh: a request that outlives timeoutMs is transient", async () => {
  const hanging =
    ((_input: string | URL | Request, init?: RequestInit) =>
      new Promise<Response>((_resolve, reject) => {
        init?.signal?.addEventListener("abort", () => reject(init.signal!.reason));
      })) as typeof fetch;
  const err = await rejectedWith(
    ProviderError,
    new GoogleOAuth(config(), { fetch: hanging, timeoutMs: 50 }).refresh("1//r"),
  );
  assert.equal(err.kind, "transient");
  assert.equal(err.details.reason, "timeout");
});

Deno.test("revoke: 200 and 400 invalid_token both succeed; 5xx is transient", async () => {
  const ok = scripted(() => new Response("", { status: 200 }));
  await new GoogleOAuth(config(), { fetch: ok.fetchFn }).revoke("ya29.t");
  assert.equal(ok.seen[0].url, "https://oauth2.googleapis.com/revoke");
  assert.equal(ok.seen[0].form.get("token"), "ya29.t");
  await new GoogleOAuth(config(), {
    fetch: scripted(() =>
      json(400, { error: "invalid_token", error_description: "Token expired or revoked" })
    )
      .fetchFn,
  }).revoke("ya29.t");
  const err = await rejectedWith(
    ProviderError,
    new GoogleOAuth(config(), { fetch: scripted(() => new Response("oops", { status: 503 })).fetchFn })
      .revoke("t"),
  );
  assert.equal(err.kind, "transient");
});

Deno.test("plain http is allowed for loopback endpoints only", async () => {
  const { seen, fetchFn } = scripted(() =>
    json(200, { access_token: "a", expires_in: 10, scope: S("calendar"), token_type: "Bearer" })
  );
  const local = new GoogleOAuth(config({ tokenEndpoint: "http://127.0.0.1:54329/google/token" }), {
    fetch: fetchFn,
  });
  assert.equal((await local.refresh("r")).accessToken, "a");
  assert.equal(seen.length, 1);
  const remote = new GoogleOAuth(config({ tokenEndpoint: "http://oauth.example.com/token" }), {
    fetch: fetchFn,
  });
  const err = await rejectedWith(ProviderError, remote.refresh("r"));
  assert.equal(err.kind, "invalid");
  assert.equal(seen.length, 1, "nothing was sent over plain http to a non-loopback host");
});
