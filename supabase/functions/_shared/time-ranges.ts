/**
 * Instants and half-open time ranges, all computed on UTC epoch milliseconds.
 *
 * Inputs are ISO 8601 / RFC 3339 strings that carry an explicit offset (`Z` or `±hh:mm`); a string
 * without one names a wall-clock time, not an instant, and is refused. Outputs are UTC strings
 * ending in `Z`. Because every computation happens on epoch milliseconds, daylight-saving
 * transitions cannot shift a boundary.
 */

/** Milliseconds in one day (24 h of UTC time; days here are durations, not calendar days). */
export const DAY_MS = 86_400_000;

/** A half-open interval `[start, end)` as ISO 8601 strings. */
export interface TimeRange {
  start: string;
  end: string;
}

const INSTANT =
  /^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?(?:([Zz])|([+-])(\d{2}):(\d{2}))$/;

/**
 * Parse an instant written as ISO 8601 with an explicit offset: `2026-01-05T09:00:00Z`,
 * `2026-01-05T10:00:00.250+01:00`, `2026-01-05T04:00-05:00` (seconds optional, fraction up to 9
 * digits, truncated to milliseconds).
 *
 * @returns epoch milliseconds (UTC).
 * @throws RangeError when the string has no offset, is malformed, or names an impossible date or time
 *   (month 13, 30 February, 24:00, leap second 60, offset beyond ±23:59).
 */
export function parseInstant(iso: string): number {
  const m = INSTANT.exec(iso);
  if (!m) {
    throw new RangeError(
      `'${iso.slice(0, 40)}' is not an ISO 8601 instant with an offset (e.g. 2026-01-05T09:00:00Z)`,
    );
  }
  const [year, month, day, hour, minute] = [m[1], m[2], m[3], m[4], m[5]].map(Number);
  const second = m[6] === undefined ? 0 : Number(m[6]);
  const millis = m[7] === undefined ? 0 : Number(m[7].slice(0, 3).padEnd(3, "0"));
  const offHours = m[10] === undefined ? 0 : Number(m[10]);
  const offMinutes = m[11] === undefined ? 0 : Number(m[11]);
  if (hour > 23 || minute > 59 || second > 59 || offHours > 23 || offMinutes > 59) {
    throw new RangeError(`'${iso}' has a time or offset out of range`);
  }
  // Date.UTC maps years 0..99 to 1900..1999.
  if (year < 100) throw new RangeError(`'${iso}' has a year before 0100`);
  const local = Date.UTC(year, month - 1, day, hour, minute, second, millis);
  const check = new Date(local);
  // Date.UTC silently rolls 2026-02-30 over into March; a round trip exposes it.
  if (check.getUTCFullYear() !== year || check.getUTCMonth() !== month - 1 || check.getUTCDate() !== day) {
    throw new RangeError(`'${iso}' names a date that does not exist`);
  }
  const sign = m[9] === "-" ? -1 : 1;
  return local - sign * (offHours * 60 + offMinutes) * 60_000;
}

/**
 * Format epoch milliseconds as an ISO 8601 UTC string ending in `Z`. Whole seconds are written
 * without a fraction (`2026-01-05T09:00:00Z`), otherwise milliseconds are kept
 * (`2026-01-05T09:00:00.250Z`).
 * @throws RangeError when `ms` is not a finite time value.
 */
export function formatInstant(ms: number): string {
  const iso = new Date(ms).toISOString();
  return iso.endsWith(".000Z") ? `${iso.slice(0, -5)}Z` : iso;
}

/**
 * Split the half-open range `[timeMin, timeMax)` into contiguous windows of at most `maxDays` days
 * (a day = 86 400 000 ms). The first window starts exactly at `timeMin`, each window starts where
 * the previous one ended, and the last one ends exactly at `timeMax`; only the last may be shorter.
 *
 * @param timeMin ISO 8601 with offset (see {@link parseInstant}).
 * @param timeMax ISO 8601 with offset, not before `timeMin`.
 * @param maxDays positive window length in days; fractions allowed if they come to whole milliseconds.
 * @returns the windows as UTC strings; `[]` when `timeMin` equals `timeMax`.
 * @throws RangeError on a malformed instant, `timeMax` before `timeMin`, or a bad `maxDays`.
 */
export function splitRange(timeMin: string, timeMax: string, maxDays: number): TimeRange[] {
  const start = parseInstant(timeMin);
  const end = parseInstant(timeMax);
  const step = maxDays * DAY_MS;
  if (!Number.isFinite(step) || step <= 0 || !Number.isInteger(step)) {
    throw new RangeError(`maxDays must be a positive number of whole milliseconds, got ${maxDays}`);
  }
  if (end < start) throw new RangeError(`timeMax (${timeMax}) is before timeMin (${timeMin})`);
  const windows: TimeRange[] = [];
  for (let from = start; from < end; from += step) {
    windows.push({ start: formatInstant(from), end: formatInstant(Math.min(from + step, end)) });
  }
  return windows;
}

/**
 * Sort intervals and merge those that overlap or touch (`a.end == b.start`), dropping empty or
 * inverted ones (`end <= start`). Inputs are ISO 8601 with offset; outputs are UTC strings ending
 * in `Z`, sorted by start, pairwise disjoint and non-adjacent.
 * @throws RangeError on a malformed instant.
 */
export function mergeIntervals(intervals: readonly TimeRange[]): TimeRange[] {
  const parsed = intervals
    .map((i) => ({ start: parseInstant(i.start), end: parseInstant(i.end) }))
    .filter((i) => i.end > i.start)
    .sort((a, b) => a.start - b.start || a.end - b.end);
  const merged: { start: number; end: number }[] = [];
  for (const cur of parsed) {
    const last = merged[merged.length - 1];
    if (last && cur.start <= last.end) last.end = Math.max(last.end, cur.end);
    else merged.push({ ...cur });
  }
  return merged.map((i) => ({ start: formatInstant(i.start), end: formatInstant(i.end) }));
}
