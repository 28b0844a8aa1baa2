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
 * What a provider can do beyond the required interface, declared so callers ask instead of
 * assuming. Every flag is false until the provider implements the capability.
 */
export interface ProviderCapabilities {
  /** Incremental reads of calendar changes (sync token / delta link; `cursor_expired` when stale). */
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
}
