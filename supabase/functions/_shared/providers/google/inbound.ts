/**
 * Google inbound sync (docs/providers/google.md A9, A10, "Inbound sync"): push channels with
 * events.watch / channels.stop, and changes read with events.list, first over a window, then with the
 * sync token of the last round. Channels cannot be extended: renewal is `replace` (a new channel,
 * then the old one stopped).
 */
import { z } from "zod";
import type { HttpOptions } from "../../http-client/transport.ts";
import { formatInstant, parseInstant } from "../../time-ranges.ts";
import { wallTimeToInstant } from "../../wall-time.ts";
import {
  type ChangesPage,
  type ChangesRequest,
  type ExternalEvent,
  type InboundCalendarCalls,
  ProviderError,
  type PushChannel,
  type WatchRequest,
} from "../types.ts";
import { GoogleCalendarClient } from "./calendar-client.ts";
import type { GoogleConfig } from "./config.ts";
import { appointmentOfEventId } from "./event-id.ts";
import type { GoogleChangedEvent } from "./schemas.ts";

/** Default and longest channel lifetime we ask for: Google's default `params.ttl`, 7 days (A10). */
export const GOOGLE_CHANNEL_MAX_TTL_SECONDS = 604_800;
/** Default events per page; Google allows up to 2500 (A9). */
export const GOOGLE_CHANGES_PAGE_SIZE = 250;
const GOOGLE_MAX_PAGE_SIZE = 2500;

/**
 * The partial response we ask for (Google's `fields` parameter): timing, version and series only. No
 * summary, description, location, attendee address or creator ever reaches us.
 */
export const GOOGLE_CHANGES_FIELDS =
  "nextPageToken,nextSyncToken,timeZone,items(id,etag,status,start,end,transparency,recurringEventId," +
  "attendees(self,responseStatus))";

/**
 * A page cursor: Google's `pageToken` with the request it continues (the same sync token, or the same
 * window), since later pages must repeat the first page's parameters (A9).
 */
const pageCursor = z.object({
  pageToken: z.string().min(1),
  syncToken: z.string().min(1).optional(),
  timeMin: z.string().optional(),
  timeMax: z.string().optional(),
});
type PageCursor = z.infer<typeof pageCursor>;

/** Google Calendar push channels and incremental reads: an `InboundCalendarApi` with renewal `replace`. */
export class GoogleInboundApi implements InboundCalendarCalls {
  readonly renewal = "replace" as const;
  readonly #api: GoogleCalendarClient;

  /**
   * @param config `calendarApiBase`.
   * @param options `fetch` for tests; `timeoutMs` per request.
   * @throws ProviderError `invalid` when the Calendar API base is plain http on a non-loopback host.
   */
  constructor(config: Pick<GoogleConfig, "calendarApiBase">, options: HttpOptions = {}) {
    this.#api = new GoogleCalendarClient(config.calendarApiBase, options);
  }

  /**
   * events.watch (A10): `{id: channelId ?? random UUID, type: "web_hook", address, token: secret,
   * params.ttl: min(ttlSeconds, 7 days)}`. Google answers `sync` on the address at once (possibly
   * before this returns), then `exists` per change.
   * @returns the channel; `expiresAt` from Google's `expiration` (now + ttl when it sends none).
   * @throws ProviderError `invalid` (a non-HTTPS address `push.webhookUrlNotHttps`, a calendar without
   *   push `pushNotSupportedForRequestedResource`, a channel id in use), `not_found`, as classified.
   */
  async watch(accessToken: string, request: WatchRequest): Promise<PushChannel> {
    if (!request.calendarId || !request.address || !request.secret) {
      throw new ProviderError("invalid", "watch: calendarId, address and secret are required");
    }
    const ttl = Math.min(
      request.ttlSeconds ?? GOOGLE_CHANNEL_MAX_TTL_SECONDS,
      GOOGLE_CHANNEL_MAX_TTL_SECONDS,
    );
    if (!Number.isInteger(ttl) || ttl < 1) {
      throw new ProviderError("invalid", "watch: ttlSeconds must be >= 1");
    }
    const asked = Date.now();
    const channel = await this.#api.watchEvents(accessToken, request.calendarId, {
      id: request.channelId ?? crypto.randomUUID(),
      type: "web_hook",
      address: request.address,
      token: request.secret,
      params: { ttl: String(ttl) },
    });
    return {
      channelId: channel.id,
      resourceId: channel.resourceId,
      expiresAt: formatInstant(channel.expiration ?? asked + ttl * 1000),
    };
  }

  /**
   * channels.stop (A10) with the channel id and `resourceId`. An unknown or already stopped channel
   * (404) is success. A few notifications may still arrive afterwards.
   * @throws ProviderError `invalid` without a `resourceId`; as classified otherwise.
   */
  async stop(accessToken: string, channel: Pick<PushChannel, "channelId" | "resourceId">): Promise<void> {
    if (!channel.resourceId) {
      throw new ProviderError("invalid", "stop: a Google channel needs its resourceId");
    }
    try {
      await this.#api.stopChannel(accessToken, channel.channelId, channel.resourceId);
    } catch (err) {
      if (err instanceof ProviderError && err.kind === "not_found") return;
      throw err;
    }
  }

  /**
   * One events.list page (A9), always with `singleEvents=true` (series expanded into occurrences and
   * exceptions; a sync token from such a listing must be used with it again), `showDeleted=true`
   * (cancelled items included), `maxResults` and {@link GOOGLE_CHANGES_FIELDS}. A round starts with
   * `timeMin`/`timeMax` (first sync) or `syncToken` (never both: Google refuses that); its pages repeat
   * the same parameters with `pageToken`, which the page cursor carries.
   * @throws ProviderError `cursor_expired` for 410 `fullSyncRequired` or a page cursor we cannot read;
   *   `invalid` for a first sync without a valid window; as classified otherwise.
   */
  async listChanges(accessToken: string, request: ChangesRequest): Promise<ChangesPage> {
    if (!request.calendarId) throw new ProviderError("invalid", "listChanges: calendarId is required");
    const base: Record<string, string> = {
      singleEvents: "true",
      showDeleted: "true",
      maxResults: String(pageSize(request.pageLimit)),
      fields: GOOGLE_CHANGES_FIELDS,
    };
    let round: Omit<PageCursor, "pageToken">;
    let pageToken: string | undefined;
    if (request.pageCursor) {
      const { pageToken: token, ...rest } = readPageCursor(request.pageCursor);
      round = rest;
      pageToken = token;
    } else if (request.syncCursor) {
      round = { syncToken: request.syncCursor };
    } else {
      round = windowOf(request);
    }
    const page = await this.#api.listEventsPage(accessToken, request.calendarId, {
      ...base,
      ...round,
      pageToken,
    });
    const events = page.items.map((item) => externalEventFromGoogle(item, page.timeZone));
    if (page.nextPageToken) {
      return {
        events,
        nextPageCursor: JSON.stringify({ pageToken: page.nextPageToken, ...round }),
        nextSyncCursor: null,
      };
    }
    if (!page.nextSyncToken) {
      throw new ProviderError("transient", "Google events.list answered a last page without nextSyncToken", {
        reason: "unexpected_response",
      });
    }
    return { events, nextPageCursor: null, nextSyncCursor: page.nextSyncToken };
  }

  /**
   * events.get of one of our events with `fields=summary,status` (A5): its title, nothing else.
   * @returns the title ("" when it has none), or null when the event is deleted (cancelled, 404, 410).
   * @throws ProviderError as classified otherwise.
   */
  async readOwnEventTitle(
    accessToken: string,
    ref: { calendarId: string; eventId: string },
  ): Promise<string | null> {
    try {
      const event = await this.#api.getEventTitle(accessToken, ref.calendarId, ref.eventId);
      return event.status === "cancelled" ? null : event.summary ?? "";
    } catch (err) {
      if (err instanceof ProviderError && (err.kind === "not_found" || err.kind === "gone")) return null;
      throw err;
    }
  }

  /** Google keeps no key apart from the event id: our events are recognised by it (`ourAppointment`). */
  idempotencyKeyFor(): null {
    return null;
  }
}

function pageSize(limit: number | undefined): number {
  if (limit === undefined) return GOOGLE_CHANGES_PAGE_SIZE;
  if (!Number.isInteger(limit) || limit < 1) {
    throw new ProviderError("invalid", "listChanges: pageLimit must be >= 1");
  }
  return Math.min(limit, GOOGLE_MAX_PAGE_SIZE);
}

/** The window of a first sync, normalised to UTC. */
function windowOf(request: ChangesRequest): { timeMin: string; timeMax: string } {
  if (!request.window) throw new ProviderError("invalid", "listChanges: a first sync needs a window");
  try {
    const min = parseInstant(request.window.timeMin);
    const max = parseInstant(request.window.timeMax);
    if (max <= min) throw new RangeError("timeMax must be after timeMin");
    return { timeMin: formatInstant(min), timeMax: formatInstant(max) };
  } catch (err) {
    if (err instanceof RangeError) throw new ProviderError("invalid", `listChanges: ${err.message}`);
    throw err;
  }
}

function readPageCursor(text: string): PageCursor {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    parsed = undefined;
  }
  const cursor = pageCursor.safeParse(parsed);
  // A round is either incremental or windowed; a cursor that is neither was not made here.
  if (!cursor.success || !cursor.data.syncToken === !(cursor.data.timeMin && cursor.data.timeMax)) {
    throw new ProviderError("cursor_expired", "listChanges: the stored Google page cursor is unreadable", {
      reason: "malformed_cursor",
    });
  }
  return cursor.data;
}

/** An RFC 3339 time with its offset (Google's answers carry one, A5). */
const HAS_OFFSET = /(?:[zZ]|[+-]\d{2}:\d{2})$/;

/** The UTC instant of an EventDateTime: `dateTime` as is, `date` at midnight of `dayZone`. */
function instantOf(
  value: NonNullable<GoogleChangedEvent["start"]>,
  dayZone: string,
): { at: string; allDay: boolean } {
  try {
    if (value.dateTime) {
      const ms = HAS_OFFSET.test(value.dateTime)
        ? parseInstant(value.dateTime)
        : wallTimeToInstant(value.dateTime, value.timeZone ?? dayZone);
      return { at: formatInstant(ms), allDay: false };
    }
    if (value.date) {
      return { at: formatInstant(wallTimeToInstant(`${value.date}T00:00:00`, dayZone)), allDay: true };
    }
  } catch (err) {
    if (!(err instanceof RangeError)) throw err;
  }
  throw new ProviderError("transient", "Google events.list answered an event time we cannot read", {
    reason: "unexpected_response",
  });
}

/** The calendar's zone when this runtime knows it, else UTC. */
function knownZone(zone: string | undefined): string {
  if (!zone) return "UTC";
  try {
    new Intl.DateTimeFormat("en-US", { timeZone: zone });
    return zone;
  } catch {
    return "UTC";
  }
}

/**
 * An events.list item as an {@link ExternalEvent}: times as UTC instants (all-day dates at midnight
 * of the calendar's zone, end exclusive), busy unless cancelled, `transparent` or declined by the
 * account itself, and the appointment a derived id names. Nothing else of the item is kept.
 *
 * @param calendarZone the listing's `timeZone` (the calendar's IANA zone); UTC when absent or unknown.
 * @throws ProviderError `transient` (`unexpected_response`) for a live event without readable times.
 */
export function externalEventFromGoogle(item: GoogleChangedEvent, calendarZone?: string): ExternalEvent {
  const cancelled = item.status === "cancelled";
  const zone = knownZone(calendarZone);
  let start: string | null = null;
  let end: string | null = null;
  let allDay = false;
  if (item.start && item.end && (item.start.dateTime || item.start.date)) {
    const s = instantOf(item.start, zone);
    start = s.at;
    end = instantOf(item.end, zone).at;
    allDay = s.allDay;
  } else if (!cancelled) {
    throw new ProviderError("transient", `Google events.list answered event ${item.id} without times`, {
      reason: "unexpected_response",
    });
  }
  const declined = item.attendees?.some((a) => a.self && a.responseStatus === "declined") ?? false;
  return {
    id: item.id,
    status: cancelled ? "cancelled" : "confirmed",
    start,
    end,
    allDay,
    busy: !cancelled && item.transparency !== "transparent" && !declined,
    version: item.etag ?? null,
    seriesId: item.recurringEventId ?? null,
    ourAppointment: appointmentOfEventId(item.id),
    idempotencyKey: null,
  };
}
