/**
 * Who is calling a function, decided once for every function from the two headers Supabase
 * documents (https://supabase.com/docs/guides/functions/auth-headers):
 *
 * - `Authorization: Bearer <JWT>`: a user's access token (role `authenticated`), or a legacy
 *   `service_role` API key. Verified with jose: asymmetric tokens (ES256/RS256/EdDSA) against the
 *   project's JWKS (jwks.ts), legacy HS256 tokens with `SUPABASE_JWT_SECRET` (or an HS256 key of
 *   SUPABASE_JWKS with the token's `kid`). Every token must carry `exp`; user tokens must also carry
 *   an accepted `aud` (CALENDAR_JWT_AUDIENCE, default "authenticated") and, when the issuer is known,
 *   `iss` (CALENDAR_JWT_ISSUER, default `${SUPABASE_URL}/auth/v1`).
 * - A secret API key (`sb_secret_...`, SUPABASE_SECRET_KEYS) in the `apikey` header, as a bearer
 *   token, or both: the service role. A publishable key (`sb_publishable_...`) never is.
 *
 * See https://supabase.com/docs/guides/auth/jwts and https://supabase.com/docs/guides/api/api-keys.
 */
import { createHash, timingSafeEqual as nodeTimingSafeEqual } from "node:crypto";
import * as jose from "jose";
import type { Config } from "./config.ts";
import { HttpError } from "./http.ts";
import { ASYMMETRIC_ALGORITHMS, type JwksSource, keyResolver } from "./jwks.ts";

/** Claims we rely on. `sub` is the auth user id (uuid) for user tokens; absent on API keys. */
export interface SupabaseClaims extends jose.JWTPayload {
  role?: string;
  aal?: string;
  session_id?: string;
  email?: string;
}

/** How a service caller proved itself. */
export type ServiceCredential = "secret_api_key" | "worker_secret" | "service_role_jwt";

/** Who is calling: a signed-in user, or the service role (server-side callers, pg_net, the worker). */
export type Caller =
  | { kind: "user"; userId: string; claims: SupabaseClaims }
  | { kind: "service"; via: ServiceCredential; claims: SupabaseClaims };

/** What JWT verification needs of the configuration: the legacy secret, the JWKS, the project URL. */
export type JwtKeys = Pick<Config, "jwtSecret" | "supabaseUrl"> & JwksSource;

/** What {@link authenticate} needs of the configuration. */
export type AuthConfig =
  & JwtKeys
  & Pick<Config, "secretApiKeys" | "workerSecret" | "jwtAudiences" | "jwtIssuers">;

/** Options of {@link authenticate}. */
export interface AuthenticateOptions {
  /** Also accept CALENDAR_WORKER_SECRET as a service credential (calendar-sync-worker only). */
  workerSecret?: boolean;
}

const BEARER = /^Bearer\s+([A-Za-z0-9._~+/=-]+)$/i;

/** Extract the bearer token. @throws HttpError 401 `missing_authorization` */
export function bearerToken(req: Request): string {
  const token = optionalBearer(req);
  if (token === undefined) {
    throw new HttpError(401, "missing_authorization", "send Authorization: Bearer <Supabase access token>");
  }
  return token;
}

/** The bearer token, or undefined without an Authorization header. @throws HttpError 401 when malformed. */
function optionalBearer(req: Request): string | undefined {
  const header = req.headers.get("authorization");
  if (header === null) return undefined;
  const match = BEARER.exec(header.trim());
  if (!match) {
    throw new HttpError(401, "missing_authorization", "send Authorization: Bearer <Supabase access token>");
  }
  return match[1];
}

/** HS256 secrets for a token: an `oct` key of SUPABASE_JWKS with the token's kid, else the JWT secret. */
function hs256Secret(kid: string | undefined, config: JwtKeys): Uint8Array | undefined {
  if (kid !== undefined) {
    const jwk = config.jwks?.keys.find((k) =>
      k.kty === "oct" && k.kid === kid && (k.alg === undefined || k.alg === "HS256") &&
      typeof k.k === "string"
    );
    if (jwk) return jose.base64url.decode(jwk.k as string);
  }
  return config.jwtSecret ? new TextEncoder().encode(config.jwtSecret) : undefined;
}

/**
 * Verify a Supabase JWT's signature and time claims (`exp` and `nbf` when present) and return its
 * claims. This is what the platform's verify_jwt check does; the claim rules of {@link authenticate}
 * (exp required, aud, iss) come on top.
 * @throws HttpError 401 `invalid_token` for a bad signature, an expired token or an unknown algorithm.
 */
export async function verifyJwt(token: string, config: JwtKeys): Promise<SupabaseClaims> {
  let header: jose.ProtectedHeaderParameters;
  try {
    header = jose.decodeProtectedHeader(token);
  } catch {
    throw new HttpError(401, "invalid_token", "the access token is not a JWT");
  }
  try {
    if (header.alg === "HS256") {
      const secret = hs256Secret(header.kid, config);
      if (!secret) throw new Error("HS256 not configured");
      const { payload } = await jose.jwtVerify(token, secret, { algorithms: ["HS256"] });
      return payload as SupabaseClaims;
    }
    const { payload } = await jose.jwtVerify(token, await keyResolver(config), {
      algorithms: [...ASYMMETRIC_ALGORITHMS],
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
 * The claim rules on top of the signature. Every token needs `exp` (Supabase puts one in every
 * access token and API key; a token without one would be valid forever). A user token (role
 * `authenticated`) needs an accepted `aud` and, when the issuer is known, the project's `iss`.
 * A legacy service_role key is taken as Supabase issues it: `{"iss": "supabase", "ref", "role":
 * "service_role", "iat", "exp"}`, no `aud`.
 * @throws HttpError 401 `invalid_token`
 */
export function checkClaims(
  claims: SupabaseClaims,
  config: Pick<Config, "jwtAudiences" | "jwtIssuers">,
): void {
  if (typeof claims.exp !== "number") {
    throw new HttpError(401, "invalid_token", "the access token has no expiry (exp)");
  }
  if (claims.role !== "authenticated") return;
  const auds = Array.isArray(claims.aud) ? claims.aud : claims.aud === undefined ? [] : [claims.aud];
  if (!auds.some((a) => config.jwtAudiences.includes(a))) {
    throw new HttpError(401, "invalid_token", "the access token is meant for another audience (aud)");
  }
  if (config.jwtIssuers && !(typeof claims.iss === "string" && config.jwtIssuers.includes(claims.iss))) {
    throw new HttpError(401, "invalid_token", "the access token was issued by another project (iss)");
  }
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

/** A publishable key (`sb_publishable_...`): the client-side key, never the service role. */
export function isPublishableKey(token: string): boolean {
  return token.startsWith("sb_publishable_");
}

/** Whether `value` is a server secret: a secret API key, or (when allowed) the worker secret. */
function isServerSecret(value: string, config: AuthConfig, opts: AuthenticateOptions): boolean {
  const secretKey = isSecretApiKey(value, config);
  const worker = opts.workerSecret === true && config.workerSecret !== undefined &&
    timingSafeEqual(value, config.workerSecret);
  return secretKey || worker;
}

function serviceBy(value: string, config: AuthConfig): ServiceCredential {
  return isSecretApiKey(value, config) ? "secret_api_key" : "worker_secret";
}

/**
 * Authenticate a request from its `Authorization` and `apikey` headers. This is the one place that
 * decides whether a request is a server-side caller:
 *
 * 1. A bearer token that is a server secret (a secret API key; with `opts.workerSecret`, also
 *    CALENDAR_WORKER_SECRET) is the service role, whatever `apikey` says.
 * 2. Any other bearer token decides alone: an `sb_...` API key that is not a secret key is refused
 *    (a publishable key with 403, an unknown key with 401); a JWT is verified and its role decides
 *    (a user, the legacy service_role key, or 403 for anon and others). A secret key in `apikey` does
 *    not turn a user's JWT into the service role: the request acts as the user, as Supabase's API
 *    gateway does.
 * 3. Without a bearer token, a server secret in `apikey` is the service role; a publishable key
 *    there is 403; anything else is 401.
 *
 * @returns a user caller (role `authenticated` with a uuid `sub`) or the service role.
 * @throws HttpError 401 `missing_authorization` / `invalid_token`, 403 `forbidden_role`.
 */
export async function authenticate(
  req: Request,
  config: AuthConfig,
  opts: AuthenticateOptions = {},
): Promise<Caller> {
  const bearer = optionalBearer(req);
  const apikey = req.headers.get("apikey")?.trim() || undefined;
  const service = (value: string): Caller => ({
    kind: "service",
    via: serviceBy(value, config),
    claims: { role: "service_role" },
  });
  if (bearer === undefined) {
    if (apikey !== undefined && isServerSecret(apikey, config, opts)) return service(apikey);
    if (apikey !== undefined && isPublishableKey(apikey)) throw publishableRefused();
    if (apikey?.startsWith("sb_")) throw unknownApiKey();
    throw new HttpError(
      401,
      "missing_authorization",
      "send Authorization: Bearer <Supabase access token>, or a secret API key in the apikey header",
    );
  }
  if (isServerSecret(bearer, config, opts)) return service(bearer);
  if (isPublishableKey(bearer)) throw publishableRefused();
  if (bearer.startsWith("sb_")) throw unknownApiKey();
  const claims = await verifyJwt(bearer, config);
  checkClaims(claims, config);
  if (claims.role === "service_role") return { kind: "service", via: "service_role_jwt", claims };
  if (claims.role === "authenticated" && typeof claims.sub === "string" && UUID.test(claims.sub)) {
    return { kind: "user", userId: claims.sub, claims };
  }
  throw new HttpError(
    403,
    "forbidden_role",
    "sign in as a staff member; the anon key cannot call this function",
  );
}

function publishableRefused(): HttpError {
  return new HttpError(
    403,
    "forbidden_role",
    "a publishable key is not a credential for this function; send a user's access token or a secret key",
  );
}

function unknownApiKey(): HttpError {
  return new HttpError(401, "invalid_token", "the API key is not one of this project's secret keys");
}

/** @throws HttpError 403 unless the caller is a signed-in user. */
export async function authenticateUser(req: Request, config: AuthConfig) {
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
