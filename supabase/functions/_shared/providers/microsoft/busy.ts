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
 * - All-day items block the staff member's own days. getSchedule items carry no all-day flag, so its
 *   answers are asked in the staff member's zone (`Prefer: outlook.timezone`, B5), where all-day items
 *   are midnight to midnight; calendarView answers are asked in UTC and its all-day events (flagged
 *   `isAllDay`) are placed on the staff member's days here.
 * - Cancelled calendarView events are not busy: a meeting its organizer cancelled stays in an
 *   attendee's calendar, flagged `isCancelled`, until someone removes it.
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
import { graphDateTimeToInstant, type GraphDateTimeZone, ianaZoneFor, preferTimeZone } from "./time-zones.ts";
import { wallTimeToInstant } from "../../wall-time.ts";

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

/** The longest calendarView window Graph accepts: it refuses ranges over 1825 days (B8). */
export const CALENDAR_VIEW_MAX_DAYS = 1825;

/**
 * Days per calendarView read we send. Far below Graph's limit on purpose: a read expands recurring
 * series into occurrences, so a month keeps each read to a few pages, a typical availability request
 * (a week or two) is one read, and the product's longest (62 days) is three.
 */
export const CALENDAR_VIEW_WINDOW_DAYS = 31;

/**
 * Events per calendarView page we ask for (`$top`; Graph's default is 10, B8). Graph may still answer
 * fewer and link the rest (server-driven paging), which the caller follows.
 */
export const CALENDAR_VIEW_PAGE_SIZE = 250;

/**
 * How far calendarView reads reach beyond the asked range: a day covers every UTC offset (-12 h to
 * +14 h), so an all-day event on the staff member's day is listed even though Graph matches it in UTC.
 */
export const ALL_DAY_MARGIN_MS = 86_400_000;

/**
 * The `Prefer` header of calendarView reads: answers in UTC. Timed events then come back as exact
 * instants whatever zone they were written in (no Windows-name mapping that could lag the tz data, no
 * `Customized Time Zone`), and all-day events, which float, carry their dates unchanged;
 * {@link busyFromEvents} places those in the staff member's zone itself.
 */
export const CALENDAR_VIEW_PREFER = 'outlook.timezone="UTC"';

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
  return clipAndMerge(
    items.map((item) => ({
      start: parseInstant(graphDateTimeToInstant(item.start)),
      end: parseInstant(graphDateTimeToInstant(item.end)),
    })),
    window,
  );
}

/** Clip epoch-ms ranges to the window, drop empty ones, merge. */
function clipAndMerge(ranges: readonly { start: number; end: number }[], window: TimeRange): BusyInterval[] {
  const min = parseInstant(window.start);
  const max = parseInstant(window.end);
  const clipped: TimeRange[] = [];
  for (const r of ranges) {
    const start = Math.max(r.start, min);
    const end = Math.min(r.end, max);
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
 * The first-page paths of the calendarView reads that cover `[timeMin, timeMax)` for one calendar
 * (B8): the range widened by {@link ALL_DAY_MARGIN_MS} on each side, then split into windows of at most
 * {@link CALENDAR_VIEW_WINDOW_DAYS} days. The widening is for all-day events: Graph matches them
 * against the window as days of the answer's zone (UTC here), but they block the staff member's own
 * day, which may start up to 14 hours earlier or 12 hours later. Whatever the widening brings in is
 * clipped away by {@link busyFromEvents}. Send each with `Prefer: ` {@link CALENDAR_VIEW_PREFER} and
 * follow `@odata.nextLink`.
 *
 * @param calendarId a Graph calendar id, or `primary` for the default calendar (`/me/calendar`).
 * @param timeMin ISO 8601 with offset.
 * @param timeMax ISO 8601 with offset, not before `timeMin`.
 * @returns paths relative to the Graph base URL, in time order; `[]` for an empty range.
 * @throws RangeError on a malformed or inverted range.
 */
export function planCalendarView(calendarId: string, timeMin: string, timeMax: string): string[] {
  const min = parseInstant(timeMin);
  const max = parseInstant(timeMax);
  if (max < min) throw new RangeError("calendarView: timeMax is before timeMin");
  if (max === min) return [];
  const windows = splitRange(
    formatInstant(min - ALL_DAY_MARGIN_MS),
    formatInstant(max + ALL_DAY_MARGIN_MS),
    CALENDAR_VIEW_WINDOW_DAYS,
  );
  return windows.map((w) => calendarViewPath(calendarId, w.start, w.end));
}

/**
 * The query of one calendarView read of one calendar (B8, non-delta): the window in UTC and only the
 * fields busy needs, so no subject, body or attendee ever reaches us.
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
    $top: String(CALENDAR_VIEW_PAGE_SIZE),
  });
  const calendar = calendarId === "primary"
    ? "/me/calendar"
    : `/me/calendars/${encodeURIComponent(calendarId)}`;
  return `${calendar}/calendarView?${query}`;
}

/**
 * The instant an all-day event's bound stands for: midnight, in the staff member's zone, of the date
 * Graph wrote. All-day events float (B5): Graph writes them midnight to midnight in whatever zone the
 * answer is in, so the date is the event's own and the zone is ours to choose.
 */
function allDayBound(value: GraphDateTimeZone, zone: string): number {
  try {
    return wallTimeToInstant(`${value.dateTime.slice(0, 10)}T00:00:00`, zone);
  } catch (err) {
    if (err instanceof RangeError) {
      throw new ProviderError(
        "invalid",
        `Microsoft Graph answered a malformed all-day date: ${err.message}`,
        {
          reason: "malformed_time",
        },
      );
    }
    throw err;
  }
}

/**
 * The busy intervals of calendarView events (all pages of all reads): cancelled events and those whose
 * `showAs` is not busy ({@link isBusyStatus}) are skipped; timed events are placed by their
 * `dateTimeTimeZone` (any zone we can map); all-day events cover whole days of the staff member's
 * zone (UTC when unknown), end date exclusive, however many days they span. Everything is clipped to
 * `[timeMin, timeMax)` and merged.
 *
 * @param staffZone the staff member's IANA zone, if known.
 * @throws ProviderError `invalid` for an event without start/end, a malformed time, or a zone we
 *   cannot map (`Customized Time Zone`): an event we cannot place is never read as free.
 */
export function busyFromEvents(
  events: readonly GraphEvent[],
  timeMin: string,
  timeMax: string,
  staffZone?: string | null,
): BusyInterval[] {
  const ranges: { start: number; end: number }[] = [];
  for (const e of events) {
    if (e.isCancelled || !isBusyStatus(e.showAs)) continue;
    ranges.push(graphEventRange(e, staffZone));
  }
  return clipAndMerge(ranges, { start: timeMin, end: timeMax });
}

/**
 * Where an event read in UTC lies in time, epoch ms, half-open: timed events by their
 * `dateTimeTimeZone` (any zone we can map); all-day events on whole days of the staff member's zone
 * (UTC when unknown), end date exclusive.
 * @throws ProviderError `invalid` for an event without start/end, a malformed time, or a zone we
 *   cannot map.
 */
export function graphEventRange(
  e: Pick<GraphEvent, "start" | "end" | "isAllDay">,
  staffZone?: string | null,
): { start: number; end: number } {
  if (!e.start || !e.end) {
    throw new ProviderError("invalid", "Microsoft Graph answered an event without times", {
      reason: "malformed_response",
    });
  }
  if (e.isAllDay) {
    const dayZone = (staffZone && ianaZoneFor(staffZone)) || "UTC";
    return { start: allDayBound(e.start, dayZone), end: allDayBound(e.end, dayZone) };
  }
  return {
    start: parseInstant(graphDateTimeToInstant(e.start)),
    end: parseInstant(graphDateTimeToInstant(e.end)),
  };
}
