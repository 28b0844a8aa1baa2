/**
 * Microsoft inbound sync (docs/providers/microsoft.md B8, B9, "Inbound sync"): Graph subscriptions on a
 * calendar's events (created, renewed in place with PATCH, deleted), and changes read with
 * `calendarView/delta`, first over a window, then from the round's `@odata.deltaLink`.
 */
import type { HttpOptions } from "../../http-client/transport.ts";
import { formatInstant, parseInstant } from "../../time-ranges.ts";
import {
  type AppointmentEventRef,
  type ChangesPage,
  type ChangesRequest,
  type ExternalEvent,
  type InboundCalendarCalls,
  ProviderError,
  type PushChannel,
  type WatchRequest,
} from "../types.ts";
import { CALENDAR_VIEW_PREFER, graphEventRange, isBusyStatus } from "./busy.ts";
import { DEFAULT_CALENDAR_ALIAS } from "./calendar-api.ts";
import { nextPageUrl } from "./calendars.ts";
import { transactionIdFor } from "./event-body.ts";
import { GraphClient } from "./graph-client.ts";
import type { MicrosoftConfig } from "./oauth-config.ts";
import { type GraphDeltaItem, graphDeltaPage, graphEventTitle, graphSubscription } from "./schemas.ts";

/** Longest lifetime of a subscription to Outlook events without resource data: 10 080 minutes (B9.2). */
export const GRAPH_SUBSCRIPTION_MAX_MINUTES = 10_080;
/**
 * The older documented maximum some tenants still enforce (B9.2): tried when Graph refuses an
 * expiry and names no limit of its own.
 */
export const GRAPH_SUBSCRIPTION_FALLBACK_MINUTES = 4_230;
/** Kept below a maximum, so that our clock running ahead of Graph's never asks for a minute too many. */
const EXPIRY_MARGIN_MINUTES = 5;
/** The change types we subscribe to: every change to the calendar's events. */
export const SUBSCRIPTION_CHANGE_TYPES = "created,updated,deleted";
/** Default events per delta page (`Prefer: odata.maxpagesize`). */
export const GRAPH_CHANGES_PAGE_SIZE = 250;
const GRAPH_MAX_PAGE_SIZE = 1000;

/**
 * The lifecycle notification URL of a subscription whose notifications go to `address`: the same
 * function, path `/lifecycle` appended (`.../calendar-webhook/microsoft/lifecycle`). Graph validates
 * both URLs at creation and on every renewal; the query string of either is kept.
 */
export function lifecycleNotificationUrl(address: string): string {
  const url = new URL(address);
  url.pathname = `${url.pathname.replace(/\/+$/, "")}/lifecycle`;
  return url.href;
}

/** The resource a subscription watches: `me/events` for the default calendar, else `me/calendars/{id}/events`. */
export function subscriptionResource(calendarId: string): string {
  if (!calendarId) throw new ProviderError("invalid", "a calendar id is required");
  return calendarId === DEFAULT_CALENDAR_ALIAS ? "me/events" : `me/calendars/${calendarId}/events`;
}

/**
 * The expiry to ask for: `ttlSeconds` from `nowMs`, at most `maxMinutes` less a small margin.
 * @returns ISO 8601 UTC.
 */
export function subscriptionExpiry(nowMs: number, maxMinutes: number, ttlSeconds?: number): string {
  const capMs = (maxMinutes - EXPIRY_MARGIN_MINUTES) * 60_000;
  const ms = ttlSeconds === undefined ? capMs : Math.min(ttlSeconds * 1000, capMs);
  if (!(ms > 0)) throw new ProviderError("invalid", "subscription: ttlSeconds must be positive");
  return formatInstant(nowMs + ms);
}

/**
 * When Graph refused an expiry as too far ahead (400 `ExtensionError` "Subscription expiration can only
 * be N minutes in the future.", other codes seen too, B9.2): the limit to try instead, below `asked`.
 * @returns minutes, or undefined when the error is not about the expiry or names no lower limit.
 */
export function shorterExpiryLimit(err: unknown, asked: number): number | undefined {
  if (!(err instanceof ProviderError) || err.kind !== "invalid" || err.details.status !== 400) {
    return undefined;
  }
  if (!/expiration/i.test(err.message)) return undefined;
  const named = /(\d+)\s*minutes/i.exec(err.message);
  const limit = named ? Number(named[1]) : GRAPH_SUBSCRIPTION_FALLBACK_MINUTES;
  return limit < asked && limit > EXPIRY_MARGIN_MINUTES ? limit : undefined;
}

/**
 * A delta item as an {@link ExternalEvent}, or null for a series master (delta lists occurrences and
 * exceptions; the master would count the first occurrence twice). `@removed` and cancelled events are
 * `cancelled`; busy as busy.ts decides (`free` and `workingElsewhere` are free, cancelled never busy);
 * all-day events on the staff member's days; `version` as the write path reports it (`@odata.etag`,
 * else `changeKey`), so an echo of our own write is recognised; `transactionId` as the idempotency key.
 * Nothing else of the item is kept.
 *
 * @param staffZone the staff member's IANA zone (all-day placement), else UTC.
 * @throws ProviderError `invalid` for a live event without times or with times we cannot place.
 */
export function externalEventFromGraph(
  item: GraphDeltaItem,
  staffZone?: string | null,
): ExternalEvent | null {
  if (item["@removed"]) {
    return {
      id: item.id,
      status: "cancelled",
      start: null,
      end: null,
      allDay: false,
      busy: false,
      version: null,
      seriesId: null,
      ourAppointment: null,
      idempotencyKey: null,
    };
  }
  if (item.type === "seriesMaster") return null;
  const range = graphEventRange(item, staffZone);
  const cancelled = item.isCancelled === true;
  return {
    id: item.id,
    status: cancelled ? "cancelled" : "confirmed",
    start: formatInstant(range.start),
    end: formatInstant(range.end),
    allDay: item.isAllDay === true,
    busy: !cancelled && isBusyStatus(item.showAs),
    version: item["@odata.etag"] ?? item.changeKey ?? null,
    seriesId: item.seriesMasterId ?? null,
    ourAppointment: null,
    idempotencyKey: item.transactionId ?? null,
  };
}

/** Graph subscriptions and calendarView delta: an `InboundCalendarApi` with renewal `patch`. */
export class MicrosoftInboundApi implements InboundCalendarCalls {
  readonly renewal = "patch" as const;
  readonly #graph: GraphClient;

  /**
   * @param config `graphApiBase`.
   * @param options `fetch` for tests; `timeoutMs` per request.
   * @throws ProviderError `invalid` when the Graph base is plain http on a non-loopback host.
   */
  constructor(config: Pick<MicrosoftConfig, "graphApiBase">, options: HttpOptions = {}) {
    this.#graph = new GraphClient(config.graphApiBase, options);
  }

  /**
   * `POST /subscriptions` (B9.1): `changeType` {@link SUBSCRIPTION_CHANGE_TYPES}, `resource`
   * {@link subscriptionResource}, `notificationUrl` = `address`, `lifecycleNotificationUrl` =
   * {@link lifecycleNotificationUrl}, `clientState` = `secret`, `expirationDateTime` at most 10 080
   * minutes ahead (once more with the limit Graph names, or 4 230, when it refuses that). Graph
   * validates both URLs before answering (`validationToken`, echoed as text/plain within 10 s).
   * `request.channelId` is ignored: Graph chooses the subscription id.
   * @throws ProviderError `invalid` for a failed validation or a refused request; as classified.
   */
  async watch(accessToken: string, request: WatchRequest): Promise<PushChannel> {
    if (!request.address || !request.secret) {
      throw new ProviderError("invalid", "watch: address and secret are required");
    }
    if (request.secret.length > 128) {
      throw new ProviderError("invalid", "watch: Graph's clientState is at most 128 characters");
    }
    const body = {
      changeType: SUBSCRIPTION_CHANGE_TYPES,
      notificationUrl: request.address,
      lifecycleNotificationUrl: lifecycleNotificationUrl(request.address),
      resource: subscriptionResource(request.calendarId),
      clientState: request.secret,
    };
    const created = await this.#withExpiry(request.ttlSeconds, async (expirationDateTime) => {
      const answer = await this.#graph.call(
        accessToken,
        "POST",
        this.#graph.url("/subscriptions"),
        "subscriptions.create",
        {
          body: { ...body, expirationDateTime },
          resource: "calendar",
        },
      );
      return parseSubscription(answer.body, "subscriptions.create");
    });
    return { channelId: created.id, resourceId: null, expiresAt: created.expiresAt };
  }

  /**
   * `PATCH /subscriptions/{id}` with a new `expirationDateTime` (B9.6), as {@link watch} computes it;
   * it also reauthorizes the subscription (`reauthorizationRequired`, B9.5). Graph validates the
   * notification URL again.
   * @returns the new expiry, ISO 8601 UTC.
   * @throws ProviderError `gone` (reason `subscription_not_found`) when Graph no longer has it (expired
   *   subscriptions are deleted, or `subscriptionRemoved`): create a new one and resync.
   */
  async renew(
    accessToken: string,
    channel: Pick<PushChannel, "channelId">,
    ttlSeconds?: number,
  ): Promise<string> {
    const url = this.#graph.url(`/subscriptions/${encodeURIComponent(channel.channelId)}`);
    try {
      const renewed = await this.#withExpiry(ttlSeconds, async (expirationDateTime) => {
        const answer = await this.#graph.call(accessToken, "PATCH", url, "subscriptions.update", {
          body: { expirationDateTime },
        });
        return parseSubscription(answer.body, "subscriptions.update");
      });
      return renewed.expiresAt;
    } catch (err) {
      if (err instanceof ProviderError && err.kind === "not_found") {
        throw new ProviderError(
          "gone",
          `Microsoft Graph subscription ${channel.channelId} no longer exists`,
          {
            status: 404,
            reason: "subscription_not_found",
          },
        );
      }
      throw err;
    }
  }

  /** `DELETE /subscriptions/{id}` (B9.6); one Graph no longer has (404) is success. */
  async stop(accessToken: string, channel: Pick<PushChannel, "channelId" | "resourceId">): Promise<void> {
    try {
      await this.#graph.call(
        accessToken,
        "DELETE",
        this.#graph.url(`/subscriptions/${encodeURIComponent(channel.channelId)}`),
        "subscriptions.delete",
      );
    } catch (err) {
      if (err instanceof ProviderError && err.kind === "not_found") return;
      throw err;
    }
  }

  /**
   * One `calendarView/delta` page (B8): the page cursor (`@odata.nextLink`) or the sync cursor
   * (`@odata.deltaLink`) called verbatim (both kept under the Graph base: they carry the token), else a
   * first call on `/me/calendar/calendarView/delta` (default calendar) or
   * `/me/calendars/{id}/calendarView/delta` with `startDateTime`/`endDateTime`. Every call sends
   * `Prefer: odata.maxpagesize=N, outlook.timezone="UTC"`. Delta takes no `$select`: Graph sends whole
   * events and {@link externalEventFromGraph} keeps only the timing. Occurrences and exceptions of
   * series come expanded; a page may be empty and still link on.
   * @throws ProviderError `cursor_expired` for 410 `SyncStateNotFound`; `invalid` for a first call
   *   without a valid window or a link outside the Graph base; as classified otherwise.
   */
  async listChanges(accessToken: string, request: ChangesRequest): Promise<ChangesPage> {
    const link = request.pageCursor ?? request.syncCursor;
    const url = link ? nextPageUrl(link, this.#graph.base)! : this.#graph.url(firstDeltaPath(request));
    const answer = await this.#graph.call(accessToken, "GET", url, "calendarView.delta", {
      prefer: `odata.maxpagesize=${pageSize(request.pageLimit)}, ${CALENDAR_VIEW_PREFER}`,
      resource: "calendar",
    });
    const parsed = graphDeltaPage.safeParse(answer.body);
    const next = parsed.success ? parsed.data["@odata.nextLink"] : undefined;
    const delta = parsed.success ? parsed.data["@odata.deltaLink"] : undefined;
    if (!parsed.success || !next === !delta) {
      throw new ProviderError("invalid", "Microsoft Graph calendarView.delta answered an unexpected body", {
        reason: "malformed_response",
      });
    }
    // Refuse a link we would not follow now, rather than store it and fail on the next run.
    if (next) nextPageUrl(next, this.#graph.base);
    if (delta) nextPageUrl(delta, this.#graph.base);
    const events: ExternalEvent[] = [];
    for (const item of parsed.data.value) {
      const event = externalEventFromGraph(item, request.timeZone);
      if (event) events.push(event);
    }
    return { events, nextPageCursor: next ?? null, nextSyncCursor: delta ?? null };
  }

  /**
   * `GET /me/events/{id}?$select=subject,isCancelled` (B7) of one of our events: its title, nothing
   * else. Graph event ids are unique to the mailbox, so `calendarId` is not needed.
   * @returns the subject ("" when it has none), or null when the event is gone (404 / 410, cancelled).
   * @throws ProviderError as classified otherwise; `invalid` for an unexpected body.
   */
  async readOwnEventTitle(
    accessToken: string,
    ref: { calendarId: string; eventId: string },
  ): Promise<string | null> {
    const url = this.#graph.url(`/me/events/${encodeURIComponent(ref.eventId)}`);
    url.searchParams.set("$select", "subject,isCancelled");
    let body: unknown;
    try {
      body = (await this.#graph.call(accessToken, "GET", url, "events.get", { resource: "event" })).body;
    } catch (err) {
      if (err instanceof ProviderError && (err.kind === "not_found" || err.kind === "gone")) return null;
      throw err;
    }
    const parsed = graphEventTitle.safeParse(body);
    if (!parsed.success) {
      throw new ProviderError("invalid", "Microsoft Graph events.get answered an unexpected body", {
        reason: "malformed_response",
      });
    }
    return parsed.data.isCancelled ? null : parsed.data.subject ?? "";
  }

  /** Our create's `transactionId` for the appointment on this calendar (./event-body.ts). */
  idempotencyKeyFor(
    ref: Required<Pick<AppointmentEventRef, "calendarId" | "appointmentId">> & { eventGeneration?: number },
  ): string {
    return transactionIdFor(ref.appointmentId, ref.eventGeneration ?? 0, ref.calendarId);
  }

  /** Run `attempt` with the longest expiry allowed; once more with a shorter one when Graph refuses it. */
  async #withExpiry<T>(ttlSeconds: number | undefined, attempt: (expiry: string) => Promise<T>): Promise<T> {
    try {
      return await attempt(subscriptionExpiry(Date.now(), GRAPH_SUBSCRIPTION_MAX_MINUTES, ttlSeconds));
    } catch (err) {
      const limit = shorterExpiryLimit(err, GRAPH_SUBSCRIPTION_MAX_MINUTES);
      if (limit === undefined) throw err;
      return await attempt(subscriptionExpiry(Date.now(), limit, ttlSeconds));
    }
  }
}

function pageSize(limit: number | undefined): number {
  if (limit === undefined) return GRAPH_CHANGES_PAGE_SIZE;
  if (!Number.isInteger(limit) || limit < 1) {
    throw new ProviderError("invalid", "listChanges: pageLimit must be >= 1");
  }
  return Math.min(limit, GRAPH_MAX_PAGE_SIZE);
}

/** The first call of a round: the calendar's delta with the window in UTC. */
function firstDeltaPath(request: ChangesRequest): string {
  if (!request.calendarId) throw new ProviderError("invalid", "listChanges: calendarId is required");
  if (!request.window) throw new ProviderError("invalid", "listChanges: a first sync needs a window");
  let min: number;
  let max: number;
  try {
    min = parseInstant(request.window.timeMin);
    max = parseInstant(request.window.timeMax);
  } catch (err) {
    if (err instanceof RangeError) throw new ProviderError("invalid", `listChanges: ${err.message}`);
    throw err;
  }
  if (max <= min) throw new ProviderError("invalid", "listChanges: timeMax must be after timeMin");
  const calendar = request.calendarId === DEFAULT_CALENDAR_ALIAS
    ? "/me/calendar"
    : `/me/calendars/${encodeURIComponent(request.calendarId)}`;
  const query = new URLSearchParams({ startDateTime: formatInstant(min), endDateTime: formatInstant(max) });
  return `${calendar}/calendarView/delta?${query}`;
}

/** A subscription answer's id and expiry (normalised to ISO 8601 UTC). */
function parseSubscription(body: unknown, operation: string): { id: string; expiresAt: string } {
  const parsed = graphSubscription.safeParse(body);
  let expiresAt: string | undefined;
  if (parsed.success) {
    try {
      expiresAt = formatInstant(parseInstant(parsed.data.expirationDateTime));
    } catch (err) {
      if (!(err instanceof RangeError)) throw err;
    }
  }
  if (!parsed.success || !expiresAt) {
    throw new ProviderError("invalid", `Microsoft Graph ${operation} answered an unexpected body`, {
      reason: "malformed_response",
    });
  }
  return { id: parsed.data.id, expiresAt };
}
