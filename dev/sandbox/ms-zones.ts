/**
 * Time-zone names as Microsoft Graph speaks them (CONTRACT.md, "Microsoft"): requests may name a
 * Windows zone (`Pacific Standard Time`) or an IANA zone; answers use Windows names (or `UTC`).
 *
 * The table is CLDR's windowsZones "001" mapping (the zone each Windows name stands for) for the zones
 * a clinic plausibly uses, plus the IANA aliases that map onto them. An IANA zone outside the table is
 * accepted and echoed as given; a name that is neither -> Graph's 400 TimeZoneNotSupportedException.
 */
import { isValidTimeZone } from "./time.ts";

/** Windows zone name -> its CLDR "001" IANA zone. */
export const WINDOWS_TO_IANA: Readonly<Record<string, string>> = {
  "UTC": "UTC",
  "GMT Standard Time": "Europe/London",
  "Greenwich Standard Time": "Atlantic/Reykjavik",
  "W. Europe Standard Time": "Europe/Berlin",
  "Romance Standard Time": "Europe/Paris",
  "Central Europe Standard Time": "Europe/Budapest",
  "Central European Standard Time": "Europe/Warsaw",
  "GTB Standard Time": "Europe/Bucharest",
  "FLE Standard Time": "Europe/Kiev",
  "E. Europe Standard Time": "Europe/Chisinau",
  "Russian Standard Time": "Europe/Moscow",
  "Israel Standard Time": "Asia/Jerusalem",
  "South Africa Standard Time": "Africa/Johannesburg",
  "Arabian Standard Time": "Asia/Dubai",
  "India Standard Time": "Asia/Calcutta",
  "China Standard Time": "Asia/Shanghai",
  "Singapore Standard Time": "Asia/Singapore",
  "Tokyo Standard Time": "Asia/Tokyo",
  "Korea Standard Time": "Asia/Seoul",
  "W. Australia Standard Time": "Australia/Perth",
  "Cen. Australia Standard Time": "Australia/Adelaide",
  "E. Australia Standard Time": "Australia/Brisbane",
  "AUS Eastern Standard Time": "Australia/Sydney",
  "New Zealand Standard Time": "Pacific/Auckland",
  "Hawaiian Standard Time": "Pacific/Honolulu",
  "Alaskan Standard Time": "America/Anchorage",
  "Pacific Standard Time": "America/Los_Angeles",
  "US Mountain Standard Time": "America/Phoenix",
  "Mountain Standard Time": "America/Denver",
  "Central Standard Time": "America/Chicago",
  "Eastern Standard Time": "America/New_York",
  "Atlantic Standard Time": "America/Halifax",
  "SA Pacific Standard Time": "America/Bogota",
  "E. South America Standard Time": "America/Sao_Paulo",
  "Argentina Standard Time": "America/Buenos_Aires",
};

/** IANA aliases of the table's zones (CLDR territory rows), besides the "001" zones themselves. */
const IANA_ALIASES: Readonly<Record<string, string>> = {
  "Etc/UTC": "UTC",
  "Etc/GMT": "UTC",
  "Europe/Dublin": "GMT Standard Time",
  "Europe/Lisbon": "GMT Standard Time",
  "Europe/Amsterdam": "W. Europe Standard Time",
  "Europe/Rome": "W. Europe Standard Time",
  "Europe/Vienna": "W. Europe Standard Time",
  "Europe/Zurich": "W. Europe Standard Time",
  "Europe/Stockholm": "W. Europe Standard Time",
  "Europe/Oslo": "W. Europe Standard Time",
  "Europe/Luxembourg": "W. Europe Standard Time",
  "Europe/Madrid": "Romance Standard Time",
  "Europe/Brussels": "Romance Standard Time",
  "Europe/Copenhagen": "Romance Standard Time",
  "Europe/Prague": "Central Europe Standard Time",
  "Europe/Bratislava": "Central Europe Standard Time",
  "Europe/Ljubljana": "Central Europe Standard Time",
  "Europe/Zagreb": "Central European Standard Time",
  "Europe/Athens": "GTB Standard Time",
  "Europe/Kyiv": "FLE Standard Time",
  "Europe/Helsinki": "FLE Standard Time",
  "Europe/Riga": "FLE Standard Time",
  "Europe/Vilnius": "FLE Standard Time",
  "Europe/Tallinn": "FLE Standard Time",
  "Asia/Kolkata": "India Standard Time",
  "Australia/Melbourne": "AUS Eastern Standard Time",
  "America/Toronto": "Eastern Standard Time",
  "America/Detroit": "Eastern Standard Time",
  "America/Vancouver": "Pacific Standard Time",
  "America/Winnipeg": "Central Standard Time",
  "America/Edmonton": "Mountain Standard Time",
  "America/Argentina/Buenos_Aires": "Argentina Standard Time",
};

const IANA_TO_WINDOWS = new Map<string, string>([
  ...Object.entries(WINDOWS_TO_IANA).map(([w, i]) => [i, w] as [string, string]),
  ...Object.entries(IANA_ALIASES),
]);

/** A zone a request named, resolved: the IANA zone to compute with and the name answers show. */
export interface GraphZone {
  iana: string;
  /** Windows name when the zone has one in the table, else the IANA name as given. */
  display: string;
}

/** Resolve a Windows or IANA zone name (Windows names case-insensitively); undefined when unknown. */
export function resolveZone(name: string): GraphZone | undefined {
  const trimmed = name.trim();
  const windows = Object.keys(WINDOWS_TO_IANA).find((w) => w.toLowerCase() === trimmed.toLowerCase());
  if (windows) return { iana: WINDOWS_TO_IANA[windows], display: windows };
  if (trimmed && isValidTimeZone(trimmed)) {
    return { iana: trimmed, display: IANA_TO_WINDOWS.get(trimmed) ?? trimmed };
  }
  return undefined;
}

/** The UTC zone answers default to. */
export const UTC_ZONE: GraphZone = { iana: "UTC", display: "UTC" };
