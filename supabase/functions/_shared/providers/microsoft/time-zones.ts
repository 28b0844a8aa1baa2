/**
 * Time zones as Graph speaks them (docs/providers/microsoft.md B5): a `dateTimeTimeZone` is a local
 * wall time without offset plus a zone name, Windows (`Pacific Standard Time`) in what Graph returns,
 * Windows or some IANA names in what it accepts. We ask Graph for UTC or for the staff member's zone
 * under its Windows name, and we write events with the Windows name: every name we send is one Graph
 * documents, and every name it sends back maps to an IANA zone this runtime computes with.
 *
 * Instants are epoch milliseconds or ISO 8601 strings with offset; wall times are
 * `YYYY-MM-DDTHH:mm:ss` without offset.
 */
import { formatInstant } from "../../time-ranges.ts";
import { ProviderError } from "../types.ts";
import { IANA_TO_WINDOWS, WINDOWS_TO_IANA } from "./windows-zones.ts";

/** Graph's `dateTimeTimeZone`: local wall time (no offset, up to 7 fractional digits) and a zone name. */
export interface GraphDateTimeZone {
  dateTime: string;
  timeZone: string;
}

const UTC_NAMES = new Set(["UTC", "Etc/UTC", "tzone://Microsoft/Utc"]);
const IANA_NAME = /^[A-Za-z][A-Za-z0-9_+-]*(\/[A-Za-z0-9_+-]+)*$/;
const own = (table: Readonly<Record<string, string>>, key: string): string | undefined =>
  Object.hasOwn(table, key) ? table[key] : undefined;

const formatters = new Map<string, Intl.DateTimeFormat>();

/** A formatter giving wall-clock parts in `zone`; throws RangeError for a zone this runtime lacks. */
function formatter(zone: string): Intl.DateTimeFormat {
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

/** True when this runtime knows the IANA zone name. */
function knownZone(zone: string): boolean {
  if (zone.length > 64 || !IANA_NAME.test(zone)) return false;
  try {
    formatter(zone);
    return true;
  } catch {
    return false;
  }
}

/**
 * The Windows name of an IANA zone (any CLDR spelling: `Europe/Kyiv` and `Europe/Kiev`), or
 * undefined when CLDR maps none (e.g. `Antarctica/Troll`) or the name is not a zone.
 */
export function windowsZoneFor(iana: string): string | undefined {
  return own(IANA_TO_WINDOWS, iana);
}

/**
 * The IANA zone for a zone name Graph returned: a Windows name (its main zone), `UTC` (also Graph's
 * `tzone://Microsoft/Utc`), or an IANA name this runtime knows. Undefined for anything else, such
 * as `Customized Time Zone`: the caller must not guess.
 */
export function ianaZoneFor(name: string): string | undefined {
  if (UTC_NAMES.has(name)) return "UTC";
  return own(WINDOWS_TO_IANA, name) ?? (knownZone(name) ? name : undefined);
}

/**
 * The wall time of an instant in an IANA zone, `YYYY-MM-DDTHH:mm:ss` (milliseconds dropped).
 * @throws RangeError for a zone this runtime does not know.
 */
export function instantToWallTime(ms: number, zone: string): string {
  const parts: Record<string, string> = {};
  for (const p of formatter(zone).formatToParts(new Date(ms))) parts[p.type] = p.value;
  const hour = parts.hour === "24" ? "00" : parts.hour;
  return `${parts.year}-${parts.month}-${parts.day}T${hour}:${parts.minute}:${parts.second}`;
}

/** Offset of `zone` at instant `ms`, in ms (local = utc + offset). */
function offsetAt(ms: number, zone: string): number {
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
  formatter(zone);
  const before = offsetAt(local - 86_400_000, zone);
  const after = offsetAt(local + 86_400_000, zone);
  const candidates = [...new Set([local - before, local - after])].sort((a, b) => a - b);
  const target = wall.length >= 19 ? wall.slice(0, 19) : `${wall}:00`;
  const exact = candidates.find((t) => instantToWallTime(t, zone) === target);
  return exact ?? local - before;
}

/**
 * A Graph `dateTimeTimeZone` as an ISO 8601 UTC instant (`2019-03-15T19:00:00Z`).
 * @throws ProviderError `invalid` when the zone cannot be mapped (`Customized Time Zone`, unknown
 *   names) or the date-time is malformed: an answer we cannot place in time is never guessed.
 */
export function graphDateTimeToInstant(value: GraphDateTimeZone): string {
  const zone = ianaZoneFor(value.timeZone);
  if (!zone) {
    throw new ProviderError(
      "invalid",
      `Microsoft Graph answered a time in an unknown zone '${value.timeZone}'`,
      {
        reason: "unknown_time_zone",
      },
    );
  }
  try {
    return formatInstant(wallTimeToInstant(value.dateTime, zone));
  } catch (err) {
    if (err instanceof RangeError) {
      throw new ProviderError("invalid", `Microsoft Graph answered a malformed time: ${err.message}`, {
        reason: "malformed_time",
      });
    }
    throw err;
  }
}

/** The zone an event is written in: `graph` is sent as `timeZone`, wall times are computed in `iana`. */
export interface EventZone {
  graph: string;
  iana: string;
}

const UTC_ZONE: EventZone = Object.freeze({ graph: "UTC", iana: "UTC" });

/**
 * The zone to write an event in for a staff member (IANA name, maybe absent): its Windows name when
 * CLDR has one and that Windows zone's main IANA zone has the same offset at every instant given (the
 * event's start and end), else UTC. The instants are exact either way; the zone only decides how
 * Outlook labels the event, so a doubtful mapping never moves an appointment (B5).
 */
export function eventTimeZone(staffZone: string | null | undefined, instants: readonly number[]): EventZone {
  if (!staffZone || !knownZone(staffZone)) return UTC_ZONE;
  const windows = windowsZoneFor(staffZone);
  const main = windows ? ianaZoneFor(windows) : undefined;
  if (!windows || !main) return UTC_ZONE;
  const agrees = instants.every((t) => offsetAt(t, staffZone) === offsetAt(t, main));
  return agrees ? { graph: windows, iana: staffZone } : UTC_ZONE;
}

/**
 * The `Prefer` header value asking Graph for times in a zone (B5): the Windows name of the staff
 * member's zone, else UTC. Names come only from the CLDR table, so nothing stored by the app reaches
 * the header verbatim.
 */
export function preferTimeZone(staffZone: string | null | undefined): string {
  const windows = staffZone ? windowsZoneFor(staffZone) : undefined;
  return `outlook.timezone="${windows && ianaZoneFor(windows) ? windows : "UTC"}"`;
}
