/**
 * The sandbox as an OpenID Connect issuer, as Google is: the issuer identifier, the discovery
 * document (`/google/.well-known/openid-configuration`), the JWK Set (`/google/oauth2/v3/certs`) and
 * RS256-signed ID tokens for code exchanges that were granted `openid`.
 *
 * The issuer is `<sandbox origin>/google`, so it follows whatever address the sandbox is reached at.
 * Each sandbox process signs with its own key pair (generated at first use, never persisted): an ID
 * token is verified right after it is issued, and a restarted sandbox publishes its new key.
 */
import * as jose from "jose";
import { jsonResponse } from "./errors.ts";
import { sha256Hex } from "./ids.ts";
import type { SandboxRuntime } from "./runtime.ts";

/** ID tokens live one hour, as Google's do. */
export const ID_TOKEN_TTL_S = 3600;
/** Path of the JWK Set under the sandbox origin. */
export const JWKS_PATH = "/google/oauth2/v3/certs";
/** Path of the discovery document under the sandbox origin. */
export const DISCOVERY_PATH = "/google/.well-known/openid-configuration";

interface SigningKey {
  kid: string;
  privateKey: CryptoKey;
  publicJwk: jose.JWK;
}

const keys = new WeakMap<SandboxRuntime, Promise<SigningKey>>();

function signingKey(sb: SandboxRuntime): Promise<SigningKey> {
  let key = keys.get(sb);
  if (!key) {
    key = (async () => {
      const pair = await jose.generateKeyPair("RS256", { extractable: true });
      const publicJwk = await jose.exportJWK(pair.publicKey);
      const kid = (await jose.calculateJwkThumbprint(publicJwk)).slice(0, 16);
      return { kid, privateKey: pair.privateKey, publicJwk: { ...publicJwk, kid, alg: "RS256", use: "sig" } };
    })();
    keys.set(sb, key);
  }
  return key;
}

/** The issuer identifier for a sandbox reached at `origin` (`http://127.0.0.1:PORT/google`). */
export function issuerFor(origin: string): string {
  return `${origin}/google`;
}

/**
 * The account's stable subject: 21 digits derived from the email, like Google's numeric `sub`.
 */
export function subjectFor(email: string): string {
  const n = BigInt(`0x${sha256Hex(email.toLowerCase()).slice(0, 24)}`) % 10n ** 20n;
  return `1${n.toString().padStart(20, "0")}`;
}

/** `GET /google/oauth2/v3/certs`: `{keys: [JWK]}` with the public signing key. */
export async function jwksEndpoint(sb: SandboxRuntime): Promise<Response> {
  const key = await signingKey(sb);
  return jsonResponse({ keys: [key.publicJwk] }, 200, { "cache-control": "public, max-age=3600" });
}

/** `GET /google/.well-known/openid-configuration`: the endpoints, as Google's discovery document lists them. */
export function discoveryEndpoint(origin: string): Response {
  const issuer = issuerFor(origin);
  return jsonResponse({
    issuer,
    authorization_endpoint: `${issuer}/o/oauth2/v2/auth`,
    token_endpoint: `${issuer}/token`,
    revocation_endpoint: `${issuer}/revoke`,
    jwks_uri: `${origin}${JWKS_PATH}`,
    response_types_supported: ["code"],
    subject_types_supported: ["public"],
    id_token_signing_alg_values_supported: ["RS256"],
    scopes_supported: ["openid", "email", "profile"],
    token_endpoint_auth_methods_supported: ["client_secret_post", "client_secret_basic"],
    claims_supported: ["aud", "email", "email_verified", "exp", "iat", "iss", "nonce", "sub"],
    code_challenge_methods_supported: ["plain", "S256"],
    grant_types_supported: ["authorization_code", "refresh_token"],
    authorization_response_iss_parameter_supported: true,
  });
}

/** Whether a grant's scopes include OpenID Connect (so the token response carries an ID token). */
export function wantsIdToken(scopes: readonly string[]): boolean {
  return scopes.includes("openid");
}

/**
 * A signed ID token for `email` issued to `clientId`: `iss`, `aud` and `azp` (the client), `sub`,
 * `email`, `email_verified: true`, `iat`, `exp` (+1 h) and the authorization request's `nonce` when
 * it had one. Header `alg: RS256`, `kid` of the JWK Set's key.
 */
export async function idTokenFor(
  sb: SandboxRuntime,
  o: { origin: string; clientId: string; email: string; nonce?: string },
): Promise<string> {
  const key = await signingKey(sb);
  const claims: jose.JWTPayload = {
    azp: o.clientId,
    email: o.email,
    email_verified: true,
    ...(o.nonce !== undefined ? { nonce: o.nonce } : {}),
  };
  return await new jose.SignJWT(claims)
    .setProtectedHeader({ alg: "RS256", kid: key.kid, typ: "JWT" })
    .setIssuer(issuerFor(o.origin))
    .setAudience(o.clientId)
    .setSubject(subjectFor(o.email))
    .setIssuedAt()
    .setExpirationTime(`${ID_TOKEN_TTL_S}s`)
    .sign(key.privateKey);
}

/** The public signing key as a JWK (`kid`, `alg: RS256`, `use: sig`), for other issuers' key sets. */
export async function publicSigningJwk(sb: SandboxRuntime): Promise<jose.JWK> {
  return (await signingKey(sb)).publicJwk;
}

/**
 * Sign `claims` as an RS256 ID token with this sandbox's key (header `kid`, `typ: JWT`), issued now
 * and valid `ttlS` seconds. Used by the Microsoft identity endpoints, which share the key pair.
 */
export async function signIdToken(
  sb: SandboxRuntime,
  claims: jose.JWTPayload,
  o: { issuer: string; audience: string; subject: string; ttlS: number },
): Promise<string> {
  const key = await signingKey(sb);
  return await new jose.SignJWT(claims)
    .setProtectedHeader({ alg: "RS256", kid: key.kid, typ: "JWT" })
    .setIssuer(o.issuer)
    .setAudience(o.audience)
    .setSubject(o.subject)
    .setIssuedAt()
    .setNotBefore("0s")
    .setExpirationTime(`${o.ttlS}s`)
    .sign(key.privateKey);
}
