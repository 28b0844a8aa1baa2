/**
 * Wall-clock times in IANA zones, for every provider: the wall time of an instant in a zone, and the
 * instant of a wall time (DST gaps and overlaps resolved as a clock would). Instants are epoch
 * milliseconds; wall times are `YYYY-MM-DDTHH:mm:ss` without offset.
 */

const formatters = new Map<string, Intl.DateTimeFormat>();

/** A formatter giving wall-clock parts in `zone`; throws RangeError for a zone this runtime lacks. */
export function zoneFormatter(zone: string): Intl.DateTimeFormat {
  let f = formatters.get(zone);
  if (!f) {
    f = new Intl.DateTimeFormat("en-US", {
      timeZone: zone,
      hourCycle: "h23",
      year: "numeric",
      month: "2-digit",
      day: "2-digit",
      hour: "2-digit",
      minute: "2-digit",
      second: "2-digit",
    });
    formatters.set(zone, f);
  }
  return f;
}

/**
 * The wall time of an instant in an IANA zone, `YYYY-MM-DDTHH:mm:ss` (milliseconds dropped).
 * @throws RangeError for a zone this runtime does not know.
 */
export function instantToWallTime(ms: number, zone: string): string {
  const parts: Record<string, string> = {};
  for (const p of zoneFormatter(zone).formatToParts(new Date(ms))) parts[p.type] = p.value;
  const hour = parts.hour === "24" ? "00" : parts.hour;
  return `${parts.year}-${parts.month}-${parts.day}T${hour}:${parts.minute}:${parts.second}`;
}

/** Offset of `zone` at instant `ms`, in ms (local = utc + offset). */
export function offsetAt(ms: number, zone: string): number {
  const whole = Math.floor(ms / 1000) * 1000;
  return Date.parse(`${instantToWallTime(whole, zone)}Z`) - whole;
}

const WALL_TIME = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,7}))?)?$/;

/**
 * The instant of a wall time in an IANA zone. A time skipped by a DST change (02:30 on a spring-forward
 * night) is read with the offset before the change, as a clock would (03:30 the new time); a time that
 * happens twice (autumn) is its first occurrence.
 *
 * @param wall `YYYY-MM-DDTHH:mm[:ss[.fffffff]]`, no offset (Graph's `dateTime`); fractions beyond
 *   milliseconds are truncated.
 * @returns epoch milliseconds.
 * @throws RangeError when `wall` is malformed, has an offset, names an impossible date, or the zone
 *   is unknown to this runtime.
 */
export function wallTimeToInstant(wall: string, zone: string): number {
  const m = WALL_TIME.exec(wall);
  if (!m) throw new RangeError(`'${wall.slice(0, 40)}' is not a local date-time without offset`);
  const [y, mo, d, h, mi] = [m[1], m[2], m[3], m[4], m[5]].map(Number);
  const s = m[6] === undefined ? 0 : Number(m[6]);
  const frac = m[7] === undefined ? 0 : Number(m[7].slice(0, 3).padEnd(3, "0"));
  const local = Date.UTC(y, mo - 1, d, h, mi, s, frac);
  const check = new Date(local);
  if (
    h > 23 || mi > 59 || s > 59 || check.getUTCFullYear() !== y || check.getUTCMonth() !== mo - 1 ||
    check.getUTCDate() !== d
  ) {
    throw new RangeError(`'${wall}' names a date or time that does not exist`);
  }
  zoneFormatter(zone);
  const before = offsetAt(local - 86_400_000, zone);
  const after = offsetAt(local + 86_400_000, zone);
  const candidates = [...new Set([local - before, local - after])].sort((a, b) => a - b);
  const target = wall.length >= 19 ? wall.slice(0, 19) : `${wall}:00`;
  const exact = candidates.find((t) => instantToWallTime(t, zone) === target);
  return exact ?? local - before;
}
