/**
 * The interface every calendar provider implements, split by concern: the OAuth client
 * ({@link ProviderOAuthClient}), the calendar API ({@link CalendarApi}) and optional capabilities
 * ({@link ProviderCapabilities}). Handlers and the sync engine only talk to these, through
 * `providerFor` (./registry.ts); provider quirks stay in the provider module.
 */
import type { ProviderId } from "./registry.ts";

export type { ProviderId } from "./registry.ts";

export { ProviderError } from "../errors/domain-error.ts";
export type { ErrorDetails, ProviderErrorKind } from "../errors/domain-error.ts";

/** Tokens from a code exchange or refresh. `expiresAt` is absolute. */
export interface TokenSet {
  accessToken: string;
  /** Present on first offline consent (Google) and on every refresh (Microsoft rotation). */
  refreshToken?: string;
  expiresAt: Date;
  /** Scopes actually granted (may be a subset of those requested). */
  scopes: string[];
  /**
   * The connected account's email, lowercased, from a verified ID token whose `email_verified` is
   * true (code exchange only). Absent when the provider did not vouch for an email.
   */
  accountEmail?: string;
  /** The account's stable id at the provider (ID token `sub`), from a verified ID token. */
  accountSubject?: string;
}

/** A calendar the user can pick; the shape `calendar-list-calendars` answers. */
export interface CalendarSummary {
  id: string;
  summary: string;
  primary: boolean;
  /** Google calendarList accessRole: freeBusyReader | reader | writer | owner. */
  access_role: string;
}

/** One calendar as the connected account sees it now, read live from the provider. */
export interface CalendarDetails extends CalendarSummary {
  /** IANA zone of the calendar, when the provider reports one. */
  time_zone: string | null;
}

/** Access roles that may write events (Google calendarList accessRole). */
export const WRITABLE_ACCESS_ROLES: readonly string[] = Object.freeze(["owner", "writer"]);

/** A half-open busy interval, ISO 8601 UTC strings (`2026-01-05T09:00:00Z`). */
export interface BusyInterval {
  start: string;
  end: string;
}

/** The minimal event we write: start, end and a fixed title; no patient data, ever. */
export interface EventWrite {
  calendarId: string;
  /** The appointment id the event represents; providers derive their idempotency key from it. */
  appointmentId: string;
  /** Provider event id from an earlier successful write, when known. */
  eventId?: string | null;
  /**
   * The sync row's event generation (0 at first): which derived id a create uses. Raised by the sync
   * engine when the event vanished from the calendar, so the re-create gets a fresh, still idempotent id.
   */
  eventGeneration?: number;
  /** Instant, ISO 8601 with offset. */
  start: string;
  end: string;
  title: string;
  /** IANA zone for display in the calendar (e.g. "America/New_York"); optional. */
  timeZone?: string | null;
}

export interface EventWriteResult {
  eventId: string;
  etag?: string;
  /** Which provider call made the result: create, update (patch) or restore (a deleted id revived). */
  operation: "created" | "updated" | "restored";
}

/** Parameters for the consent URL. */
export interface AuthorizationRequest {
  state: string;
  codeChallenge: string;
  /** OpenID Connect `nonce`, echoed in the ID token; the code exchange checks it. */
  nonce: string;
  loginHint?: string;
}

/** What a code exchange needs: the callback URL as received, and the flow's PKCE verifier, state and nonce. */
export interface CodeExchange {
  /** The full callback URL the provider redirected to (`code`, `state`, `iss`, ...). */
  callbackUrl: URL;
  codeVerifier: string;
  state: string;
  nonce: string;
}

/** The OAuth half of a provider. Network methods throw {@link ProviderError} on provider failure. */
export interface ProviderOAuthClient {
  /** Scopes the grant must include; a consent that unticked one is refused with a clear reason. */
  readonly requiredScopes: readonly string[];
  /** The consent page URL (PKCE S256, offline access, configured prompt). */
  authorizationUrl(req: AuthorizationRequest): URL;
  /**
   * Validate the authorization response (state, RFC 9207 `iss`) and exchange its code; the ID token
   * is verified and names the account (`accountEmail`, `accountSubject`).
   */
  exchangeCode(args: CodeExchange): Promise<TokenSet>;
  /**
   * RFC 9207: whether the authorization response's `iss` parameter is acceptable: equal to the
   * configured issuer, or absent where the configuration does not require it. Checked for error
   * responses too, so another server's `error` is never shown as this provider's.
   */
  issuerMatches(callbackUrl: URL): boolean;
  /**
   * Refresh. A revoked or expired grant throws kind `auth` (OAuth `invalid_grant`). A rotating
   * provider returns the new `refreshToken`, which the caller must store.
   */
  refresh(refreshToken: string): Promise<TokenSet>;
  /** Revoke a token at the provider; a token that is already invalid is not an error. */
  revoke(token: string): Promise<void>;
  /** The required scopes no granted scope satisfies (a broader scope satisfies a narrower one). */
  missingScopes(granted: string[]): string[];
}

/** Which appointment's event, on which calendar: what a provider needs to find it without a stored id. */
export interface AppointmentEventRef {
  calendarId: string;
  /** The appointment id (a UUID) the event represents. */
  appointmentId: string;
  /** Provider event id from an earlier successful write, when known; found from the appointment otherwise. */
  eventId?: string | null;
  /** The sync row's event generation (see {@link EventWrite.eventGeneration}). */
  eventGeneration?: number;
}

/** The calendar half of a provider. All methods throw {@link ProviderError} on provider failure. */
export interface CalendarApi {
  listCalendars(accessToken: string): Promise<CalendarSummary[]>;
  /**
   * One calendar of the account's list with its current access role, read live.
   * @throws ProviderError `not_found` (resource `calendar`) when it is not in the account's list.
   */
  getCalendar(accessToken: string, calendarId: string): Promise<CalendarDetails>;
  /**
   * Busy intervals of the calendars between timeMin and timeMax (ISO 8601 with offset), merged and
   * sorted, chunking the range into windows the provider accepts. A per-calendar error throws;
   * an unknown calendar is never reported as free. `timeZone` is the staff member's IANA zone, for a
   * provider that must place all-day events on days itself (Microsoft); Google's freeBusy does that
   * in the calendar's own zone and ignores it.
   */
  busy(
    accessToken: string,
    args: { calendarIds: string[]; timeMin: string; timeMax: string; timeZone?: string | null },
  ): Promise<BusyInterval[]>;
  /**
   * Create or update the appointment's event idempotently (retries never duplicate): the provider
   * finds the appointment's event itself (Google: an id derived from the appointment; a provider
   * that cannot take a client-chosen id uses its own idempotency key).
   * @throws ProviderError `not_found` with `details.resource` `event` when the event vanished from a
   *   calendar that still exists (purged, moved away): write again with the next `eventGeneration`;
   *   `not_found` with resource `calendar` when the calendar itself is gone.
   */
  upsertEvent(accessToken: string, write: EventWrite): Promise<EventWriteResult>;
  /**
   * The id of the appointment's live event on the calendar, or null when there is none (never
   * written, deleted, or purged).
   * @throws ProviderError `not_found` (resource `calendar`) when the calendar is gone.
   */
  findAppointmentEvent(accessToken: string, ref: AppointmentEventRef): Promise<string | null>;
  /**
   * Delete the appointment's event: the stored id when known, else the one the provider finds for
   * the appointment. Nothing to delete (never written, already gone) is success.
   */
  deleteAppointmentEvent(accessToken: string, ref: AppointmentEventRef): Promise<void>;
  /** Delete an event by id; "already gone" (404/410) is success. */
  deleteEvent(accessToken: string, args: { calendarId: string; eventId: string }): Promise<void>;
}

/**
 * An event as inbound sync sees it: when it blocks time, and whether it is one of ours. Deliberately
 * nothing else: no title, description, attendees or location ever leave the provider module (they are
 * not even requested where the API allows: Google `fields`, Graph `$select`).
 */
export interface ExternalEvent {
  /** The provider's event id (a recurring series' occurrences each have their own). */
  id: string;
  /** `cancelled`: deleted, declined by its organizer, or (Graph) removed from the synced window. */
  status: "confirmed" | "cancelled";
  /**
   * Start and end, ISO 8601 UTC instants (`2026-03-10T09:00:00Z`), half-open. All-day events are
   * placed on whole days of a zone (Google: the calendar's own; Microsoft: the staff member's, UTC
   * when unknown). Null only for a cancelled event the provider reports by id alone.
   */
  start: string | null;
  end: string | null;
  allDay: boolean;
  /** Whether it blocks time: not free/transparent (Graph `free`, `workingElsewhere`), never when cancelled. */
  busy: boolean;
  /** The version the provider gives each change (Google `etag`, Graph `changeKey`): recognises echoes of our writes. */
  version: string | null;
  /** The recurring series an occurrence or exception belongs to (Google `recurringEventId`, Graph `seriesMasterId`). */
  seriesId: string | null;
  /**
   * The appointment the event's own id names (Google: an id derived from the appointment, ./google/event-id.ts),
   * with its event generation; null when the id names none (always on Microsoft, whose ids are Graph's).
   * A provider-made id of the same shape can decode too: confirm against the appointment's sync row.
   */
  ourAppointment: { appointmentId: string; eventGeneration: number } | null;
  /**
   * The idempotency key the event was created with, when the provider keeps one apart from its id
   * (Graph `transactionId`), else null. Compare with {@link InboundCalendarApi.idempotencyKeyFor} to
   * recognise our event when its id was never stored (a create whose answer was lost).
   */
  idempotencyKey: string | null;
}

/** A push channel (Google) or subscription (Graph) as the provider created it. */
export interface PushChannel {
  /** Google channel id (ours, chosen at watch), Graph subscription id (Graph's). */
  channelId: string;
  /** Google's `resourceId` (needed to stop the channel); null on Graph. */
  resourceId: string | null;
  /** When the provider stops delivering, ISO 8601 UTC instant. */
  expiresAt: string;
}

/** What {@link InboundCalendarApi.watch} asks for. */
export interface WatchRequest {
  /** The calendar to watch (`primary` = the account's default calendar). */
  calendarId: string;
  /**
   * The HTTPS webhook URL notifications are POSTed to, per provider (e.g. `.../calendar-webhook/google`).
   * Microsoft also gets lifecycle notifications, at this URL plus `/lifecycle` (./microsoft/subscriptions.ts).
   */
  address: string;
  /**
   * A per-channel random secret echoed with every notification (Google `X-Goog-Channel-Token`, at most
   * 256 characters; Graph `clientState`, at most 128). Store it hashed or encrypted.
   */
  secret: string;
  /** Google only: the channel id to use (1..64 of `[A-Za-z0-9-_+/=]`); a random UUID when absent. */
  channelId?: string;
  /** Lifetime asked for, in seconds; capped at the provider's maximum (the default). */
  ttlSeconds?: number;
}

/** Where an incremental read resumes. */
export interface ChangesRequest {
  calendarId: string;
  /**
   * The sync cursor of the last completed round (Google `nextSyncToken`, Graph `@odata.deltaLink`), or
   * null for a first (full) sync over `window`.
   */
  syncCursor: string | null;
  /** The page cursor of the round in progress (self-contained), or null to start a round. */
  pageCursor: string | null;
  /**
   * The window of a full sync, ISO 8601 with offset (required when both cursors are null; the window
   * then lives in the cursors). Incremental rounds report changes wherever they fall.
   */
  window?: { timeMin: string; timeMax: string };
  /** Events per page asked for (the provider may answer fewer); default 250. */
  pageLimit?: number;
  /** The staff member's IANA zone, for a provider that must place all-day events itself (Microsoft). */
  timeZone?: string | null;
}

/** One page of changes. Exactly one of the cursors is non-null. */
export interface ChangesPage {
  events: ExternalEvent[];
  /** More pages in this round: pass it back as `pageCursor`. */
  nextPageCursor: string | null;
  /** The round is complete: store it as the next `syncCursor` (and drop the page cursor). */
  nextSyncCursor: string | null;
}

/**
 * Inbound sync: push channels and incremental reads. Present on a provider iff its
 * `capabilities.inboundSync` is true. Every method throws {@link ProviderError}, classified by the
 * provider's error module.
 *
 * Renewal differs, and `renewal` says how: `patch` (Graph) extends the subscription in place with
 * `renew`; `replace` (Google, whose channels cannot be extended) means watch a new channel (with a
 * channel id stored before the call, so its notifications are recognised), then stop the old one.
 */
export type InboundCalendarApi =
  & InboundCalendarCalls
  & (
    | {
      readonly renewal: "patch";
      /**
       * Extend the subscription to the provider's maximum lifetime (or `ttlSeconds`); also
       * reauthorizes it (Graph `reauthorizationRequired`).
       * @returns the new expiry, ISO 8601 UTC.
       * @throws ProviderError `gone` when the subscription no longer exists (expired or removed): create a
       *   new one and resync.
       */
      renew(
        accessToken: string,
        channel: Pick<PushChannel, "channelId">,
        ttlSeconds?: number,
      ): Promise<string>;
    }
    | { readonly renewal: "replace" }
  );

/** The calls every inbound provider has (see {@link InboundCalendarApi}). */
export interface InboundCalendarCalls {
  /**
   * Ask the provider to notify `address` of every change to the calendar's events.
   * @throws ProviderError `invalid` for an address the provider refuses (not HTTPS), a calendar that
   *   cannot be watched, or (Graph) a failed validation handshake; `not_found` for an unknown calendar.
   */
  watch(accessToken: string, request: WatchRequest): Promise<PushChannel>;
  /** Stop a channel; one that is already gone (404) is success. */
  stop(accessToken: string, channel: Pick<PushChannel, "channelId" | "resourceId">): Promise<void>;
  /**
   * ONE page of changes: the events of `window` on a first sync (recurring series expanded into their
   * occurrences and exceptions, cancelled ones included), the events changed since `syncCursor`
   * otherwise. One page per call so a run can stop between pages and resume from the stored cursor.
   * The same event may come more than once (process idempotently).
   * @throws ProviderError `cursor_expired` when the provider no longer accepts a cursor (Google 410
   *   `fullSyncRequired`, Graph 410 `SyncStateNotFound`): drop both cursors, full sync again;
   *   `invalid` for a first sync without a window; `not_found` for an unknown calendar.
   */
  listChanges(accessToken: string, request: ChangesRequest): Promise<ChangesPage>;
  /**
   * The title of ONE event we wrote (never a clinician's own event): one read of that event's title
   * alone (Google events.get with `fields=summary,status`; Graph `GET /me/events/{id}?$select=subject,
   * isCancelled`), so that inbound sync can tell a retitle of our event from a change to something
   * we do not write (colour, reminders, categories). The caller compares it with the title it writes
   * and must not store or log it (decision 13).
   * @returns the title (empty when the event has none), or null when the event is gone (404, 410,
   *   cancelled).
   * @throws ProviderError as classified (never for a missing event).
   */
  readOwnEventTitle?(
    accessToken: string,
    ref: { calendarId: string; eventId: string },
  ): Promise<string | null>;
  /**
   * The {@link ExternalEvent.idempotencyKey} our create of this appointment's event carries, or null
   * when the provider keeps none apart from the event id (Google: see `ourAppointment`).
   */
  idempotencyKeyFor(
    ref: Required<Pick<AppointmentEventRef, "calendarId" | "appointmentId">> & {
      eventGeneration?: number;
    },
  ): string | null;
}

/**
 * What a provider can do beyond the required interface, declared so callers ask instead of
 * assuming. Every flag is false until the provider implements the capability.
 */
export interface ProviderCapabilities {
  /**
   * Inbound sync: push channels and incremental reads of calendar changes (sync token / delta link;
   * `cursor_expired` when stale), as {@link CalendarProvider.inbound}.
   */
  readonly inboundSync: boolean;
  /** Several calendar calls in one HTTP request (Google batch, Graph `$batch`). */
  readonly batch: boolean;
  /**
   * `revoke` ends the grant at the provider (RFC 7009: Google revokes the whole grant). False where
   * the provider has no revocation endpoint (Microsoft): `revoke` succeeds without a call and the
   * grant lives on until the user removes the app (docs/providers/microsoft.md B1.6).
   */
  readonly tokenRevocation: boolean;
  /**
   * Every refresh answers a new refresh token that replaces the stored one (Microsoft); false where
   * the refresh token stays the same (Google). Either way the caller stores what `refresh` returns.
   */
  readonly refreshTokenRotation: boolean;
  /**
   * `findAppointmentEvent` finds the event from the appointment alone, without a stored event id
   * (Google: the id derived from the appointment). False where the provider cannot look an event up
   * by its idempotency key (Graph's `transactionId`): without a stored id it answers null.
   */
  readonly eventLookupByAppointment: boolean;
}

/** One configured provider: its id, both halves, and its capabilities. */
export interface CalendarProvider extends ProviderOAuthClient, CalendarApi {
  readonly id: ProviderId;
  readonly capabilities: ProviderCapabilities;
  /** Inbound sync; present iff `capabilities.inboundSync`. */
  readonly inbound?: InboundCalendarApi;
}
