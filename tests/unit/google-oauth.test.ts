/**
 * GoogleOAuth against scripted token/revocation/JWKS answers (the shapes of docs/providers/google.md A1 and
 * the google-oauth-* payloads); no network. ID tokens are signed here with a test key whose public
 * half the scripted JWKS serves, so every way an ID token or an authorization response can be wrong
 * is tried as an attack that must fail. The sandbox round trip is in tests/integration.
 */
import assert from "node:assert/strict";
import * as jose from "jose";
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
    issuer: "https://accounts.google.com",
    jwksUri: "https://www.googleapis.com/oauth2/v3/certs",
    issParameter: "optional",
    ...over,
  };
}

const NONCE = "n-0123456789abcdef0123456789abcdef";
const signing = await jose.generateKeyPair("RS256");
const stranger = await jose.generateKeyPair("RS256");
const JWKS = {
  keys: [{ ...(await jose.exportJWK(signing.publicKey)), kid: "k1", alg: "RS256", use: "sig" }],
};

/** An ID token as Google signs it; `claims` override or (undefined) remove the defaults. */
async function idToken(
  claims: Record<string, unknown> = {},
  o: { key?: CryptoKey; kid?: string; alg?: string } = {},
): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  const payload: Record<string, unknown> = {
    iss: "https://accounts.google.com",
    aud: "client-1.apps.googleusercontent.com",
    azp: "client-1.apps.googleusercontent.com",
    sub: "110169484474386276334",
    email: "Dr.Grey@Clinic.example",
    email_verified: true,
    iat: now,
    exp: now + 3600,
    nonce: NONCE,
    ...claims,
  };
  for (const [k, v] of Object.entries(payload)) if (v === undefined) delete payload[k];
  return await new jose.SignJWT(payload as jose.JWTPayload)
    .setProtectedHeader({ alg: o.alg ?? "RS256", kid: o.kid ?? "k1" })
    .sign(o.key ?? signing.privateKey);
}

/** Token endpoint answering `body`, JWKS endpoint answering {@link JWKS}. */
function tokenAndJwks(body: Record<string, unknown>) {
  return scripted((req) =>
    req.url === "https://www.googleapis.com/oauth2/v3/certs" ? json(200, JWKS) : json(200, body)
  );
}

const CALLBACK = (query: string) => new URL(`${config().redirectUri}?${query}`);

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
  const url = g.authorizationUrl({
    state: "st-1",
    codeChallenge: challenge,
    nonce: NONCE,
    loginHint: "dr@example.com",
  });
  assert.equal(url.origin + url.pathname, "https://accounts.google.com/o/oauth2/v2/auth");
  const p = url.searchParams;
  assert.equal(p.get("client_id"), "client-1.apps.googleusercontent.com");
  assert.equal(p.get("redirect_uri"), "https://app.example.com/functions/v1/calendar-auth-callback");
  assert.equal(p.get("response_type"), "code");
  assert.equal(p.get("scope"), [...SCOPES, "openid", "email"].join(" "), "openid email always requested");
  assert.equal(p.get("nonce"), NONCE);
  assert.equal(p.get("access_type"), "offline");
  assert.equal(p.get("prompt"), "consent");
  assert.equal(p.get("include_granted_scopes"), "true");
  assert.equal(p.get("code_challenge"), challenge);
  assert.equal(p.get("code_challenge_method"), "S256");
  assert.equal(p.get("state"), "st-1");
  assert.equal(p.get("login_hint"), "dr@example.com");
  assert.equal(p.get("client_secret"), null, "the secret never goes to the browser");
  const noHint = g.authorizationUrl({ state: "s", codeChallenge: challenge, nonce: NONCE });
  assert.equal(noHint.searchParams.has("login_hint"), false);
  const select = new GoogleOAuth(config({ prompt: "select_account", accessType: "online" }))
    .authorizationUrl({ state: "s", codeChallenge: challenge, nonce: NONCE });
  assert.equal(select.searchParams.get("prompt"), "select_account");
  assert.equal(select.searchParams.get("access_type"), "online");
});

Deno.test("exchangeCode: client_secret_post, PKCE verifier, granted scopes, refresh token, verified account", async () => {
  const granted = `${S("calendar.events")} ${S("calendar.freebusy")} openid ${S("userinfo.email")}`;
  const { seen, fetchFn } = tokenAndJwks({
    access_token: "ya29.access",
    expires_in: 3599,
    refresh_token: "1//refresh",
    scope: granted,
    token_type: "Bearer",
    id_token: await idToken(),
  });
  const g = new GoogleOAuth(config(), { fetch: fetchFn });
  const before = Date.now();
  const tokens = await g.exchangeCode({
    callbackUrl: CALLBACK(
      `state=st-1&code=4%2Fcode&scope=${encodeURIComponent(granted)}&iss=${
        encodeURIComponent("https://accounts.google.com")
      }`,
    ),
    codeVerifier: "verifier-verifier-verifier-verifier-verifier-1",
    state: "st-1",
    nonce: NONCE,
  });
  assert.equal(seen.length, 2, "the token endpoint, then the JWK Set");
  assert.equal(seen[1].url, "https://www.googleapis.com/oauth2/v3/certs");
  assert.equal(tokens.accountEmail, "dr.grey@clinic.example", "from the verified ID token, lowercased");
  assert.equal(tokens.accountSubject, "110169484474386276334");
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
  assert.deepEqual(tokens.scopes, [
    S("calendar.events"),
    S("calendar.freebusy"),
    "openid",
    S("userinfo.email"),
  ]);
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
      nonce: NONCE,
    }),
  );
  assert.equal(mismatch.kind, "invalid");
  const denied = await rejectedWith(
    ProviderError,
    g.exchangeCode({
      callbackUrl: new URL(`${config().redirectUri}?error=access_denied&state=st`),
      codeVerifier: "v",
      state: "st",
      nonce: NONCE,
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
        nonce: NONCE,
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

/** A code exchange whose token response carries `idTokenValue`; resolves or rejects like exchangeCode. */
function exchangeWith(
  idTokenValue: string | undefined,
  o: { over?: Partial<GoogleOAuthConfig>; query?: string; nonce?: string } = {},
) {
  const { seen, fetchFn } = tokenAndJwks({
    access_token: "ya29.a",
    expires_in: 3599,
    refresh_token: "1//r",
    scope: SCOPES.join(" "),
    token_type: "Bearer",
    ...(idTokenValue === undefined ? {} : { id_token: idTokenValue }),
  });
  const g = new GoogleOAuth(config(o.over), { fetch: fetchFn });
  const run = g.exchangeCode({
    callbackUrl: CALLBACK(o.query ?? "state=s&code=c"),
    codeVerifier: "verifier-verifier-verifier-verifier-verifier-1",
    state: "s",
    nonce: o.nonce ?? NONCE,
  });
  return { run, seen };
}

Deno.test("exchangeCode: an ID token that is missing, forged or not ours names no account", async () => {
  const attacks: [string, Promise<string | undefined>][] = [
    ["no ID token at all", Promise.resolve(undefined)],
    ["signed by a key not in the issuer's JWK Set", idToken({}, { key: stranger.privateKey })],
    ["an unknown kid", idToken({}, { kid: "k-other" })],
    ["another issuer", idToken({ iss: "https://evil.example" })],
    ["for another client", idToken({ aud: "other-client.apps.googleusercontent.com" })],
    ["a replayed token from another flow (nonce)", idToken({ nonce: "n-from-another-flow-000000000000" })],
    ["no nonce", idToken({ nonce: undefined })],
    [
      "expired",
      idToken({ exp: Math.floor(Date.now() / 1000) - 3600, iat: Math.floor(Date.now() / 1000) - 7200 }),
    ],
    ["no subject", idToken({ sub: undefined })],
    [
      "unsigned (alg none)",
      Promise.resolve(
        new jose.UnsecuredJWT({
          iss: "https://accounts.google.com",
          aud: "client-1.apps.googleusercontent.com",
          sub: "1",
          nonce: NONCE,
          email: "x@clinic.example",
          email_verified: true,
        }).setIssuedAt().setExpirationTime("1h").encode(),
      ),
    ],
    [
      "HS256 signed with the client secret",
      new jose.SignJWT({ sub: "1", nonce: NONCE, email: "x@clinic.example", email_verified: true })
        .setProtectedHeader({ alg: "HS256", kid: "k1" })
        .setIssuer("https://accounts.google.com").setAudience("client-1.apps.googleusercontent.com")
        .setIssuedAt().setExpirationTime("1h").sign(new TextEncoder().encode("s3cret-value")),
    ],
  ];
  for (const [what, token] of attacks) {
    const { run } = exchangeWith(await token);
    const err = await rejectedWith(ProviderError, run);
    assert.equal(err.kind, "invalid", what);
  }
});

Deno.test("exchangeCode: email_verified false gives a subject but no account email", async () => {
  for (const claims of [{ email_verified: false }, { email: undefined, email_verified: undefined }]) {
    const { run } = exchangeWith(await idToken(claims));
    const tokens = await run;
    assert.equal(tokens.accountEmail, undefined);
    assert.equal(tokens.accountSubject, "110169484474386276334");
  }
  const { run } = exchangeWith(await idToken({ email_verified: "true" }));
  assert.equal((await run).accountEmail, "dr.grey@clinic.example", "the string form some issuers send");
});

Deno.test("exchangeCode: RFC 9207 iss parameter (mix-up defence) before any token request", async () => {
  const token = await idToken();
  const wrong = exchangeWith(token, { query: "state=s&code=c&iss=https%3A%2F%2Fevil.example" });
  assert.equal((await rejectedWith(ProviderError, wrong.run)).kind, "invalid");
  assert.equal(wrong.seen.length, 0, "a response from another issuer never reaches the token endpoint");

  const required = exchangeWith(token, { over: { issParameter: "required" } });
  assert.equal((await rejectedWith(ProviderError, required.run)).kind, "invalid");
  assert.equal(required.seen.length, 0, "iss is demanded when configured so");

  const optional = exchangeWith(token);
  assert.ok((await optional.run).accessToken, "without iss, optional mode still works (older servers)");
  const present = exchangeWith(token, {
    over: { issParameter: "required" },
    query: "state=s&code=c&iss=https%3A%2F%2Faccounts.google.com",
  });
  assert.ok((await present.run).accessToken);
});

Deno.test("exchangeCode: the issuer follows GOOGLE_OAUTH_ISSUER for any standards-compliant server", async () => {
  const issuer = "https://login.example.org/realms/clinic";
  const over = { issuer, jwksUri: "https://www.googleapis.com/oauth2/v3/certs" };
  const ok = exchangeWith(await idToken({ iss: issuer }), {
    over,
    query: `state=s&code=c&iss=${encodeURIComponent(issuer)}`,
  });
  assert.equal((await ok.run).accountEmail, "dr.grey@clinic.example");
  const google = exchangeWith(await idToken(), { over });
  assert.equal(
    (await rejectedWith(ProviderError, google.run)).kind,
    "invalid",
    "Google's iss is not this issuer's",
  );
});

Deno.test("issuerMatches: RFC 9207 for every authorization response, error answers included", () => {
  const optional = new GoogleOAuth(config());
  const required = new GoogleOAuth(config({ issParameter: "required" }));
  const google = `iss=${encodeURIComponent("https://accounts.google.com")}`;
  assert.equal(optional.issuerMatches(CALLBACK(`state=s&code=c&${google}`)), true);
  assert.equal(optional.issuerMatches(CALLBACK("state=s&code=c")), true, "absent and not required");
  assert.equal(required.issuerMatches(CALLBACK("state=s&error=access_denied")), false, "absent but required");
  assert.equal(required.issuerMatches(CALLBACK(`state=s&error=access_denied&${google}`)), true);
  for (const iss of ["https://evil.example", "accounts.google.com", "https://accounts.google.com/", ""]) {
    assert.equal(
      optional.issuerMatches(CALLBACK(`state=s&code=c&iss=${encodeURIComponent(iss)}`)),
      false,
      iss,
    );
  }
  assert.equal(optional.issuerMatches(CALLBACK(`state=s&code=c&${google}&iss=x`)), false, "repeated");
});
