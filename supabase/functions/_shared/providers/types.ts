/**
 * The one interface every calendar provider implements (Google now, Microsoft Graph later).
 * Handlers and the sync engine only talk to this; provider quirks stay in the provider module.
 */

/** Provider ids stored in `staff_calendar_connections.provider`. */
export type ProviderId = "google" | "microsoft";

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

/** One provider behind one interface. All methods throw {@link ProviderError} on provider failure. */
export interface CalendarProvider {
  readonly id: ProviderId;
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
  /** Refresh. A revoked or expired grant throws kind `auth` (OAuth `invalid_grant`). */
  refresh(refreshToken: string): Promise<TokenSet>;
  /** Revoke a token at the provider; a token that is already invalid is not an error. */
  revoke(token: string): Promise<void>;
  /** Scopes in `granted` that satisfy each required scope (a broader scope satisfies a narrower one). */
  missingScopes(granted: string[]): string[];
  listCalendars(accessToken: string): Promise<CalendarSummary[]>;
  /**
   * One calendar of the account's list with its current access role, read live.
   * @throws ProviderError `not_found` (resource `calendar`) when it is not in the account's list.
   */
  getCalendar(accessToken: string, calendarId: string): Promise<CalendarDetails>;
  /**
   * Busy intervals of the calendars between timeMin and timeMax (ISO 8601 with offset), merged and
   * sorted, chunking the range into windows the provider accepts. A per-calendar error throws;
   * an unknown calendar is never reported as free.
   */
  busy(accessToken: string, args: { calendarIds: string[]; timeMin: string; timeMax: string }): Promise<
    BusyInterval[]
  >;
  /**
   * Create or update the appointment's event idempotently (retries never duplicate).
   * @throws ProviderError `not_found` with `details.resource` `event` when the event vanished from a
   *   calendar that still exists (purged, moved away): write again with the next `eventGeneration`;
   *   `not_found` with resource `calendar` when the calendar itself is gone.
   */
  upsertEvent(accessToken: string, write: EventWrite): Promise<EventWriteResult>;
  /** Delete an event; "already gone" (404/410) is success. */
  deleteEvent(accessToken: string, args: { calendarId: string; eventId: string }): Promise<void>;
  /** The event id the provider would use for an appointment and generation (Google: base32hex from the uuid). */
  eventIdFor(appointmentId: string, generation?: number): string;
}
