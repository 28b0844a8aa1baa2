/** Reading a `Retry-After` header, for every provider (RFC 9110 §10.2.3). */

/**
 * Parse a `Retry-After` header value: delay-seconds or an HTTP-date.
 * @param value the header value, or null/undefined when absent.
 * @param nowMs the current time in epoch ms (for HTTP-dates; defaults to `Date.now()`).
 * @returns the delay in milliseconds (never negative), or undefined when absent or unparseable.
 */
export function parseRetryAfter(
  value: string | null | undefined,
  nowMs: number = Date.now(),
): number | undefined {
  if (value == null) return undefined;
  const v = value.trim();
  if (/^\d+$/.test(v)) return Number(v) * 1000;
  // HTTP-dates always name the weekday and the GMT zone; refuse other Date.parse-able strings.
  if (!/^[A-Za-z]{3},? .+ GMT$/.test(v) && !/^[A-Za-z]+, \d{2}-[A-Za-z]{3}-\d{2} .+ GMT$/.test(v)) {
    return undefined;
  }
  const at = Date.parse(v);
  return Number.isNaN(at) ? undefined : Math.max(0, at - nowMs);
}
