/**
 * What the worker does with a failure, decided in one place from the classified error
 * (docs/decisions.md decision 6):
 *
 * | error                                            | decision | code                 |
 * |--------------------------------------------------|----------|----------------------|
 * | DomainError `needs_reconnect` / `not_connected`  | park     | needs_reconnect /    |
 * |   from connections.ts (grant dead, no connection) |          | not_connected        |
 * | DomainError `provider_not_configured` (the row's | park     | provider_not_configured |
 * |   provider is not set up on this deployment)      |          |                      |
 * | ProviderError `auth`                             | park (+ mark needs_reconnect) | needs_reconnect |
 * | ProviderError `insufficient_scope`               | park (+ mark needs_reconnect) | insufficient_scope |
 * | ProviderError `rate_limited`                     | retry (Retry-After floor, whole account) | rate_limited |
 * | ProviderError `transient`                        | retry    | provider_unavailable |
 * | ProviderError `conflict`, `gone`                 | retry    | provider_conflict    |
 * | ProviderError `cursor_expired`                   | retry    | cursor_expired       |
 * | ProviderError `not_found` (resource `event`: still | retry    | event_not_found      |
 * |   missing after re-creates under fresh ids)      |          |                      |
 * | ProviderError `not_found` (the calendar)         | fail     | calendar_not_found   |
 * | ProviderError `invalid`                          | fail     | provider_error       |
 * | {@link InvalidAppointmentError}                  | fail     | invalid_appointment  |
 * | anything else (database hiccup, bug)             | retry    | internal_error       |
 *
 * "park" releases the row without consuming an attempt: it waits (pending) until the staff member
 * reconnects. "retry" comes back later (backoff, Retry-After as a floor) until the retry budget
 * (CALENDAR_SYNC_RETRY_BUDGET_HOURS since the first failure) is spent; then the row is failed (dead
 * letter). Every usage-limit answer is a `rate_limited` retry, never a permanent failure.
 * "fail" is permanent: the row is failed at once with a message a developer can act on.
 * Messages carry ids, codes and provider reasons only, never tokens or patient data.
 */
import { DomainError, ProviderError } from "../errors/domain-error.ts";

/** The appointment itself cannot become an event (end before start, ...). Permanent. */
export class InvalidAppointmentError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "InvalidAppointmentError";
  }
}

/** The worker's decision for a failed row. */
export type FailureDecision =
  | { decision: "park"; code: string; message: string; markNeedsReconnect: boolean }
  | { decision: "retry"; code: string; message: string; retryAfterMs?: number; rateLimited: boolean }
  | { decision: "fail"; code: string; message: string };

const MAX_MESSAGE = 500;

function clip(text: string): string {
  return text.length > MAX_MESSAGE ? `${text.slice(0, MAX_MESSAGE - 3)}...` : text;
}

/**
 * Decide what to do with an error thrown while processing a row.
 * @param calendarId the calendar the failed call targeted, named in `calendar_not_found` messages.
 */
export function decideFailure(err: unknown, calendarId?: string | null): FailureDecision {
  if (err instanceof InvalidAppointmentError) {
    return { decision: "fail", code: "invalid_appointment", message: clip(err.message) };
  }
  if (
    err instanceof DomainError &&
    (err.code === "needs_reconnect" || err.code === "not_connected" || err.code === "provider_not_configured")
  ) {
    return { decision: "park", code: err.code, message: clip(err.message), markNeedsReconnect: false };
  }
  if (err instanceof ProviderError) {
    const message = clip(err.message);
    switch (err.code) {
      case "auth":
        return { decision: "park", code: "needs_reconnect", message, markNeedsReconnect: true };
      case "insufficient_scope":
        return { decision: "park", code: "insufficient_scope", message, markNeedsReconnect: true };
      case "rate_limited":
        return {
          decision: "retry",
          code: "rate_limited",
          message,
          rateLimited: true,
          ...(err.details.retryAfterMs !== undefined ? { retryAfterMs: err.details.retryAfterMs } : {}),
        };
      case "transient":
        return { decision: "retry", code: "provider_unavailable", message, rateLimited: false };
      case "conflict":
      case "gone":
        return { decision: "retry", code: "provider_conflict", message, rateLimited: false };
      case "cursor_expired":
        // Only an incremental read fails this way; the next attempt starts from a full read.
        return { decision: "retry", code: "cursor_expired", message, rateLimited: false };
      case "not_found":
        if (err.details.resource === "event") {
          // The sync engine already tried fresh ids in this attempt; the next attempt goes on.
          return { decision: "retry", code: "event_not_found", message, rateLimited: false };
        }
        return {
          decision: "fail",
          code: "calendar_not_found",
          message: clip(
            `calendar ${calendarId ? `'${calendarId}' ` : ""}was not found at the provider (deleted, or no ` +
              `longer shared with this account); choose another calendar, which queues this row again: ` +
              err.message,
          ),
        };
      case "invalid":
        return { decision: "fail", code: "provider_error", message };
    }
  }
  const name = err instanceof Error ? err.name : typeof err;
  const detail = err instanceof Error ? err.message : String(err);
  return {
    decision: "retry",
    code: "internal_error",
    message: clip(`${name}: ${detail}`),
    rateLimited: false,
  };
}
