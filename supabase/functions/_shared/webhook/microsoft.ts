/**
 * Microsoft Graph change and lifecycle notifications for calendar subscriptions.
 * - Validation: when a subscription is created, renewed or reauthorized Graph POSTs to each of its
 *   URLs with `?validationToken=<URL-encoded token>` and an empty body; the URL must answer within
 *   10 s with 200, `text/plain` and the decoded token as the whole body.
 * - Change notifications (`notificationUrl`): `{"value": [{subscriptionId, clientState, changeType,
 *   resource, resourceData, ...}]}`, possibly several subscriptions in one POST; the answer must
 *   be a 2xx within 3 s (202 when the work happens later), or Graph retries for hours.
 * - Lifecycle notifications (`lifecycleNotificationUrl`): `{"value": [{subscriptionId, clientState,
 *   lifecycleEvent}]}` with `reauthorizationRequired`, `subscriptionRemoved` or `missed`.
 * Each entry's `clientState` is checked against its own subscription's; entries are judged alone.
 */
import { z } from "zod";
import type { Sql } from "../db/client.ts";
import { HttpError } from "../http.ts";
import type { MicrosoftOutcome } from "./outcomes.ts";
import { channelSecretDigest } from "./secret.ts";

/** Largest notification batch accepted, in bytes (Graph batches several notifications per POST). */
export const MAX_NOTIFICATION_BYTES = 1024 * 1024;

/** Longest validation token echoed, in characters (Graph's are far shorter). */
export const MAX_VALIDATION_TOKEN_LENGTH = 4096;

// Graph adds properties over time: unknown ones are ignored, the ones used are checked.
const subscriptionId = z.string().min(1).max(256);
const clientState = z.string().max(255).nullish();

/** A change notification collection (Graph `changeNotificationCollection`). */
export const changeNotifications = z.object({
  value: z.array(z.object({ subscriptionId, clientState, changeType: z.string().max(64).optional() }))
    .min(1).max(1000),
});

/**
 * A lifecycle notification collection. An event name this code does not know still requests a sync
 * (the safe reading of "something happened to the subscription").
 */
export const lifecycleNotifications = z.object({
  value: z.array(z.object({ subscriptionId, clientState, lifecycleEvent: z.string().min(1).max(64) }))
    .min(1).max(1000),
});

/** One entry to record: its subscription, its clientState, and its lifecycle event if it is one. */
export interface MicrosoftEntry {
  subscriptionId: string;
  clientState?: string | null;
  lifecycleEvent?: string;
}

/**
 * The validation answer when the request is Graph's handshake (`validationToken` in the query),
 * else null. The token is echoed verbatim as it must be; `text/plain` with `nosniff` keeps a
 * browser from reading it as anything else.
 * @throws HttpError 400 `invalid_request` for an empty or overlong token.
 */
export function validationAnswer(url: URL): Response | null {
  if (!url.searchParams.has("validationToken")) return null;
  const tokens = url.searchParams.getAll("validationToken");
  const token = tokens[0];
  if (tokens.length !== 1 || token === "" || token.length > MAX_VALIDATION_TOKEN_LENGTH) {
    throw new HttpError(
      400,
      "invalid_request",
      `validationToken: one token of 1..${MAX_VALIDATION_TOKEN_LENGTH} characters`,
    );
  }
  return new Response(token, {
    status: 200,
    headers: {
      "content-type": "text/plain; charset=utf-8",
      "x-content-type-options": "nosniff",
      "cache-control": "no-store",
    },
  });
}

/**
 * Record a batch in one statement (`calendar_private.record_microsoft_notifications`): each entry's
 * clientState SHA-256 compared in constant time with its subscription's, accepted entries marking
 * their channel notified (and the lifecycle event's column) and requesting one sync job per
 * channel. Unknown and forged entries write nothing.
 * @returns each entry's outcome, in the batch's order.
 */
export async function recordMicrosoftNotifications(
  sql: Sql,
  entries: readonly MicrosoftEntry[],
): Promise<MicrosoftOutcome[]> {
  const digests = await Promise.all(entries.map((e) => channelSecretDigest(e.clientState)));
  const events = entries.some((e) => e.lifecycleEvent !== undefined)
    ? entries.map((e) => e.lifecycleEvent ?? null)
    : null;
  const rows = await sql<{ ordinal: number; outcome: MicrosoftOutcome }[]>`
    select ordinal, outcome from calendar_private.record_microsoft_notifications(
      ${entries.map((e) => e.subscriptionId)}::text[],
      array(select decode(d, 'hex') from unnest(${digests}::text[]) with ordinality as u(d, i) order by i),
      ${events}::text[]
    ) order by ordinal`;
  return rows.map((r) => r.outcome);
}
