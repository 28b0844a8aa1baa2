/**
 * Classification of every Google failure into a {@link ProviderError}, in one place
 * (docs/decisions.md decision 6): Calendar API answers (status + Google's error envelope,
 * docs/providers/google.md A2.1), OAuth token/revocation errors (RFC 6749 JSON, A1.4), and transport
 * failures.
 *
 * Messages name the operation, the HTTP status and Google's reason code and message; they never
 * contain tokens, authorization codes or secrets (those are never part of what we quote).
 */
import * as oauth from "oauth4webapi";
import { ProviderError, type ProviderErrorKind } from "../types.ts";
import { googleErrorEnvelope } from "./schemas.ts";

/**
 * Google's usage-limit reasons (A2.1, A2.2): per-minute rate limits, the per-user limit, Calendar usage
 * limits and daily quotas. Any other `*LimitExceeded` reason (domain `usageLimits`) is one too.
 */
const RATE_LIMIT_REASONS = new Set([
  "rateLimitExceeded",
  "userRateLimitExceeded",
  "quotaExceeded",
  "dailyLimitExceeded",
]);

/** True for a reason that means "too much, later": retry after a rest, never a permanent failure. */
export function isUsageLimitReason(reason: string | undefined): boolean {
  return !!reason && (RATE_LIMIT_REASONS.has(reason) || /LimitExceeded$/.test(reason));
}

/** True when any entry of the envelope names a usage limit (Google may list several errors). */
function hasUsageLimit(body: unknown): boolean {
  const parsed = googleErrorEnvelope.safeParse(body);
  if (!parsed.success) return false;
  const e = parsed.data.error;
  return (e.errors ?? []).some((x) => isUsageLimitReason(x.reason) || x.domain === "usageLimits") ||
    e.status === "RESOURCE_EXHAUSTED";
}
/** Google's 410 reasons for an incremental-sync cursor it no longer accepts (A2.1): full sync again. */
const CURSOR_EXPIRED_REASONS = new Set(["fullSyncRequired", "updatedMinTooLongAgo"]);

const MAX_QUOTED = 200;

function quote(text: string | undefined): string {
  if (!text) return "";
  const oneLine = text.replace(/\s+/g, " ").trim();
  return oneLine.length > MAX_QUOTED ? `${oneLine.slice(0, MAX_QUOTED)}...` : oneLine;
}

/**
 * Parse a `Retry-After` header value (RFC 9110 §10.2.3): delay-seconds or an HTTP-date.
 * @param value the header value, or null/undefined when absent.
 * @param nowMs the current time in epoch ms (for HTTP-dates; defaults to `Date.now()`).
 * @returns the delay in milliseconds (never negative), or undefined when absent or unparseable.
 */
export function parseRetryAfter(
  value: string | null | undefined,
  nowMs: number = Date.now(),
): number | undefined {
  if (value == null) return undefined;
  const v = value.trim();
  if (/^\d+$/.test(v)) return Number(v) * 1000;
  // HTTP-dates always name the weekday and the GMT zone; refuse other Date.parse-able strings.
  if (!/^[A-Za-z]{3},? .+ GMT$/.test(v) && !/^[A-Za-z]+, \d{2}-[A-Za-z]{3}-\d{2} .+ GMT$/.test(v)) {
    return undefined;
  }
  const at = Date.parse(v);
  return Number.isNaN(at) ? undefined : Math.max(0, at - nowMs);
}

/** Google's reason code from an error body: the first `errors[].reason`, else `error.status`. */
export function googleErrorReason(body: unknown): string | undefined {
  const parsed = googleErrorEnvelope.safeParse(body);
  if (!parsed.success) return undefined;
  return parsed.data.error.errors?.find((e) => e.reason)?.reason ?? parsed.data.error.status;
}

function isInsufficientScope(body: unknown, headers: Headers | undefined): boolean {
  if (/error="?insufficient_scope/i.test(headers?.get("www-authenticate") ?? "")) return true;
  const parsed = googleErrorEnvelope.safeParse(body);
  if (!parsed.success) return false;
  const e = parsed.data.error;
  if (e.errors?.some((x) => x.reason === "insufficientPermissions")) return true;
  if (e.details?.some((d) => d.reason === "ACCESS_TOKEN_SCOPE_INSUFFICIENT")) return true;
  return e.status === "PERMISSION_DENIED" && /insufficient[\w\s]*scope/i.test(e.message ?? "");
}

/**
 * Classify a non-2xx Calendar API answer.
 *
 * | status | kind |
 * | --- | --- |
 * | 401 | `auth` |
 * | 403 `rateLimitExceeded` / `userRateLimitExceeded` / `quotaExceeded` / `dailyLimitExceeded`, any other `*LimitExceeded` or `usageLimits` reason, `RESOURCE_EXHAUSTED`; and 429 | `rate_limited` |
 * | 403 `insufficientPermissions` (or PERMISSION_DENIED for an insufficient scope) | `insufficient_scope` |
 * | other 403 | `invalid` |
 * | 404 | `not_found` |
 * | 409 (`duplicate`, `conflict`), 412 (`conditionNotMet`) | `conflict` |
 * | 410 `fullSyncRequired`, `updatedMinTooLongAgo` (a sync token or updatedMin too old) | `cursor_expired` |
 * | other 410 (`deleted`) | `gone` |
 * | 408, 5xx | `transient` |
 * | other | `invalid` |
 *
 * `details.retryAfterMs` comes from `Retry-After` (seconds or HTTP-date) whenever present.
 *
 * @param status HTTP status.
 * @param body the parsed JSON body (any shape; Google's envelope when it is one), or undefined.
 * @param headers response headers (for Retry-After and WWW-Authenticate).
 * @param operation a label for the message, e.g. `events.insert`.
 * @param nowMs the current time in epoch ms, for HTTP-date Retry-After values.
 */
export function classifyGoogleResponse(
  status: number,
  body: unknown,
  headers: Headers | undefined,
  operation: string,
  nowMs: number = Date.now(),
): ProviderError {
  const reason = googleErrorReason(body);
  const parsed = googleErrorEnvelope.safeParse(body);
  const googleMessage = parsed.success ? parsed.data.error.message : undefined;
  let kind: ProviderErrorKind;
  if (status === 401) kind = "auth";
  else if (status === 429) kind = "rate_limited";
  else if (status === 403) {
    if (isUsageLimitReason(reason) || hasUsageLimit(body)) kind = "rate_limited";
    else if (isInsufficientScope(body, headers)) kind = "insufficient_scope";
    else kind = "invalid";
  } else if (status === 404) kind = "not_found";
  else if (status === 409 || status === 412) kind = "conflict";
  else if (status === 410) kind = CURSOR_EXPIRED_REASONS.has(reason ?? "") ? "cursor_expired" : "gone";
  // 408 is a timeout on the server's side; retrying is safe and the request was well formed.
  else if (status === 408 || status >= 500) kind = "transient";
  else kind = "invalid";
  const retryAfterMs = parseRetryAfter(headers?.get("retry-after"), nowMs);
  const text = [`Google ${operation} failed: HTTP ${status}`, reason, quote(googleMessage)].filter(Boolean);
  return new ProviderError(kind, text.join(" "), {
    status,
    ...(reason ? { reason } : {}),
    ...(retryAfterMs !== undefined ? { retryAfterMs } : {}),
  });
}

/**
 * Classify a failure that produced no HTTP answer: a timeout (`TimeoutError`), an abort
 * (`AbortError`) or a network error (`TypeError` from fetch) becomes `transient`. A
 * {@link ProviderError} is returned unchanged. Anything else is a bug and is rethrown as is.
 * The underlying message is not quoted (it can contain the request URL).
 *
 * @param timeoutMs the per-request timeout in ms, for the message.
 * @throws the original error when it is not a transport failure.
 */
export function classifyTransportError(err: unknown, operation: string, timeoutMs?: number): ProviderError {
  if (err instanceof ProviderError) return err;
  const name = err instanceof Error || err instanceof DOMException ? err.name : undefined;
  if (name === "TimeoutError") {
    return new ProviderError(
      "transient",
      `Google ${operation} timed out${timeoutMs ? ` after ${timeoutMs} ms` : ""}`,
      { reason: "timeout" },
    );
  }
  if (name === "AbortError") {
    return new ProviderError("transient", `Google ${operation} was aborted`, { reason: "aborted" });
  }
  // oauth4webapi's argument errors are TypeErrors with an ERR_* code; those are bugs, not the network.
  if (err instanceof TypeError && !String((err as { code?: unknown }).code ?? "").startsWith("ERR_")) {
    return new ProviderError("transient", `Google ${operation} failed: network error`, { reason: "network" });
  }
  throw err;
}

function oauthKindFor(error: string | undefined, status: number): ProviderErrorKind {
  if (error === "invalid_grant") return "auth";
  if (error === "invalid_client" || error === "unauthorized_client") return "invalid";
  if (status === 429) return "rate_limited";
  if (status === 408 || status >= 500) return "transient";
  return "invalid";
}

function oauthError(
  operation: string,
  status: number,
  error: string | undefined,
  description: string | undefined,
  headers: Headers | undefined,
  nowMs: number,
): ProviderError {
  const retryAfterMs = parseRetryAfter(headers?.get("retry-after"), nowMs);
  const text = [`Google ${operation} failed: HTTP ${status}`, error, quote(description)].filter(Boolean);
  return new ProviderError(oauthKindFor(error, status), text.join(" "), {
    status,
    ...(error ? { reason: error } : {}),
    ...(retryAfterMs !== undefined ? { retryAfterMs } : {}),
  });
}

/**
 * Classify an error thrown by oauth4webapi for a token or revocation request (A1.4):
 * `invalid_grant` -> `auth` (reason `invalid_grant`: revoked/expired grant, reused or bad code,
 * PKCE mismatch); `invalid_client` / `unauthorized_client` (also a 401 challenge) -> `invalid`;
 * HTTP 429 -> `rate_limited` (with Retry-After); 408/5xx, timeouts and network errors -> `transient`;
 * other OAuth errors (`invalid_request`, `redirect_uri_mismatch`, ...) and malformed answers -> `invalid`.
 * An error in the authorization response itself (`?error=access_denied`) -> `auth` when the user
 * denied consent (reason `access_denied`), `invalid` otherwise.
 *
 * @throws the original error when it is neither an OAuth nor a transport failure (a bug).
 */
export function classifyOAuthError(
  err: unknown,
  operation: string,
  nowMs: number = Date.now(),
): ProviderError {
  if (err instanceof ProviderError) return err;
  if (err instanceof oauth.ResponseBodyError) {
    return oauthError(operation, err.status, err.error, err.error_description, err.response.headers, nowMs);
  }
  if (err instanceof oauth.WWWAuthenticateChallengeError) {
    const challengeError = err.cause.find((c) => c.parameters.error)?.parameters.error;
    const error = challengeError ?? (err.status === 401 ? "invalid_client" : undefined);
    return oauthError(operation, err.status, error, undefined, err.response.headers, nowMs);
  }
  if (err instanceof oauth.AuthorizationResponseError) {
    const kind = err.error === "access_denied" ? "auth" : "invalid";
    return new ProviderError(
      kind,
      [`Google ${operation}: the authorization response is an error`, err.error, quote(err.error_description)]
        .filter(Boolean).join(" "),
      { reason: err.error },
    );
  }
  if (err instanceof oauth.OperationProcessingError) {
    if (err.cause instanceof Response) {
      const status = err.cause.status;
      if (status < 200 || status > 299) {
        return oauthError(operation, status, undefined, undefined, err.cause.headers, nowMs);
      }
    }
    // The server answered 2xx with something that is not a token response, or the callback's
    // parameters are wrong (state mismatch, unexpected issuer): permanent for this request.
    return new ProviderError("invalid", `Google ${operation} failed: ${err.message}`, {
      reason: err.code ?? "invalid_response",
    });
  }
  if (err instanceof oauth.UnsupportedOperationError) {
    return new ProviderError("invalid", `Google ${operation} failed: ${err.message}`, {
      reason: "unsupported",
    });
  }
  return classifyTransportError(err, operation);
}
