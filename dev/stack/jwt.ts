/**
 * Supabase-shaped JWTs for the local stack, signed HS256 with the stack's JWT secret (the legacy
 * "JWT secret" signing that hosted projects and `supabase start` still accept).
 *
 * User access tokens carry the claims Supabase Auth (GoTrue) puts in a session's access token:
 * `iss` `<SUPABASE_URL>/auth/v1`, `aud` "authenticated", `sub` (the auth.users id), `email`,
 * `role` "authenticated", `aal`, `amr`, `session_id`, `app_metadata`, `user_metadata`,
 * `is_anonymous`, `iat`, `exp` (seconds since the epoch).
 * API keys (anon, service_role) are shaped like `supabase start`'s demo keys: `iss` "supabase-demo",
 * `role`, `iat`, `exp` ten years out, no `sub` and no `aud`.
 * See https://supabase.com/docs/guides/auth/jwt-fields.
 */
import * as jose from "jose";

/** Default issuer of user tokens: the local Auth URL `supabase start` uses. */
export const LOCAL_AUTH_ISSUER = "http://127.0.0.1:54321/auth/v1";

/** Lifetime of API keys (anon, service_role), seconds: ten years, like the demo keys. */
export const API_KEY_LIFETIME_SECONDS = 10 * 365 * 24 * 3600;

/** What {@link mintJwt} signs. */
export interface MintClaims {
  role: "authenticated" | "service_role" | "anon";
  /** auth.users id (uuid); user tokens should have one. */
  sub?: string;
  email?: string;
  /** Lifetime in seconds from now (negative for an already-expired token). Default: 3600 for a
   * user token with a `sub`, ten years for API keys. */
  expiresInSeconds?: number;
  /** `iss`; default `LOCAL_AUTH_ISSUER` for user tokens, "supabase-demo" for API keys. Pass
   * `${supabaseUrl}/auth/v1` to match a specific stack. */
  issuer?: string;
  /** Further claims merged last (e.g. `app_metadata`, or a wrong `aud` in a negative test). */
  extra?: Record<string, unknown>;
}

/**
 * Sign a Supabase-shaped JWT (HS256, header `{alg:"HS256", typ:"JWT"}`).
 * A token with `sub` is a user session token; without `sub` it is an API key.
 * @throws TypeError when `secret` is empty.
 */
export async function mintJwt(secret: string, claims: MintClaims): Promise<string> {
  if (!secret) throw new TypeError("mintJwt: the JWT secret is empty");
  const now = Math.floor(Date.now() / 1000);
  const isUser = claims.sub !== undefined;
  const lifetime = claims.expiresInSeconds ?? (isUser ? 3600 : API_KEY_LIFETIME_SECONDS);
  const payload: jose.JWTPayload = isUser
    ? {
      iss: claims.issuer ?? LOCAL_AUTH_ISSUER,
      aud: claims.role === "authenticated" ? "authenticated" : claims.role,
      sub: claims.sub,
      email: claims.email ?? "",
      phone: "",
      app_metadata: { provider: "email", providers: ["email"] },
      user_metadata: claims.email ? { email: claims.email, email_verified: true } : {},
      role: claims.role,
      aal: "aal1",
      amr: [{ method: "password", timestamp: now }],
      session_id: crypto.randomUUID(),
      is_anonymous: false,
    }
    : { iss: claims.issuer ?? "supabase-demo", role: claims.role };
  if (!isUser && claims.email) payload.email = claims.email;
  Object.assign(payload, claims.extra ?? {});
  return await new jose.SignJWT(payload)
    .setProtectedHeader({ alg: "HS256", typ: "JWT" })
    .setIssuedAt(now)
    .setExpirationTime(now + lifetime)
    .sign(new TextEncoder().encode(secret));
}
