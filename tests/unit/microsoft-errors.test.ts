/**
 * Every Graph and token-endpoint failure lands in the kind the sync engine acts on
 * (docs/providers/microsoft.md B1.5, B2, Part D): the fixtures (tests/fixtures/microsoft/) and one
 * row per documented code.
 */
import assert from "node:assert/strict";
import {
  aadstsCode,
  afterUnauthorized,
  classifyGraphResponse,
  classifyTokenError,
  graphErrorCode,
  graphRetryAfterMs,
  isMailboxConcurrency,
} from "../../supabase/functions/_shared/providers/microsoft/errors.ts";
import { ProviderError, type ProviderErrorKind } from "../../supabase/functions/_shared/providers/types.ts";

const FIXTURES = new URL("../fixtures/microsoft/", import.meta.url);
const fixture = (path: string) => JSON.parse(Deno.readTextFileSync(new URL(path, FIXTURES)));

Deno.test("classifyGraphResponse: every Graph error fixture, status taken from the file name", () => {
  const expected: Record<string, { kind: ProviderErrorKind; reason: string }> = {
    "400-invalidRange.json": { kind: "invalid", reason: "invalidRange" },
    "404-ErrorItemNotFound.json": { kind: "not_found", reason: "ErrorItemNotFound" },
    "410-SyncStateNotFound.json": { kind: "cursor_expired", reason: "SyncStateNotFound" },
    "429-TooManyRequests.json": { kind: "rate_limited", reason: "TooManyRequests" },
    "429-ApplicationThrottled-MailboxConcurrency.json": {
      kind: "rate_limited",
      reason: "MailboxConcurrency",
    },
  };
  const files = [...Deno.readDirSync(new URL("errors/", FIXTURES))].map((e) => e.name).sort();
  assert.deepEqual(files, Object.keys(expected).sort(), "a fixture has no expectation (or vanished)");
  for (const file of files) {
    const status = Number(file.slice(0, 3));
    const err = classifyGraphResponse(status, fixture(`errors/${file}`), new Headers(), "events.test");
    assert.equal(err.kind, expected[file].kind, file);
    assert.equal(err.details.reason, expected[file].reason, file);
    assert.equal(err.details.status, status, file);
    assert.match(err.message, new RegExp(`^Microsoft Graph events\\.test failed: HTTP ${status} `), file);
  }
});

/** [status, code, message?, kind, reason] */
const GRAPH_ROWS: [number, string | undefined, string | undefined, ProviderErrorKind, string | undefined][] =
  [
    [
      401,
      "InvalidAuthenticationToken",
      "Access token has expired or is not yet valid.",
      "auth",
      "InvalidAuthenticationToken",
    ],
    [
      401,
      "InvalidAuthenticationToken",
      "CompactToken parsing failed with error code: 80049217",
      "auth",
      "InvalidAuthenticationToken",
    ],
    [401, undefined, undefined, "auth", undefined],
    [
      403,
      "ErrorAccessDenied",
      "Access is denied. Check credentials and try again.",
      "insufficient_scope",
      "ErrorAccessDenied",
    ],
    [403, "accessDenied", undefined, "insufficient_scope", "accessDenied"],
    [403, "Authorization_RequestDenied", undefined, "insufficient_scope", "Authorization_RequestDenied"],
    [
      403,
      "ApplicationThrottled",
      "Application is over its MailboxConcurrency limit.",
      "rate_limited",
      "MailboxConcurrency",
    ],
    [403, "ErrorFolderNotFound", undefined, "invalid", "ErrorFolderNotFound"],
    [
      404,
      "ErrorItemNotFound",
      "The specified object was not found in the store.",
      "not_found",
      "ErrorItemNotFound",
    ],
    [404, "itemNotFound", undefined, "not_found", "itemNotFound"],
    [
      404,
      "MailboxNotEnabledForRESTAPI",
      "The mailbox is either inactive, soft-deleted, or is hosted on-premise.",
      "invalid",
      "MailboxNotEnabledForRESTAPI",
    ],
    [409, "ErrorIrresolvableConflict", undefined, "conflict", "ErrorIrresolvableConflict"],
    [
      412,
      "ErrorIrresolvableConflict",
      "The send or update operation could not be performed because the change key passed in the request does not match the current change key for the item.",
      "conflict",
      "ErrorIrresolvableConflict",
    ],
    [410, "syncStateNotFound", undefined, "cursor_expired", "syncStateNotFound"],
    [410, "resyncRequired", undefined, "cursor_expired", "resyncRequired"],
    [429, "TooManyRequests", "Please retry again later.", "rate_limited", "TooManyRequests"],
    [
      429,
      "ApplicationThrottled",
      "Application is over its MailboxConcurrency limit.",
      "rate_limited",
      "MailboxConcurrency",
    ],
    [
      400,
      "ErrorTimeIntervalTooBig",
      "The requested time duration specified is too long.",
      "invalid",
      "ErrorTimeIntervalTooBig",
    ],
    [400, "ErrorInvalidParameter", undefined, "invalid", "ErrorInvalidParameter"],
    [
      400,
      "TimeZoneNotSupportedException",
      "A valid TimeZone value must be specified.",
      "invalid",
      "TimeZoneNotSupportedException",
    ],
    [408, undefined, undefined, "transient", undefined],
    [500, "generalException", undefined, "transient", "generalException"],
    [502, undefined, undefined, "transient", undefined],
    [503, "serviceNotAvailable", undefined, "transient", "serviceNotAvailable"],
    [504, "UnknownError", undefined, "transient", "UnknownError"],
    [509, "bandwidthLimitExceeded", undefined, "transient", "bandwidthLimitExceeded"],
    [405, "ErrorInvalidRequest", undefined, "invalid", "ErrorInvalidRequest"],
    [413, undefined, undefined, "invalid", undefined],
  ];

Deno.test("classifyGraphResponse: one row per status and code", () => {
  for (const [status, code, message, kind, reason] of GRAPH_ROWS) {
    const body = code === undefined ? undefined : { error: { code, ...(message ? { message } : {}) } };
    const err = classifyGraphResponse(status, body, undefined, "op");
    const label = `${status} ${code}`;
    assert.ok(err instanceof ProviderError, label);
    assert.equal(err.kind, kind, label);
    assert.equal(err.details.reason, reason, label);
    if (message) assert.ok(err.message.includes(message.slice(0, 40)), label);
  }
});

Deno.test("classifyGraphResponse: Retry-After on 429, 503 and 504, in seconds, fractions or an HTTP-date", () => {
  const now = Date.parse("2026-01-05T09:00:00Z");
  const tooMany = fixture("errors/429-TooManyRequests.json");
  const h = (v: string) => new Headers({ "retry-after": v });
  assert.equal(
    classifyGraphResponse(429, tooMany, h("10"), "op", { nowMs: now }).details.retryAfterMs,
    10_000,
  );
  assert.equal(classifyGraphResponse(503, undefined, h("2.128"), "op").details.retryAfterMs, 2_128);
  const at = classifyGraphResponse(504, undefined, h("Mon, 05 Jan 2026 09:00:30 GMT"), "op", { nowMs: now });
  assert.equal(at.kind, "transient");
  assert.equal(at.details.retryAfterMs, 30_000);
  assert.equal(classifyGraphResponse(429, tooMany, h("soon"), "op").details.retryAfterMs, undefined);
  assert.equal(classifyGraphResponse(429, tooMany, new Headers(), "op").details.retryAfterMs, undefined);
  assert.equal(graphRetryAfterMs(" 7 "), 7_000);
  assert.equal(graphRetryAfterMs(null), undefined);
  assert.equal(graphRetryAfterMs("-1"), undefined);
});

Deno.test("classifyGraphResponse: not_found names the resource the caller addressed; bodies of any shape", () => {
  const missing = fixture("errors/404-ErrorItemNotFound.json");
  assert.equal(
    classifyGraphResponse(404, missing, undefined, "op", { resource: "event" }).details.resource,
    "event",
  );
  assert.equal(classifyGraphResponse(404, missing, undefined, "op").details.resource, undefined);
  assert.equal(
    classifyGraphResponse(400, missing, undefined, "op", { resource: "event" }).details.resource,
    undefined,
  );
  for (const body of [undefined, null, "text", 42, [], { error: "x" }, { error: { code: 5 } }]) {
    const err = classifyGraphResponse(500, body, undefined, "op");
    assert.equal(err.kind, "transient");
    assert.equal(err.details.reason, undefined);
  }
  // A batch item's empty outer code: the inner one is used.
  assert.equal(
    graphErrorCode({ error: { code: "", innerError: { code: "ErrorItemNotFound" } } }),
    "ErrorItemNotFound",
  );
  assert.equal(graphErrorCode({ error: { code: "", innererror: { code: "badRequest" } } }), "badRequest");
});

Deno.test("classifyGraphResponse: long messages are cut; nothing but Graph's message is quoted", () => {
  const err = classifyGraphResponse(
    400,
    { error: { code: "x", message: "m ".repeat(500) } },
    undefined,
    "op",
  );
  assert.ok(err.message.length < 300, err.message);
  assert.ok(err.message.endsWith("..."));
});

Deno.test("a delta state Graph no longer has is cursor_expired (start again), any other 410 gone", () => {
  const expired = classifyGraphResponse(410, fixture("errors/410-SyncStateNotFound.json"), undefined, "op");
  assert.equal(expired.kind, "cursor_expired");
  assert.equal(expired.details.reason, "SyncStateNotFound");
  for (const code of ["syncStateNotFound", "resyncRequired", "SyncStateInvalid"]) {
    assert.equal(
      classifyGraphResponse(410, { error: { code } }, undefined, "op").kind,
      "cursor_expired",
      code,
    );
  }
  assert.equal(classifyGraphResponse(410, { error: { code: "other" } }, undefined, "op").kind, "gone");
  assert.equal(
    classifyGraphResponse(404, { error: { code: "SyncStateNotFound" } }, undefined, "op").kind,
    "not_found",
  );
});

Deno.test("helpers: mailbox concurrency, and one refresh after a 401", () => {
  const concurrency = fixture("errors/429-ApplicationThrottled-MailboxConcurrency.json");
  assert.ok(isMailboxConcurrency(classifyGraphResponse(429, concurrency, undefined, "op")));
  assert.ok(
    !isMailboxConcurrency(
      classifyGraphResponse(429, fixture("errors/429-TooManyRequests.json"), undefined, "op"),
    ),
  );
  assert.equal(afterUnauthorized(false), "refresh_and_retry");
  assert.equal(afterUnauthorized(true), "reconnect");
});

/** A token error body as the identity platform writes it (B1.5). */
function aadsts(error: string, code: number | undefined, text: string, extra: Record<string, unknown> = {}) {
  return {
    error,
    error_description:
      `${code === undefined ? "" : `AADSTS${code}: `}${text}\r\nTrace ID: 5e178ca4-7a77\r\n` +
      "Correlation ID: a3dce328-f8d3\r\nTimestamp: 2026-01-05 09:00:00Z",
    ...(code === undefined ? {} : { error_codes: [code] }),
    timestamp: "2026-01-05 09:00:00Z",
    trace_id: "5e178ca4-7a77",
    correlation_id: "a3dce328-f8d3",
    ...extra,
  };
}

/** [status, body, kind, reason] */
const TOKEN_ROWS: [number, unknown, ProviderErrorKind, string][] = [
  [
    400,
    aadsts("invalid_grant", 700082, "The refresh token has expired due to inactivity."),
    "auth",
    "refresh_token_expired",
  ],
  [
    400,
    aadsts("invalid_grant", 50173, "The provided grant has expired due to it being revoked."),
    "auth",
    "grant_revoked",
  ],
  [
    400,
    aadsts("invalid_grant", 65001, "The user or administrator has not consented.", {
      suberror: "consent_required",
    }),
    "auth",
    "consent_required",
  ],
  [
    400,
    aadsts("invalid_grant", 70000, "The provided value for the 'code' parameter is not valid."),
    "auth",
    "invalid_grant",
  ],
  [
    400,
    aadsts("invalid_grant", 54005, "OAuth2 Authorization code was already redeemed."),
    "auth",
    "invalid_grant",
  ],
  [
    400,
    aadsts("invalid_grant", 501481, "The Code_Verifier does not match the code_challenge."),
    "auth",
    "invalid_grant",
  ],
  [
    400,
    aadsts("invalid_grant", 70008, "The provided authorization code or refresh token has expired."),
    "auth",
    "grant_expired",
  ],
  [
    400,
    aadsts("invalid_grant", 50079, "Due to a configuration change you must enroll in MFA.", {
      suberror: "basic_action",
    }),
    "auth",
    "interaction_required",
  ],
  [
    400,
    aadsts("interaction_required", 50076, "You must use multi-factor authentication."),
    "auth",
    "interaction_required",
  ],
  [
    400,
    aadsts(
      "invalid_request",
      50196,
      "The server terminated an operation because it encountered a client request loop.",
    ),
    "rate_limited",
    "throttled",
  ],
  [400, aadsts("invalid_client", 7000215, "Invalid client secret provided."), "invalid", "invalid_client"],
  [
    401,
    aadsts("invalid_client", 7000222, "The provided client secret keys are expired."),
    "invalid",
    "invalid_client",
  ],
  [400, aadsts("invalid_grant", 123456, "Something new."), "auth", "invalid_grant"],
  [400, aadsts("invalid_scope", undefined, "The scope is not valid."), "invalid", "invalid_scope"],
  [400, aadsts("temporarily_unavailable", undefined, "Try again."), "transient", "temporarily_unavailable"],
  [429, aadsts("invalid_request", undefined, "Too many requests."), "rate_limited", "invalid_request"],
  [
    400,
    aadsts("unauthorized_client", undefined, "The client is not authorized."),
    "invalid",
    "unauthorized_client",
  ],
];

Deno.test("classifyTokenError: the AADSTS table, then the OAuth error, then the status", () => {
  for (const [status, body, kind, reason] of TOKEN_ROWS) {
    const err = classifyTokenError(status, body, undefined, "token refresh");
    const label = JSON.stringify(body).slice(0, 80);
    assert.equal(err.kind, kind, label);
    assert.equal(err.details.reason, reason, label);
    assert.equal(err.details.status, status, label);
    assert.doesNotMatch(err.message, /Trace ID|Correlation ID|5e178ca4/, "trace ids are not quoted");
    assert.match(err.message, /^Microsoft token refresh failed: HTTP \d{3} /);
  }
});

Deno.test("classifyTokenError: the fixtures (MFA from a real answer, invalid scope from the documentation)", () => {
  const mfa = fixture("oauth/error-invalid_grant-50076.json");
  assert.equal(aadstsCode(mfa), 50076);
  const e1 = classifyTokenError(400, mfa, undefined, "token refresh");
  assert.equal(e1.kind, "auth");
  assert.equal(e1.details.reason, "interaction_required");
  const scope = fixture("oauth/error-invalid_scope-70011.json");
  const e2 = classifyTokenError(400, scope, undefined, "code exchange");
  assert.equal(e2.kind, "invalid");
  assert.equal(e2.details.reason, "invalid_scope");
  // Without error_codes the code is read from the description's prefix.
  assert.equal(aadstsCode({ error: "invalid_grant", error_description: "AADSTS700082: expired" }), 700082);
  assert.equal(aadstsCode({ error: "invalid_grant" }), undefined);
  assert.equal(aadstsCode("nope"), undefined);
});

Deno.test("classifyTokenError: bodies that are not OAuth errors fall back to the status", () => {
  assert.equal(classifyTokenError(503, "<html>", undefined, "op").kind, "transient");
  assert.equal(classifyTokenError(500, undefined, undefined, "op").kind, "transient");
  assert.equal(classifyTokenError(400, { unexpected: true }, undefined, "op").kind, "invalid");
  assert.equal(classifyTokenError(400, { error: "toString" }, undefined, "op").kind, "invalid");
  const throttled = classifyTokenError(429, undefined, new Headers({ "retry-after": "5" }), "op");
  assert.equal(throttled.kind, "rate_limited");
  assert.equal(throttled.details.retryAfterMs, 5_000);
});
