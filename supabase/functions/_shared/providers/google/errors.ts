/**
 * Classification of Google Calendar API answers into a {@link ProviderError}, in one place
 * (docs/decisions.md decision 6): status + Google's error envelope and reasons
 * (docs/providers/google.md A2.1). OAuth errors (RFC 6749, A1.4) are classified by ../../oauth/errors.ts
 * and transport failures by ../../http-client/transport-errors.ts, for every provider alike.
 *
 * Messages name the operation, the HTTP status and Google's reason code and message; they never
 * contain tokens, authorization codes or secrets (those are never part of what we quote).
 */
import { ProviderError, type ProviderErrorKind } from "../../errors/domain-error.ts";
import { quoteProviderText as quote } from "../../http-client/quote.ts";
import { parseRetryAfter } from "../../http-client/retry-after.ts";
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
