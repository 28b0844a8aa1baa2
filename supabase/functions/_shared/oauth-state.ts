/**
 * The OAuth `state` parameter: a jose HS256 JWT signed with OAUTH_STATE_SIGNING_SECRET plus a
 * single-use nonce row in `calendar_oauth_states` that holds the PKCE verifier (encrypted) and the
 * validated return URL (docs/decisions.md decision 4). A signature alone would allow replay; the row
 * is consumed atomically, so a state works exactly once even when two callbacks race.
 *
 * JWT claims: `iss` "calendar-sync", `aud` "calendar-auth-callback", `jti` the nonce, `sub` the
 * staff id, `tid` the tenant id, `prv` the provider, `iat`, `exp` = iat + 10 minutes.
 * PKCE per RFC 7636 (S256), verifier and challenge from oauth4webapi. The OpenID Connect `nonce`
 * is derived from the state's nonce ({@link oidcNonce}), so nothing more needs storing.
 *
 * Bounded per staff member: starting a flow takes a token from a per-staff bucket in the database
 * (CALENDAR_AUTH_START_BURST at once, default 10, one more every CALENDAR_AUTH_START_REFILL_SECONDS,
 * default 30 s; an empty bucket is an {@link AuthStartRateLimited}), and keeps at most
 * {@link MAX_LIVE_STATES} live (unconsumed, unexpired) states, deleting older ones: a link from a
 * superseded start stops working.
 */
import * as jose from "jose";
import { calculatePKCECodeChallenge, generateRandomCodeVerifier } from "oauth4webapi";
import { z } from "zod";
import type { Config } from "./config.ts";
import { decryptToken, encryptToken, type TokenBinding } from "./crypto.ts";
import { base64url } from "./encoding.ts";
import type { Sql } from "./db/client.ts";
import type { Narrow, Row } from "./db/rows.ts";
import { isProviderId } from "./providers/registry.ts";
import type { ProviderId } from "./providers/types.ts";

/** Lifetime of a state, in seconds (JWT `exp` and the row's `expires_at` agree). */
export const STATE_TTL_SECONDS = 10 * 60;
/**
 * How long an expired or consumed row is kept after its expiry, in seconds, before it is deleted
 * opportunistically: long enough that a replayed or late callback still finds the app's return URL
 * and gets a precise error, short enough that the table stays small.
 */
export const STATE_RETENTION_SECONDS = 60 * 60;

/** Live (unconsumed, unexpired) states kept per staff member; starting another deletes the oldest. */
export const MAX_LIVE_STATES = 5;

/** Starting a flow was refused: the staff member started too many; retry after `retryAfterSeconds`. */
export class AuthStartRateLimited extends Error {
  constructor(readonly retryAfterSeconds: number) {
    super(`too many calendar connection attempts; retry in ${retryAfterSeconds} s`);
    this.name = "AuthStartRateLimited";
  }
}

export const STATE_ISSUER = "calendar-sync";
export const STATE_AUDIENCE = "calendar-auth-callback";

/** Why a state was refused. Each code is also the `calendar_error` marker the callback redirects with. */
export type AuthStateErrorCode = "invalid_state" | "state_expired" | "state_replayed";

/**
 * A refused state. `returnTo` is the return URL stored with the state when the state's signature was
 * valid (so the app can still be sent back with the error), else undefined.
 */
export class AuthStateError extends Error {
  constructor(
    readonly code: AuthStateErrorCode,
    message: string,
    readonly returnTo?: string | null,
    readonly staffId?: string,
  ) {
    super(message);
    this.name = "AuthStateError";
  }
}

/** What `calendar-auth-start` binds into a state. `returnTo` must already be validated against the allowlist. */
export interface AuthStateInput {
  tenantId: string;
  staffId: string;
  provider: ProviderId;
  /** The Supabase user (JWT `sub`) starting the flow; only they may confirm its grant. */
  initiatedBy: string;
  returnTo?: string | null;
}

/** A freshly created state: the signed JWT, the S256 challenge for the consent URL, and its expiry. */
export interface CreatedAuthState {
  state: string;
  /**
   * A secret for the app that started the flow (base64url, 43 chars): it must present it to confirm
   * the flow's grant. Only its SHA-256 is stored, and it never travels in a URL.
   */
  flowId: string;
  codeChallenge: string;
  /** The OpenID Connect nonce for the authorization request. */
  nonce: string;
  expiresAt: Date;
}

/** A consumed state: who started the flow, where to send them back, and the PKCE verifier. */
export interface ConsumedAuthState {
  nonce: string;
  tenantId: string;
  staffId: string;
  provider: ProviderId;
  returnTo: string | null;
  codeVerifier: string;
  /** The Supabase user who started the flow (null for states created before this was recorded). */
  initiatedBy: string | null;
  /** base64url SHA-256 of the flow id auth-start returned (null for states created before). */
  flowSecretHash: string | null;
  /** The OpenID Connect nonce the ID token must carry. */
  oidcNonce: string;
}

const claimsSchema = z.object({
  jti: z.string().regex(/^[A-Za-z0-9_-]{32,64}$/),
  sub: z.guid(),
  tid: z.guid(),
  prv: z.custom<ProviderId>((v) => typeof v === "string" && isProviderId(v), "unknown provider"),
});

/** The binding of an encrypted PKCE verifier to its state row (a verifier copied to another row fails). */
export function verifierBinding(nonce: string): TokenBinding {
  return { table: "calendar_oauth_states", rowKey: nonce, field: "code_verifier" };
}

function signingKey(config: Pick<Config, "stateSigningSecret">): Uint8Array {
  return new TextEncoder().encode(config.stateSigningSecret);
}

/**
 * The OpenID Connect `nonce` of a flow: base64url(SHA-256("oidc:" + state nonce)). Derived rather
 * than stored; the state nonce itself never leaves the signed state.
 */
export async function oidcNonce(stateNonce: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(`oidc:${stateNonce}`));
  return base64url(new Uint8Array(digest));
}

/** base64url SHA-256 of a flow id: what the database keeps of it. */
export async function flowIdHash(flowId: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(flowId));
  return base64url(new Uint8Array(digest));
}

function randomNonce(): string {
  return base64url(crypto.getRandomValues(new Uint8Array(32)));
}

/**
 * Sign a state JWT. Exposed for tests (which sign expired or foreign states with the test secret);
 * production code calls {@link createAuthState}.
 * @param claims `jti` nonce, `sub` staff id, `tid` tenant id, `prv` provider.
 * @param expiresAt absolute expiry (the `exp` claim, seconds precision).
 */
export async function signStateToken(
  config: Pick<Config, "stateSigningSecret">,
  claims: { jti: string; sub: string; tid: string; prv: ProviderId },
  expiresAt: Date,
): Promise<string> {
  return await new jose.SignJWT({ tid: claims.tid, prv: claims.prv })
    .setProtectedHeader({ alg: "HS256", typ: "JWT" })
    .setIssuer(STATE_ISSUER)
    .setAudience(STATE_AUDIENCE)
    .setSubject(claims.sub)
    .setJti(claims.jti)
    .setIssuedAt()
    .setExpirationTime(Math.floor(expiresAt.getTime() / 1000))
    .sign(signingKey(config));
}

/** Verified state claims; `expired` is true when only the expiry check failed. */
export interface VerifiedStateClaims {
  nonce: string;
  staffId: string;
  tenantId: string;
  provider: ProviderId;
  expired: boolean;
}

/**
 * Verify a state JWT's signature, algorithm (HS256 only), issuer, audience and claim shapes. An
 * expired token whose signature is valid is reported with `expired: true` (so the callback can still
 * find the app's return URL); it must never be consumed.
 * @throws AuthStateError `invalid_state` for anything else (malformed, tampered, foreign secret,
 *   wrong audience or issuer, missing claims).
 */
export async function verifyStateToken(
  config: Pick<Config, "stateSigningSecret">,
  state: string,
): Promise<VerifiedStateClaims> {
  let payload: jose.JWTPayload;
  let expired = false;
  try {
    ({ payload } = await jose.jwtVerify(state, signingKey(config), {
      algorithms: ["HS256"],
      issuer: STATE_ISSUER,
      audience: STATE_AUDIENCE,
      requiredClaims: ["exp", "jti", "sub"],
    }));
  } catch (err) {
    // jose checks the signature first, then iss/aud, then exp: a JWTExpired carries a payload whose
    // signature, issuer and audience were all accepted.
    if (!(err instanceof jose.errors.JWTExpired)) {
      throw new AuthStateError("invalid_state", "the sign-in state is not valid (tampered or foreign)");
    }
    payload = err.payload;
    expired = true;
  }
  const claims = claimsSchema.safeParse(payload);
  if (!claims.success) {
    throw new AuthStateError("invalid_state", "the sign-in state is missing required claims");
  }
  return {
    nonce: claims.data.jti,
    staffId: claims.data.sub,
    tenantId: claims.data.tid,
    provider: claims.data.prv,
    expired,
  };
}

/**
 * Start an authorization: a PKCE verifier (kept encrypted in a new nonce row) and a signed state.
 * In one transaction: take a token from the staff member's start bucket, insert the row, and delete
 * the staff member's live states beyond the newest {@link MAX_LIVE_STATES}. Also deletes rows that
 * expired more than {@link STATE_RETENTION_SECONDS} ago.
 * @returns the state JWT, the S256 code challenge, the OIDC nonce, and when the state expires.
 * @throws AuthStartRateLimited when the staff member's bucket is empty (nothing is written).
 */
export async function createAuthState(
  sql: Sql,
  config: Config,
  input: AuthStateInput,
): Promise<CreatedAuthState> {
  const nonce = randomNonce();
  const flowId = randomNonce();
  const flowSecretHash = await flowIdHash(flowId);
  const codeVerifier = generateRandomCodeVerifier();
  const codeChallenge = await calculatePKCECodeChallenge(codeVerifier);
  const encrypted = await encryptToken(codeVerifier, verifierBinding(nonce), config.encryption);
  const row = await sql.begin(async (tx) => {
    // The bucket row stays locked until commit, so one staff member's starts are counted and
    // trimmed one after another.
    const [limit] = await tx<{ wait: number }[]>`
      select calendar_private.take_auth_start_token(
        ${input.staffId}, ${config.authStart.burst}, ${config.authStart.refillSeconds}) as wait`;
    if (limit.wait > 0) return { limited: true as const, wait: limit.wait };
    // The database clock decides expiry at consumption, so take it from there too.
    const [inserted] = await tx<{ id: string; expires_at: Date }[]>`
      insert into public.calendar_oauth_states
        (nonce, tenant_id, staff_id, provider, initiated_by, flow_secret_hash, code_verifier_encrypted,
          return_to, expires_at)
      values (${nonce}, ${input.tenantId}, ${input.staffId}, ${input.provider}, ${input.initiatedBy},
        ${flowSecretHash},
        ${encrypted}, ${input.returnTo ?? null},
        date_trunc('second', now()) + make_interval(secs => ${STATE_TTL_SECONDS}))
      returning id, expires_at`;
    await tx`
      delete from public.calendar_oauth_states
      where id in (
        select id from public.calendar_oauth_states
        where staff_id = ${input.staffId} and consumed_at is null and expires_at > now()
        order by created_at desc, id = ${inserted.id} desc
        offset ${MAX_LIVE_STATES})`;
    return { limited: false as const, expires_at: inserted.expires_at };
  });
  if (row.limited) throw new AuthStartRateLimited(row.wait);
  await purgeStaleStates(sql);
  const state = await signStateToken(
    config,
    { jti: nonce, sub: input.staffId, tid: input.tenantId, prv: input.provider },
    row.expires_at,
  );
  return { state, flowId, codeChallenge, nonce: await oidcNonce(nonce), expiresAt: row.expires_at };
}

/** Delete state rows that expired more than {@link STATE_RETENTION_SECONDS} ago. @returns rows deleted. */
export async function purgeStaleStates(sql: Sql): Promise<number> {
  const result = await sql`
    delete from public.calendar_oauth_states
    where expires_at < now() - make_interval(secs => ${STATE_RETENTION_SECONDS})`;
  return result.count;
}

/**
 * Verify and consume a state exactly once. The row is claimed with one conditional UPDATE
 * (`consumed_at is null and expires_at > now()`), so of two concurrent callbacks only one wins.
 * @returns the flow's tenant, staff, provider, return URL and the decrypted PKCE verifier.
 * @throws AuthStateError `invalid_state` (malformed, tampered, unknown nonce, claims not matching the
 *   row), `state_expired` (past its 10 minutes), `state_replayed` (already consumed).
 */
export async function consumeAuthState(sql: Sql, config: Config, state: string): Promise<ConsumedAuthState> {
  const claims = await verifyStateToken(config, state);
  if (claims.expired) throw await explainRefusal(sql, claims);
  const rows = await sql<
    Narrow<
      Pick<
        Row<"calendar_oauth_states">,
        | "tenant_id"
        | "staff_id"
        | "provider"
        | "return_to"
        | "code_verifier_encrypted"
        | "initiated_by"
        | "flow_secret_hash"
      >,
      { provider: ProviderId }
    >[]
  >`
    update public.calendar_oauth_states set consumed_at = now()
    where nonce = ${claims.nonce} and consumed_at is null and expires_at > now()
    returning tenant_id, staff_id, provider, return_to, code_verifier_encrypted, initiated_by,
      flow_secret_hash`;
  const row = rows[0];
  if (!row) throw await explainRefusal(sql, claims);
  if (
    row.staff_id !== claims.staffId || row.tenant_id !== claims.tenantId || row.provider !== claims.provider
  ) {
    throw new AuthStateError("invalid_state", "the sign-in state does not match its record");
  }
  let codeVerifier: string;
  try {
    codeVerifier = await decryptToken(
      row.code_verifier_encrypted,
      verifierBinding(claims.nonce),
      config.encryption,
    );
  } catch {
    throw new AuthStateError("invalid_state", "the sign-in state's verifier cannot be read", row.return_to);
  }
  return {
    nonce: claims.nonce,
    tenantId: row.tenant_id,
    staffId: row.staff_id,
    provider: row.provider,
    returnTo: row.return_to,
    codeVerifier,
    initiatedBy: row.initiated_by,
    flowSecretHash: row.flow_secret_hash,
    oidcNonce: await oidcNonce(claims.nonce),
  };
}

/** Why a signed state could not be consumed, with the row's return URL when the row still exists. */
async function explainRefusal(sql: Sql, claims: VerifiedStateClaims): Promise<AuthStateError> {
  const [row] = await sql<
    (Pick<Row<"calendar_oauth_states">, "staff_id" | "return_to"> & { consumed: boolean; expired: boolean })[]
  >`
    select staff_id, return_to, consumed_at is not null as consumed, expires_at <= now() as expired
    from public.calendar_oauth_states where nonce = ${claims.nonce}`;
  if (row && row.staff_id !== claims.staffId) {
    return new AuthStateError("invalid_state", "the sign-in state does not match its record");
  }
  if (row?.consumed) {
    return new AuthStateError(
      "state_replayed",
      "this sign-in link was already used; start connecting again",
      row.return_to,
      claims.staffId,
    );
  }
  if (claims.expired || row?.expired) {
    return new AuthStateError(
      "state_expired",
      "the sign-in took longer than 10 minutes; start connecting again",
      row?.return_to,
      claims.staffId,
    );
  }
  return new AuthStateError("invalid_state", "the sign-in state is unknown", undefined, claims.staffId);
}
