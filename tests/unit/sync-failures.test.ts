/**
 * What the worker does with each kind of failure (sync/failures.ts): park without an attempt,
 * retry with backoff, or fail at once with a clear code.
 */
import assert from "node:assert/strict";
import { DomainError } from "../../supabase/functions/_shared/errors/domain-error.ts";
import { HttpError } from "../../supabase/functions/_shared/http.ts";
import { ProviderError } from "../../supabase/functions/_shared/providers/types.ts";
import { decideFailure, InvalidAppointmentError } from "../../supabase/functions/_shared/sync/failures.ts";

Deno.test("a revoked grant parks the row (DomainError needs_reconnect from connections.ts)", () => {
  const d = decideFailure(new DomainError("needs_reconnect", "reconnect required"));
  assert.deepEqual(d, {
    decision: "park",
    code: "needs_reconnect",
    message: "reconnect required",
    markNeedsReconnect: false,
  });
  assert.equal(decideFailure(new DomainError("not_connected", "none")).decision, "park");
  const unconfigured = decideFailure(
    new DomainError("provider_not_configured", "microsoft is not configured"),
  );
  assert.equal(unconfigured.decision, "park", "waits for the deployment to configure the provider");
  assert.equal(unconfigured.code, "provider_not_configured");
});

Deno.test("an HTTP status is no signal to the engine: an HttpError 409 is not a park", () => {
  assert.equal(decideFailure(new HttpError(409, "needs_reconnect", "x")).decision, "retry");
});

Deno.test("an expired sync cursor is its own retry code, not gone", () => {
  const d = decideFailure(new ProviderError("cursor_expired", "HTTP 410 fullSyncRequired", { status: 410 }));
  assert.equal(d.decision, "retry");
  assert.equal(d.code, "cursor_expired");
  assert.equal(decideFailure(new ProviderError("gone", "HTTP 410 deleted")).code, "provider_conflict");
});

Deno.test("a provider auth or scope failure parks the row and marks the connection", () => {
  for (
    const [kind, code] of [["auth", "needs_reconnect"], ["insufficient_scope", "insufficient_scope"]] as const
  ) {
    const d = decideFailure(new ProviderError(kind, "Google events.insert failed: HTTP 401"));
    assert.equal(d.decision, "park");
    assert.equal(d.code, code);
    assert.ok(d.decision === "park" && d.markNeedsReconnect);
  }
});

Deno.test("rate limits retry with the provider's Retry-After and rest the account", () => {
  const d = decideFailure(
    new ProviderError("rate_limited", "HTTP 429", { status: 429, retryAfterMs: 7_000 }),
  );
  assert.deepEqual(d, {
    decision: "retry",
    code: "rate_limited",
    message: "HTTP 429",
    rateLimited: true,
    retryAfterMs: 7_000,
  });
  const noHeader = decideFailure(new ProviderError("rate_limited", "HTTP 403 rateLimitExceeded"));
  assert.ok(noHeader.decision === "retry" && noHeader.retryAfterMs === undefined);
});

Deno.test("transient, conflict and gone failures retry without resting the account", () => {
  const cases = [["transient", "provider_unavailable"], ["conflict", "provider_conflict"], [
    "gone",
    "provider_conflict",
  ]];
  for (const [kind, code] of cases) {
    const d = decideFailure(new ProviderError(kind as "transient", "x"));
    assert.equal(d.decision, "retry", kind);
    assert.equal(d.code, code);
    assert.ok(d.decision === "retry" && !d.rateLimited);
  }
});

Deno.test("a missing calendar fails permanently and names the calendar", () => {
  const d = decideFailure(
    new ProviderError("not_found", "Google events.insert failed: HTTP 404 notFound"),
    "team@x",
  );
  assert.equal(d.decision, "fail");
  assert.equal(d.code, "calendar_not_found");
  assert.match(d.message, /calendar 'team@x' was not found/);
  assert.match(d.message, /choose another calendar/);
});

Deno.test("a missing event (the calendar is there) is retried, never calendar_not_found", () => {
  const d = decideFailure(
    new ProviderError("not_found", "event gone", { status: 404, reason: "notFound", resource: "event" }),
    "team@x",
  );
  assert.equal(d.decision, "retry");
  assert.equal(d.code, "event_not_found");
  const c = decideFailure(
    new ProviderError("not_found", "calendar gone", {
      status: 404,
      reason: "notFound",
      resource: "calendar",
    }),
    "team@x",
  );
  assert.equal(c.decision, "fail");
  assert.equal(c.code, "calendar_not_found");
});

Deno.test("every rate limit is a rate-limited retry that carries Retry-After", () => {
  const d = decideFailure(
    new ProviderError("rate_limited", "403 quotaExceeded", {
      status: 403,
      reason: "quotaExceeded",
      retryAfterMs: 9000,
    }),
  );
  assert.deepEqual(d, {
    decision: "retry",
    code: "rate_limited",
    message: "403 quotaExceeded",
    rateLimited: true,
    retryAfterMs: 9000,
  });
});

Deno.test("invalid requests and invalid appointments fail permanently", () => {
  assert.deepEqual(decideFailure(new ProviderError("invalid", "HTTP 400 invalid")), {
    decision: "fail",
    code: "provider_error",
    message: "HTTP 400 invalid",
  });
  const bad = decideFailure(new InvalidAppointmentError("appointment x ends before it starts"));
  assert.equal(bad.decision, "fail");
  assert.equal(bad.code, "invalid_appointment");
});

Deno.test("anything unexpected retries as internal_error, with a bounded message", () => {
  const d = decideFailure(new TypeError("x".repeat(2_000)));
  assert.equal(d.decision, "retry");
  assert.equal(d.code, "internal_error");
  assert.ok(d.message.startsWith("TypeError: "));
  assert.ok(d.message.length <= 500);
  assert.equal(decideFailure("weird").code, "internal_error");
});
