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

/**
 * The Google event id for an appointment: the 16 bytes of the UUID encoded as RFC 4648 base32hex,
 * lowercase, without padding (always 26 characters; the last one carries 3 data bits and 2 zero
 * bits). Deterministic, and the same for upper- or lowercase input.
 *
 * @param appointmentId a UUID with hyphens (any version), e.g. `6ba7b810-9dad-11d1-80b4-00c04fd430c8`.
 * @throws ProviderError kind `invalid` when `appointmentId` is not a UUID.
 */
export function eventIdFor(appointmentId: string): string {
  if (!UUID.test(appointmentId)) {
    throw new ProviderError("invalid", "appointmentId must be a UUID to derive a Google event id");
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
  return out;
}
