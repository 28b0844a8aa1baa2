/** The instants of an event write, checked once for every provider. */
import { parseInstant } from "../time-ranges.ts";
import { type EventWrite, ProviderError } from "./types.ts";

/**
 * Parse a write's `start` and `end` (ISO 8601 with offset) into epoch milliseconds.
 * @param label names the operation in the error message (e.g. `upsertEvent`).
 * @throws ProviderError `invalid` for an unparseable instant, or an end not after the start: a bad
 *   appointment never reaches the provider.
 */
export function eventInstants(
  write: Pick<EventWrite, "start" | "end">,
  label: string,
): { start: number; end: number } {
  let start: number;
  let end: number;
  try {
    start = parseInstant(write.start);
    end = parseInstant(write.end);
  } catch (err) {
    if (err instanceof RangeError) throw new ProviderError("invalid", `${label}: ${err.message}`);
    throw err;
  }
  if (end <= start) {
    throw new ProviderError("invalid", `${label}: end ${write.end} must be after start ${write.start}`);
  }
  return { start, end };
}
