/**
 * Google event ids derived from appointment ids, the idempotency key of our writes.
 *
 * Google accepts a client-supplied event id made of base32hex characters (lowercase `a-v` and
 * `0-9`, RFC 2938 §3.1.2) of length 5 to 1024, unique per calendar, and answers a second insert of
 * the same id (even of a deleted event) with 409 `duplicate` (docs/providers/google.md A6, Part C #3).
 * Deriving the id from the appointment id means a retried insert can never create a second event.
 */
import { ProviderError } from "../types.ts";

const BASE32HEX = "0123456789abcdefghijklmnopqrstuv";
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** Google's rule for client-supplied event ids: base32hex characters, length 5..1024. */
export const GOOGLE_EVENT_ID = /^[0-9a-v]{5,1024}$/;

/** Largest event-id generation accepted (a sync row's `event_generation`; far beyond any real use). */
export const MAX_EVENT_GENERATION = 1_000_000;

/**
 * The Google event id for an appointment: the 16 bytes of the UUID encoded as RFC 4648 base32hex,
 * lowercase, without padding (always 26 characters; the last one carries 3 data bits and 2 zero
 * bits). Deterministic, and the same for upper- or lowercase input.
 *
 * Generation 0 is that id alone. When the appointment's event vanished from the calendar (the user
 * purged it, or moved it to another calendar) its id may stay taken there, so the sync row moves to
 * the next generation and the event is written again under a fresh id: the 26 characters followed by
 * the generation in base32hex (`…0` is never produced: generation 1 appends `1`). The prefix has a
 * fixed length, so ids of different generations never collide, and each stays deterministic: a
 * retried re-create of the same generation finds its own event (409) instead of duplicating it.
 *
 * @param appointmentId a UUID with hyphens (any version), e.g. `6ba7b810-9dad-11d1-80b4-00c04fd430c8`.
 * @param generation the sync row's event generation, an integer 0..{@link MAX_EVENT_GENERATION}.
 * @throws ProviderError kind `invalid` when `appointmentId` is not a UUID or the generation is out of range.
 */
export function eventIdFor(appointmentId: string, generation = 0): string {
  if (!UUID.test(appointmentId)) {
    throw new ProviderError("invalid", "appointmentId must be a UUID to derive a Google event id");
  }
  if (!Number.isInteger(generation) || generation < 0 || generation > MAX_EVENT_GENERATION) {
    throw new ProviderError("invalid", "event id generation must be an integer from 0 to 1000000");
  }
  const hex = appointmentId.replace(/-/g, "");
  let out = "";
  let buffer = 0;
  let bits = 0;
  for (let i = 0; i < 32; i += 2) {
    buffer = (buffer << 8) | parseInt(hex.slice(i, i + 2), 16);
    bits += 8;
    while (bits >= 5) {
      bits -= 5;
      out += BASE32HEX[(buffer >> bits) & 31];
    }
    buffer &= (1 << bits) - 1;
  }
  if (bits > 0) out += BASE32HEX[(buffer << (5 - bits)) & 31];
  // Number#toString(32) writes exactly the base32hex alphabet (0-9, a-v).
  return generation === 0 ? out : out + generation.toString(32);
}

/** A derived id: 26 base32hex characters (the UUID), then the generation without leading zeros. */
const DERIVED_ID = /^([0-9a-v]{26})([1-9a-v][0-9a-v]*)?$/;

/**
 * The appointment and generation an event id was derived from by {@link eventIdFor}, or null when it
 * was not (its shape says so, it is no RFC 9562 UUID, or re-deriving it gives another id). About one
 * Google-made id in 32 still decodes, so a result is a candidate: the caller confirms it against its
 * own appointments.
 *
 * @param eventId any Google event id.
 * @returns the appointment id as a lowercase UUID with hyphens, and the generation.
 */
export function appointmentOfEventId(
  eventId: string,
): { appointmentId: string; eventGeneration: number } | null {
  const m = DERIVED_ID.exec(eventId);
  if (!m) return null;
  const generation = m[2] === undefined ? 0 : parseInt(m[2], 32);
  if (generation > MAX_EVENT_GENERATION) return null;
  let hex = "";
  let buffer = 0;
  let bits = 0;
  for (const ch of m[1]) {
    buffer = (buffer << 5) | BASE32HEX.indexOf(ch);
    bits += 5;
    if (bits >= 8) {
      bits -= 8;
      hex += ((buffer >> bits) & 0xff).toString(16).padStart(2, "0");
      buffer &= (1 << bits) - 1;
    }
  }
  // 26 characters carry 130 bits: 128 of the UUID and 2 that eventIdFor always leaves zero. An
  // appointment id is an RFC 9562 UUID (version 1..8, variant 10): that rules out most Google ids.
  if (hex.length !== 32 || buffer !== 0 || !/^[1-8]$/.test(hex[12]) || !/^[89ab]$/.test(hex[16])) return null;
  const appointmentId = `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${
    hex.slice(20)
  }`;
  return eventIdFor(appointmentId, generation) === eventId
    ? { appointmentId, eventGeneration: generation }
    : null;
}
