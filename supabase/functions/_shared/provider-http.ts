/**
 * The one place a classified provider failure ({@link ProviderError}, docs/decisions.md decision 6)
 * becomes an HTTP answer for the app. Unknown calendars are a 409 the app can act on (pick another
 * calendar), never an empty "free" answer.
 *
 * | kind               | status | code                 | notes                                     |
 * |--------------------|--------|----------------------|-------------------------------------------|
 * | auth               | 409    | needs_reconnect      | grant revoked; connect the calendar again |
 * | insufficient_scope | 409    | insufficient_scope   | reconnect and grant every scope           |
 * | not_found, gone    | 409    | calendar_not_found   | the selected calendar no longer exists    |
 * | rate_limited       | 429    | rate_limited         | `Retry-After` in whole seconds            |
 * | transient          | 503    | provider_unavailable | `Retry-After` 5                           |
 * | conflict, invalid  | 502    | provider_error       | the provider refused a request we built   |
 */
import { HttpError } from "./http.ts";
import { ProviderError } from "./providers/types.ts";

/** Seconds suggested to the client when the provider gave no Retry-After. */
export const DEFAULT_RETRY_AFTER_SECONDS = { rate_limited: 30, transient: 5 } as const;

/** Map a classified provider failure to the HTTP error the app receives (see the table above). */
export function providerErrorToHttp(err: ProviderError): HttpError {
  const status = err.details.status;
  switch (err.kind) {
    case "auth":
      return new HttpError(
        409,
        "needs_reconnect",
        "the calendar provider refused the grant; the staff member must connect the calendar again",
      );
    case "insufficient_scope":
      return new HttpError(
        409,
        "insufficient_scope",
        "the calendar grant lacks a permission this call needs; connect the calendar again and grant every permission",
      );
    case "not_found":
    case "gone":
      return new HttpError(
        409,
        "calendar_not_found",
        "the selected calendar does not exist or is no longer shared with this account; choose another calendar",
      );
    case "rate_limited": {
      const seconds = err.details.retryAfterMs !== undefined
        ? Math.max(1, Math.ceil(err.details.retryAfterMs / 1000))
        : DEFAULT_RETRY_AFTER_SECONDS.rate_limited;
      return new HttpError(
        429,
        "rate_limited",
        `the calendar provider is rate limiting this account; retry after ${seconds} s`,
        { "retry-after": String(seconds) },
      );
    }
    case "transient":
      return new HttpError(
        503,
        "provider_unavailable",
        "the calendar provider is unavailable or timed out; retry shortly",
        { "retry-after": String(DEFAULT_RETRY_AFTER_SECONDS.transient) },
      );
    case "conflict":
    case "invalid":
      return new HttpError(
        502,
        "provider_error",
        `the calendar provider refused the request${status ? ` (HTTP ${status})` : ""}`,
      );
  }
}

/**
 * Run `fn`, turning a thrown {@link ProviderError} into the matching {@link HttpError}; anything
 * else (HttpError from the connection layer, bugs) passes through unchanged.
 */
export async function mapProviderErrors<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof ProviderError) throw providerErrorToHttp(err);
    throw err;
  }
}
