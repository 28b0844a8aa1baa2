/**
 * Time parsing for the sandbox: RFC 3339 instants (offset mandatory, as Google requires for
 * timeMin/timeMax and freeBusy), local date-times resolved in an IANA zone, and all-day dates.
 */

const RFC3339 = /^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$/;
const LOCAL_DATE_TIME = /^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(\.\d{1,9})?$/;
const DATE = /^(\d{4})-(\d{2})-(\d{2})$/;

interface Fields {
  y: number;
  mo: number;
  d: number;
  h: number;
  mi: number;
  s: number;
  ms: number;
}

function fieldsOf(m: RegExpMatchArray): Fields | undefined {
  const f = {
    y: Number(m[1]),
    mo: Number(m[2]),
    d: Number(m[3]),
    h: Number(m[4] ?? 0),
    mi: Number(m[5] ?? 0),
    s: Number(m[6] ?? 0),
    ms: m[7] ? Math.floor(Number(`0${m[7]}`) * 1000) : 0,
  };
  // Reject calendar-impossible values (Feb 30, hour 24) by round-tripping through Date.UTC.
  const t = new Date(Date.UTC(f.y, f.mo - 1, f.d, f.h, f.mi, f.s));
  if (
    t.getUTCFullYear() !== f.y || t.getUTCMonth() !== f.mo - 1 || t.getUTCDate() !== f.d ||
    t.getUTCHours() !== f.h || t.getUTCMinutes() !== f.mi || t.getUTCSeconds() !== f.s
  ) return undefined;
  return f;
}

const utcOf = (f: Fields) => Date.UTC(f.y, f.mo - 1, f.d, f.h, f.mi, f.s, f.ms);

/** Epoch ms of an RFC 3339 date-time **with** offset (`Z` or `±hh:mm`); undefined otherwise. */
export function parseRfc3339(s: string): number | undefined {
  const m = RFC3339.exec(s);
  const f = m && fieldsOf(m);
  if (!m || !f) return undefined;
  const off = m[8].toUpperCase() === "Z" ? 0 : (m[8][0] === "-" ? -1 : 1) *
    (Number(m[8].slice(1, 3)) * 60 + Number(m[8].slice(4, 6)));
  return utcOf(f) - off * 60_000;
}

/** True when `s` is an RFC 3339 date-time that carries an offset. */
export const hasOffset = (s: string): boolean => RFC3339.test(s);

/** True when `s` is a local date-time without offset (`2026-01-05T09:00:00`). */
export const isLocalDateTime = (s: string): boolean => {
  const m = LOCAL_DATE_TIME.exec(s);
  return !!m && !!fieldsOf(m);
};

/** True when `s` is a valid `yyyy-mm-dd` date. */
export const isDate = (s: string): boolean => {
  const m = DATE.exec(s);
  return !!m && !!fieldsOf(m);
};

const formatters = new Map<string, Intl.DateTimeFormat>();

function formatter(timeZone: string): Intl.DateTimeFormat {
  let f = formatters.get(timeZone);
  if (!f) {
    f = new Intl.DateTimeFormat("en-US", {
      timeZone,
      hourCycle: "h23",
      year: "numeric",
      month: "2-digit",
      day: "2-digit",
      hour: "2-digit",
      minute: "2-digit",
      second: "2-digit",
    });
    formatters.set(timeZone, f);
  }
  return f;
}

/** True when `tz` is an IANA zone name this runtime knows. */
export function isValidTimeZone(tz: string): boolean {
  try {
    formatter(tz);
    return true;
  } catch {
    return false;
  }
}

/** Offset of `timeZone` from UTC at instant `utcMs`, in ms (positive east of Greenwich). */
function zoneOffsetMs(utcMs: number, timeZone: string): number {
  const p: Record<string, string> = {};
  for (const part of formatter(timeZone).formatToParts(new Date(utcMs))) p[part.type] = part.value;
  const wall = Date.UTC(+p.year, +p.month - 1, +p.day, +p.hour, +p.minute, +p.second);
  return wall - Math.floor(utcMs / 1000) * 1000;
}

/** Epoch ms of a wall-clock time in `timeZone`; in a DST gap the later offset wins, like most libraries. */
function wallToUtc(f: Fields, timeZone: string): number {
  const guess = utcOf(f);
  const first = guess - zoneOffsetMs(guess, timeZone);
  const second = guess - zoneOffsetMs(first, timeZone);
  return second;
}

/**
 * Epoch ms of a Google EventDateTime's instant. `dateTime` with offset stands alone; without offset it
 * is read in `timeZone` (or `fallbackZone`); `date` is midnight in the calendar's zone. Undefined when
 * the value cannot be resolved (callers validate first).
 */
export function eventInstant(
  edt: { date?: string; dateTime?: string; timeZone?: string },
  fallbackZone: string,
): number | undefined {
  if (edt.dateTime !== undefined) {
    const withOffset = parseRfc3339(edt.dateTime);
    if (withOffset !== undefined) return withOffset;
    const m = LOCAL_DATE_TIME.exec(edt.dateTime);
    const f = m && fieldsOf(m);
    const zone = edt.timeZone ?? fallbackZone;
    return f && isValidTimeZone(zone) ? wallToUtc(f, zone) : undefined;
  }
  if (edt.date !== undefined) {
    const m = DATE.exec(edt.date);
    const f = m && fieldsOf(m);
    return f ? wallToUtc(f, fallbackZone) : undefined;
  }
  return undefined;
}

/** RFC 3339 UTC with `Z`, milliseconds only when non-zero (freeBusy's busy format). */
export function utcZ(ms: number): string {
  return new Date(ms).toISOString().replace(".000Z", "Z");
}

/**
 * The wall-clock time of instant `utcMs` in IANA zone `timeZone` as `yyyy-mm-ddThh:mm:ss` (no offset),
 * the local form Microsoft Graph's dateTimeTimeZone uses.
 */
export function wallClock(utcMs: number, timeZone: string): string {
  const local = new Date(utcMs + zoneOffsetMs(utcMs, timeZone));
  return local.toISOString().slice(0, 19);
}

/** RFC 3339 with the offset `timeZone` has at instant `utcMs` (`2026-03-09T09:00:00-04:00`), as Google answers. */
export function offsetDateTime(utcMs: number, timeZone: string): string {
  const off = Math.round(zoneOffsetMs(utcMs, timeZone) / 60_000);
  const sign = off < 0 ? "-" : "+";
  const abs = Math.abs(off);
  const hhmm = `${String(Math.floor(abs / 60)).padStart(2, "0")}:${String(abs % 60).padStart(2, "0")}`;
  return `${wallClock(utcMs, timeZone)}${off === 0 && timeZone === "UTC" ? "Z" : `${sign}${hhmm}`}`;
}
