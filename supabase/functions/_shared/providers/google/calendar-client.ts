/**
 * A thin fetch client for the Calendar v3 calls we make (docs/decisions.md decision 6;
 * docs/providers/google.md A3, A4, A6-A8). One request per method, a per-request timeout, responses
 * validated with zod, and every failure classified once by ./errors.ts.
 */
import type { z } from "zod";
import { ProviderError } from "../../errors/domain-error.ts";
import { requestJson } from "../../http-client/json-request.ts";
import { DEFAULT_TIMEOUT_MS, type HttpOptions, requireSecureUrl } from "../../http-client/transport.ts";
import { classifyGoogleResponse } from "./errors.ts";
import {
  type CalendarListEntry,
  calendarListEntry,
  type CalendarListPage,
  calendarListPage,
  type FreeBusyResponse,
  freeBusyResponse,
  type GoogleChannel,
  googleChannel,
  type GoogleEvent,
  googleEvent,
  type GoogleEventsPage,
  googleEventsPage,
  type GoogleEventTitle,
  googleEventTitle,
} from "./schemas.ts";

/** calendarList.list page size: the documented maximum (A3). */
export const CALENDAR_LIST_PAGE_SIZE = 250;

/** The writable part of an event we send: title, instants, and `status` when reviving a deleted event. */
export interface GoogleEventBody {
  id?: string;
  summary?: string;
  start?: { dateTime: string; timeZone?: string };
  end?: { dateTime: string; timeZone?: string };
  status?: "confirmed";
}

/** A freeBusy.query request (A4). Instants are RFC 3339 with offset. */
export interface FreeBusyRequest {
  timeMin: string;
  timeMax: string;
  items: { id: string }[];
}

type Method = "GET" | "POST" | "PATCH" | "DELETE";

/** Calendar v3 over fetch. Every method throws {@link ProviderError} on failure. */
export class GoogleCalendarClient {
  readonly #base: string;
  readonly #fetch: typeof fetch;
  readonly #timeoutMs: number;

  /**
   * @param baseUrl Calendar API base, e.g. `https://www.googleapis.com/calendar/v3`. Must be https,
   *   except on a loopback host (the local sandbox).
   * @throws ProviderError `invalid` for a plain-http base on a non-loopback host.
   */
  constructor(baseUrl: string, options: HttpOptions = {}) {
    requireSecureUrl(baseUrl, "GOOGLE_CALENDAR_API_BASE");
    this.#base = baseUrl.replace(/\/$/, "");
    this.#fetch = options.fetch ?? fetch;
    this.#timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  }

  /** The configured per-request timeout in milliseconds. */
  get timeoutMs(): number {
    return this.#timeoutMs;
  }

  async #request<T>(
    operation: string,
    accessToken: string,
    method: Method,
    path: string,
    opts: { query?: Record<string, string | undefined>; body?: unknown; schema?: z.ZodType<T> },
  ): Promise<T> {
    const url = new URL(this.#base + path);
    for (const [k, v] of Object.entries(opts.query ?? {})) if (v !== undefined) url.searchParams.set(k, v);
    const { status, headers, body: json } = await requestJson(
      { method, url, headers: { authorization: `Bearer ${accessToken}` }, body: opts.body },
      `Google ${operation}`,
      { fetch: this.#fetch, timeoutMs: this.#timeoutMs },
    );
    if (status < 200 || status > 299) throw classifyGoogleResponse(status, json, headers, operation);
    if (!opts.schema) return undefined as T;
    const parsed = opts.schema.safeParse(json);
    if (!parsed.success) {
      // A 2xx that is not the documented shape: a proxy page or a partial answer. Retrying is the cure.
      const where = parsed.error.issues[0]?.path.join(".") || "body";
      throw new ProviderError("transient", `Google ${operation} answered an unexpected body (at ${where})`, {
        status,
        reason: "unexpected_response",
      });
    }
    return parsed.data;
  }

  /** One page of `GET /users/me/calendarList` (maxResults 250). */
  calendarListPage(accessToken: string, pageToken?: string): Promise<CalendarListPage> {
    return this.#request("calendarList.list", accessToken, "GET", "/users/me/calendarList", {
      query: { maxResults: String(CALENDAR_LIST_PAGE_SIZE), pageToken },
      schema: calendarListPage,
    });
  }

  /**
   * `GET /users/me/calendarList/{calendarId}`: this user's entry for one calendar, with its
   * `accessRole` and `timeZone` (A3). A calendar not in the user's list (deleted, unshared) is a 404,
   * thrown as `not_found`.
   */
  calendarListGet(accessToken: string, calendarId: string): Promise<CalendarListEntry> {
    return this.#request(
      "calendarList.get",
      accessToken,
      "GET",
      `/users/me/calendarList/${encodeURIComponent(calendarId)}`,
      { schema: calendarListEntry },
    );
  }

  /** `POST /freeBusy` for one window and at most 50 calendars, in UTC. Per-calendar errors are returned, not thrown. */
  freeBusy(accessToken: string, req: FreeBusyRequest): Promise<FreeBusyResponse> {
    return this.#request("freeBusy.query", accessToken, "POST", "/freeBusy", {
      body: { timeMin: req.timeMin, timeMax: req.timeMax, timeZone: "UTC", items: req.items },
      schema: freeBusyResponse,
    });
  }

  /** `POST /calendars/{calendarId}/events?sendUpdates=none` (200 with the event; 409 for an existing or deleted id). */
  insertEvent(accessToken: string, calendarId: string, body: GoogleEventBody): Promise<GoogleEvent> {
    return this.#request("events.insert", accessToken, "POST", `${eventsPath(calendarId)}`, {
      query: { sendUpdates: "none" },
      body,
      schema: googleEvent,
    });
  }

  /** `GET /calendars/{calendarId}/events/{eventId}`; a deleted event answers with `status: "cancelled"`. */
  getEvent(accessToken: string, calendarId: string, eventId: string): Promise<GoogleEvent> {
    return this.#request("events.get", accessToken, "GET", eventPath(calendarId, eventId), {
      schema: googleEvent,
    });
  }

  /**
   * `GET /calendars/{calendarId}/events/{eventId}?fields=summary,status`: an event's title and status
   * only (partial response, A5). 404 and 410 are thrown as classified.
   */
  getEventTitle(accessToken: string, calendarId: string, eventId: string): Promise<GoogleEventTitle> {
    return this.#request("events.get", accessToken, "GET", eventPath(calendarId, eventId), {
      query: { fields: "summary,status" },
      schema: googleEventTitle,
    });
  }

  /** `PATCH /calendars/{calendarId}/events/{eventId}?sendUpdates=none` (patch semantics; 200 with the event). */
  patchEvent(
    accessToken: string,
    calendarId: string,
    eventId: string,
    body: GoogleEventBody,
  ): Promise<GoogleEvent> {
    return this.#request("events.patch", accessToken, "PATCH", eventPath(calendarId, eventId), {
      query: { sendUpdates: "none" },
      body,
      schema: googleEvent,
    });
  }

  /**
   * One page of `GET /calendars/{calendarId}/events` (A9) with the given query (`syncToken` or
   * `timeMin`/`timeMax`, `pageToken`, `singleEvents`, `showDeleted`, `maxResults`, `fields`).
   */
  listEventsPage(
    accessToken: string,
    calendarId: string,
    query: Record<string, string | undefined>,
  ): Promise<GoogleEventsPage> {
    return this.#request("events.list", accessToken, "GET", eventsPath(calendarId), {
      query,
      schema: googleEventsPage,
    });
  }

  /** `POST /calendars/{calendarId}/events/watch` (A10): a push channel on the calendar's events. */
  watchEvents(accessToken: string, calendarId: string, body: WatchBody): Promise<GoogleChannel> {
    return this.#request("events.watch", accessToken, "POST", `${eventsPath(calendarId)}/watch`, {
      body,
      schema: googleChannel,
    });
  }

  /** `POST /channels/stop` `{id, resourceId}` (A10): 204; an unknown or stopped channel is 404. */
  async stopChannel(accessToken: string, id: string, resourceId: string): Promise<void> {
    await this.#request<undefined>("channels.stop", accessToken, "POST", "/channels/stop", {
      body: { id, resourceId },
    });
  }

  /** `DELETE /calendars/{calendarId}/events/{eventId}?sendUpdates=none` (204; 410 when already deleted, 404 unknown). */
  async deleteEvent(accessToken: string, calendarId: string, eventId: string): Promise<void> {
    await this.#request<undefined>("events.delete", accessToken, "DELETE", eventPath(calendarId, eventId), {
      query: { sendUpdates: "none" },
    });
  }
}

/** An events.watch request body (A10). `params.ttl` is in seconds, as a string. */
export interface WatchBody {
  id: string;
  type: "web_hook";
  address: string;
  token: string;
  params: { ttl: string };
}

/** Calendar ids contain `#` and `@` (e.g. `en.usa#holiday@group.v.calendar.google.com`): encode them. */
function eventsPath(calendarId: string): string {
  return `/calendars/${encodeURIComponent(calendarId)}/events`;
}

function eventPath(calendarId: string, eventId: string): string {
  return `${eventsPath(calendarId)}/${encodeURIComponent(eventId)}`;
}
