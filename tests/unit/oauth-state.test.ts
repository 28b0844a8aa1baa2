/**
 * The signed OAuth state (oauth-state.ts, docs/decisions.md decision 4): what the JWT carries, and
 * every way a state can be wrong. Consumption against the nonce row (exactly once, replay, expiry,
 * races) runs against real PostgreSQL in tests/integration/auth-callback.test.ts.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import * as jose from "jose";
import { calculatePKCECodeChallenge, generateRandomCodeVerifier } from "oauth4webapi";
import { acceptableReturnUrl } from "../../supabase/functions/_shared/handlers/auth-start.ts";
import {
  AuthStartRateLimited,
  AuthStateError,
  MAX_LIVE_STATES,
  oidcNonce,
  signStateToken,
  STATE_AUDIENCE,
  STATE_ISSUER,
  STATE_TTL_SECONDS,
  verifierBinding,
  verifyStateToken,
} from "../../supabase/functions/_shared/oauth-state.ts";

const config = { stateSigningSecret: "state-signing-secret-of-at-least-32-chars!!" };
const claims = {
  jti: "nX4oJ6u4e3GQm8sZl2m1b5m6q7Yk9vT0a1b2c3d4e5f",
  sub: "6f1d7a52-6a3e-4f41-9c7e-3b8f0f5c9a11",
  tid: "7a2b8c9d-1e2f-4a3b-8c4d-5e6f7a8b9c0d",
  prv: "google" as const,
};
const inTenMinutes = () => new Date(Date.now() + STATE_TTL_SECONDS * 1000);

async function refusedWith(state: string, code: string) {
  await assert.rejects(verifyStateToken(config, state), (err: unknown) => {
    assert.ok(err instanceof AuthStateError, `expected AuthStateError, got ${err}`);
    assert.equal(err.code, code);
    return true;
  });
}

function b64url(text: string): string {
  return btoa(text).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

Deno.test("oauth-state: a signed state verifies and carries nonce, staff, tenant and provider", async () => {
  const state = await signStateToken(config, claims, inTenMinutes());
  const verified = await verifyStateToken(config, state);
  assert.deepEqual(verified, {
    nonce: claims.jti,
    staffId: claims.sub,
    tenantId: claims.tid,
    provider: "google",
    expired: false,
  });
  const payload = jose.decodeJwt(state);
  assert.equal(payload.iss, STATE_ISSUER);
  assert.equal(payload.aud, STATE_AUDIENCE);
  assert.equal(jose.decodeProtectedHeader(state).alg, "HS256");
  assert.ok((payload.exp ?? 0) - Math.floor(Date.now() / 1000) <= STATE_TTL_SECONDS);
  // Nothing secret rides in the state: no verifier, no return URL.
  assert.deepEqual(Object.keys(payload).sort(), ["aud", "exp", "iat", "iss", "jti", "prv", "sub", "tid"]);
});

Deno.test("oauth-state: an expired but genuine state is reported as expired, not accepted", async () => {
  const state = await signStateToken(config, claims, new Date(Date.now() - 60_000));
  const verified = await verifyStateToken(config, state);
  assert.equal(verified.expired, true);
  assert.equal(verified.nonce, claims.jti);
});

Deno.test("oauth-state: a state signed with another secret is invalid_state (also when expired)", async () => {
  const other = { stateSigningSecret: "a-different-secret-that-is-32-chars-or-more" };
  await refusedWith(await signStateToken(other, claims, inTenMinutes()), "invalid_state");
  await refusedWith(await signStateToken(other, claims, new Date(Date.now() - 60_000)), "invalid_state");
});

Deno.test("oauth-state: editing any claim after signing is invalid_state", async () => {
  const state = await signStateToken(config, claims, inTenMinutes());
  const [h, p, s] = state.split(".");
  const payload = JSON.parse(atob(p.replace(/-/g, "+").replace(/_/g, "/")));
  for (
    const edit of [{ sub: "00000000-0000-4000-8000-000000000000" }, { tid: claims.sub }, { prv: "microsoft" }]
  ) {
    await refusedWith(`${h}.${b64url(JSON.stringify({ ...payload, ...edit }))}.${s}`, "invalid_state");
  }
  await refusedWith(`${h}.${p}.${s.slice(0, -2)}${s.endsWith("AA") ? "BB" : "AA"}`, "invalid_state");
});

Deno.test("oauth-state: wrong audience, wrong issuer, alg none and garbage are invalid_state", async () => {
  const key = new TextEncoder().encode(config.stateSigningSecret);
  const base = () =>
    new jose.SignJWT({ tid: claims.tid, prv: "google" }).setProtectedHeader({ alg: "HS256" }).setSubject(
      claims.sub,
    )
      .setJti(claims.jti).setExpirationTime("10m");
  await refusedWith(
    await base().setIssuer(STATE_ISSUER).setAudience("something-else").sign(key),
    "invalid_state",
  );
  await refusedWith(
    await base().setIssuer("someone-else").setAudience(STATE_AUDIENCE).sign(key),
    "invalid_state",
  );
  // A Supabase session token (no aud for us) signed with the same bytes must not pass as a state.
  await refusedWith(await base().sign(key), "invalid_state");
  const none = new jose.UnsecuredJWT({ ...claims, iss: STATE_ISSUER, aud: STATE_AUDIENCE }).setExpirationTime(
    "10m",
  )
    .encode();
  await refusedWith(none, "invalid_state");
  for (const junk of ["", "abc", "a.b.c", "eyJhbGciOiJIUzI1NiJ9..", "x".repeat(5000)]) {
    await refusedWith(junk, "invalid_state");
  }
});

Deno.test("oauth-state: a genuine signature over malformed claims is invalid_state", async () => {
  for (
    const bad of [{ ...claims, sub: "not-a-uuid" }, { ...claims, jti: "short" }, {
      ...claims,
      prv: "yahoo" as "google",
    }]
  ) {
    await refusedWith(await signStateToken(config, bad, inTenMinutes()), "invalid_state");
  }
  const key = new TextEncoder().encode(config.stateSigningSecret);
  const noTenant = await new jose.SignJWT({ prv: "google" }).setProtectedHeader({ alg: "HS256" })
    .setIssuer(STATE_ISSUER).setAudience(STATE_AUDIENCE).setSubject(claims.sub).setJti(claims.jti)
    .setExpirationTime("10m").sign(key);
  await refusedWith(noTenant, "invalid_state");
});

Deno.test("oauth-state: the PKCE challenge is the base64url SHA-256 of the verifier (RFC 7636 S256)", async () => {
  const verifier = generateRandomCodeVerifier();
  assert.match(verifier, /^[A-Za-z0-9_-]{43,128}$/);
  assert.notEqual(verifier, generateRandomCodeVerifier());
  const expected = createHash("sha256").update(verifier).digest("base64url");
  assert.equal(await calculatePKCECodeChallenge(verifier), expected);
});

Deno.test("oauth-state: the verifier binding names the state table, the nonce and the field", () => {
  assert.deepEqual(verifierBinding("abc"), {
    table: "calendar_oauth_states",
    rowKey: "abc",
    field: "code_verifier",
  });
});

Deno.test("oauth-state: return_to is accepted only as an absolute http(s) URL on an allowed origin", () => {
  const allowed = { allowedReturnOrigins: ["https://app.example.com", "http://localhost:3000"] };
  assert.equal(
    acceptableReturnUrl("https://app.example.com/settings/calendar?tab=1#x", allowed),
    "https://app.example.com/settings/calendar?tab=1#x",
  );
  assert.equal(acceptableReturnUrl("http://localhost:3000/", allowed), "http://localhost:3000/");
  for (
    const bad of [
      "https://evil.example.com/",
      "https://app.example.com.evil.example/",
      "https://app.example.com:444/",
      "http://app.example.com/", // scheme is part of the origin
      "https://user:pass@app.example.com/",
      "//app.example.com/settings",
      "/settings",
      "javascript:alert(1)",
      "data:text/html,hi",
      "not a url",
    ]
  ) {
    assert.equal(acceptableReturnUrl(bad, allowed), null, bad);
  }
  assert.equal(acceptableReturnUrl("https://app.example.com/", { allowedReturnOrigins: [] }), null);
});

Deno.test("oauth-state: the OIDC nonce is derived from the state nonce, never equal to it", async () => {
  const a = await oidcNonce(claims.jti);
  assert.match(a, /^[A-Za-z0-9_-]{43}$/, "base64url SHA-256");
  assert.equal(await oidcNonce(claims.jti), a, "the callback derives the same value");
  assert.notEqual(a, claims.jti, "the state's own nonce never appears in the ID token");
  assert.notEqual(await oidcNonce(`${claims.jti}x`), a, "another flow, another nonce");
  const expected = createHash("sha256").update(`oidc:${claims.jti}`).digest("base64url");
  assert.equal(a, expected);
});

Deno.test("oauth-state: a few live links per staff member; a refused start says when to retry", () => {
  assert.equal(MAX_LIVE_STATES, 5);
  const limited = new AuthStartRateLimited(17);
  assert.equal(limited.retryAfterSeconds, 17);
  assert.match(limited.message, /retry in 17 s/);
});
