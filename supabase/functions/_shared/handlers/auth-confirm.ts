/**
 * `calendar-auth-confirm`: the app's last step of connecting a calendar. It binds the consent to the
 * person who started it (OAuth 2.0 Security BCP, RFC 9700): the grant the callback received is only
 * attached when the signed-in user who called auth-start confirms it (pending-grants.ts).
 *
 * Gateway verify_jwt is off; the Supabase JWT is verified here (auth.ts), like auth-start.
 *
 * Input, POST JSON (unknown fields refused): `{pending_id: uuid, flow_id: string}`: the
 * `calendar_pending` value the callback put on the app's return URL, and the `flow_id` auth-start
 * returned to this app (kept in sessionStorage; it never appears in a URL, so a forwarded return URL
 * cannot be confirmed anywhere else).
 *
 * Output 200: `{status: "connected", provider, account_email}`: the staff member's connection now
 * uses this grant and their appointments are queued for the calendar.
 *
 * Refusals (the pending grant is revoked at the provider and deleted; it cannot be retried):
 * - 403 `consent_not_yours`: the caller is not the user who started this connection, or not with
 *   its flow id (a link that was finished in someone else's browser, or a forwarded return URL);
 * - 410 `pending_grant_expired`: not confirmed within PENDING_GRANT_TTL_SECONDS (10 minutes);
 * - 409 `missing_refresh_token`: the provider granted no offline access; connect again;
 * - 409 `other_provider_connected`: the staff member is connected to another provider (one active
 *   connection per staff member); disconnect it, then connect again.
 * Other errors: 404 `pending_grant_not_found` (unknown, already confirmed or already refused);
 * 401 `missing_authorization` / `invalid_token`; 403 `forbidden_role`, `user_required`;
 * 400 `invalid_json` / `invalid_request`; 405; 413; 415.
 */
import { z } from "zod";
import { authenticateUser } from "../auth.ts";
import { getSql } from "../db/client.ts";
import { HttpError, json, readJson, requireMethod } from "../http.ts";
import { confirmPendingGrant, revokeGrants, takeExpiredPendingGrants } from "../pending-grants.ts";
import { NO_STORE } from "../request-input.ts";
import type { FunctionHandler } from "../serve.ts";

const inputSchema = z.strictObject({
  pending_id: z.guid({ error: "must be the calendar_pending value from the return URL (a uuid)" }),
  flow_id: z.string().regex(/^[A-Za-z0-9_-]{43}$/, "must be the flow_id calendar-auth-start returned"),
});

const REFUSALS = {
  other_user: [
    403,
    "consent_not_yours",
    "this calendar connection was started by another user, so it was cancelled and its access revoked; " +
    "start connecting from your own account",
  ],
  other_flow: [
    403,
    "consent_not_yours",
    "this calendar connection was started in another app session (the flow id does not match), so it was " +
    "cancelled and its access revoked; start connecting again from this page",
  ],
  expired: [
    410,
    "pending_grant_expired",
    "the calendar connection was not confirmed within 10 minutes, so it was cancelled and its access revoked; " +
    "start connecting again",
  ],
  missing_refresh_token: [
    409,
    "missing_refresh_token",
    "the provider granted no offline access; set GOOGLE_OAUTH_PROMPT=consent and connect again",
  ],
  other_provider_connected: [
    409,
    "other_provider_connected",
    "this staff member is connected to another calendar provider, so this connection was cancelled and its " +
    "access revoked; disconnect the other calendar first, then connect again",
  ],
} as const;

export const authConfirm: FunctionHandler = async (req, ctx) => {
  requireMethod(req, "POST");
  const { config } = ctx;
  const caller = await authenticateUser(req, config);
  const input = await readJson(req, inputSchema);
  const sql = getSql(config);
  const outcome = await confirmPendingGrant(sql, config, {
    pendingId: input.pending_id,
    userId: caller.userId,
    flowId: input.flow_id,
  });
  // Others' abandoned grants go too (bounded), so no live grant outlives its 10 minutes for long.
  await revokeGrants(config, await takeExpiredPendingGrants(sql, config), ctx.log);
  if (outcome.kind === "not_found") {
    throw new HttpError(
      404,
      "pending_grant_not_found",
      "no calendar connection is waiting under this id (already confirmed, cancelled, or unknown)",
    );
  }
  if (outcome.kind === "refused") {
    const revoked = outcome.revoke ? await revokeGrants(config, [outcome.revoke], ctx.log) : 0;
    ctx.log("oauth_confirm", {
      outcome: "refused",
      reason: outcome.reason,
      staff_id: outcome.staffId,
      provider: outcome.provider,
      revoked: revoked > 0,
    });
    const [status, code, message] = REFUSALS[outcome.reason];
    throw new HttpError(status, code, message);
  }
  ctx.log("oauth_confirm", {
    outcome: "connected",
    staff_id: outcome.staffId,
    tenant_id: outcome.tenantId,
    provider: outcome.provider,
    connection_id: outcome.connectionId,
    backfill_queued: outcome.backfillQueued,
  });
  return json(
    { status: "connected", provider: outcome.provider, account_email: outcome.accountEmail },
    200,
    NO_STORE,
  );
};
