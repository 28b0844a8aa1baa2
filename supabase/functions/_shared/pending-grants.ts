/**
 * Grants waiting for the app's confirmation (`calendar_pending_grants`): the last step that binds a
 * consent to the person who started it (OAuth 2.0 Security BCP, RFC 9700 §4.7 and §2.1).
 *
 * The state proves which flow a callback belongs to, not who finished the consent page: a consent
 * link started by staff member A and finished in B's browser would attach B's calendar to A. So the
 * callback stores the grant here, tokens encrypted and bound to this row, and sends the browser back
 * to the app with the pending id. The app, with the signed-in user's session, confirms it; only the
 * user (JWT `sub`) who called auth-start can, and only with the flow id auth-start gave that app
 * (kept by the app, never in a URL, so a forwarded return URL cannot be confirmed from another tab
 * or browser). A confirmation by anyone else, with another flow id, or none within
 * {@link PENDING_GRANT_TTL_SECONDS}, revokes the grant at the provider and deletes the row.
 */
import { timingSafeEqual } from "./auth.ts";
import type { Config } from "./config.ts";
import { storeGrant } from "./connections.ts";
import { requestChannel } from "./inbound/channels.ts";
import { decryptToken, encryptToken, type TokenBinding } from "./crypto.ts";
import type { Sql } from "./db/client.ts";
import { HttpError } from "./http.ts";
import { type ConsumedAuthState, flowIdHash } from "./oauth-state.ts";
import { providerFor } from "./providers/registry.ts";
import { ProviderError, type ProviderId, type TokenSet } from "./providers/types.ts";
import { enqueueBackfill } from "./sync/backfill.ts";

/** How long the app has to confirm a grant after the callback, in seconds. */
export const PENDING_GRANT_TTL_SECONDS = 10 * 60;
/** Expired pending grants revoked per sweep call (each costs one provider request). */
export const PURGE_BATCH = 10;

/** The binding of a pending grant's encrypted token to its row (a copy in another row fails to decrypt). */
export function pendingTokenBinding(id: string, field: "access_token" | "refresh_token"): TokenBinding {
  return { table: "calendar_pending_grants", rowKey: id, field };
}

interface PendingRow {
  id: string;
  tenant_id: string;
  staff_id: string;
  provider: ProviderId;
  initiated_by: string;
  flow_secret_hash: string;
  access_token_encrypted: string;
  refresh_token_encrypted: string | null;
  token_expires_at: Date;
  granted_scopes: string[];
  account_email: string;
  expired: boolean;
}

/**
 * Keep a grant for confirmation.
 * @param flow the consumed state; `initiatedBy` and `flowSecretHash` must be set.
 * @param tokens the exchanged tokens; `accountEmail` must be set (verified by the ID token).
 * @returns the pending id (a random uuid, the only thing the browser sees) and its expiry.
 */
export async function storePendingGrant(
  sql: Sql,
  config: Config,
  flow: ConsumedAuthState & { initiatedBy: string; flowSecretHash: string },
  tokens: TokenSet & { accountEmail: string },
): Promise<{ id: string; expiresAt: Date }> {
  const id = crypto.randomUUID();
  const access = await encryptToken(
    tokens.accessToken,
    pendingTokenBinding(id, "access_token"),
    config.encryption,
  );
  const refresh = tokens.refreshToken
    ? await encryptToken(tokens.refreshToken, pendingTokenBinding(id, "refresh_token"), config.encryption)
    : null;
  const [row] = await sql<{ expires_at: Date }[]>`
    insert into public.calendar_pending_grants (
      id, tenant_id, staff_id, provider, initiated_by, flow_secret_hash, access_token_encrypted,
      refresh_token_encrypted, token_expires_at, granted_scopes, account_email, return_to, expires_at
    ) values (
      ${id}, ${flow.tenantId}, ${flow.staffId}, ${flow.provider}, ${flow.initiatedBy}, ${flow.flowSecretHash},
      ${access}, ${refresh},
      ${tokens.expiresAt}, ${tokens.scopes}, ${tokens.accountEmail}, ${flow.returnTo},
      now() + make_interval(secs => ${PENDING_GRANT_TTL_SECONDS})
    ) returning expires_at`;
  return { id, expiresAt: row.expires_at };
}

/** A token to revoke at a provider, decrypted from a refused or expired pending grant. */
export interface GrantToRevoke {
  provider: ProviderId;
  /** The refresh token when there is one (revoking it revokes the whole grant), else the access token. */
  token: string;
}

/** The outcome of {@link confirmPendingGrant}. */
export type ConfirmOutcome =
  | {
    kind: "connected";
    connectionId: string;
    staffId: string;
    tenantId: string;
    provider: ProviderId;
    accountEmail: string;
    backfillQueued: number;
  }
  | {
    /**
     * Refused: `other_user` (not the initiator), `other_flow` (the initiator, but not with the flow id
     * of this flow), `expired`, `missing_refresh_token`, or `other_provider_connected` (the staff member's
     * active connection is of another provider).
     */
    kind: "refused";
    reason: "other_user" | "other_flow" | "expired" | "missing_refresh_token" | "other_provider_connected";
    staffId: string;
    provider: ProviderId;
    revoke: GrantToRevoke | null;
  }
  | { kind: "not_found" };

async function tokenToRevoke(row: PendingRow, config: Config): Promise<GrantToRevoke | null> {
  try {
    const token = row.refresh_token_encrypted
      ? await decryptToken(
        row.refresh_token_encrypted,
        pendingTokenBinding(row.id, "refresh_token"),
        config.encryption,
      )
      : await decryptToken(
        row.access_token_encrypted,
        pendingTokenBinding(row.id, "access_token"),
        config.encryption,
      );
    return { provider: row.provider, token };
  } catch {
    // Unreadable (key rotated away): nothing we can revoke; the row still goes.
    return null;
  }
}

/**
 * Confirm a pending grant for the signed-in user `userId` presenting `flowId`. The row is claimed
 * and deleted in the same transaction that attaches it, so a pending grant is used exactly once,
 * whoever calls:
 * - the initiator with the flow's id, in time: tokens re-encrypted onto the staff member's
 *   connection (`connected`, account email recorded) and the backfill queued, atomically;
 * - anyone else, another flow id, or after {@link PENDING_GRANT_TTL_SECONDS}: deleted; the caller
 *   revokes {@link ConfirmOutcome} `revoke` at the provider.
 * @throws whatever the database throws (the transaction then changed nothing).
 */
export async function confirmPendingGrant(
  sql: Sql,
  config: Config,
  args: { pendingId: string; userId: string; flowId: string },
): Promise<ConfirmOutcome> {
  const outcome = await sql.begin(async (tx) => {
    const [row] = await tx<PendingRow[]>`
      delete from public.calendar_pending_grants where id = ${args.pendingId}
      returning id, tenant_id, staff_id, provider, initiated_by, flow_secret_hash, access_token_encrypted,
        refresh_token_encrypted, token_expires_at, granted_scopes, account_email, expires_at <= now() as expired`;
    if (!row) return { kind: "not_found" } as const;
    const refused = async (
      reason: "other_user" | "other_flow" | "expired" | "missing_refresh_token" | "other_provider_connected",
    ) => ({
      kind: "refused" as const,
      reason,
      staffId: row.staff_id,
      provider: row.provider,
      revoke: await tokenToRevoke(row, config),
    });
    // The staff row must still be this user's: a staff record moved to another login since the
    // start is not the initiator's any more.
    const [owner] = await tx<{ id: string }[]>`
      select id from public.staff
      where id = ${row.staff_id} and tenant_id = ${row.tenant_id} and profile_id = ${args.userId}`;
    if (row.initiated_by !== args.userId || !owner) return await refused("other_user");
    if (!timingSafeEqual(await flowIdHash(args.flowId), row.flow_secret_hash)) {
      return await refused("other_flow");
    }
    if (row.expired) return await refused("expired");
    const decrypt = (envelope: string, field: "access_token" | "refresh_token") =>
      decryptToken(envelope, pendingTokenBinding(row.id, field), config.encryption);
    const tokens: TokenSet = {
      accessToken: await decrypt(row.access_token_encrypted, "access_token"),
      ...(row.refresh_token_encrypted
        ? { refreshToken: await decrypt(row.refresh_token_encrypted, "refresh_token") }
        : {}),
      expiresAt: row.token_expires_at,
      scopes: row.granted_scopes,
      accountEmail: row.account_email,
    };
    try {
      // A savepoint: when storeGrant refuses (no refresh token), its writes go, the delete stays.
      return await tx.savepoint(async (sp) => {
        const txSql = sp as unknown as Sql;
        const connectionId = await storeGrant(txSql, config, {
          tenantId: row.tenant_id,
          staffId: row.staff_id,
          provider: row.provider,
        }, tokens);
        const backfillQueued = await enqueueBackfill(txSql, row.staff_id);
        // A usable connection gets a fresh push channel (a reconnect replaces the old one).
        await requestChannel(txSql, config, { connectionId, provider: row.provider, replace: true });
        return {
          kind: "connected" as const,
          connectionId,
          staffId: row.staff_id,
          tenantId: row.tenant_id,
          provider: row.provider,
          accountEmail: row.account_email,
          backfillQueued,
        };
      });
    } catch (err) {
      if (
        err instanceof HttpError &&
        (err.code === "missing_refresh_token" || err.code === "other_provider_connected")
      ) {
        return await refused(err.code);
      }
      throw err;
    }
  });
  return outcome;
}

/**
 * Delete up to {@link PURGE_BATCH} pending grants that expired unconfirmed, skipping rows another
 * caller holds, and return their tokens for revocation. Called opportunistically by the consent
 * functions; the worker's sweep may call it too.
 */
export async function takeExpiredPendingGrants(sql: Sql, config: Config): Promise<GrantToRevoke[]> {
  const rows = await sql<PendingRow[]>`
    delete from public.calendar_pending_grants
    where id in (
      select id from public.calendar_pending_grants where expires_at <= now()
      order by expires_at limit ${PURGE_BATCH} for update skip locked)
    returning id, tenant_id, staff_id, provider, initiated_by, flow_secret_hash, access_token_encrypted,
      refresh_token_encrypted, token_expires_at, granted_scopes, account_email, true as expired`;
  const out: GrantToRevoke[] = [];
  for (const row of rows) {
    const t = await tokenToRevoke(row, config);
    if (t) out.push(t);
  }
  return out;
}

/**
 * Revoke refused or expired grants at their providers, one after another. Best effort: a failure
 * is logged (kind only) and skipped, since the tokens are already gone from our database and only
 * linger at the provider until they expire or the user removes the app.
 */
export async function revokeGrants(
  config: Config,
  grants: readonly GrantToRevoke[],
  log: (event: string, fields?: Record<string, unknown>) => void,
): Promise<number> {
  let revoked = 0;
  for (const g of grants) {
    try {
      await providerFor(g.provider, config).revoke(g.token);
      revoked++;
    } catch (err) {
      log("oauth_revoke_failed", {
        provider: g.provider,
        kind: err instanceof ProviderError ? err.kind : "unknown",
      });
    }
  }
  return revoked;
}
