/**
 * Microsoft Graph calendars behind the {@link CalendarApi} interface (docs/providers/microsoft.md B3-B8):
 * the calendar list with paging, busy times from getSchedule or calendarView, and event writes made
 * idempotent by `transactionId` (Graph cannot take a client-chosen event id). Classification is
 * ./errors.ts.
 *
 * The default calendar: Graph has no `primary` alias, but the product stores `primary` as the
 * default selection (Google's alias), so `primary` here means the mailbox's default calendar, reached
 * as `/me/calendar`.
 */
import type { HttpOptions } from "../../http-client/transport.ts";
import { mergeIntervals } from "../../time-ranges.ts";
import {
  type AppointmentEventRef,
  type BusyInterval,
  type CalendarApi,
  type CalendarDetails,
  type CalendarSummary,
  type EventWrite,
  type EventWriteResult,
  ProviderError,
} from "../types.ts";
import {
  busyFromEvents,
  busyFromSchedule,
  CALENDAR_VIEW_PREFER,
  planCalendarView,
  planGetSchedule,
} from "./busy.ts";
import { calendarSummaryFrom, nextPageUrl } from "./calendars.ts";
import { GraphClient } from "./graph-client.ts";
import { eventCreateBody, eventPatchBody, type GraphEventCreateBody } from "./event-body.ts";
import type { MicrosoftConfig } from "./oauth-config.ts";
import { graphCalendarsPage, type GraphEvent, graphEvent, graphEventsPage } from "./schemas.ts";

/** The product's name of the default calendar (Google's alias, stored as the default selection). */
export const DEFAULT_CALENDAR_ALIAS = "primary";
/**
 * getSchedule answers that say "not for this mailbox" rather than "not now": the default calendar is
 * then read with calendarView. (`auth`, `rate_limited` and `transient` are thrown as they are.)
 */
const SCHEDULE_REFUSALS: ReadonlySet<ProviderError["kind"]> = new Set([
  "invalid",
  "not_found",
  "insufficient_scope",
  "conflict",
  "gone",
]);
/** Calendars per list page we ask for. */
const CALENDAR_PAGE_SIZE = 50;
/** Safety stop for calendar paging (50 per page: 5 000 calendars). */
const MAX_CALENDAR_PAGES = 100;
/** Safety stop for calendarView paging per window (250 per page: 25 000 events in 31 days). */
const MAX_EVENT_PAGES = 100;

/** Microsoft Graph v1.0 as a {@link CalendarApi}. Every network method throws {@link ProviderError}. */
export class MicrosoftCalendarApi implements CalendarApi {
  readonly #graph: GraphClient;

  /**
   * @param config `graphApiBase` (no trailing slash).
   * @param options `fetch` for tests; `timeoutMs` per request (default 10 000 ms).
   * @throws ProviderError `invalid` when the Graph base is plain http on a non-loopback host.
   */
  constructor(config: Pick<MicrosoftConfig, "graphApiBase">, options: HttpOptions = {}) {
    this.#graph = new GraphClient(config.graphApiBase, options);
  }

  /** `/me/calendar` for the default (`primary`), else `/me/calendars/{id}`. */
  #calendarPath(calendarId: string): string {
    if (!calendarId) throw new ProviderError("invalid", "a calendar id is required");
    return calendarId === DEFAULT_CALENDAR_ALIAS
      ? "/me/calendar"
      : `/me/calendars/${encodeURIComponent(calendarId)}`;
  }

  /**
   * Every calendar of the mailbox (`GET /me/calendars`, all pages through `@odata.nextLink` kept
   * under the Graph base), `canEdit` as access role `writer`/`reader`, the default as `primary: true`.
   */
  async listCalendars(accessToken: string): Promise<CalendarSummary[]> {
    const out: CalendarSummary[] = [];
    let url: URL | undefined = this.#graph.url(`/me/calendars?$top=${CALENDAR_PAGE_SIZE}`);
    for (let page = 0; url; page++) {
      if (page >= MAX_CALENDAR_PAGES) {
        throw new ProviderError("invalid", "Microsoft Graph calendars: too many pages");
      }
      const answer = await this.#graph.call(accessToken, "GET", url, "calendars.list");
      const parsed = graphCalendarsPage.safeParse(answer.body);
      if (!parsed.success) {
        throw new ProviderError("invalid", "Microsoft Graph calendars.list answered an unexpected body", {
          reason: "malformed_response",
        });
      }
      out.push(...parsed.data.value.map(calendarSummaryFrom));
      url = nextPageUrl(parsed.data["@odata.nextLink"], this.#graph.base);
    }
    return out;
  }

  /**
   * One calendar of the list, read live (`primary` = the default calendar). Graph reports no zone
   * per calendar, so `time_zone` is null.
   * @throws ProviderError `not_found` (resource `calendar`) when it is not in the list.
   */
  async getCalendar(accessToken: string, calendarId: string): Promise<CalendarDetails> {
    const all = await this.listCalendars(accessToken);
    const found = calendarId === DEFAULT_CALENDAR_ALIAS
      ? all.find((c) => c.primary)
      : all.find((c) => c.id === calendarId);
    if (!found) throw calendarMissing(calendarId);
    return { ...found, time_zone: null };
  }

  /**
   * Busy intervals of the calendars between timeMin and timeMax (ISO 8601 with offset), merged
   * (docs/providers/microsoft.md, "Busy: getSchedule or calendarView"):
   * - the default calendar (`primary`, or its real id): `POST /me/calendar/getSchedule` for the
   *   account's own address (B4), windows of at most 61 days, answers in the staff member's zone,
   *   per-schedule errors thrown (never read as free);
   * - any other calendar: `GET /me/calendars/{id}/calendarView` (B8), windows of 31 days widened by a
   *   day for all-day events, every page followed under the Graph base, answers in UTC.
   * The mapping of statuses and all-day events is busy.ts's, the same for both.
   * @param args.timeZone the staff member's IANA zone (all-day events block their days), else UTC.
   * @throws ProviderError `not_found` (resource `calendar`) for a calendar not in the mailbox's list
   *   (or gone by the time it is read); `invalid` for a malformed range or answer; as classified.
   */
  async busy(
    accessToken: string,
    args: { calendarIds: string[]; timeMin: string; timeMax: string; timeZone?: string | null },
  ): Promise<BusyInterval[]> {
    if (args.calendarIds.length === 0) return [];
    let readDefault = false;
    const viewIds: string[] = [];
    const others = args.calendarIds.filter((id) => id !== DEFAULT_CALENDAR_ALIAS);
    if (others.length < args.calendarIds.length) readDefault = true;
    if (others.length > 0) {
      const all = await this.listCalendars(accessToken);
      for (const id of new Set(others)) {
        const cal = all.find((c) => c.id === id);
        if (!cal) throw calendarMissing(id);
        if (cal.primary) readDefault = true;
        else viewIds.push(id);
      }
    }
    const intervals: BusyInterval[] = [];
    if (readDefault) intervals.push(...await this.#defaultCalendarBusy(accessToken, args));
    for (const id of viewIds) intervals.push(...await this.#calendarViewBusy(accessToken, id, args));
    return mergeIntervals(intervals);
  }

  /**
   * The default calendar's busy intervals: getSchedule (B4), the free/busy API; when Graph refuses it
   * for this mailbox for good (not a token, throttling or outage problem: personal Microsoft accounts
   * are not served by getSchedule, and a per-schedule error is another such answer), the same calendar
   * read with calendarView instead. Whatever fails there is thrown: a read that failed is never free.
   */
  async #defaultCalendarBusy(
    accessToken: string,
    args: { timeMin: string; timeMax: string; timeZone?: string | null },
  ): Promise<BusyInterval[]> {
    try {
      return await this.#scheduleBusy(accessToken, args);
    } catch (err) {
      if (!(err instanceof ProviderError) || !SCHEDULE_REFUSALS.has(err.kind)) throw err;
      return await this.#calendarViewBusy(accessToken, DEFAULT_CALENDAR_ALIAS, args);
    }
  }

  /** The default calendar's busy intervals from getSchedule (B4). */
  async #scheduleBusy(
    accessToken: string,
    args: { timeMin: string; timeMax: string; timeZone?: string | null },
  ): Promise<BusyInterval[]> {
    const address = await this.#ownAddress(accessToken);
    const calls = rangeChecked(() =>
      planGetSchedule({
        schedules: [address],
        timeMin: args.timeMin,
        timeMax: args.timeMax,
        timeZone: args.timeZone,
      })
    );
    const intervals: BusyInterval[] = [];
    for (const call of calls) {
      const answer = await this.#graph.call(
        accessToken,
        "POST",
        this.#graph.url("/me/calendar/getSchedule"),
        "calendar.getSchedule",
        { body: call.body, prefer: call.prefer },
      );
      intervals.push(...busyFromSchedule(answer.body, call));
    }
    return intervals;
  }

  /**
   * One calendar's busy intervals from calendarView (B8): every window, every page (links followed
   * only under the Graph base, at most {@link MAX_EVENT_PAGES} per window), events validated.
   */
  async #calendarViewBusy(
    accessToken: string,
    calendarId: string,
    args: { timeMin: string; timeMax: string; timeZone?: string | null },
  ): Promise<BusyInterval[]> {
    const paths = rangeChecked(() => planCalendarView(calendarId, args.timeMin, args.timeMax));
    const events: GraphEvent[] = [];
    for (const path of paths) {
      let url: URL | undefined = this.#graph.url(path);
      for (let page = 0; url; page++) {
        if (page >= MAX_EVENT_PAGES) {
          throw new ProviderError("invalid", "Microsoft Graph calendarView: too many pages");
        }
        const answer = await this.#graph.call(accessToken, "GET", url, "calendar.calendarView", {
          prefer: CALENDAR_VIEW_PREFER,
          resource: "calendar",
        });
        const parsed = graphEventsPage.safeParse(answer.body);
        if (!parsed.success) {
          throw new ProviderError("invalid", "Microsoft Graph calendarView answered an unexpected body", {
            reason: "malformed_response",
          });
        }
        events.push(...parsed.data.value);
        url = nextPageUrl(parsed.data["@odata.nextLink"], this.#graph.base);
      }
    }
    return busyFromEvents(events, args.timeMin, args.timeMax, args.timeZone);
  }

  /** The mailbox's SMTP address (`GET /me`: `mail`, else `userPrincipalName`). */
  async #ownAddress(accessToken: string): Promise<string> {
    const answer = await this.#graph.call(accessToken, "GET", this.#graph.url("/me"), "me.get");
    const me = answer.body as { mail?: unknown; userPrincipalName?: unknown } | undefined;
    const address = typeof me?.mail === "string" && me.mail
      ? me.mail
      : typeof me?.userPrincipalName === "string" && me.userPrincipalName
      ? me.userPrincipalName
      : undefined;
    if (!address) {
      throw new ProviderError("invalid", "Microsoft Graph /me names no mailbox address", {
        reason: "no_mailbox",
      });
    }
    return address;
  }

  /**
   * Create or update the appointment's event (B6, B7):
   * - with a stored `eventId`: `PATCH /me/events/{id}` (title, start, end, `showAs`) -> `updated`;
   *   a 404 means the event vanished: `not_found` with resource `event` when the calendar is still
   *   there (the engine moves to the next `eventGeneration` and writes again), resource `calendar`
   *   when it is gone;
   * - without: `POST {calendar}/events` with `transactionId` derived from (appointment, generation,
   *   calendar) -> `created`; a retry after a lost answer gets the same event back, never a second,
   *   and PATCHes it (`updated`) when it shows another subject or times than this write.
   * @throws ProviderError `invalid` for a malformed write; `not_found` as above; as classified.
   */
  async upsertEvent(accessToken: string, write: EventWrite): Promise<EventWriteResult> {
    if (write.eventId) {
      const body = eventPatchBody(write);
      try {
        const answer = await this.#graph.call(
          accessToken,
          "PATCH",
          this.#graph.url(`/me/events/${encodeURIComponent(write.eventId)}`),
          "events.update",
          { body, resource: "event" },
        );
        return result(parseEvent(answer.body, "events.update"), "updated");
      } catch (err) {
        if (err instanceof ProviderError && err.kind === "not_found") {
          await this.getCalendar(accessToken, write.calendarId); // throws when the calendar is gone
          throw new ProviderError("not_found", `Microsoft event ${write.eventId} is gone`, {
            status: 404,
            reason: "ErrorItemNotFound",
            resource: "event",
          });
        }
        throw err;
      }
    }
    const { event, body } = await this.#create(accessToken, write);
    if (showsBody(event, body)) return result(event, "created");
    // A create repeating an earlier one's transactionId (whose answer was lost) answers the event
    // that one made, unchanged: the appointment has changed since, so bring the event up to date.
    const answer = await this.#graph.call(
      accessToken,
      "PATCH",
      this.#graph.url(`/me/events/${encodeURIComponent(event.id)}`),
      "events.update",
      { body: eventPatchBody(write), resource: "event" },
    );
    return result(parseEvent(answer.body, "events.update"), "updated");
  }

  /** POST the create body (idempotent by `transactionId`); 404 = the calendar is gone. */
  async #create(
    accessToken: string,
    write: EventWrite,
  ): Promise<{ event: GraphEvent; body: GraphEventCreateBody }> {
    const body = eventCreateBody(write);
    try {
      const answer = await this.#graph.call(
        accessToken,
        "POST",
        this.#graph.url(`${this.#calendarPath(write.calendarId)}/events`),
        "events.create",
        { body, resource: "calendar" },
      );
      return { event: parseEvent(answer.body, "events.create"), body };
    } catch (err) {
      if (err instanceof ProviderError && err.kind === "not_found") throw calendarMissing(write.calendarId);
      throw err;
    }
  }

  /**
   * The appointment's live event id: with a stored id, `GET /me/events/{id}` (404 -> null). Graph
   * cannot look an event up by `transactionId`, so without a stored id the answer is null.
   * @throws ProviderError as classified (never for a missing event).
   */
  async findAppointmentEvent(accessToken: string, ref: AppointmentEventRef): Promise<string | null> {
    if (!ref.eventId) return null;
    try {
      const answer = await this.#graph.call(
        accessToken,
        "GET",
        this.#graph.url(`/me/events/${encodeURIComponent(ref.eventId)}`),
        "events.get",
        { resource: "event" },
      );
      const event = parseEvent(answer.body, "events.get");
      return event.isCancelled ? null : event.id;
    } catch (err) {
      if (err instanceof ProviderError && err.kind === "not_found") return null;
      throw err;
    }
  }

  /**
   * Delete the appointment's event; nothing to delete is success. Without a stored id (a create
   * whose answer was lost), the event is found the only way Graph offers: a create with the same
   * `transactionId` answers the live event that create made (or makes one, which is deleted at once;
   * it has no attendees, so no one is notified), then it is deleted. A calendar that is gone has
   * nothing to delete.
   */
  async deleteAppointmentEvent(accessToken: string, ref: AppointmentEventRef): Promise<void> {
    let eventId = ref.eventId ?? null;
    if (!eventId) {
      try {
        const found = await this.#create(accessToken, {
          calendarId: ref.calendarId,
          appointmentId: ref.appointmentId,
          eventGeneration: ref.eventGeneration ?? 0,
          // Any valid times: a create that finds the earlier event returns it unchanged.
          start: "2000-01-01T00:00:00Z",
          end: "2000-01-01T00:05:00Z",
          title: "Appointment",
        });
        eventId = found.event.id;
      } catch (err) {
        if (err instanceof ProviderError && err.kind === "not_found") return;
        throw err;
      }
    }
    await this.deleteEvent(accessToken, { calendarId: ref.calendarId, eventId });
  }

  /** `DELETE /me/events/{id}`; 404 (`ErrorItemNotFound`) and 410 are success: the event is gone. */
  async deleteEvent(accessToken: string, args: { calendarId: string; eventId: string }): Promise<void> {
    try {
      await this.#graph.call(
        accessToken,
        "DELETE",
        this.#graph.url(`/me/events/${encodeURIComponent(args.eventId)}`),
        "events.delete",
        { resource: "event" },
      );
    } catch (err) {
      if (err instanceof ProviderError && (err.kind === "not_found" || err.kind === "gone")) return;
      throw err;
    }
  }
}

/** Run a planner; its RangeError (a malformed or inverted range) becomes ProviderError `invalid`. */
function rangeChecked<T>(plan: () => T): T {
  try {
    return plan();
  } catch (err) {
    if (err instanceof RangeError) throw new ProviderError("invalid", `busy: ${err.message}`);
    throw err;
  }
}

function calendarMissing(calendarId: string): ProviderError {
  return new ProviderError(
    "not_found",
    `Microsoft calendar ${calendarId} is not in this mailbox's calendar list (deleted, or no longer shared)`,
    { status: 404, reason: "ErrorItemNotFound", resource: "calendar" },
  );
}

/** A Graph wall time without trailing fractional zeros (Graph answers seven digits). */
const wall = (dateTime: string | undefined) => dateTime?.replace(/(\.\d*?)0+$/, "$1").replace(/\.$/, "");

/**
 * Whether an answered event has the subject, start and end a create sent (wall times and zone names
 * compared as sent, so an answer in another notation only costs one PATCH, never a stale event).
 */
function showsBody(event: GraphEvent, body: GraphEventCreateBody): boolean {
  const same = (a: GraphEvent["start"], b: GraphEventCreateBody["start"]) =>
    a !== undefined && wall(a.dateTime) === wall(b.dateTime) && a.timeZone === b.timeZone;
  return event.subject === body.subject && same(event.start, body.start) && same(event.end, body.end);
}

function parseEvent(body: unknown, operation: string): GraphEvent {
  const parsed = graphEvent.safeParse(body);
  if (!parsed.success) {
    throw new ProviderError("invalid", `Microsoft Graph ${operation} answered an unexpected body`, {
      reason: "malformed_response",
    });
  }
  return parsed.data;
}

function result(event: GraphEvent, operation: EventWriteResult["operation"]): EventWriteResult {
  const etag = event["@odata.etag"] ?? event.changeKey;
  return { eventId: event.id, ...(etag ? { etag } : {}), operation };
}
