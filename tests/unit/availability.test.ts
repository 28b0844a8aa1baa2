/**
 * Availability windows and busy-interval normalisation (availability.ts): the range rules every
 * caller gets, and what leaves the function (clipped, sorted, merged, UTC).
 */
import assert from "node:assert/strict";
import {
  checkWindow,
  formatUtc,
  MAX_FUTURE_DAYS,
  MAX_PAST_DAYS,
  MAX_RANGE_DAYS,
  normaliseBusy,
} from "../../supabase/functions/_shared/availability.ts";
import { HttpError } from "../../supabase/functions/_shared/http.ts";

const NOW = Date.parse("2026-03-01T12:00:00Z");
const DAY = 86_400_000;

function refused(min: string, max: string, code: string) {
  assert.throws(() => checkWindow(min, max, NOW), (err: unknown) => {
    assert.ok(err instanceof HttpError);
    assert.equal(err.status, 400);
    assert.equal(err.code, code, `${min} .. ${max}`);
    return true;
  });
}

Deno.test("availability: offsets are honoured (the same instant written two ways)", () => {
  const w = checkWindow("2026-03-02T09:00:00+01:00", "2026-03-02T10:00:00Z", NOW);
  assert.equal(w.startMs, Date.parse("2026-03-02T08:00:00Z"));
  assert.equal(w.endMs - w.startMs, 2 * 3600_000);
});

Deno.test("availability: time_max must be after time_min", () => {
  refused("2026-03-02T10:00:00Z", "2026-03-02T09:00:00Z", "invalid_range");
  refused("2026-03-02T10:00:00Z", "2026-03-02T10:00:00Z", "invalid_range");
  refused("2026-03-02T10:00:00+02:00", "2026-03-02T08:00:00Z", "invalid_range");
});

Deno.test("availability: exactly 62 days is accepted, a millisecond more is range_too_long", () => {
  const start = Date.parse("2026-03-02T00:00:00Z");
  checkWindow(formatUtc(start), formatUtc(start + MAX_RANGE_DAYS * DAY), NOW);
  refused(formatUtc(start), formatUtc(start + MAX_RANGE_DAYS * DAY + 1), "range_too_long");
  refused("2026-03-02T00:00:00Z", "2026-12-31T00:00:00Z", "range_too_long");
});

Deno.test("availability: windows far in the past or future are range_out_of_bounds", () => {
  refused(
    formatUtc(NOW - (MAX_PAST_DAYS + 1) * DAY),
    formatUtc(NOW - MAX_PAST_DAYS * DAY),
    "range_out_of_bounds",
  );
  refused(
    formatUtc(NOW + MAX_FUTURE_DAYS * DAY),
    formatUtc(NOW + (MAX_FUTURE_DAYS + 1) * DAY),
    "range_out_of_bounds",
  );
  refused("0001-01-01T00:00:00Z", "0001-01-02T00:00:00Z", "range_out_of_bounds");
  refused("9999-01-01T00:00:00Z", "9999-01-02T00:00:00Z", "range_out_of_bounds");
  checkWindow(formatUtc(NOW - 30 * DAY), formatUtc(NOW - 29 * DAY), NOW);
});

Deno.test("availability: busy intervals are clipped, sorted, merged (overlapping and touching) and UTC", () => {
  const window = checkWindow("2026-03-02T08:00:00Z", "2026-03-02T18:00:00Z", NOW);
  const busy = normaliseBusy([
    { start: "2026-03-02T15:00:00Z", end: "2026-03-02T16:00:00Z" },
    { start: "2026-03-02T07:00:00Z", end: "2026-03-02T09:00:00Z" }, // starts before the window
    { start: "2026-03-02T10:00:00+01:00", end: "2026-03-02T10:00:00Z" }, // 09:00Z-10:00Z touches the first
    { start: "2026-03-02T12:00:00Z", end: "2026-03-02T13:00:00Z" },
    { start: "2026-03-02T12:30:00Z", end: "2026-03-02T12:45:00Z" }, // inside the previous one
    { start: "2026-03-02T17:30:00Z", end: "2026-03-02T19:00:00Z" }, // ends after the window
    { start: "2026-03-02T20:00:00Z", end: "2026-03-02T21:00:00Z" }, // outside entirely
    { start: "2026-03-02T14:00:00Z", end: "2026-03-02T14:00:00Z" }, // empty
    { start: "garbage", end: "2026-03-02T14:00:00Z" },
  ], window);
  assert.deepEqual(busy, [
    { start: "2026-03-02T08:00:00Z", end: "2026-03-02T10:00:00Z" },
    { start: "2026-03-02T12:00:00Z", end: "2026-03-02T13:00:00Z" },
    { start: "2026-03-02T15:00:00Z", end: "2026-03-02T16:00:00Z" },
    { start: "2026-03-02T17:30:00Z", end: "2026-03-02T18:00:00Z" },
  ]);
});

Deno.test("availability: sub-second boundaries keep their milliseconds", () => {
  assert.equal(formatUtc(Date.parse("2026-03-02T08:00:00.250Z")), "2026-03-02T08:00:00.250Z");
  assert.equal(formatUtc(Date.parse("2026-03-02T08:00:00.000+00:00")), "2026-03-02T08:00:00Z");
});
