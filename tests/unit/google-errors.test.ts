import assert from "node:assert/strict";
import { parseRetryAfter } from "../../supabase/functions/_shared/http-client/retry-after.ts";
import { classifyTransportError } from "../../supabase/functions/_shared/http-client/transport-errors.ts";
import {
  classifyGoogleResponse,
  googleErrorReason,
} from "../../supabase/functions/_shared/providers/google/errors.ts";
import { ProviderError, type ProviderErrorKind } from "../../supabase/functions/_shared/providers/types.ts";

/** Google's error bodies, documented and observed (provenance: tests/fixtures/README.md). */
const ERRORS = new URL("../fixtures/google/errors/", import.meta.url);

/** Expected kind and reason for every fixture, named `<status>-<reason>[-variant].json`. */
const EXPECTED: Record<string, { kind: ProviderErrorKind; reason: string }> = {
  "400-invalid-resource-id.json": { kind: "invalid", reason: "invalid" },
  "400-syncTokenWithRequestRestrictions.json": {
    kind: "invalid",
    reason: "syncTokenWithRequestRestrictions",
  },
  "400-timeRangeEmpty.json": { kind: "invalid", reason: "timeRangeEmpty" },
  "401-authError.json": { kind: "auth", reason: "authError" },
  "401-authError-unauthenticated.json": { kind: "auth", reason: "authError" },
  "403-forbiddenForNonOrganizer.json": { kind: "invalid", reason: "forbiddenForNonOrganizer" },
  "403-quotaExceeded.json": { kind: "rate_limited", reason: "quotaExceeded" },
  "403-rateLimitExceeded.json": { kind: "rate_limited", reason: "rateLimitExceeded" },
  "403-userRateLimitExceeded.json": { kind: "rate_limited", reason: "userRateLimitExceeded" },
  "404-notFound.json": { kind: "not_found", reason: "notFound" },
  "409-conflict.json": { kind: "conflict", reason: "conflict" },
  "409-duplicate.json": { kind: "conflict", reason: "duplicate" },
  "410-deleted.json": { kind: "gone", reason: "deleted" },
  "410-fullSyncRequired.json": { kind: "cursor_expired", reason: "fullSyncRequired" },
  "410-updatedMinTooLongAgo.json": { kind: "cursor_expired", reason: "updatedMinTooLongAgo" },
  "412-conditionNotMet.json": { kind: "conflict", reason: "conditionNotMet" },
  "429-rateLimitExceeded.json": { kind: "rate_limited", reason: "rateLimitExceeded" },
  "500-backendError.json": { kind: "transient", reason: "backendError" },
};

Deno.test("classifyGoogleResponse: every Google error fixture", async () => {
  const files = [...Deno.readDirSync(ERRORS)]
    .map((e) => e.name)
    .filter((n) => n.endsWith(".json"))
    .sort();
  assert.deepEqual(files, Object.keys(EXPECTED).sort(), "a fixture has no expectation (or vanished)");
  for (const file of files) {
    const body = JSON.parse(await Deno.readTextFile(new URL(file, ERRORS)));
    const status = Number(/^(\d{3})-/.exec(file)![1]);
    assert.equal(body.error.code, status, `${file}: status in the name matches the body`);
    const err = classifyGoogleResponse(status, body, new Headers(), "events.test");
    assert.ok(err instanceof ProviderError);
    assert.equal(err.kind, EXPECTED[file].kind, file);
    assert.equal(err.details.reason, EXPECTED[file].reason, file);
    assert.equal(err.details.status, status, file);
    assert.equal(err.details.retryAfterMs, undefined, `${file}: no Retry-After header, no delay`);
    assert.match(err.message, new RegExp(`^Google events\\.test failed: HTTP ${status} `), file);
  }
});

Deno.test("classifyGoogleResponse: insufficient scope in its three spellings", () => {
  const classic = { error: { errors: [{ reason: "insufficientPermissions" }], code: 403, message: "x" } };
  const modern = {
    error: {
      code: 403,
      message: "Request had insufficient authentication scopes.",
      errors: [{ message: "Insufficient Permission", domain: "global", reason: "insufficientPermissions" }],
      status: "PERMISSION_DENIED",
      details: [{
        "@type": "type.googleapis.com/google.rpc.ErrorInfo",
        reason: "ACCESS_TOKEN_SCOPE_INSUFFICIENT",
      }],
    },
  };
  const statusOnly = {
    error: {
      code: 403,
      message: "Request had insufficient authentication scopes.",
      status: "PERMISSION_DENIED",
    },
  };
  for (const body of [classic, modern, statusOnly]) {
    assert.equal(classifyGoogleResponse(403, body, new Headers(), "op").kind, "insufficient_scope");
  }
  const header = new Headers({ "www-authenticate": 'Bearer realm="x", error="insufficient_scope"' });
  assert.equal(classifyGoogleResponse(403, undefined, header, "op").kind, "insufficient_scope");
  const otherDenied = {
    error: { code: 403, message: "The caller does not have permission", status: "PERMISSION_DENIED" },
  };
  assert.equal(classifyGoogleResponse(403, otherDenied, new Headers(), "op").kind, "invalid");
});

Deno.test("classifyGoogleResponse: status table without a Google body", () => {
  const table: [number, ProviderErrorKind][] = [
    [400, "invalid"],
    [401, "auth"],
    [403, "invalid"],
    [404, "not_found"],
    [405, "invalid"],
    [408, "transient"],
    [409, "conflict"],
    [410, "gone"],
    [412, "conflict"],
    [422, "invalid"],
    [429, "rate_limited"],
    [500, "transient"],
    [502, "transient"],
    [503, "transient"],
    [504, "transient"],
  ];
  for (const [status, kind] of table) {
    const err = classifyGoogleResponse(status, "<html>proxy page</html>", new Headers(), "op");
    assert.equal(err.kind, kind, String(status));
    assert.equal(err.details.reason, undefined);
  }
});

Deno.test("classifyGoogleResponse: Retry-After becomes retryAfterMs", () => {
  const body = {
    error: { errors: [{ reason: "rateLimitExceeded" }], code: 429, message: "Rate Limit Exceeded" },
  };
  const now = Date.parse("2026-01-05T09:00:00Z");
  const seconds = classifyGoogleResponse(429, body, new Headers({ "retry-after": "7" }), "op", now);
  assert.equal(seconds.kind, "rate_limited");
  assert.equal(seconds.details.retryAfterMs, 7000);
  const date = classifyGoogleResponse(
    403,
    { error: { errors: [{ reason: "userRateLimitExceeded" }], code: 403 } },
    new Headers({ "retry-after": "Mon, 05 Jan 2026 09:00:30 GMT" }),
    "op",
    now,
  );
  assert.equal(date.kind, "rate_limited");
  assert.equal(date.details.retryAfterMs, 30_000);
  const unavailable = classifyGoogleResponse(503, undefined, new Headers({ "retry-after": "2" }), "op", now);
  assert.equal(unavailable.kind, "transient");
  assert.equal(unavailable.details.retryAfterMs, 2000);
});

Deno.test("parseRetryAfter: seconds, HTTP-dates, and garbage", () => {
  const now = Date.parse("2026-01-05T09:00:00Z");
  assert.equal(parseRetryAfter("0", now), 0);
  assert.equal(parseRetryAfter("120", now), 120_000);
  assert.equal(parseRetryAfter(" 5 ", now), 5000);
  assert.equal(parseRetryAfter("Mon, 05 Jan 2026 09:01:00 GMT", now), 60_000);
  assert.equal(parseRetryAfter("Monday, 05-Jan-26 09:01:00 GMT", now), 60_000, "RFC 850 form");
  assert.equal(parseRetryAfter("Mon, 05 Jan 2026 08:00:00 GMT", now), 0, "a past date means now");
  assert.equal(parseRetryAfter(null, now), undefined);
  assert.equal(parseRetryAfter(undefined, now), undefined);
  assert.equal(parseRetryAfter("", now), undefined);
  assert.equal(parseRetryAfter("-5", now), undefined);
  assert.equal(parseRetryAfter("1.5", now), undefined);
  assert.equal(parseRetryAfter("soon", now), undefined);
  assert.equal(parseRetryAfter("2026-01-05T09:01:00Z", now), undefined, "not an HTTP-date");
});

Deno.test("googleErrorReason: first reason, else the canonical status, else nothing", () => {
  assert.equal(
    googleErrorReason({ error: { errors: [{ domain: "global" }, { reason: "b" }], code: 400 } }),
    "b",
  );
  assert.equal(googleErrorReason({ error: { code: 401, status: "UNAUTHENTICATED" } }), "UNAUTHENTICATED");
  assert.equal(googleErrorReason({ error: "invalid_grant" }), undefined);
  assert.equal(googleErrorReason(undefined), undefined);
});

Deno.test("classifyTransportError: timeouts, aborts and network errors are transient; bugs rethrow", () => {
  const timeout = classifyTransportError(new DOMException("Signal timed out.", "TimeoutError"), "op", 300);
  assert.equal(timeout.kind, "transient");
  assert.equal(timeout.details.reason, "timeout");
  assert.match(timeout.message, /300 ms/);
  assert.equal(classifyTransportError(new DOMException("x", "AbortError"), "op").kind, "transient");
  const network = classifyTransportError(
    new TypeError("error sending request for url (https://x/?token=secret)"),
    "op",
  );
  assert.equal(network.kind, "transient");
  assert.doesNotMatch(network.message, /secret/, "the underlying message is never quoted");
  const existing = new ProviderError("gone", "already classified");
  assert.equal(classifyTransportError(existing, "op"), existing);
  assert.throws(() => classifyTransportError(new RangeError("bug"), "op"), RangeError);
  const coded = Object.assign(new TypeError("bad argument"), { code: "ERR_INVALID_ARG_TYPE" });
  assert.throws(() => classifyTransportError(coded, "op"), TypeError);
});

Deno.test("classifyGoogleResponse: every usage-limit 403 is rate_limited, never permanent", () => {
  const limited = (reason: string, domain = "usageLimits") => ({
    error: { errors: [{ domain, reason, message: reason }], code: 403, message: reason },
  });
  for (
    const reason of [
      "rateLimitExceeded",
      "userRateLimitExceeded",
      "quotaExceeded",
      "dailyLimitExceeded",
      "variableTermLimitExceeded",
      "concurrentLimitExceeded",
    ]
  ) {
    const err = classifyGoogleResponse(403, limited(reason, "global"), undefined, "events.insert");
    assert.equal(err.kind, "rate_limited", reason);
    assert.equal(err.details.reason, reason);
  }
  // A usageLimits domain or RESOURCE_EXHAUSTED status counts even under an unfamiliar reason.
  assert.equal(classifyGoogleResponse(403, limited("somethingNew"), undefined, "op").kind, "rate_limited");
  assert.equal(
    classifyGoogleResponse(403, { error: { code: 403, status: "RESOURCE_EXHAUSTED" } }, undefined, "op").kind,
    "rate_limited",
  );
  // A 403 that is about permission stays what it is.
  assert.equal(classifyGoogleResponse(403, limited("forbidden", "global"), undefined, "op").kind, "invalid");
  assert.equal(
    classifyGoogleResponse(403, limited("forbiddenForNonOrganizer", "calendar"), undefined, "op").kind,
    "invalid",
  );
  assert.equal(classifyGoogleResponse(429, limited("anything"), undefined, "op").kind, "rate_limited");
});
