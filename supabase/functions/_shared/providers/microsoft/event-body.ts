/**
 * The event we write to Outlook calendars (docs/providers/microsoft.md B6, B7): the configured title,
 * start and end in the staff member's zone, shown as busy, and nothing else: no body, attendees,
 * location or online meeting, so no patient data and no invitation ever leaves the product. Reminders,
 * sensitivity and categories are left to the calendar's defaults, as for Google.
 *
 * Graph cannot take a client-chosen event id; its idempotency key is `transactionId` (B6): a POST
 * repeating one returns the event the first POST made. We derive it from the appointment, so a retried
 * create never duplicates.
 */
import { createHash } from "node:crypto";
import { eventInstants } from "../event-instants.ts";
import { type EventWrite, ProviderError } from "../types.ts";
import { instantToWallTime } from "../../wall-time.ts";
import { eventTimeZone, type GraphDateTimeZone } from "./time-zones.ts";

/** Namespace of our transaction ids (RFC 9562 name-based UUIDs); fixed forever: changing it would
 * make every retry after an upgrade a new event. */
export const TRANSACTION_ID_NAMESPACE = "3c6f0d0e-8a0b-4f5e-9d55-6b1f2f6a7c41";

/** Largest event generation accepted (a sync row's `event_generation`). */
export const MAX_EVENT_GENERATION = 1_000_000;

function uuidBytes(uuid: string): Uint8Array {
  const hex = uuid.replace(/-/g, "");
  return Uint8Array.from({ length: 16 }, (_, i) => parseInt(hex.slice(i * 2, i * 2 + 2), 16));
}

/**
 * The `transactionId` of an appointment's create: an RFC 9562 version 5 UUID (the GUID form of
 * Graph's own examples, 36 characters) of `appointment:generation:calendar` in
 * {@link TRANSACTION_ID_NAMESPACE}. The same appointment, generation and calendar always give the same
 * id (a retry finds its event); a new generation (the event vanished and is written again) or another
 * calendar gives a new one, so a deduplicated answer can never be an event that is gone or elsewhere.
 *
 * @param appointmentId the appointment's id (compared case-insensitively).
 * @param generation the sync row's event generation, 0..{@link MAX_EVENT_GENERATION}.
 * @param calendarId the Graph calendar id the event is created in.
 * @throws ProviderError `invalid` for an empty id or calendar, or a generation out of range.
 */
export function transactionIdFor(appointmentId: string, generation: number, calendarId: string): string {
  if (!appointmentId || !calendarId) {
    throw new ProviderError("invalid", "a transaction id needs an appointment id and a calendar id");
  }
  if (!Number.isInteger(generation) || generation < 0 || generation > MAX_EVENT_GENERATION) {
    throw new ProviderError("invalid", "event generation must be an integer from 0 to 1000000");
  }
  return uuidV5(TRANSACTION_ID_NAMESPACE, `${appointmentId.toLowerCase()}:${generation}:${calendarId}`);
}

/**
 * An RFC 9562 version 5 (SHA-1, name-based) UUID, lowercase with hyphens.
 * @param namespace a UUID with hyphens.
 * @param name any string (hashed as UTF-8).
 */
export function uuidV5(namespace: string, name: string): string {
  const hash = createHash("sha1").update(uuidBytes(namespace)).update(name, "utf8").digest();
  const b = Uint8Array.from(hash.subarray(0, 16));
  b[6] = (b[6] & 0x0f) | 0x50; // version 5
  b[8] = (b[8] & 0x3f) | 0x80; // RFC 9562 variant
  const hex = [...b].map((x) => x.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/** The body of a PATCH (B7): what an appointment change may alter. `transactionId` cannot change. */
export interface GraphEventPatchBody {
  subject: string;
  start: GraphDateTimeZone;
  end: GraphDateTimeZone;
  showAs: "busy";
}

/** The body of a create (B6). */
export interface GraphEventCreateBody extends GraphEventPatchBody {
  transactionId: string;
}

/** A wall time for Graph: seconds always, milliseconds only when the instant has them. */
function wallTime(ms: number, zone: string): string {
  const base = instantToWallTime(ms, zone);
  const millis = ((ms % 1000) + 1000) % 1000;
  return millis === 0 ? base : `${base}.${String(millis).padStart(3, "0")}`;
}

/**
 * The PATCH body for a write: title, start and end as wall times in the staff member's zone under its
 * Windows name (or UTC, see `eventTimeZone` in time-zones.ts), `showAs: "busy"`.
 *
 * @param write `start`/`end` ISO 8601 with offset, end after start; `title` non-empty; `timeZone`
 *   the staff member's IANA zone or null.
 * @throws ProviderError `invalid` for a malformed or empty time range or an empty title.
 */
export function eventPatchBody(
  write: Pick<EventWrite, "start" | "end" | "title" | "timeZone">,
): GraphEventPatchBody {
  const { start, end } = eventInstants(write, "event");
  if (!write.title.trim()) throw new ProviderError("invalid", "event: the title is empty");
  const zone = eventTimeZone(write.timeZone, [start, end]);
  return {
    subject: write.title,
    start: { dateTime: wallTime(start, zone.iana), timeZone: zone.graph },
    end: { dateTime: wallTime(end, zone.iana), timeZone: zone.graph },
    showAs: "busy",
  };
}

/**
 * The create body for a write: {@link eventPatchBody} plus the derived `transactionId`
 * ({@link transactionIdFor} of the appointment, `eventGeneration` (default 0) and calendar).
 * @throws ProviderError `invalid` as {@link eventPatchBody} and {@link transactionIdFor} do.
 */
export function eventCreateBody(write: EventWrite): GraphEventCreateBody {
  return {
    ...eventPatchBody(write),
    transactionId: transactionIdFor(write.appointmentId, write.eventGeneration ?? 0, write.calendarId),
  };
}
