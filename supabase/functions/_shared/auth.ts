/**
 * Supabase JWT verification in code (jose), because the gateway's verify_jwt is not enough for
 * tenancy and Supabase now recommends verifying in the function.
 *
 * Accepted: asymmetric tokens (ES256/RS256/EdDSA) checked against the project's JWKS
 * (`SUPABASE_JWKS` inline, else `SUPABASE_URL/auth/v1/.well-known/jwks.json`), and legacy HS256
 * tokens signed with `SUPABASE_JWT_SECRET`.
 * See https://supabase.com/docs/guides/auth/jwts and .../functions/auth.
 */
import { createHash, timingSafeEqual as nodeTimingSafeEqual } from "node:crypto";
import * as jose from "jose";
import type { Config } from "./config.ts";
import { HttpError } from "./http.ts";

/** Claims we rely on. `sub` is the auth user id (uuid) for user tokens; absent on API keys. */
export interface SupabaseClaims extends jose.JWTPayload {
  role?: string;
  aal?: string;
  session_id?: string;
  email?: string;
}

/** Who is calling: a signed-in user, or the service role (server-side callers, pg_net, the worker). */
export type Caller =
  | { kind: "user"; userId: string; claims: SupabaseClaims }
  | { kind: "service"; claims: SupabaseClaims };

/** What JWT verification needs of the configuration: the legacy secret, an inline JWKS, or the project URL. */
export type JwtKeys = Pick<Config, "jwtSecret" | "jwks" | "supabaseUrl">;

let remoteJwks: ReturnType<typeof jose.createRemoteJWKSet> | undefined;
let remoteJwksUrl: string | undefined;
let localJwks: ReturnType<typeof jose.createLocalJWKSet> | undefined;
let localJwksSource: unknown;

function keySetFor(config: JwtKeys) {
  if (config.jwks) {
    if (localJwksSource !== config.jwks) {
      localJwks = jose.createLocalJWKSet(config.jwks as unknown as jose.JSONWebKeySet);
      localJwksSource = config.jwks;
    }
    return localJwks!;
  }
  const url = `${config.supabaseUrl}/auth/v1/.well-known/jwks.json`;
  if (remoteJwksUrl !== url) {
    remoteJwks = jose.createRemoteJWKSet(new URL(url), { cooldownDuration: 30_000, timeoutDuration: 5_000 });
    remoteJwksUrl = url;
  }
  return remoteJwks!;
}

/** Extract the bearer token. @throws HttpError 401 `missing_authorization` */
export function bearerToken(req: Request): string {
  const header = req.headers.get("authorization") ?? "";
  const match = /^Bearer\s+([A-Za-z0-9._~+/=-]+)$/i.exec(header.trim());
  if (!match) {
    throw new HttpError(401, "missing_authorization", "send Authorization: Bearer <Supabase access token>");
  }
  return match[1];
}

/**
 * Verify a Supabase JWT and return its claims.
 * @throws HttpError 401 `invalid_token` for a bad signature, an expired token or an unknown algorithm.
 */
export async function verifyJwt(token: string, config: JwtKeys): Promise<SupabaseClaims> {
  let alg: string | undefined;
  try {
    alg = jose.decodeProtectedHeader(token).alg;
  } catch {
    throw new HttpError(401, "invalid_token", "the access token is not a JWT");
  }
  try {
    if (alg === "HS256") {
      if (!config.jwtSecret) throw new Error("HS256 not configured");
      const { payload } = await jose.jwtVerify(token, new TextEncoder().encode(config.jwtSecret), {
        algorithms: ["HS256"],
      });
      return payload as SupabaseClaims;
    }
    const { payload } = await jose.jwtVerify(token, keySetFor(config), {
      algorithms: ["ES256", "RS256", "EdDSA"],
    });
    return payload as SupabaseClaims;
  } catch (err) {
    if (err instanceof HttpError) throw err;
    const expired = err instanceof jose.errors.JWTExpired;
    throw new HttpError(
      401,
      "invalid_token",
      expired
        ? "the access token has expired; refresh the session"
        : "the access token could not be verified",
    );
  }
}

/**
 * Authenticate the request's bearer token.
 * @returns a user caller (role `authenticated` with a uuid `sub`) or the service role.
 * @throws HttpError 401 for a missing/invalid token, 403 `forbidden_role` for anon or other roles.
 */
export async function authenticate(req: Request, config: Config): Promise<Caller> {
  const token = bearerToken(req);
  if (isSecretApiKey(token, config)) return { kind: "service", claims: { role: "service_role" } };
  const claims = await verifyJwt(token, config);
  if (claims.role === "service_role") return { kind: "service", claims };
  if (claims.role === "authenticated" && typeof claims.sub === "string" && UUID.test(claims.sub)) {
    return { kind: "user", userId: claims.sub, claims };
  }
  throw new HttpError(
    403,
    "forbidden_role",
    "sign in as a staff member; the anon key cannot call this function",
  );
}

/**
 * Whether `token` is one of the project's secret API keys (`sb_secret_...`, SUPABASE_SECRET_KEYS),
 * which Supabase's new key model gives server-side callers instead of the service_role JWT.
 * Compared in constant time against every configured key.
 */
export function isSecretApiKey(token: string, config: Pick<Config, "secretApiKeys">): boolean {
  let match = false;
  for (const key of config.secretApiKeys) match = timingSafeEqual(token, key) || match;
  return match;
}

/** @throws HttpError 403 unless the caller is a signed-in user. */
export async function authenticateUser(req: Request, config: Config) {
  const caller = await authenticate(req, config);
  if (caller.kind !== "user") {
    throw new HttpError(
      403,
      "user_required",
      "call this function with a signed-in staff member's access token",
    );
  }
  return caller;
}

export const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/**
 * Constant-time comparison of shared secrets. Both sides are hashed first so neither the content
 * nor the length of the expected secret leaks through timing (node:crypto's timingSafeEqual needs
 * equal lengths).
 */
export function timingSafeEqual(a: string, b: string): boolean {
  const ha = createHash("sha256").update(a).digest();
  const hb = createHash("sha256").update(b).digest();
  return nodeTimingSafeEqual(ha, hb) && a.length === b.length;
}
