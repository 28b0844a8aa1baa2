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
import { offsetAt, wallTimeToInstant, zoneFormatter } from "../../wall-time.ts";
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

/** True when this runtime knows the IANA zone name. */
function knownZone(zone: string): boolean {
  if (zone.length > 64 || !IANA_NAME.test(zone)) return false;
  try {
    zoneFormatter(zone);
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
