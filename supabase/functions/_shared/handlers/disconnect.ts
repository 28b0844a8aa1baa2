/**
 * `calendar-disconnect`: stop using a staff member's calendar.
 *
 * Gateway verify_jwt is on; the JWT is verified here again. Callers: the staff member themself, or
 * a tenant admin (`calendar_private.is_tenant_admin`) for a staff member of their tenant.
 *
 * Input, POST JSON (unknown fields refused): `{staff_id?: uuid}`; omitted = the caller's own.
 *
 * For each of the staff member's connections that is not already disconnected, in one transaction
 * holding the connection row lock (so a concurrent token refresh cannot write tokens back): stop its
 * push channels at the provider with its token (best effort; inbound/channels.ts
 * stopChannelsOnDisconnect: the channel rows are stopped and their jobs closed either way), revoke
 * the grant at the provider (best effort: a failure is reported as `revoked: false`, not an error),
 * forget both tokens, mark the connection `disconnected`, and delete the staff member's
 * `calendar_sync_log` rows for that provider (the mappings), except rows a worker holds and rows
 * whose last write is unresolved (`write_unresolved`: an event may exist that no row records). Events already
 * on the calendar are left alone. Connecting again later starts from a clean slate and backfills.
 *
 * Output 200: `{status: "disconnected", revoked: boolean}` (`revoked` true when every grant was
 * revoked at the provider; always false for a provider without token revocation, e.g. Microsoft).
 *
 * Errors: 401 `missing_authorization` / `invalid_token`; 403 `forbidden_role`, `user_required`,
 * `not_staff`, `forbidden_tenant` (another tenant), `forbidden` (same tenant, not an admin);
 * 404 `staff_not_found`; 409 `not_connected`, `ambiguous_staff`; 400 `invalid_json` /
 * `invalid_request`; 405; 413; 415.
 */
import { z } from "zod";
import { authenticateUser } from "../auth.ts";
import type { Config } from "../config.ts";
import type { ConnectionOwner, ConnectionRow } from "../connections.ts";
import { connectionTokenBinding, decryptToken } from "../crypto.ts";
import { getSql, type Sql } from "../db/client.ts";
import { HttpError, json, type RequestContext, requireMethod } from "../http.ts";
import { stopChannelsOnDisconnect } from "../inbound/channels.ts";
import { providerFor } from "../providers/registry.ts";
import { ProviderError } from "../providers/types.ts";
import { NO_STORE, readQueryOrJson } from "../request-input.ts";
import type { FunctionHandler } from "../serve.ts";
import { authorizeStaffManage } from "../staff.ts";

const inputSchema = z.strictObject({
  staff_id: z.guid({ error: "must be a staff id (uuid)" }).optional(),
});

/** The row re-read under its lock; `active` is calendar_private.connection_is_active, the one rule. */
type LockedRow =
  & Pick<
    ConnectionRow,
    | "id"
    | "tenant_id"
    | "staff_id"
    | "provider"
    | "access_token_encrypted"
    | "refresh_token_encrypted"
    | "token_expires_at"
  >
  & { active: boolean };

/**
 * Revoke the grant behind a row's tokens; false when there is no readable token, the provider failed,
 * or the provider has no per-token revocation (Microsoft: forgetting the tokens is all that can be done
 * here; the user or an administrator removes the app's consent in their Microsoft account).
 */
async function revokeGrant(config: Config, row: LockedRow, log: RequestContext["log"]): Promise<boolean> {
  const provider = providerFor(row.provider, config);
  if (!provider.capabilities.tokenRevocation) {
    log("revoke_skipped", { connection_id: row.id, reason: "provider has no token revocation" });
    return false;
  }
  const candidates: ["refresh_token" | "access_token", string | null][] = [
    ["refresh_token", row.refresh_token_encrypted],
    ["access_token", row.access_token_encrypted],
  ];
  for (const [field, envelope] of candidates) {
    if (!envelope) continue;
    let token: string;
    try {
      token = await decryptToken(envelope, connectionTokenBinding(row, field), config.encryption);
    } catch {
      continue;
    }
    try {
      await provider.revoke(token);
      return true;
    } catch (err) {
      log("revoke_failed", {
        connection_id: row.id,
        kind: err instanceof ProviderError ? err.kind : "unknown",
        reason: err instanceof ProviderError ? err.details.reason : undefined,
      });
      return false;
    }
  }
  log("revoke_skipped", { connection_id: row.id, reason: "no readable token" });
  return false;
}

/**
 * Disconnect the staff member's active connection in their tenant (calendar_private.active_connection).
 * @returns how many connections were disconnected and whether every grant was revoked.
 */
export async function disconnectStaff(
  sql: Sql,
  config: Config,
  owner: ConnectionOwner,
  log: RequestContext["log"],
): Promise<{ disconnected: number; revoked: boolean }> {
  const ids = await sql<{ id: string }[]>`
    select c.id from calendar_private.active_connection(${owner.tenantId}::uuid, ${owner.staffId}::uuid) c`;
  let disconnected = 0;
  let revoked = true;
  for (const { id } of ids) {
    const done = await sql.begin(async (tx) => {
      const [row] = await tx<LockedRow[]>`
        select id, tenant_id, staff_id, provider, access_token_encrypted, refresh_token_encrypted,
          token_expires_at, calendar_private.connection_is_active(connection_status) as active
        from public.staff_calendar_connections where id = ${id} for update`;
      // Another request disconnected it while we waited for the lock.
      if (!row?.active) return null;
      // Push channels are stopped while a token still exists (best effort; the rows stop regardless).
      const channels = await stopChannelsOnDisconnect(tx, config, row, log);
      const ok = await revokeGrant(config, row, log);
      await tx`update public.staff_calendar_connections set
          access_token_encrypted = null, refresh_token_encrypted = null, token_expires_at = null,
          connection_status = 'disconnected', granted_scopes = '{}', last_error = null
        where id = ${id}`;
      // A row a worker holds right now stays until its call ends (the worker records it under its
      // lease); dropping it would let a quick reconnect queue a second row for the same event while
      // that call is in flight. So does a row whose last write is unresolved (write_unresolved: a
      // timeout after the provider carried out the create, a Microsoft delete that found its event
      // by transactionId but failed to delete it, a worker that died), whatever parks or re-queues
      // did to its error columns since: an event may exist that neither the row nor the ledger
      // knows, and dropping the row would leave it on the calendar for good. The reconnect's
      // backfill reconciles whatever stays.
      const mappings = await tx`delete from public.calendar_sync_log
        where tenant_id = ${row.tenant_id} and staff_id = ${row.staff_id} and provider = ${row.provider}
          and (lease_expires_at is null or lease_expires_at <= now())
          and not write_unresolved`;
      log("calendar_disconnected", {
        connection_id: id,
        staff_id: row.staff_id,
        provider: row.provider,
        revoked: ok,
        mappings_deleted: mappings.count,
        channels_stopped: channels.stopped,
        channel_stops_failed: channels.failed,
      });
      return ok;
    });
    if (done === null) continue;
    disconnected++;
    revoked &&= done;
  }
  return { disconnected, revoked };
}

export const disconnect: FunctionHandler = async (req, ctx) => {
  requireMethod(req, "POST");
  const { config } = ctx;
  const caller = await authenticateUser(req, config);
  const input = await readQueryOrJson(req, inputSchema);
  const sql = getSql(config);
  const staff = await authorizeStaffManage(sql, caller, input.staff_id);
  const result = await disconnectStaff(
    sql,
    config,
    { tenantId: staff.tenant_id, staffId: staff.id },
    ctx.log,
  );
  if (result.disconnected === 0) {
    throw new HttpError(409, "not_connected", "this staff member has no calendar connected");
  }
  return json({ status: "disconnected", revoked: result.revoked }, 200, NO_STORE);
};
