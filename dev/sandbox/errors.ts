/**
 * Error bodies in the three shapes the sandbox speaks:
 * - Calendar v3: `{"error":{"errors":[{domain,reason,message,locationType?,location?}],"code","message","status"}}`
 *   (docs/providers/google.md A2.1; `status` as in 401-authError-unauthenticated.json of tests/fixtures);
 * - OAuth endpoints: RFC 6749 `{"error","error_description"}` (A1.4);
 * - admin API: the project's envelope `{"error":{"code","message"},"request_id"}`.
 */

/** One entry of Google's `errors[]` array. */
export interface GoogleErrorItem {
  domain: string;
  reason: string;
  message: string;
  locationType?: string;
  location?: string;
}

/**
 * Known reasons with Google's domain and message (A2.1 catalogue). Used for handler errors and for
 * injected faults, so a fault `{status:410, reason:"fullSyncRequired"}` looks like the real one.
 */
export const REASONS: Record<string, Omit<GoogleErrorItem, "reason">> = {
  authError: {
    domain: "global",
    message: "Invalid Credentials",
    locationType: "header",
    location: "Authorization",
  },
  required: { domain: "global", message: "Required" },
  insufficientPermissions: { domain: "global", message: "Insufficient Permission" },
  forbidden: { domain: "global", message: "Forbidden" },
  requiredAccessLevel: { domain: "calendar", message: "You need to have writer access to this calendar." },
  rateLimitExceeded: { domain: "usageLimits", message: "Rate Limit Exceeded" },
  userRateLimitExceeded: { domain: "usageLimits", message: "User Rate Limit Exceeded" },
  quotaExceeded: { domain: "usageLimits", message: "Calendar usage limits exceeded." },
  notFound: { domain: "global", message: "Not Found" },
  duplicate: { domain: "global", message: "The requested identifier already exists." },
  conflict: { domain: "global", message: "Conflict" },
  deleted: { domain: "global", message: "Resource has been deleted" },
  fullSyncRequired: {
    domain: "calendar",
    message: "Sync token is no longer valid, a full sync is required.",
    locationType: "parameter",
    location: "syncToken",
  },
  updatedMinTooLongAgo: {
    domain: "calendar",
    message: "The requested minimum modification time lies too far in the past.",
    locationType: "parameter",
    location: "updatedMin",
  },
  conditionNotMet: {
    domain: "global",
    message: "Precondition Failed",
    locationType: "header",
    location: "If-Match",
  },
  syncTokenWithRequestRestrictions: {
    domain: "calendar",
    message: "Sync token cannot be used with other request restrictions.",
  },
  timeRangeEmpty: {
    domain: "calendar",
    message: "The specified time range is empty.",
    locationType: "parameter",
    location: "timeMax",
  },
  timeRangeTooLong: { domain: "calendar", message: "The requested time range is too long." },
  invalid: { domain: "global", message: "Invalid Value" },
  badRequest: { domain: "global", message: "Bad Request" },
  parseError: { domain: "global", message: "Parse Error" },
  backendError: { domain: "global", message: "Backend Error" },
};

/** Canonical status names Google adds next to `code` ([infer] beyond 401, see A2.1). */
const STATUS_NAMES: Record<number, string> = {
  400: "INVALID_ARGUMENT",
  401: "UNAUTHENTICATED",
  403: "PERMISSION_DENIED",
  404: "NOT_FOUND",
  409: "ALREADY_EXISTS",
  410: "FAILED_PRECONDITION",
  412: "FAILED_PRECONDITION",
  429: "RESOURCE_EXHAUSTED",
  500: "INTERNAL",
  502: "UNAVAILABLE",
  503: "UNAVAILABLE",
  504: "DEADLINE_EXCEEDED",
};

/** `WWW-Authenticate` Google sends with 401s from the Calendar API (A2.1, [obs]). */
export const WWW_AUTHENTICATE_INVALID = 'Bearer realm="https://accounts.google.com/", error="invalid_token"';

/** A Calendar v3 failure; the server turns it into Google's envelope. */
export class GoogleApiError extends Error {
  readonly item: GoogleErrorItem;
  readonly headers: Record<string, string>;
  constructor(
    readonly status: number,
    reason: string,
    opts:
      & { message?: string; topMessage?: string; headers?: Record<string, string> }
      & Partial<
        Pick<GoogleErrorItem, "domain" | "location" | "locationType">
      > = {},
  ) {
    const known = REASONS[reason] ?? { domain: "global", message: opts.message ?? reason };
    const item: GoogleErrorItem = {
      domain: opts.domain ?? known.domain,
      reason,
      message: opts.message ?? known.message,
    };
    const locationType = opts.locationType ?? known.locationType;
    const location = opts.location ?? known.location;
    if (locationType) item.locationType = locationType;
    if (location) item.location = location;
    super(opts.topMessage ?? item.message);
    this.name = "GoogleApiError";
    this.item = item;
    this.headers = opts.headers ?? {};
    if (status === 401 && !this.headers["www-authenticate"]) {
      this.headers["www-authenticate"] = WWW_AUTHENTICATE_INVALID;
    }
  }

  /** The Google envelope as a Response. */
  toResponse(): Response {
    const body = {
      error: {
        code: this.status,
        message: this.message,
        errors: [this.item],
        status: STATUS_NAMES[this.status] ?? (this.status >= 500 ? "INTERNAL" : "FAILED_PRECONDITION"),
      },
    };
    return jsonResponse(body, this.status, this.headers);
  }
}

/** The 401 for a missing, unknown, revoked or expired access token (as 401-authError-unauthenticated.json). */
export function authError(): GoogleApiError {
  return new GoogleApiError(401, "authError", {
    topMessage:
      "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project.",
  });
}

/** The 401 Google gives when no credential is sent at all. */
export function loginRequired(): GoogleApiError {
  return new GoogleApiError(401, "required", {
    message: "Login Required.",
    locationType: "header",
    location: "Authorization",
    topMessage:
      "Request is missing required authentication credential. Expected OAuth 2 access token, login cookie or other valid authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project.",
  });
}

/** The 403 for a token whose grant lacks every scope the method accepts. */
export function insufficientScope(): GoogleApiError {
  return new GoogleApiError(403, "insufficientPermissions", {
    topMessage: "Request had insufficient authentication scopes.",
    headers: {
      "www-authenticate":
        'Bearer realm="https://accounts.google.com/", error="insufficient_scope", scope="https://www.googleapis.com/auth/calendar"',
    },
  });
}

/** Shorthand for a 400 `invalid` with a specific message. */
export const invalid = (message: string, location?: string): GoogleApiError =>
  new GoogleApiError(400, "invalid", {
    message,
    ...(location ? { locationType: "parameter", location } : {}),
  });

/** Shorthand for a 400 `badRequest` (Google's answer to malformed parameters such as timeMin). */
export const badRequest = (message = "Bad Request"): GoogleApiError =>
  new GoogleApiError(400, "badRequest", { message });

/**
 * Google's envelope for a status alone (used by injected faults): 429/403 -> rateLimitExceeded,
 * 5xx -> backendError, 401 -> authError, and the catalogue for anything else.
 */
export function errorForStatus(status: number, reason?: string, message?: string): GoogleApiError {
  const byStatus: Record<number, string> = {
    400: "badRequest",
    401: "authError",
    403: "rateLimitExceeded",
    404: "notFound",
    409: "conflict",
    410: "deleted",
    412: "conditionNotMet",
    429: "rateLimitExceeded",
  };
  const r = reason ?? byStatus[status] ?? (status >= 500 ? "backendError" : "badRequest");
  if (r === "authError" && !message) return authError();
  const unavailable = status === 503 && r === "backendError" && !message;
  return new GoogleApiError(status, r, {
    ...(message ? { message } : {}),
    ...(unavailable ? { topMessage: "The service is currently unavailable." } : {}),
  });
}

/** An OAuth endpoint failure (RFC 6749 section 5.2 JSON). */
export class OAuthError extends Error {
  constructor(
    readonly status: number,
    readonly error: string,
    readonly description: string,
  ) {
    super(description);
    this.name = "OAuthError";
  }

  /** The RFC 6749 JSON answer, never cached. */
  toResponse(headers: Record<string, string> = {}): Response {
    return jsonResponse({ error: this.error, error_description: this.description }, this.status, {
      "cache-control": "no-store",
      pragma: "no-cache",
      ...headers,
    });
  }
}

/** An admin API failure, answered with the project's envelope. */
export class AdminError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = "AdminError";
  }

  /** The project's error envelope with a fresh request id. */
  toResponse(): Response {
    return jsonResponse(
      { error: { code: this.code, message: this.message }, request_id: crypto.randomUUID() },
      this.status,
    );
  }
}

/** JSON with Google's content type. */
export function jsonResponse(body: unknown, status = 200, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { "content-type": "application/json; charset=UTF-8", ...headers },
  });
}
