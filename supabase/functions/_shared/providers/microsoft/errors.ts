/**
 * Classification of Microsoft failures into {@link ProviderError} kinds, in one place: Graph answers
 * (status + Graph's error envelope, docs/providers/microsoft.md B2) and token endpoint errors of the
 * identity platform (RFC 6749 bodies with AADSTS codes, B1.5). Each is a table; the first matching
 * row wins.
 *
 * Messages name the operation, the status and Microsoft's code and message; they never contain tokens,
 * codes or secrets (those are never part of what we quote), and Microsoft's trace and correlation ids
 * are kept out of `reason` so reasons stay few and stable.
 */
import { ProviderError, type ProviderErrorKind } from "../types.ts";
// The RFC 9110 Retry-After parser; provider-neutral, it lives with the Google code until the generic
// HTTP module takes it.
import { parseRetryAfter } from "../../http-client/retry-after.ts";
import { aadstsErrorBody, graphErrorBody } from "./schemas.ts";

const MAX_QUOTED = 200;

function quote(text: string | undefined): string {
  if (!text) return "";
  // AADSTS descriptions end with "Trace ID: ... Correlation ID: ... Timestamp: ...": not ours to log.
  const oneLine = text.split(/\r?\nTrace ID:/)[0].replace(/\s+/g, " ").trim();
  return oneLine.length > MAX_QUOTED ? `${oneLine.slice(0, MAX_QUOTED)}...` : oneLine;
}

/**
 * Graph's `Retry-After` (B2.2): whole seconds in the documentation, fractional seconds (`2.128`) seen
 * from some front ends, or an HTTP-date.
 * @returns the delay in ms (never negative), or undefined when absent or unparseable.
 */
export function graphRetryAfterMs(
  value: string | null | undefined,
  nowMs: number = Date.now(),
): number | undefined {
  const v = value?.trim();
  if (v && /^\d+\.\d+$/.test(v)) return Math.ceil(Number(v) * 1000);
  return parseRetryAfter(v, nowMs);
}

/** A Graph error's code: `error.code`, or the inner code when the outer one is empty (batch items). */
export function graphErrorCode(body: unknown): string | undefined {
  const parsed = graphErrorBody.safeParse(body);
  if (!parsed.success) return undefined;
  const e = parsed.data.error;
  return e.code || e.innerError?.code || e.innererror?.code || undefined;
}

/**
 * The reason for a throttled answer: `MailboxConcurrency` when Graph says the app is over the 4
 * concurrent requests per mailbox (B2.2), so the worker can pace that connection rather than back off
 * the whole process; else Graph's code.
 */
function throttleReason(code: string | undefined, message: string | undefined): string | undefined {
  return /MailboxConcurrency/i.test(message ?? "") ? "MailboxConcurrency" : code;
}

/** Codes that mean the grant lacks a permission for this call (B2.1): reconnect with consent. */
const ACCESS_DENIED = new Set(["ErrorAccessDenied", "accessDenied", "Authorization_RequestDenied"]);

/** Codes of a sync state Graph no longer has (B8): start again with the window (`cursor_expired`). */
const SYNC_STATE_GONE = new Set([
  "SyncStateNotFound",
  "syncStateNotFound",
  "resyncRequired",
  "SyncStateInvalid",
]);

/** Rows of the Graph table: a status (or a status test) and an optional code test, then the kind. */
interface GraphRow {
  status: (s: number) => boolean;
  code?: (code: string | undefined) => boolean;
  kind: ProviderErrorKind;
}

const is = (...statuses: number[]) => (s: number) => statuses.includes(s);

/**
 * | status | code | kind |
 * | --- | --- | --- |
 * | 401 | any (`InvalidAuthenticationToken`, ...) | `auth`: refresh once, then reconnect ({@link afterUnauthorized}) |
 * | 429 | any (`TooManyRequests`, `ApplicationThrottled`: `MailboxConcurrency`) | `rate_limited` |
 * | 403 | `ErrorAccessDenied`, `accessDenied`, `Authorization_RequestDenied` | `insufficient_scope` |
 * | 403 | `ApplicationThrottled` and other throttling codes | `rate_limited` |
 * | 403 | other | `invalid` |
 * | 404 | `MailboxNotEnabledForRESTAPI` (no Exchange Online mailbox) | `invalid` |
 * | 404 | other (`ErrorItemNotFound`, `itemNotFound`) | `not_found` |
 * | 409, 412 (`ErrorIrresolvableConflict`) | any | `conflict` |
 * | 410 | `SyncStateNotFound`, `syncStateNotFound`, `resyncRequired`, `SyncStateInvalid` | `cursor_expired` |
 * | 410 | other | `gone` |
 * | 408, 500, 502, 503, 504, 509 and other 5xx | any | `transient` |
 * | other 4xx | any (`ErrorInvalidParameter`, `ErrorTimeIntervalTooBig`, `TimeZoneNotSupportedException`) | `invalid` |
 */
const GRAPH_TABLE: readonly GraphRow[] = [
  { status: is(401), kind: "auth" },
  { status: is(429), kind: "rate_limited" },
  { status: is(403), code: (c) => ACCESS_DENIED.has(c ?? ""), kind: "insufficient_scope" },
  {
    status: is(403),
    code: (c) => /Throttl|TooManyRequests|activityLimitReached/i.test(c ?? ""),
    kind: "rate_limited",
  },
  { status: is(404), code: (c) => c === "MailboxNotEnabledForRESTAPI", kind: "invalid" },
  { status: is(404), kind: "not_found" },
  { status: is(409, 412), kind: "conflict" },
  { status: is(410), code: (c) => SYNC_STATE_GONE.has(c ?? ""), kind: "cursor_expired" },
  { status: is(410), kind: "gone" },
  { status: (s) => s === 408 || s >= 500, kind: "transient" },
];

/**
 * Classify a non-2xx Graph answer (table above). `details.retryAfterMs` comes from `Retry-After`
 * whenever present (429, and 503/504 under load, B2.2); `details.reason` is Graph's code, or
 * `MailboxConcurrency` for the per-mailbox concurrency limit.
 *
 * @param status HTTP status.
 * @param body the parsed JSON body (any shape), or undefined.
 * @param headers the response headers (Retry-After).
 * @param operation a label for the message, e.g. `events.create`.
 * @param resource for `not_found`: what the call addressed, when the caller knows.
 * @param nowMs the current time in epoch ms, for HTTP-date Retry-After values.
 */
export function classifyGraphResponse(
  status: number,
  body: unknown,
  headers: Headers | undefined,
  operation: string,
  options: { resource?: "calendar" | "event"; nowMs?: number } = {},
): ProviderError {
  const parsed = graphErrorBody.safeParse(body);
  const message = parsed.success ? parsed.data.error.message : undefined;
  const code = graphErrorCode(body);
  const row = GRAPH_TABLE.find((r) => r.status(status) && (!r.code || r.code(code)));
  const kind = row?.kind ?? "invalid";
  const reason = kind === "rate_limited" ? throttleReason(code, message) : code;
  const retryAfterMs = graphRetryAfterMs(headers?.get("retry-after"), options.nowMs);
  const text = [`Microsoft Graph ${operation} failed: HTTP ${status}`, code, quote(message)].filter(Boolean);
  return new ProviderError(kind, text.join(" "), {
    status,
    ...(reason ? { reason } : {}),
    ...(retryAfterMs !== undefined ? { retryAfterMs } : {}),
    ...(kind === "not_found" && options.resource ? { resource: options.resource } : {}),
  });
}

/** True when Graph refused a request for the per-mailbox concurrency limit (4 in flight, B2.2). */
export function isMailboxConcurrency(err: ProviderError): boolean {
  return err.kind === "rate_limited" && err.details.reason === "MailboxConcurrency";
}

/**
 * What to do after a Graph 401 (B2.1): the access token may just have expired early (lifetimes are
 * randomised, B1.3), so refresh once and retry; a 401 with a freshly refreshed token means the grant is
 * no longer good: the staff member must reconnect.
 */
export function afterUnauthorized(alreadyRefreshed: boolean): "refresh_and_retry" | "reconnect" {
  return alreadyRefreshed ? "reconnect" : "refresh_and_retry";
}

/** What an AADSTS code means for us (B1.5). `reason` is what lands in `details.reason`. */
interface AadstsRow {
  codes: readonly number[];
  kind: ProviderErrorKind;
  reason: string;
}

/**
 * AADSTS codes, checked before the RFC 6749 `error` string (B1.5):
 *
 * | AADSTS | meaning | kind | reason |
 * | --- | --- | --- | --- |
 * | 700082 | refresh token expired after 90 days unused | `auth` | `refresh_token_expired` |
 * | 70008 | code or refresh token expired | `auth` | `grant_expired` |
 * | 50173 | grant revoked: password changed or reset, sessions revoked | `auth` | `grant_revoked` |
 * | 65001 | consent missing or withdrawn | `auth` | `consent_required` |
 * | 70000, 54005, 501481 | invalid grant: reused code, bad code, PKCE verifier mismatch | `auth` | `invalid_grant` |
 * | 50076, 50079, 50078 | multi-factor authentication required (interactive sign-in) | `auth` | `interaction_required` |
 * | 50196 | request loop detected: the service throttles the client | `rate_limited` | `throttled` |
 * | 70011 | invalid scope | `invalid` | `invalid_scope` |
 * | 7000215, 7000222 | client secret invalid or expired (deployment problem) | `invalid` | `invalid_client` |
 */
const AADSTS_TABLE: readonly AadstsRow[] = [
  { codes: [700082], kind: "auth", reason: "refresh_token_expired" },
  { codes: [70008], kind: "auth", reason: "grant_expired" },
  { codes: [50173], kind: "auth", reason: "grant_revoked" },
  { codes: [65001], kind: "auth", reason: "consent_required" },
  { codes: [70000, 54005, 501481], kind: "auth", reason: "invalid_grant" },
  { codes: [50076, 50079, 50078], kind: "auth", reason: "interaction_required" },
  { codes: [50196], kind: "rate_limited", reason: "throttled" },
  { codes: [70011], kind: "invalid", reason: "invalid_scope" },
  { codes: [7000215, 7000222], kind: "invalid", reason: "invalid_client" },
];

/**
 * RFC 6749 `error` values without a known AADSTS code: `invalid_grant`, `interaction_required` and
 * `consent_required` mean the grant is unusable (reconnect); `temporarily_unavailable` is retried;
 * client and request errors are permanent.
 */
const OAUTH_ERROR_KIND: Readonly<Record<string, ProviderErrorKind>> = {
  invalid_grant: "auth",
  interaction_required: "auth",
  consent_required: "auth",
  login_required: "auth",
  access_denied: "auth",
  temporarily_unavailable: "transient",
  server_error: "transient",
  invalid_scope: "invalid",
  invalid_client: "invalid",
  unauthorized_client: "invalid",
  invalid_request: "invalid",
  unsupported_grant_type: "invalid",
  invalid_resource: "invalid",
};

/**
 * The AADSTS code of a token error: the first of `error_codes`, else the `AADSTSnnnn:` prefix of the
 * description.
 */
export function aadstsCode(body: unknown): number | undefined {
  const parsed = aadstsErrorBody.safeParse(body);
  if (!parsed.success) return undefined;
  const first = parsed.data.error_codes?.[0];
  if (first !== undefined) return first;
  const m = /^AADSTS(\d+)\b/.exec(parsed.data.error_description ?? "");
  return m ? Number(m[1]) : undefined;
}

/**
 * Classify a token endpoint failure (code exchange or refresh) from its status and body (B1.5):
 * the AADSTS table first, then the RFC 6749 `error`, then the status (429 `rate_limited`, 408/5xx
 * `transient`, else `invalid`). `details.reason` is the table's reason, or the `error` string.
 *
 * @param body the parsed JSON body (any shape), or undefined.
 * @param headers response headers (Retry-After).
 * @param operation a label for the message, e.g. `token refresh`.
 */
export function classifyTokenError(
  status: number,
  body: unknown,
  headers: Headers | undefined,
  operation: string,
  nowMs: number = Date.now(),
): ProviderError {
  const parsed = aadstsErrorBody.safeParse(body);
  const error = parsed.success ? parsed.data.error : undefined;
  const code = aadstsCode(body);
  const row = code === undefined ? undefined : AADSTS_TABLE.find((r) => r.codes.includes(code));
  let kind: ProviderErrorKind;
  let reason: string | undefined;
  if (row) {
    kind = row.kind;
    reason = row.reason;
  } else if (status === 429) {
    kind = "rate_limited";
    reason = error ?? "throttled";
  } else if (error && Object.hasOwn(OAUTH_ERROR_KIND, error)) {
    kind = OAUTH_ERROR_KIND[error];
    reason = error;
  } else {
    kind = status === 408 || status >= 500 ? "transient" : "invalid";
    reason = error;
  }
  const retryAfterMs = graphRetryAfterMs(headers?.get("retry-after"), nowMs);
  const description = parsed.success ? quote(parsed.data.error_description) : "";
  const text = [`Microsoft ${operation} failed: HTTP ${status}`, error, description].filter(Boolean);
  return new ProviderError(kind, text.join(" "), {
    status,
    ...(reason ? { reason } : {}),
    ...(retryAfterMs !== undefined ? { retryAfterMs } : {}),
  });
}
