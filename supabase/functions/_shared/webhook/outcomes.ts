/**
 * What a notification came to, as the webhook's SQL statements report it
 * (supabase/migrations/20261206100000_calendar_sync_inbound.sql), and the client errors the webhook
 * answers for the refused ones. Nothing is written for a refused notification.
 */
import { HttpError } from "../http.ts";

/** Outcomes of `calendar_private.record_google_notification`. */
/** `retired`: a channel we stopped, with its genuine token (a late notification: 2xx, nothing written). */
export type GoogleOutcome = "unknown" | "retired" | "forged" | "acknowledged" | "replayed" | "sync_requested";

/** Outcome of one entry of `calendar_private.record_microsoft_notifications`. */
export type MicrosoftOutcome = "unknown" | "retired" | "forged" | "accepted";

/** 404 `unknown_channel`: no channel has this id. */
export function unknownChannel(): HttpError {
  return new HttpError(404, "unknown_channel", "no live calendar channel has this id");
}

/** 403 `forged_notification`: the channel's secret (or Google's resource id) does not match. */
export function forgedNotification(): HttpError {
  return new HttpError(
    403,
    "forged_notification",
    "the notification's channel secret does not match the channel it names",
  );
}
