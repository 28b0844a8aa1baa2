/**
 * Error bodies of the Microsoft side of the sandbox (CONTRACT.md, "Microsoft"):
 * - Graph: `{"error":{"code","message","innerError":{"date","request-id","client-request-id"}}}`, with
 *   `request-id` / `client-request-id` response headers on every answer;
 * - identity platform token endpoint: RFC 6749 JSON extended with `error_codes`, `timestamp`,
 *   `trace_id`, `correlation_id`, `error_uri`, and `error_description` starting `AADSTS<code>: `.
 */
import { jsonResponse } from "./errors.ts";

/** Graph's `innerError.date` format: UTC without offset or fraction (`2024-01-01T00:00:00`). */
const graphDate = (ms: number) => new Date(ms).toISOString().slice(0, 19);

/** A Graph failure; the router turns it into Graph's envelope. */
export class GraphError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
    this.name = "GraphError";
  }

  /** Graph's envelope; `clientRequestId` is the caller's `client-request-id` header (or a fresh one). */
  toResponse(clientRequestId: string = crypto.randomUUID()): Response {
    const requestId = crypto.randomUUID();
    return jsonResponse(
      {
        error: {
          code: this.code,
          message: this.message,
          innerError: {
            date: graphDate(Date.now()),
            "request-id": requestId,
            "client-request-id": clientRequestId,
          },
        },
      },
      this.status,
      { ...graphHeaders(requestId, clientRequestId), ...this.headers },
    );
  }
}

/** The `request-id` / `client-request-id` headers Graph puts on every answer. */
export function graphHeaders(requestId: string, clientRequestId: string): Record<string, string> {
  return { "request-id": requestId, "client-request-id": clientRequestId };
}

/** The `WWW-Authenticate` Graph sends with 401s. */
export const GRAPH_WWW_AUTHENTICATE =
  'Bearer realm="", authorization_uri="https://login.microsoftonline.com/common/oauth2/authorize", client_id="00000003-0000-0000-c000-000000000000"';

/** 401 InvalidAuthenticationToken with Graph's message for the case. */
export const invalidToken = (message: string): GraphError =>
  new GraphError(401, "InvalidAuthenticationToken", message, { "www-authenticate": GRAPH_WWW_AUTHENTICATE });

/** 404 ErrorItemNotFound, Exchange's code for a missing or deleted item. */
export const itemNotFound = (): GraphError =>
  new GraphError(404, "ErrorItemNotFound", "The specified object was not found in the store.");

/** 403 ErrorAccessDenied (missing Calendars scope, read-only calendar). */
export const accessDenied = (): GraphError =>
  new GraphError(403, "ErrorAccessDenied", "Access is denied. Check credentials and try again.");

/** 400 ErrorInvalidRequest with a message. */
export const invalidRequest = (message: string): GraphError =>
  new GraphError(400, "ErrorInvalidRequest", message);

/** 400 TimeZoneNotSupportedException for a zone Graph does not know. */
export const timeZoneNotSupported = (zone: string): GraphError =>
  new GraphError(
    400,
    "TimeZoneNotSupportedException",
    `A valid TimeZone value must be specified. The following TimeZone value is not supported: '${zone}'.`,
  );

/** The 429 of the Outlook per-app-per-mailbox concurrency limit (B2.2, observed body). */
export const mailboxConcurrency = (retryAfterSeconds: number): GraphError =>
  new GraphError(429, "ApplicationThrottled", "Application is over its MailboxConcurrency limit.", {
    "retry-after": String(retryAfterSeconds),
  });

/** Graph's body for an injected status fault: 429 TooManyRequests, 503/504 service errors, else generic. */
export function graphErrorForStatus(status: number, code?: string, message?: string): GraphError {
  const defaults: Record<number, [string, string]> = {
    400: ["ErrorInvalidRequest", "The request is invalid."],
    401: ["InvalidAuthenticationToken", "Access token has expired or is not yet valid."],
    403: ["ErrorAccessDenied", "Access is denied. Check credentials and try again."],
    404: ["ErrorItemNotFound", "The specified object was not found in the store."],
    409: ["ErrorIrresolvableConflict", "The operation could not be performed because of a conflict."],
    412: [
      "ErrorIrresolvableConflict",
      "The send or update operation could not be performed because the change key passed in the request does not match the current change key for the item.",
    ],
    429: ["TooManyRequests", "Please retry again later."],
    500: ["ErrorInternalServerError", "An internal server error occurred. The operation failed."],
    503: ["ServiceNotAvailable", "The service is temporarily unavailable. Please retry later."],
    504: ["UnknownError", "The server did not receive a timely response from an upstream server."],
  };
  const [c, m] = defaults[status] ?? [status >= 500 ? "UnknownError" : "BadRequest", "The request failed."];
  const err = new GraphError(status, code ?? c, message ?? m);
  if (status === 401) err.headers["www-authenticate"] = GRAPH_WWW_AUTHENTICATE;
  return err;
}

/** `yyyy-mm-dd hh:mm:ssZ`, the identity platform's timestamp format. */
const aadTimestamp = (ms: number) => new Date(ms).toISOString().slice(0, 19).replace("T", " ") + "Z";

/** A token-endpoint failure in the identity platform's shape. */
export class AadstsError extends Error {
  constructor(
    readonly status: number,
    readonly error: string,
    readonly code: number,
    message: string,
    readonly extra: { suberror?: string; claims?: string } = {},
  ) {
    super(message);
    this.name = "AadstsError";
  }

  /** The JSON answer (never cached). */
  toResponse(headers: Record<string, string> = {}): Response {
    const now = Date.now();
    const traceId = crypto.randomUUID();
    const correlationId = crypto.randomUUID();
    const timestamp = aadTimestamp(now);
    return jsonResponse(
      {
        error: this.error,
        error_description:
          `AADSTS${this.code}: ${this.message}\r\nTrace ID: ${traceId}\r\nCorrelation ID: ${correlationId}\r\nTimestamp: ${timestamp}`,
        error_codes: [this.code],
        timestamp,
        trace_id: traceId,
        correlation_id: correlationId,
        error_uri: `https://login.microsoftonline.com/error?code=${this.code}`,
        ...(this.extra.suberror ? { suberror: this.extra.suberror } : {}),
        ...(this.extra.claims ? { claims: this.extra.claims } : {}),
      },
      this.status,
      { "cache-control": "no-store, no-cache", pragma: "no-cache", ...headers },
    );
  }
}

/** Token-endpoint answer of an injected status fault: 429/5xx -> `temporarily_unavailable`. */
export function aadErrorForStatus(status: number, error?: string, message?: string): AadstsError {
  if (status === 429 || status >= 500) {
    return new AadstsError(
      status,
      error ?? "temporarily_unavailable",
      status === 429 ? 50196 : 90033,
      message ??
        (status === 429
          ? "The server terminated an operation because it encountered a client request loop. Please contact your app vendor."
          : "A transient error has occurred. Please try again."),
    );
  }
  if (status === 401) {
    return new AadstsError(
      401,
      error ?? "invalid_client",
      7000215,
      message ?? "Invalid client secret provided.",
    );
  }
  return new AadstsError(status, error ?? "invalid_request", 900144, message ?? "The request is invalid.");
}
