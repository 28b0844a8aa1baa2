/**
 * OpenID Connect ID token verification (OpenID Connect Core 1.0 §3.1.3.7) for the account a
 * calendar grant belongs to: the JWS signature against the issuer's JWK Set (jose), `iss` equal to
 * the configured issuer, `aud` containing our client id, `exp`/`iat`, and `nonce` equal to the one
 * sent in the authorization request. Provider-neutral: Google today, any OIDC issuer tomorrow.
 *
 * oauth4webapi already checks the claims of an ID token in the token response; the signature is
 * checked here too, so a token endpoint answer that was tampered with in transit (or a
 * misconfigured endpoint) cannot name an account.
 */
import * as jose from "jose";
import { isLoopbackHttp } from "./http-client/transport.ts";
import { ProviderError } from "./providers/types.ts";

/** What the ID token says about the account. `email` is lowercased. */
export interface VerifiedIdentity {
  /** The issuer's stable account id (`sub`). */
  subject: string;
  email?: string;
  emailVerified: boolean;
  /** Every claim of the verified token, for provider rules (Microsoft `tid`, `preferred_username`). */
  claims: Readonly<Record<string, unknown>>;
}

/** Expectations an ID token must meet. */
export interface IdTokenExpectations {
  issuer: string;
  /** Our OAuth client id. */
  audience: string;
  jwksUri: string;
  /** The `nonce` sent in the authorization request. */
  nonce: string;
  /** fetch for the JWK Set (tests); default the global fetch. */
  fetch?: typeof fetch;
  /** JWK Set request timeout in ms; default 5 000. */
  timeoutMs?: number;
}

/** Signature algorithms accepted (Google signs with RS256; others use ES256/PS256). `none` never. */
const ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512"];
/** Clock tolerance for `exp`/`iat`, in seconds. */
const CLOCK_TOLERANCE_S = 60;

const cachedSets = new Map<string, ReturnType<typeof jose.createRemoteJWKSet>>();

/** One remote JWK Set per URL and isolate (jose caches keys and refetches on an unknown `kid`). */
function jwksFor(o: IdTokenExpectations): ReturnType<typeof jose.createRemoteJWKSet> {
  const url = new URL(o.jwksUri);
  if (url.protocol !== "https:" && !isLoopbackHttp(url)) {
    throw new ProviderError("invalid", "the JWK Set URL must use https", { reason: "insecure_jwks_uri" });
  }
  const options: jose.RemoteJWKSetOptions = { timeoutDuration: o.timeoutMs ?? 5_000 };
  if (o.fetch) {
    // A test fetch gets its own set so scripted answers never leak into the shared cache.
    const fetchFn = o.fetch;
    return jose.createRemoteJWKSet(url, {
      ...options,
      [jose.customFetch]: (input: string, init: RequestInit) => fetchFn(input, init),
    });
  }
  let set = cachedSets.get(url.href);
  if (!set) {
    set = jose.createRemoteJWKSet(url, options);
    cachedSets.set(url.href, set);
  }
  return set;
}

/**
 * Verify an ID token and return the account it names.
 * @throws ProviderError `invalid` with reason `id_token_invalid` (bad signature, wrong issuer or
 *   audience, expired, nonce mismatch, missing `sub`); `transient` with reason `jwks_unavailable`
 *   when the JWK Set cannot be fetched.
 */
export async function verifyIdToken(idToken: string, o: IdTokenExpectations): Promise<VerifiedIdentity> {
  let payload: jose.JWTPayload;
  try {
    ({ payload } = await jose.jwtVerify(idToken, jwksFor(o), {
      issuer: o.issuer,
      audience: o.audience,
      algorithms: ALGORITHMS,
      clockTolerance: CLOCK_TOLERANCE_S,
      requiredClaims: ["sub", "exp", "iat"],
    }));
  } catch (err) {
    if (err instanceof ProviderError) throw err;
    if (
      err instanceof jose.errors.JWKSTimeout ||
      (err instanceof jose.errors.JOSEError && err.code === "ERR_JWKS_INVALID") ||
      err instanceof TypeError
    ) {
      throw new ProviderError("transient", "the issuer's JWK Set could not be fetched", {
        reason: "jwks_unavailable",
      });
    }
    const code = err instanceof jose.errors.JOSEError ? err.code : "unknown";
    throw new ProviderError("invalid", `the ID token was refused (${code})`, { reason: "id_token_invalid" });
  }
  if (payload.nonce !== o.nonce) {
    throw new ProviderError("invalid", "the ID token's nonce does not match the request", {
      reason: "id_token_invalid",
    });
  }
  if (typeof payload.sub !== "string" || payload.sub === "") {
    throw new ProviderError("invalid", "the ID token has no subject", { reason: "id_token_invalid" });
  }
  const email = typeof payload.email === "string" && payload.email.includes("@")
    ? payload.email.toLowerCase()
    : undefined;
  // Google sends a boolean; some issuers send the string "true".
  const verified = payload.email_verified === true || payload.email_verified === "true";
  return { subject: payload.sub, ...(email ? { email } : {}), emailVerified: verified, claims: payload };
}

/**
 * Whether `email`'s domain is one of `allowed` (lowercased, exact domain match; a subdomain is a
 * different domain). An empty list allows every domain.
 */
export function emailDomainAllowed(email: string, allowed: readonly string[]): boolean {
  if (allowed.length === 0) return true;
  const at = email.lastIndexOf("@");
  if (at < 1) return false;
  return allowed.includes(email.slice(at + 1).toLowerCase());
}
