/**
 * The Microsoft OAuth client's security rules against a scripted identity platform (token endpoint
 * and key set answered by a test fetch, ID tokens signed with a test key): the per-tenant issuer
 * (an ID token naming another tenant, the v1 issuer, or a tenant the configuration does not admit is
 * refused), which claim names the account (an unverified `email` never does), a foreign `iss` on
 * the redirect, AADSTS classification of a refresh, and revoke without an endpoint.
 */
import assert from "node:assert/strict";
import * as jose from "jose";
import { ProviderError } from "../../supabase/functions/_shared/errors/domain-error.ts";
import {
  microsoftAccountEmail,
  MicrosoftOAuth,
} from "../../supabase/functions/_shared/providers/microsoft/oauth.ts";
import {
  CONSUMER_TENANT_ID,
  parseMicrosoftConfig,
} from "../../supabase/functions/_shared/providers/microsoft/oauth-config.ts";

const AUTHORITY = "https://login.example.test";
const CLIENT_ID = "11111111-2222-3333-4444-555555555555";
const TENANT_A = "aaaaaaaa-0000-0000-0000-000000000001";
const TENANT_B = "bbbbbbbb-0000-0000-0000-000000000002";
const NONCE = "nonce-123";
const STATE = "state-123";

const { privateKey, publicKey } = await jose.generateKeyPair("RS256", { extractable: true });
const jwk = { ...(await jose.exportJWK(publicKey)), kid: "k1", alg: "RS256", use: "sig" };

function idToken(claims: Record<string, unknown>): Promise<string> {
  return new jose.SignJWT({ nonce: NONCE, ...claims })
    .setProtectedHeader({ alg: "RS256", kid: "k1" })
    .setAudience(CLIENT_ID)
    .setIssuedAt()
    .setExpirationTime("1h")
    .setSubject("pairwise-sub")
    .sign(privateKey);
}

/** A fetch answering the token endpoint with `token` (or `error`) and the key set. */
function platform(answer: { idToken?: string; error?: Record<string, unknown>; status?: number }) {
  const calls: string[] = [];
  const fetchFn: typeof fetch = (input) => {
    const url = String(input instanceof Request ? input.url : input);
    calls.push(url);
    if (url.endsWith("/discovery/v2.0/keys")) return Promise.resolve(Response.json({ keys: [jwk] }));
    if (answer.error) return Promise.resolve(Response.json(answer.error, { status: answer.status ?? 400 }));
    return Promise.resolve(Response.json({
      token_type: "Bearer",
      access_token: "at",
      refresh_token: "rt-2",
      expires_in: 3600,
      scope: "https://graph.microsoft.com/Calendars.ReadWrite openid email profile",
      id_token: answer.idToken,
    }));
  };
  return { fetchFn, calls };
}

function client(tenant: string, fetchFn: typeof fetch): MicrosoftOAuth {
  const config = parseMicrosoftConfig({
    MICROSOFT_CLIENT_ID: CLIENT_ID,
    MICROSOFT_CLIENT_SECRET: "secret",
    MICROSOFT_REDIRECT_URI: "https://app.example.test/functions/v1/calendar-auth-callback",
    MICROSOFT_TENANT: tenant,
    MICROSOFT_AUTHORITY: AUTHORITY,
  });
  return new MicrosoftOAuth(config, { fetch: fetchFn });
}

function exchange(oauth: MicrosoftOAuth, extra: Record<string, string> = {}) {
  const callbackUrl = new URL("https://app.example.test/functions/v1/calendar-auth-callback");
  callbackUrl.searchParams.set("code", "the-code");
  callbackUrl.searchParams.set("state", STATE);
  for (const [k, v] of Object.entries(extra)) callbackUrl.searchParams.set(k, v);
  return oauth.exchangeCode({ callbackUrl, codeVerifier: "v".repeat(43), state: STATE, nonce: NONCE });
}

const issuerOf = (tid: string) => `${AUTHORITY}/${tid}/v2.0`;

Deno.test("a token of the account's own tenant is accepted and named by its user principal name", async () => {
  const token = await idToken({
    iss: issuerOf(TENANT_A),
    tid: TENANT_A,
    preferred_username: "Alice@Contoso.example",
    email: "alice@contoso.example",
  });
  const tokens = await exchange(client("common", platform({ idToken: token }).fetchFn));
  assert.equal(tokens.accountEmail, "alice@contoso.example");
  assert.equal(tokens.refreshToken, "rt-2");
  assert.deepEqual(tokens.scopes.sort(), ["calendars.readwrite", "email", "openid", "profile"]);
  assert.deepEqual(client("common", fetch).missingScopes(tokens.scopes), []);
});

Deno.test("attack: an ID token whose iss names another tenant than its tid is refused", async () => {
  const token = await idToken({ iss: issuerOf(TENANT_A), tid: TENANT_B, preferred_username: "a@b.example" });
  await assert.rejects(
    exchange(client("common", platform({ idToken: token }).fetchFn)),
    (err) => err instanceof ProviderError && err.kind === "invalid",
  );
});

Deno.test("attack: the v1 issuer and another server's issuer are refused", async () => {
  for (const iss of [`https://sts.windows.net/${TENANT_A}/`, `https://evil.example.test/${TENANT_A}/v2.0`]) {
    const token = await idToken({ iss, tid: TENANT_A, preferred_username: "a@contoso.example" });
    await assert.rejects(
      exchange(client("common", platform({ idToken: token }).fetchFn)),
      (err) => err instanceof ProviderError && err.kind === "invalid",
      iss,
    );
  }
});

Deno.test("attack: a tenant the configuration does not admit is refused (tenant id, organizations)", async () => {
  const other = await idToken({ iss: issuerOf(TENANT_B), tid: TENANT_B, preferred_username: "x@b.example" });
  await assert.rejects(
    exchange(client(TENANT_A, platform({ idToken: other }).fetchFn)),
    (err) => err instanceof ProviderError && err.kind === "invalid",
  );
  const personal = await idToken({
    iss: issuerOf(CONSUMER_TENANT_ID),
    tid: CONSUMER_TENANT_ID,
    preferred_username: "someone@outlook.example",
  });
  await assert.rejects(
    exchange(client("organizations", platform({ idToken: personal }).fetchFn)),
    (err) => err instanceof ProviderError && err.kind === "invalid",
  );
});

Deno.test("attack: an ID token signed by another key is refused", async () => {
  const { privateKey: otherKey } = await jose.generateKeyPair("RS256");
  const forged = await new jose.SignJWT({ nonce: NONCE, iss: issuerOf(TENANT_A), tid: TENANT_A })
    .setProtectedHeader({ alg: "RS256", kid: "k1" })
    .setAudience(CLIENT_ID).setIssuedAt().setExpirationTime("1h").setSubject("s")
    .sign(otherKey);
  await assert.rejects(
    exchange(client("common", platform({ idToken: forged }).fetchFn)),
    (err) => err instanceof ProviderError && err.details.reason === "id_token_invalid",
  );
});

Deno.test("attack: a redirect carrying another server's iss is refused before any token request", async () => {
  const { fetchFn, calls } = platform({ idToken: "unused" });
  const oauth = client("common", fetchFn);
  await assert.rejects(
    exchange(oauth, { iss: `https://evil.example.test/${TENANT_A}/v2.0` }),
    (err) => err instanceof ProviderError && err.details.reason === "issuer_mismatch",
  );
  assert.equal(calls.length, 0);
  const ok = new URL("https://app.example.test/cb?code=c");
  assert.equal(oauth.issuerMatches(ok), true, "Microsoft sends no iss: absent is fine");
  ok.searchParams.set("iss", issuerOf(TENANT_A));
  assert.equal(oauth.issuerMatches(ok), true);
});

Deno.test("microsoftAccountEmail: an unverified email never names the account", () => {
  // A tenant can write any address into `email`: without xms_edov it is ignored.
  assert.equal(
    microsoftAccountEmail({
      tid: TENANT_B,
      email: "ceo@victim.example",
      preferred_username: "mallory@evil.example",
    }),
    "mallory@evil.example",
  );
  assert.equal(microsoftAccountEmail({ tid: TENANT_B, email: "ceo@victim.example" }), undefined);
  assert.equal(
    microsoftAccountEmail({
      tid: TENANT_A,
      email: "Alice@Contoso.example",
      xms_edov: true,
      preferred_username: "a@x.example",
    }),
    "alice@contoso.example",
  );
  assert.equal(microsoftAccountEmail({ preferred_username: "a@contoso.example" }), undefined, "no tenant");
  assert.equal(microsoftAccountEmail({ tid: TENANT_A, preferred_username: "not-an-address" }), undefined);
});

Deno.test("refresh: AADSTS50173 (password changed) is auth/grant_revoked; revoke needs no endpoint", async () => {
  const { fetchFn, calls } = platform({
    error: {
      error: "invalid_grant",
      error_description: "AADSTS50173: The provided grant has expired due to it being revoked.",
      error_codes: [50173],
    },
  });
  const oauth = client("common", fetchFn);
  await assert.rejects(
    oauth.refresh("rt-1"),
    (err) => err instanceof ProviderError && err.kind === "auth" && err.details.reason === "grant_revoked",
  );
  const before = calls.length;
  await oauth.revoke("rt-1");
  assert.equal(calls.length, before, "no call: Microsoft has no revocation endpoint");
});
