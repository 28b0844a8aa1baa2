/**
 * Busy intervals from Graph (docs/providers/microsoft.md B4, "Busy: getSchedule or calendarView"):
 * the getSchedule calls a range needs (at most 20 schedules and less than 62 days per call), and the
 * mapping of what Graph answers (schedule items, or calendarView events) to busy intervals.
 *
 * Rules, decided once here:
 * - `busy`, `oof` and `tentative` are busy (a tentative hold must not be double-booked); `free` is not.
 * - `workingElsewhere` is NOT busy: it says where someone works, not that they are taken (Graph itself
 *   folds it into "0 = free" in `availabilityView`, B4); a remote-work day must not block all bookings.
 * - `unknown` and any status Graph may add later are busy: never read what we do not understand as free.
 * - A per-schedule `error`, a schedule missing from the answer, or items we cannot place in time fail
 *   the whole read: an unreadable calendar is never reported free.
 * - Times come in the zone we asked for (`Prefer: outlook.timezone`, B5): all-day items are midnight
 *   to midnight in that zone, so asking in the staff member's zone makes their day the blocked day.
 * - Items are clipped to the asked range, then sorted and merged; multi-day items need nothing special.
 *
 * Outputs are ISO 8601 UTC instants ending in `Z`, half-open.
 */
import {
  formatInstant,
  mergeIntervals,
  parseInstant,
  splitRange,
  type TimeRange,
} from "../../time-ranges.ts";
import { type BusyInterval, ProviderError } from "../types.ts";
import { getScheduleResponse, type GraphEvent } from "./schemas.ts";
import { graphDateTimeToInstant, type GraphDateTimeZone, preferTimeZone } from "./time-zones.ts";

/** Schedules (SMTP addresses) per getSchedule call: "up to 20 entities" (B4). */
export const GET_SCHEDULE_MAX_SCHEDULES = 20;

/**
 * Days per getSchedule call. The documentation says the period "must be less than 62 days" (62 was
 * seen to pass, 63 fails with ErrorTimeIntervalTooBig, C1); 61 keeps us inside what is documented.
 */
export const GET_SCHEDULE_MAX_DAYS = 61;

/**
 * `availabilityViewInterval` in minutes (5..1440, default 30; `null` has been seen to give a 500, B4).
 * We read only `scheduleItems`; hourly slots (the documentation's own example) keep the unused
 * `availabilityView` string short.
 */
export const AVAILABILITY_VIEW_INTERVAL_MINUTES = 60;

/** Days per calendarView read: Graph refuses ranges over 1825 days (B8). */
export const CALENDAR_VIEW_MAX_DAYS = 1825;

/** One getSchedule call: POST its `body` with header `Prefer: <prefer>`; it covers `window`. */
export interface GetScheduleCall {
  window: TimeRange;
  schedules: string[];
  prefer: string;
  body: {
    schedules: string[];
    startTime: GraphDateTimeZone;
    endTime: GraphDateTimeZone;
    availabilityViewInterval: number;
  };
}

/** Graph's `dateTimeTimeZone` for an instant, written in UTC (what we send; B5). */
export function utcDateTime(ms: number): GraphDateTimeZone {
  return { dateTime: new Date(ms).toISOString().slice(0, 19), timeZone: "UTC" };
}

function uniqueSchedules(schedules: readonly string[]): string[] {
  const seen = new Set<string>();
  const out: string[] = [];
  for (const raw of schedules) {
    const s = raw.trim();
    if (!s) throw new RangeError("getSchedule: an empty schedule address");
    const key = s.toLowerCase();
    if (!seen.has(key)) {
      seen.add(key);
      out.push(s);
    }
  }
  return out;
}

/**
 * The getSchedule calls that cover `[timeMin, timeMax)` for the given schedules: windows of at most
 * {@link GET_SCHEDULE_MAX_DAYS} days times groups of at most {@link GET_SCHEDULE_MAX_SCHEDULES}
 * addresses (duplicates, case-insensitively, asked once). Times are sent in UTC; answers are asked in
 * the staff member's zone (its Windows name), else UTC.
 *
 * @param args.schedules SMTP addresses (for the connected account: its own address).
 * @param args.timeMin ISO 8601 with offset.
 * @param args.timeMax ISO 8601 with offset, not before `timeMin`.
 * @param args.timeZone the staff member's IANA zone, if known.
 * @returns the calls in time order; `[]` for an empty range or no schedules.
 * @throws RangeError on a malformed or inverted range or an empty address.
 */
export function planGetSchedule(args: {
  schedules: readonly string[];
  timeMin: string;
  timeMax: string;
  timeZone?: string | null;
}): GetScheduleCall[] {
  const schedules = uniqueSchedules(args.schedules);
  const windows = splitRange(args.timeMin, args.timeMax, GET_SCHEDULE_MAX_DAYS);
  const prefer = preferTimeZone(args.timeZone);
  const calls: GetScheduleCall[] = [];
  for (const window of windows) {
    for (let i = 0; i < schedules.length; i += GET_SCHEDULE_MAX_SCHEDULES) {
      const group = schedules.slice(i, i + GET_SCHEDULE_MAX_SCHEDULES);
      calls.push({
        window,
        schedules: group,
        prefer,
        body: {
          schedules: group,
          startTime: utcDateTime(parseInstant(window.start)),
          endTime: utcDateTime(parseInstant(window.end)),
          availabilityViewInterval: AVAILABILITY_VIEW_INTERVAL_MINUTES,
        },
      });
    }
  }
  return calls;
}

/**
 * Whether a `freeBusyStatus` (schedule item `status`, event `showAs`) blocks time; see the rules in
 * this module's header. Unknown values are busy.
 */
export function isBusyStatus(status: string | null | undefined): boolean {
  return status !== "free" && status !== "workingElsewhere";
}

/** Place Graph items in time, clip them to the window, merge. */
function toIntervals(
  items: readonly { start: GraphDateTimeZone; end: GraphDateTimeZone }[],
  window: TimeRange,
): BusyInterval[] {
  const min = parseInstant(window.start);
  const max = parseInstant(window.end);
  const clipped: TimeRange[] = [];
  for (const item of items) {
    const start = Math.max(parseInstant(graphDateTimeToInstant(item.start)), min);
    const end = Math.min(parseInstant(graphDateTimeToInstant(item.end)), max);
    if (end > start) clipped.push({ start: formatInstant(start), end: formatInstant(end) });
  }
  return mergeIntervals(clipped);
}

/** getSchedule `responseCode`s meaning the address has no readable mailbox (B4, C2). */
const NO_MAILBOX_CODES = new Set(["5009", "5016"]);

/**
 * The busy intervals of one getSchedule answer for the call that asked it: every asked schedule's
 * busy items, clipped to the call's window, merged.
 *
 * @param response the parsed JSON body of a 200 answer.
 * @throws ProviderError `not_found` (resource `calendar`, reason `schedule_error_<code>`) when Graph
 *   could not resolve an address or it has no mailbox (responseCode 5009, 5016); `invalid` for any
 *   other per-schedule error, an asked schedule missing from the answer, items absent without an
 *   error, a malformed answer, or a time in a zone we cannot map. Never an empty (free) answer.
 */
export function busyFromSchedule(response: unknown, call: GetScheduleCall): BusyInterval[] {
  const parsed = getScheduleResponse.safeParse(response);
  if (!parsed.success) {
    throw new ProviderError("invalid", "Microsoft Graph getSchedule answered an unexpected body", {
      reason: "malformed_response",
    });
  }
  const byId = new Map(parsed.data.value.map((s) => [s.scheduleId.toLowerCase(), s]));
  const items: { start: GraphDateTimeZone; end: GraphDateTimeZone }[] = [];
  for (const asked of call.schedules) {
    const info = byId.get(asked.toLowerCase());
    if (!info) {
      throw new ProviderError("invalid", "Microsoft Graph getSchedule left out an asked schedule", {
        reason: "schedule_missing",
      });
    }
    if (info.error) {
      const code = info.error.responseCode ?? "unknown";
      const kind = NO_MAILBOX_CODES.has(code) ? "not_found" : "invalid";
      throw new ProviderError(
        kind,
        `Microsoft Graph getSchedule could not read a schedule: ${code} ${info.error.message ?? ""}`.trim(),
        {
          reason: `schedule_error_${code}`,
          ...(kind === "not_found" ? { resource: "calendar" as const } : {}),
        },
      );
    }
    if (!info.scheduleItems) {
      throw new ProviderError("invalid", "Microsoft Graph getSchedule answered a schedule without items", {
        reason: "schedule_items_missing",
      });
    }
    for (const item of info.scheduleItems) if (isBusyStatus(item.status)) items.push(item);
  }
  return toIntervals(items, call.window);
}

/**
 * The query of a calendarView read of one calendar (B8, non-delta): the window in UTC and only the
 * fields busy needs, so no subject, body or attendee ever reaches us. Send with
 * `Prefer: <preferTimeZone(staff zone)>` for the same all-day handling as getSchedule.
 *
 * @returns the path and query (relative to the Graph base URL), URL-encoded.
 * @throws RangeError on a malformed range or one longer than {@link CALENDAR_VIEW_MAX_DAYS}.
 */
export function calendarViewPath(calendarId: string, timeMin: string, timeMax: string): string {
  const min = parseInstant(timeMin);
  const max = parseInstant(timeMax);
  if (max < min || max - min > CALENDAR_VIEW_MAX_DAYS * 86_400_000) {
    throw new RangeError(`calendarView: the range must be 0..${CALENDAR_VIEW_MAX_DAYS} days`);
  }
  const query = new URLSearchParams({
    startDateTime: formatInstant(min),
    endDateTime: formatInstant(max),
    $select: "showAs,start,end,isAllDay,isCancelled",
    $top: "1000",
  });
  return `/me/calendars/${encodeURIComponent(calendarId)}/calendarView?${query}`;
}

/**
 * The busy intervals of calendarView events (all pages of one read): cancelled events and those shown
 * as free or working elsewhere are skipped, the rest clipped to `[timeMin, timeMax)` and merged.
 * @throws ProviderError `invalid` for an event without start/end or in a zone we cannot map.
 */
export function busyFromEvents(
  events: readonly GraphEvent[],
  timeMin: string,
  timeMax: string,
): BusyInterval[] {
  const items: { start: GraphDateTimeZone; end: GraphDateTimeZone }[] = [];
  for (const e of events) {
    if (e.isCancelled || !isBusyStatus(e.showAs)) continue;
    if (!e.start || !e.end) {
      throw new ProviderError("invalid", "Microsoft Graph calendarView answered an event without times", {
        reason: "malformed_response",
      });
    }
    items.push({ start: e.start, end: e.end });
  }
  return toIntervals(items, { start: timeMin, end: timeMax });
}
