/**
 * The provider-neutral pieces a second provider builds on: the OAuth client's refinement hook and
 * its missing revocation endpoint, and the JSON request's split between an HTTP answer (returned,
 * whatever its status) and a transport failure (classified). Google's own use is in google-oauth and
 * google-calendar tests.
 */
import assert from "node:assert/strict";
import { ProviderError } from "../../supabase/functions/_shared/errors/domain-error.ts";
import { requestJson } from "../../supabase/functions/_shared/http-client/json-request.ts";
import { isLoopbackHttp, requireSecureUrl } from "../../supabase/functions/_shared/http-client/transport.ts";
import { OAuthClient, type OAuthServerConfig } from "../../supabase/functions/_shared/oauth/client.ts";
import { rejectedWith } from "../support/assertions.ts";

const SERVER: OAuthServerConfig = {
  displayName: "Example",
  issuer: "https://login.example.com",
  authorizationEndpoint: "https://login.example.com/authorize",
  tokenEndpoint: "https://login.example.com/token",
  jwksUri: "https://login.example.com/keys",
  clientId: "client-1",
  clientSecret: "secret-1",
  redirectUri: "https://app.example.com/cb",
  issParameter: "optional",
};

const answer = (status: number, body: unknown, headers: Record<string, string> = {}) =>
  (() => Promise.resolve(Response.json(body, { status, headers }))) as unknown as typeof fetch;

Deno.test("OAuthClient: a provider refines the RFC 6749 classification; messages name the provider", async () => {
  const fetchFn = answer(400, { error: "invalid_grant", error_description: "AADSTS70008: expired" });
  const plain = new OAuthClient(SERVER, { fetch: fetchFn });
  const generic = await rejectedWith(ProviderError, plain.refresh("r1"));
  assert.equal(generic.code, "auth");
  assert.equal(generic.details.reason, "invalid_grant");
  assert.match(generic.message, /^Example oauth\.token\.refresh_token failed: HTTP 400 invalid_grant/);
  assert.doesNotMatch(generic.message, /r1|secret-1/);
  const refined = new OAuthClient(
    SERVER,
    { fetch: fetchFn },
    (err) =>
      /AADSTS70008/.test(err.message)
        ? new ProviderError(err.code, err.message, { ...err.details, reason: "AADSTS70008" })
        : err,
  );
  assert.equal((await rejectedWith(ProviderError, refined.refresh("r1"))).details.reason, "AADSTS70008");
});

Deno.test("OAuthClient: rotation returns the new refresh token; without a revocation endpoint revoke refuses", async () => {
  const rotating = new OAuthClient(SERVER, {
    fetch: answer(200, { access_token: "a2", refresh_token: "r2", token_type: "Bearer", expires_in: 60 }),
  });
  const tokens = await rotating.refresh("r1");
  assert.equal(tokens.refreshToken, "r2");
  assert.deepEqual(tokens.scopes, [], "a refresh answer without scope is not trusted with any");
  const err = await rejectedWith(ProviderError, rotating.revoke("r2"));
  assert.equal(err.code, "invalid");
  assert.equal(err.details.reason, "unsupported");
});

Deno.test("OAuthClient.authorizationUrl: PKCE S256, nonce, scopes and the provider's extra parameters", () => {
  const url = new OAuthClient(SERVER).authorizationUrl({
    scopes: ["openid", "email", "Calendars.ReadWrite"],
    state: "s",
    codeChallenge: "c",
    nonce: "n",
    extraParams: { prompt: "select_account" },
  });
  const p = url.searchParams;
  assert.equal(`${url.origin}${url.pathname}`, SERVER.authorizationEndpoint);
  assert.equal(p.get("scope"), "openid email Calendars.ReadWrite");
  assert.equal(p.get("code_challenge_method"), "S256");
  assert.equal(p.get("prompt"), "select_account");
  assert.equal(p.get("nonce"), "n");
  assert.equal(p.get("response_type"), "code");
});

Deno.test("requestJson: any HTTP status is an answer; timeouts and network errors are transient", async () => {
  const res = await requestJson(
    { method: "POST", url: new URL("https://api.example.com/x"), body: { a: 1 } },
    "Example x",
    { fetch: answer(503, { error: { code: "ServiceUnavailable" } }, { "retry-after": "3" }) },
  );
  assert.equal(res.status, 503);
  assert.deepEqual(res.body, { error: { code: "ServiceUnavailable" } });
  assert.equal(res.headers.get("retry-after"), "3");
  const hanging =
    ((_u: unknown, init?: RequestInit) =>
      new Promise((_resolve, reject) =>
        init?.signal?.addEventListener("abort", () => reject(init.signal!.reason))
      )) as typeof fetch;
  const timeout = await rejectedWith(
    ProviderError,
    requestJson({ method: "GET", url: new URL("https://api.example.com/x") }, "Example x", {
      fetch: hanging,
      timeoutMs: 30,
    }),
  );
  assert.equal(timeout.code, "transient");
  assert.equal(timeout.details.reason, "timeout");
  assert.match(timeout.message, /^Example x timed out after 30 ms/);
  const down = (() =>
    Promise.reject(
      new TypeError("connection refused https://api.example.com/?t=secret"),
    )) as unknown as typeof fetch;
  const network = await rejectedWith(
    ProviderError,
    requestJson({ method: "GET", url: new URL("https://api.example.com/x") }, "Example x", { fetch: down }),
  );
  assert.equal(network.details.reason, "network");
  assert.doesNotMatch(network.message, /secret/);
});

Deno.test("transport: plain http only on loopback", () => {
  assert.ok(isLoopbackHttp("http://127.0.0.1:54329/x"));
  assert.ok(!isLoopbackHttp("http://calendar.example.com/x"));
  requireSecureUrl("https://graph.example.com/v1.0", "X_BASE");
  assert.throws(
    () => requireSecureUrl("http://graph.example.com/v1.0", "X_BASE"),
    (err) =>
      err instanceof ProviderError && err.code === "invalid" && /X_BASE must use https/.test(err.message),
  );
});
