/**
 * The one table from a {@link DomainError} code to the HTTP answer the app receives. `withHttp`
 * (../http.ts) applies it to every handler's error; nothing else turns a domain error into HTTP.
 * Unknown calendars are a 409 the app can act on (pick another calendar), never an empty "free" answer.
 *
 * | code                    | status | error code              | notes                                     |
 * |-------------------------|--------|-------------------------|-------------------------------------------|
 * | not_connected           | 409    | not_connected           | the error's own message                   |
 * | needs_reconnect         | 409    | needs_reconnect         | the error's own message                   |
 * | provider_not_configured | 400    | provider_not_configured | the error's own message                   |
 * | auth                    | 409    | needs_reconnect         | grant revoked; connect the calendar again |
 * | insufficient_scope      | 409    | insufficient_scope      | reconnect and grant every scope           |
 * | not_found, gone         | 409    | calendar_not_found      | the selected calendar no longer exists    |
 * | rate_limited            | 429    | rate_limited            | `Retry-After` in whole seconds            |
 * | transient               | 503    | provider_unavailable    | `Retry-After` 5                           |
 * | conflict, invalid, cursor_expired | 502 | provider_error   | the provider refused a request we built   |
 */
import type { DomainError, ErrorCode } from "./domain-error.ts";

/** Seconds suggested to the client when the provider gave no Retry-After. */
export const DEFAULT_RETRY_AFTER_SECONDS = { rate_limited: 30, transient: 5 } as const;

/** What the app receives for a domain error: status, envelope code and message, extra headers. */
export interface HttpAnswer {
  status: number;
  code: string;
  message: string;
  headers: Record<string, string>;
}

type Row = {
  status: number;
  code: string;
  /** A fixed message, or null to pass the error's own message on (it names no secrets). */
  message: string | ((err: DomainError) => string) | null;
  headers?: (err: DomainError) => Record<string, string>;
};

function retryAfterSeconds(err: DomainError): number {
  return err.details.retryAfterMs !== undefined
    ? Math.max(1, Math.ceil(err.details.retryAfterMs / 1000))
    : DEFAULT_RETRY_AFTER_SECONDS.rate_limited;
}

const CALENDAR_NOT_FOUND: Row = {
  status: 409,
  code: "calendar_not_found",
  message:
    "the selected calendar does not exist or is no longer shared with this account; choose another calendar",
};

const PROVIDER_REFUSED: Row = {
  status: 502,
  code: "provider_error",
  message: (err) =>
    `the calendar provider refused the request${err.details.status ? ` (HTTP ${err.details.status})` : ""}`,
};

/** The table itself (see the module comment). */
export const HTTP_ANSWERS: Readonly<Record<ErrorCode, Row>> = Object.freeze({
  not_connected: { status: 409, code: "not_connected", message: null },
  needs_reconnect: { status: 409, code: "needs_reconnect", message: null },
  provider_not_configured: { status: 400, code: "provider_not_configured", message: null },
  auth: {
    status: 409,
    code: "needs_reconnect",
    message: "the calendar provider refused the grant; the staff member must connect the calendar again",
  },
  insufficient_scope: {
    status: 409,
    code: "insufficient_scope",
    message:
      "the calendar grant lacks a permission this call needs; connect the calendar again and grant every permission",
  },
  not_found: CALENDAR_NOT_FOUND,
  gone: CALENDAR_NOT_FOUND,
  rate_limited: {
    status: 429,
    code: "rate_limited",
    message: (err) =>
      `the calendar provider is rate limiting this account; retry after ${retryAfterSeconds(err)} s`,
    headers: (err) => ({ "retry-after": String(retryAfterSeconds(err)) }),
  },
  transient: {
    status: 503,
    code: "provider_unavailable",
    message: "the calendar provider is unavailable or timed out; retry shortly",
    headers: () => ({ "retry-after": String(DEFAULT_RETRY_AFTER_SECONDS.transient) }),
  },
  conflict: PROVIDER_REFUSED,
  invalid: PROVIDER_REFUSED,
  cursor_expired: PROVIDER_REFUSED,
});

/** The HTTP answer for a domain error, from {@link HTTP_ANSWERS}. */
export function httpAnswerFor(err: DomainError): HttpAnswer {
  const row = HTTP_ANSWERS[err.code];
  const message = row.message === null
    ? err.message
    : typeof row.message === "string"
    ? row.message
    : row.message(err);
  return { status: row.status, code: row.code, message, headers: row.headers?.(err) ?? {} };
}
