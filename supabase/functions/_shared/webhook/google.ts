/**
 * Google Calendar push notifications (events.watch channels). Google POSTs an empty body with the
 * channel's state in headers:
 * - `X-Goog-Channel-ID`: our channel id (1..64 of `[A-Za-z0-9-_+/=]`);
 * - `X-Goog-Channel-Token`: the secret we set at watch time (absent when none was set: ours always is);
 * - `X-Goog-Resource-ID`: the watched collection's opaque id (the same for every channel on a calendar);
 * - `X-Goog-Resource-State`: `sync` (the channel was created; may arrive before the watch answer),
 *   `exists` (something in the collection changed), `not_exists`;
 * - `X-Goog-Message-Number`: increasing per channel, not sequential (a gap is not a loss); retries
 *   and late deliveries repeat or reorder numbers.
 * Success is any 2xx; Google retries 500/502/503/504 and treats other answers as failures.
 */
import { z } from "zod";
import type { Sql } from "../db/client.ts";
import { parseInput } from "../http.ts";
import type { GoogleOutcome } from "./outcomes.ts";
import { channelSecretDigest } from "./secret.ts";

/** The headers of a Google notification, validated (header names lowercased). */
export const googleNotificationHeaders = z.object({
  "x-goog-channel-id": z.string().regex(/^[A-Za-z0-9\-_+/=]{1,64}$/, "must be a channel id"),
  "x-goog-channel-token": z.string().max(256).optional(),
  "x-goog-resource-id": z.string().min(1).max(1024),
  "x-goog-resource-state": z.enum(["sync", "exists", "not_exists"]),
  // An int64 in decimal; 18 digits always fit PostgreSQL's bigint.
  "x-goog-message-number": z.string().regex(/^[0-9]{1,18}$/, "must be a decimal message number"),
});

export type GoogleNotification = z.infer<typeof googleNotificationHeaders>;

/**
 * Read a Google notification from its headers (the body is empty and never read).
 * @throws HttpError 400 `invalid_request` naming the missing or malformed header.
 */
export function readGoogleNotification(req: Request): GoogleNotification {
  const headers: Record<string, string> = {};
  for (const name of Object.keys(googleNotificationHeaders.shape)) {
    const value = req.headers.get(name);
    if (value !== null) headers[name] = value;
  }
  return parseInput(googleNotificationHeaders, headers);
}

/**
 * Record a notification in one statement (`calendar_private.record_google_notification`): the live
 * channel of an active connection with this id, its token's SHA-256 compared in constant time, the
 * resource id matched, replays (a number at or below the highest seen) dropped, and the channel's
 * one sync job requested. Writes nothing unless the outcome is `sync_requested`.
 */
export async function recordGoogleNotification(sql: Sql, n: GoogleNotification): Promise<GoogleOutcome> {
  const digest = await channelSecretDigest(n["x-goog-channel-token"]);
  const [row] = await sql<{ outcome: GoogleOutcome }[]>`
    select calendar_private.record_google_notification(
      ${n["x-goog-channel-id"]}, decode(${digest}, 'hex'), ${n["x-goog-resource-id"]},
      ${n["x-goog-resource-state"]}, ${n["x-goog-message-number"]}::bigint
    ) as outcome`;
  return row.outcome;
}
