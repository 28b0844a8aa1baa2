/**
 * `calendar-webhook`: where providers deliver push notifications. verify_jwt is off (a provider has
 * no Supabase JWT); each notification is authenticated by its channel's secret, whose SHA-256 the
 * database compares in constant time. One SQL statement per request, no provider call: the answer
 * comes in milliseconds and the work (incremental sync) is a coalesced job for the worker.
 *
 * Routes (POST):
 * - `/calendar-webhook/google`: a Google push notification (headers only, see webhook/google.ts).
 *   200 `{"status": "sync_requested" | "replayed" | "acknowledged" | "retired"}` (a `sync` message
 *   is only acknowledged; a repeated or older message number is a replay and writes nothing; a late
 *   message of a channel we stopped, with its genuine token, is `retired` and writes nothing).
 * - `/calendar-webhook/microsoft`: Graph change notifications; `/calendar-webhook/microsoft/lifecycle`:
 *   Graph lifecycle notifications (webhook/microsoft.ts). Either answers Graph's validation
 *   handshake (`?validationToken=`) with 200 `text/plain` and the token. A batch answers 202
 *   `{"accepted": n, "retired": r, "refused": m}` when at least one entry is genuine: accepted
 *   entries request a sync; retired ones (late notifications of a subscription we stopped, genuine
 *   clientState) and refused ones (unknown, forged) write nothing. Answering late notifications 2xx
 *   keeps Graph from retrying them and from slowing the endpoint down.
 * Errors (the envelope; nothing is written): 404 `unknown_channel` (no channel has the id, or a
 * stopped one without its genuine secret; every entry of a batch unknown), 403 `forged_notification` (the secret
 * or Google's resource id does not match; a batch where no entry is genuine and one is forged),
 * 400 `invalid_request` / `invalid_json` (missing or malformed headers or body), 404 `not_found`
 * (another path), 405, 413 (a batch over 1 MiB), 415.
 */
import { getSql } from "../db/client.ts";
import { HttpError, json, readJson, requireMethod } from "../http.ts";
import { NO_STORE } from "../request-input.ts";
import type { FunctionContext, FunctionHandler } from "../serve.ts";
import { readGoogleNotification, recordGoogleNotification } from "../webhook/google.ts";
import {
  changeNotifications,
  lifecycleNotifications,
  MAX_NOTIFICATION_BYTES,
  type MicrosoftEntry,
  recordMicrosoftNotifications,
  validationAnswer,
} from "../webhook/microsoft.ts";
import { forgedNotification, unknownChannel } from "../webhook/outcomes.ts";

const FUNCTION_NAME = "calendar-webhook";

/**
 * The route under the function's name: "google", "microsoft", "microsoft/lifecycle". Hosted
 * Supabase hands the function `/calendar-webhook/...`, the local gateway `/functions/v1/calendar-webhook/...`.
 */
export function webhookRoute(url: URL): string {
  const parts = url.pathname.split("/").filter(Boolean);
  const at = parts.lastIndexOf(FUNCTION_NAME);
  return at < 0 ? "" : parts.slice(at + 1).join("/");
}

async function google(req: Request, ctx: FunctionContext): Promise<Response> {
  const notification = readGoogleNotification(req);
  await req.body?.cancel();
  const outcome = await recordGoogleNotification(getSql(ctx.config), notification);
  ctx.log("webhook_notification", { provider: "google", outcome });
  if (outcome === "unknown") throw unknownChannel();
  if (outcome === "forged") throw forgedNotification();
  return json({ status: outcome }, 200, NO_STORE);
}

async function microsoft(req: Request, ctx: FunctionContext, lifecycle: boolean): Promise<Response> {
  const validation = validationAnswer(new URL(req.url));
  if (validation) {
    await req.body?.cancel();
    ctx.log("webhook_validation", { provider: "microsoft", lifecycle });
    return validation;
  }
  const entries: MicrosoftEntry[] = lifecycle
    ? (await readJson(req, lifecycleNotifications, { maxBytes: MAX_NOTIFICATION_BYTES })).value
    : (await readJson(req, changeNotifications, { maxBytes: MAX_NOTIFICATION_BYTES })).value;
  const outcomes = await recordMicrosoftNotifications(getSql(ctx.config), entries);
  const accepted = outcomes.filter((o) => o === "accepted").length;
  const retired = outcomes.filter((o) => o === "retired").length;
  const forged = outcomes.filter((o) => o === "forged").length;
  ctx.log("webhook_notification", {
    provider: "microsoft",
    lifecycle,
    accepted,
    retired,
    forged,
    unknown: outcomes.length - accepted - retired - forged,
  });
  if (accepted + retired === 0) throw forged > 0 ? forgedNotification() : unknownChannel();
  return json({ accepted, retired, refused: outcomes.length - accepted - retired }, 202, NO_STORE);
}

export const webhook: FunctionHandler = async (req, ctx) => {
  requireMethod(req, "POST");
  switch (webhookRoute(new URL(req.url))) {
    case "google":
      return await google(req, ctx);
    case "microsoft":
      return await microsoft(req, ctx, false);
    case "microsoft/lifecycle":
      return await microsoft(req, ctx, true);
    default:
      throw new HttpError(
        404,
        "not_found",
        "post notifications to /calendar-webhook/google, /calendar-webhook/microsoft or /calendar-webhook/microsoft/lifecycle",
      );
  }
};
