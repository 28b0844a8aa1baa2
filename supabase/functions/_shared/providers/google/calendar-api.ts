/**
 * Google Calendar behind the {@link CalendarApi} interface: calendar list, busy times chunked into
 * windows Google accepts, and idempotent event writes keyed by an id derived from the appointment id
 * (docs/providers/google.md A6, Part C #3). That derivation stays here: the engine asks for "the
 * appointment's event" and never computes a Google id. OAuth is ./oauth.ts.
 */
import type { HttpOptions } from "../../http-client/transport.ts";
import {
  formatInstant,
  mergeIntervals,
  parseInstant,
  splitRange,
  type TimeRange,
} from "../../time-ranges.ts";
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
import { eventInstants } from "../event-instants.ts";
import { GoogleCalendarClient, type GoogleEventBody } from "./calendar-client.ts";
import type { GoogleConfig } from "./config.ts";
import { eventIdFor } from "./event-id.ts";
import type { GoogleEvent } from "./schemas.ts";

/**
 * Longest freeBusy window we send, in days. Google's limit is undocumented; long ranges fail with
 * "The requested time range is too long." beyond about 90 days (Part C #10), so stay well inside.
 */
export const FREEBUSY_MAX_WINDOW_DAYS = 60;
/** Most calendars per freeBusy request (`calendarExpansionMax` max 50; A4). */
export const FREEBUSY_MAX_CALENDARS = 50;
/** Safety stop for calendarList paging (250 per page: 25 000 calendars). */
const MAX_CALENDAR_LIST_PAGES = 100;

type Times = Required<Pick<GoogleEventBody, "summary" | "start" | "end">>;

/** Google Calendar v3 as a {@link CalendarApi}. Every network method throws {@link ProviderError}. */
export class GoogleCalendarApi implements CalendarApi {
  readonly #api: GoogleCalendarClient;

  /**
   * @param config the Google settings (only `calendarApiBase` is used here).
   * @param options `fetch` for tests; `timeoutMs` per request (default 10 000 ms).
   * @throws ProviderError `invalid` when the Calendar API base is plain http on a non-loopback host.
   */
  constructor(config: Pick<GoogleConfig, "calendarApiBase">, options: HttpOptions = {}) {
    this.#api = new GoogleCalendarClient(config.calendarApiBase, options);
  }

  /**
   * Every calendar in the user's calendar list (all pages, 250 per page), as
   * `{id, summary: summaryOverride ?? summary ?? id, primary, access_role}`, in Google's order.
   */
  async listCalendars(accessToken: string): Promise<CalendarSummary[]> {
    const out: CalendarSummary[] = [];
    let pageToken: string | undefined;
    for (let page = 0; page < MAX_CALENDAR_LIST_PAGES; page++) {
      const res = await this.#api.calendarListPage(accessToken, pageToken);
      for (const item of res.items) {
        if (item.deleted) continue;
        out.push({
          id: item.id,
          summary: item.summaryOverride ?? item.summary ?? item.id,
          primary: !!item.primary,
          access_role: item.accessRole,
        });
      }
      pageToken = res.nextPageToken;
      if (!pageToken) return out;
    }
    throw new ProviderError("transient", "Google calendarList.list did not stop paging", {
      reason: "too_many_pages",
    });
  }

  /**
   * Busy intervals of `calendarIds` within `[timeMin, timeMax)`, merged, sorted and clipped to the
   * range, as UTC strings ending in `Z`. The range is split into windows of at most
   * {@link FREEBUSY_MAX_WINDOW_DAYS} days and the calendars into batches of at most
   * {@link FREEBUSY_MAX_CALENDARS}; requests run one after another.
   *
   * @param args.timeMin ISO 8601 with offset; `timeMax` likewise, not before it (equal gives `[]`).
   * @throws ProviderError `invalid` for a malformed or inverted range; `not_found` when a calendar is
   *   unknown or not visible (Google's per-calendar `notFound`); `transient` for any other
   *   per-calendar error, so an unknown calendar is never reported as free; and whatever the
   *   request itself throws (`auth`, `rate_limited`, ...).
   */
  async busy(
    accessToken: string,
    args: { calendarIds: string[]; timeMin: string; timeMax: string },
  ): Promise<BusyInterval[]> {
    let windows: TimeRange[];
    let min: number;
    let max: number;
    try {
      min = parseInstant(args.timeMin);
      max = parseInstant(args.timeMax);
      windows = splitRange(args.timeMin, args.timeMax, FREEBUSY_MAX_WINDOW_DAYS);
    } catch (err) {
      if (err instanceof RangeError) throw new ProviderError("invalid", `busy: ${err.message}`);
      throw err;
    }
    const ids = [...new Set(args.calendarIds)];
    if (ids.some((id) => !id)) throw new ProviderError("invalid", "busy: calendar ids must be non-empty");
    if (ids.length === 0 || windows.length === 0) return [];
    const collected: TimeRange[] = [];
    for (const window of windows) {
      for (let i = 0; i < ids.length; i += FREEBUSY_MAX_CALENDARS) {
        const batch = ids.slice(i, i + FREEBUSY_MAX_CALENDARS);
        const res = await this.#api.freeBusy(accessToken, {
          timeMin: window.start,
          timeMax: window.end,
          items: batch.map((id) => ({ id })),
        });
        for (const id of batch) {
          // Google keys the answer by the id as requested (`primary` stays `primary`, A4); tolerate
          // a case-normalised email key, and a lone answer to a lone question (an alias resolved).
          const keys = Object.keys(res.calendars);
          const entry = res.calendars[id] ??
            Object.entries(res.calendars).find(([k]) => k.toLowerCase() === id.toLowerCase())?.[1] ??
            (batch.length === 1 && keys.length === 1 ? res.calendars[keys[0]] : undefined);
          if (!entry) {
            throw new ProviderError(
              "transient",
              `Google freeBusy.query answered nothing for calendar ${id}`,
              {
                reason: "missing_calendar",
              },
            );
          }
          const error = entry.errors?.[0];
          if (error) {
            const reason = error.reason ?? "unknown";
            throw new ProviderError(
              reason === "notFound" ? "not_found" : "transient",
              `Google freeBusy.query could not read calendar ${id}: ${reason}`,
              { reason },
            );
          }
          collected.push(...entry.busy);
        }
      }
    }
    let merged: TimeRange[];
    try {
      merged = mergeIntervals(collected);
    } catch (err) {
      if (!(err instanceof RangeError)) throw err;
      throw new ProviderError("transient", "Google freeBusy.query answered a malformed busy period", {
        reason: "unexpected_response",
      });
    }
    const out: BusyInterval[] = [];
    for (const interval of merged) {
      const start = Math.max(parseInstant(interval.start), min);
      const end = Math.min(parseInstant(interval.end), max);
      if (end > start) out.push({ start: formatInstant(start), end: formatInstant(end) });
    }
    return out;
  }

  /**
   * One calendar of the account's list, read live with calendarList.get (A3): its current access role
   * (a share can be downgraded at any time) and time zone.
   * @throws ProviderError `not_found` (resource `calendar`) when the calendar is not in the list.
   */
  async getCalendar(accessToken: string, calendarId: string): Promise<CalendarDetails> {
    if (!calendarId) throw new ProviderError("invalid", "getCalendar: calendarId is required");
    let entry;
    try {
      entry = await this.#api.calendarListGet(accessToken, calendarId);
    } catch (err) {
      throw asCalendarMissing(err, calendarId);
    }
    if (entry.deleted) throw calendarMissing(calendarId);
    return {
      id: entry.id,
      summary: entry.summaryOverride ?? entry.summary ?? entry.id,
      primary: !!entry.primary,
      access_role: entry.accessRole,
      time_zone: entry.timeZone ?? null,
    };
  }

  /**
   * Create or update the appointment's event so that retries never duplicate it (A6-A8, Part C #3).
   * The body holds only `summary` (the title), `start` and `end` (`{dateTime, timeZone?}`, sent in UTC),
   * plus `status: "confirmed"` when reviving a deleted event. All writes use `sendUpdates=none`.
   *
   * - With `write.eventId`: PATCH it -> `updated`. A 410, an answer with `status: "cancelled"`, or a
   *   403 on an event that turns out to be cancelled (Google refuses plain writes to deleted events
   *   with 403 `forbidden`, ruby-client#1811) revives it with a PATCH carrying `status: "confirmed"`
   *   -> `restored`.
   * - Without: insert with id {@link eventIdFor}(appointmentId, eventGeneration) -> `created`. A 409
   *   `duplicate` means an earlier attempt (or a deleted event) holds the id: GET it; cancelled ->
   *   revive (`restored`), otherwise PATCH the times (`updated`).
   * - A 404 for the event (PATCH, GET) is told apart from a missing calendar with calendarList.get:
   *   the calendar is there -> the event was purged or moved to another calendar, thrown as
   *   `not_found` with resource `event` (the caller moves to the next generation and writes again);
   *   the calendar is gone -> `not_found` with resource `calendar`. An insert's 404 can only mean the
   *   calendar.
   *
   * @throws ProviderError `invalid` for a non-UUID appointment id, a malformed or empty time range,
   *   or an empty calendar id; `not_found` as above; otherwise as classified by ./errors.ts.
   */
  async upsertEvent(accessToken: string, write: EventWrite): Promise<EventWriteResult> {
    const derivedId = eventIdFor(write.appointmentId, write.eventGeneration ?? 0);
    const times = eventTimes(write);
    const cal = write.calendarId;
    if (!cal) throw new ProviderError("invalid", "upsertEvent: calendarId is required");
    try {
      if (!write.eventId) return await this.#insertOrAdopt(accessToken, cal, derivedId, times);
      return await this.#patchExisting(accessToken, cal, write.eventId, times);
    } catch (err) {
      if (err instanceof EventMissing) throw await this.#whichIsMissing(accessToken, cal, err.eventId);
      throw err;
    }
  }

  /** PATCH an event we wrote before; revive it when it was deleted. */
  async #patchExisting(
    accessToken: string,
    cal: string,
    id: string,
    times: Times,
  ): Promise<EventWriteResult> {
    let patched: GoogleEvent;
    try {
      patched = await this.#api.patchEvent(accessToken, cal, id, times);
    } catch (err) {
      if (!(err instanceof ProviderError)) throw err;
      if (err.kind === "not_found") throw new EventMissing(id);
      if (err.kind === "gone") return await this.#revive(accessToken, cal, id, times);
      // Google refuses a write to a cancelled (deleted) event with 403 `forbidden` (A6): revive it.
      if (err.code === "invalid" && err.details.reason === "forbidden") {
        const current = await this.#getEvent(accessToken, cal, id);
        if (current.status === "cancelled") return await this.#revive(accessToken, cal, id, times);
      }
      throw err;
    }
    if (patched.status === "cancelled") return await this.#revive(accessToken, cal, id, times);
    return result(patched, "updated");
  }

  /** Insert with the derived id; on 409 adopt the event already holding it. */
  async #insertOrAdopt(
    accessToken: string,
    cal: string,
    id: string,
    times: Times,
  ): Promise<EventWriteResult> {
    try {
      return result(await this.#api.insertEvent(accessToken, cal, { id, ...times }), "created");
    } catch (err) {
      if (err instanceof ProviderError && err.kind === "not_found") throw asCalendarMissing(err, cal);
      // 409 `duplicate` (or `conflict`): the derived id is taken, by our own earlier write. A 412
      // `conditionNotMet` is a stale etag, which an insert never sends, so it is not adopted.
      const taken = err instanceof ProviderError && err.code === "conflict" &&
        err.details.reason !== "conditionNotMet";
      if (!taken) throw err;
    }
    let existing: GoogleEvent;
    try {
      existing = await this.#getEvent(accessToken, cal, id);
    } catch (err) {
      if (err instanceof ProviderError && err.kind === "gone") {
        return await this.#revive(accessToken, cal, id, times);
      }
      throw err;
    }
    if (existing.status === "cancelled") return await this.#revive(accessToken, cal, id, times);
    return await this.#patchExisting(accessToken, cal, id, times);
  }

  async #revive(accessToken: string, cal: string, id: string, times: Times): Promise<EventWriteResult> {
    try {
      const event = await this.#api.patchEvent(accessToken, cal, id, { ...times, status: "confirmed" });
      return result(event, "restored");
    } catch (err) {
      if (err instanceof ProviderError && err.kind === "not_found") throw new EventMissing(id);
      throw err;
    }
  }

  /** events.get, with a 404 reported as {@link EventMissing} for {@link upsertEvent} to resolve. */
  async #getEvent(accessToken: string, cal: string, id: string): Promise<GoogleEvent> {
    try {
      return await this.#api.getEvent(accessToken, cal, id);
    } catch (err) {
      if (err instanceof ProviderError && err.kind === "not_found") throw new EventMissing(id);
      throw err;
    }
  }

  /** After an event 404: is the calendar there (the event is missing) or gone (the calendar is)? */
  async #whichIsMissing(accessToken: string, cal: string, eventId: string): Promise<ProviderError> {
    try {
      await this.getCalendar(accessToken, cal);
    } catch (err) {
      if (err instanceof ProviderError) return err;
      throw err;
    }
    return new ProviderError(
      "not_found",
      `Google event ${eventId} is no longer on calendar ${cal} (purged, or moved to another calendar)`,
      { status: 404, reason: "notFound", resource: "event" },
    );
  }

  /**
   * The appointment's live event: the stored id when given, else the id derived from the appointment
   * and generation (Part C #3); null when Google has no such event or it is cancelled (deleted).
   * @throws ProviderError `not_found` (resource `calendar`) when the calendar is gone.
   */
  async findAppointmentEvent(accessToken: string, ref: AppointmentEventRef): Promise<string | null> {
    if (!ref.calendarId) throw new ProviderError("invalid", "findAppointmentEvent: calendarId is required");
    const id = ref.eventId ?? eventIdFor(ref.appointmentId, ref.eventGeneration ?? 0);
    let event: GoogleEvent;
    try {
      event = await this.#getEvent(accessToken, ref.calendarId, id);
    } catch (err) {
      if (err instanceof ProviderError && err.code === "gone") return null;
      if (!(err instanceof EventMissing)) throw err;
      const missing = await this.#whichIsMissing(accessToken, ref.calendarId, id);
      if (missing.details.resource === "event") return null;
      throw missing;
    }
    return event.status === "cancelled" ? null : event.id;
  }

  /**
   * Delete the appointment's event: the stored id when known, else the id derived from the
   * appointment and generation (a create whose answer was lost still left an event under that id).
   */
  async deleteAppointmentEvent(accessToken: string, ref: AppointmentEventRef): Promise<void> {
    const eventId = ref.eventId ?? eventIdFor(ref.appointmentId, ref.eventGeneration ?? 0);
    await this.deleteEvent(accessToken, { calendarId: ref.calendarId, eventId });
  }

  /**
   * Delete an event (`sendUpdates=none`). Already gone counts as success: 404 (unknown) and 410
   * (deleted before) both resolve.
   */
  async deleteEvent(accessToken: string, args: { calendarId: string; eventId: string }): Promise<void> {
    if (!args.calendarId || !args.eventId) {
      throw new ProviderError("invalid", "deleteEvent: calendarId and eventId are required");
    }
    try {
      await this.#api.deleteEvent(accessToken, args.calendarId, args.eventId);
    } catch (err) {
      if (err instanceof ProviderError && (err.kind === "not_found" || err.kind === "gone")) return;
      throw err;
    }
  }
}

/** Internal signal: an events call answered 404; {@link GoogleProvider.upsertEvent} finds out why. */
class EventMissing extends Error {
  constructor(readonly eventId: string) {
    super(`event ${eventId} not found`);
    this.name = "EventMissing";
  }
}

function calendarMissing(calendarId: string, status = 404): ProviderError {
  return new ProviderError(
    "not_found",
    `Google calendar ${calendarId} is not in this account's calendar list (deleted, or no longer shared)`,
    { status, reason: "notFound", resource: "calendar" },
  );
}

/** A 404 of a calendar-level call as "the calendar is missing"; any other error unchanged. */
function asCalendarMissing(err: unknown, calendarId: string): unknown {
  if (err instanceof ProviderError && err.kind === "not_found") return calendarMissing(calendarId);
  return err;
}

function result(event: GoogleEvent, operation: EventWriteResult["operation"]): EventWriteResult {
  return { eventId: event.id, ...(event.etag ? { etag: event.etag } : {}), operation };
}

/** The event body for a write: title and instants (normalised to UTC `Z`), with the display zone. */
function eventTimes(write: EventWrite): Times {
  const { start, end } = eventInstants(write, "upsertEvent");
  const timeZone = displayTimeZone(write.timeZone);
  const zone = timeZone ? { timeZone } : {};
  return {
    summary: write.title,
    start: { dateTime: formatInstant(start), ...zone },
    end: { dateTime: formatInstant(end), ...zone },
  };
}

const IANA_ZONE_NAME = /^[A-Za-z][A-Za-z0-9_+-]*(\/[A-Za-z0-9_+-]+)*$/;

/**
 * The zone to send with an event, or undefined. It only affects how Google displays the event (the
 * instants are sent in UTC), but Google refuses the whole write with 400 "Invalid time zone
 * definition" for a name it does not know (A5), so a zone the host app stored that is not an IANA
 * name known to this runtime is left out rather than failing every sync of that staff member.
 */
export function displayTimeZone(zone: string | null | undefined): string | undefined {
  if (!zone || zone.length > 64 || !IANA_ZONE_NAME.test(zone)) return undefined;
  try {
    new Intl.DateTimeFormat("en-US", { timeZone: zone });
    return zone;
  } catch {
    return undefined;
  }
}
