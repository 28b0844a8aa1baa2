/**
 * The one error type of the domain: a stable `code` the HTTP layer maps to an answer in one table
 * (./http-answers.ts) and the sync engine decides on (../sync/failures.ts). Neither reads an HTTP
 * status from our own errors: the code is the signal.
 */

/**
 * How a provider failure is classified, once, in the provider (docs/decisions.md decision 6):
 * - `auth`: the grant is revoked/expired or the token is rejected after a refresh; reconnect needed
 * - `rate_limited`: retry after `retryAfterMs` (from Retry-After when given)
 * - `transient`: 5xx, timeouts, network errors; retry with backoff
 * - `not_found`: the calendar or event does not exist (or is not visible); `details.resource` says
 *   which when the provider could tell (`event`: the calendar is there, the event is not)
 * - `gone`: the resource was deleted (Google 410 `deleted`)
 * - `cursor_expired`: an incremental-sync cursor (Google sync token, Graph delta link) is no longer
 *   accepted (Google 410 `fullSyncRequired` / `updatedMinTooLongAgo`); start a full sync again
 * - `conflict`: id already exists (Google 409 `duplicate`) or a stale etag (412)
 * - `insufficient_scope`: the grant lacks a scope this call needs (reconnect with consent)
 * - `invalid`: a permanent client error (400); do not retry
 */
export type ProviderErrorKind =
  | "auth"
  | "rate_limited"
  | "transient"
  | "not_found"
  | "gone"
  | "cursor_expired"
  | "conflict"
  | "insufficient_scope"
  | "invalid";

/**
 * Codes about our own state rather than a provider's answer:
 * - `not_connected`: the staff member has no usable connection (none, disconnected, no refresh token)
 * - `needs_reconnect`: the stored grant is known dead (revoked, refused on refresh, undecryptable)
 * - `provider_not_configured`: the deployment has no configuration for the requested provider
 */
export type ConnectionErrorCode = "not_connected" | "needs_reconnect" | "provider_not_configured";

/** Every code a {@link DomainError} may carry. */
export type ErrorCode = ProviderErrorKind | ConnectionErrorCode;

/** Diagnostic details; never a token, code or secret. */
export interface ErrorDetails {
  /** The provider's HTTP status, for messages and logs only (never a signal: use the code). */
  status?: number;
  /** The provider's reason code (Google `errors[].reason`, OAuth `error`, Graph `error.code`). */
  reason?: string;
  /** How long to wait before retrying, in milliseconds (from Retry-After when given). */
  retryAfterMs?: number;
  /** For `not_found`: what is missing, when known. */
  resource?: "calendar" | "event";
}

/** A classified failure with a stable code; messages name ids and codes only. */
export class DomainError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly details: ErrorDetails = {},
  ) {
    super(message);
    this.name = "DomainError";
  }
}

/** A classified provider failure: a {@link DomainError} whose code is a {@link ProviderErrorKind}. */
export class ProviderError extends DomainError {
  declare readonly code: ProviderErrorKind;

  constructor(kind: ProviderErrorKind, message: string, details: ErrorDetails = {}) {
    super(kind, message, details);
    this.name = "ProviderError";
  }

  /** The provider classification; the same value as `code`. */
  get kind(): ProviderErrorKind {
    return this.code;
  }
}
