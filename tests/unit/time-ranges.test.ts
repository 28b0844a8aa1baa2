import assert from "node:assert/strict";
import {
  DAY_MS,
  formatInstant,
  mergeIntervals,
  parseInstant,
  splitRange,
} from "../../supabase/functions/_shared/time-ranges.ts";

Deno.test("parseInstant: Z and offsets name the same instant", () => {
  const utc = Date.UTC(2026, 0, 5, 9, 0, 0);
  assert.equal(parseInstant("2026-01-05T09:00:00Z"), utc);
  assert.equal(parseInstant("2026-01-05T09:00:00z"), utc);
  assert.equal(parseInstant("2026-01-05T10:00:00+01:00"), utc);
  assert.equal(parseInstant("2026-01-05T04:00:00-05:00"), utc);
  assert.equal(parseInstant("2026-01-05T14:30:00+05:30"), utc);
  assert.equal(parseInstant("2026-01-05T09:00Z"), utc, "seconds are optional");
  assert.equal(parseInstant("2026-01-05T09:00:00-00:00"), utc);
  assert.equal(parseInstant("2026-01-04T23:00:00-10:00"), utc, "offset crosses the date line");
});

Deno.test("parseInstant: fractions are kept to the millisecond and truncated beyond", () => {
  const base = Date.UTC(2026, 0, 5, 9, 0, 0);
  assert.equal(parseInstant("2026-01-05T09:00:00.5Z"), base + 500);
  assert.equal(parseInstant("2026-01-05T09:00:00.250Z"), base + 250);
  assert.equal(parseInstant("2026-01-05T09:00:00.123456789Z"), base + 123);
});

Deno.test("parseInstant: refuses strings without an offset and impossible values", () => {
  for (
    const bad of [
      "2026-01-05T09:00:00", // wall clock, no offset
      "2026-01-05",
      "2026-01-05 09:00:00Z",
      "2026-02-30T09:00:00Z",
      "2026-13-01T09:00:00Z",
      "2026-01-05T24:00:00Z",
      "2026-01-05T09:60:00Z",
      "2026-12-31T23:59:60Z",
      "2026-01-05T09:00:00+24:00",
      "2026-01-05T09:00:00+0100",
      "0099-01-01T00:00:00Z",
      "",
      "1767603600000",
    ]
  ) {
    assert.throws(() => parseInstant(bad), RangeError, bad);
  }
  assert.equal(parseInstant("2024-02-29T00:00:00Z"), Date.UTC(2024, 1, 29), "leap day exists in 2024");
});

Deno.test("formatInstant: UTC with Z, fraction only when needed", () => {
  assert.equal(formatInstant(Date.UTC(2026, 0, 5, 9)), "2026-01-05T09:00:00Z");
  assert.equal(formatInstant(Date.UTC(2026, 0, 5, 9) + 250), "2026-01-05T09:00:00.250Z");
});

Deno.test("splitRange: exact multiple gives full windows with exact ends", () => {
  const w = splitRange("2026-01-01T00:00:00Z", "2026-03-02T00:00:00Z", 30);
  assert.deepEqual(w, [
    { start: "2026-01-01T00:00:00Z", end: "2026-01-31T00:00:00Z" },
    { start: "2026-01-31T00:00:00Z", end: "2026-03-02T00:00:00Z" },
  ]);
});

Deno.test("splitRange: remainder goes to a shorter last window; windows are contiguous", () => {
  const w = splitRange("2026-01-01T00:00:00+02:00", "2026-12-31T13:45:10.5-05:00", 60);
  assert.equal(w[0].start, "2025-12-31T22:00:00Z");
  assert.equal(w[w.length - 1].end, "2026-12-31T18:45:10.500Z");
  for (let i = 0; i < w.length; i++) {
    const len = parseInstant(w[i].end) - parseInstant(w[i].start);
    assert.ok(len > 0 && len <= 60 * DAY_MS, `window ${i} has length ${len}`);
    if (i < w.length - 1) {
      assert.equal(len, 60 * DAY_MS, "only the last window may be short");
      assert.equal(w[i].end, w[i + 1].start, "contiguous");
    }
    assert.match(w[i].start, /Z$/);
  }
  assert.equal(w.length, 7);
});

Deno.test("splitRange: DST does not move boundaries (computed in UTC)", () => {
  // US DST starts 2026-03-08; the local offset changes from -05:00 to -04:00 inside this range.
  const w = splitRange("2026-03-07T00:00:00-05:00", "2026-03-10T00:00:00-04:00", 1);
  assert.deepEqual(w.map((x) => x.start), [
    "2026-03-07T05:00:00Z",
    "2026-03-08T05:00:00Z",
    "2026-03-09T05:00:00Z",
  ]);
  assert.equal(w[2].end, "2026-03-10T04:00:00Z", "last window is 23 h: the range itself is 71 h");
});

Deno.test("splitRange: a 1 ms range is one window; an empty range is none; inverted throws", () => {
  assert.deepEqual(splitRange("2026-01-05T09:00:00Z", "2026-01-05T09:00:00.001Z", 60), [
    { start: "2026-01-05T09:00:00Z", end: "2026-01-05T09:00:00.001Z" },
  ]);
  assert.deepEqual(splitRange("2026-01-05T09:00:00Z", "2026-01-05T10:00:00+01:00", 60), []);
  assert.throws(() => splitRange("2026-01-05T09:00:00Z", "2026-01-05T08:59:59Z", 60), RangeError);
  assert.throws(() => splitRange("2026-01-05T09:00:00Z", "2026-01-06T09:00:00Z", 0), RangeError);
  assert.throws(() => splitRange("2026-01-05T09:00:00Z", "2026-01-06T09:00:00Z", Number.NaN), RangeError);
  assert.throws(() => splitRange("2026-01-05T09:00:00", "2026-01-06T09:00:00Z", 1), RangeError);
});

Deno.test("splitRange: a range one millisecond longer than a window gives a 1 ms tail", () => {
  const w = splitRange("2026-01-01T00:00:00Z", "2026-03-02T00:00:00.001Z", 60);
  assert.deepEqual(w, [
    { start: "2026-01-01T00:00:00Z", end: "2026-03-02T00:00:00Z" },
    { start: "2026-03-02T00:00:00Z", end: "2026-03-02T00:00:00.001Z" },
  ]);
});

Deno.test("mergeIntervals: sorts, merges overlapping and touching, drops empty", () => {
  const merged = mergeIntervals([
    { start: "2026-01-05T12:00:00Z", end: "2026-01-05T13:00:00Z" },
    { start: "2026-01-05T09:00:00Z", end: "2026-01-05T10:00:00Z" },
    { start: "2026-01-05T10:00:00+00:00", end: "2026-01-05T11:00:00Z" }, // touches the previous one
    { start: "2026-01-05T05:30:00-05:00", end: "2026-01-05T10:45:00Z" }, // overlaps, offset input
    { start: "2026-01-05T15:00:00Z", end: "2026-01-05T15:00:00Z" }, // empty
    { start: "2026-01-05T17:00:00Z", end: "2026-01-05T16:00:00Z" }, // inverted
    { start: "2026-01-05T12:15:00Z", end: "2026-01-05T12:30:00Z" }, // contained
    { start: "2026-01-05T13:00:00.001Z", end: "2026-01-05T14:00:00Z" }, // 1 ms gap: stays apart
  ]);
  assert.deepEqual(merged, [
    { start: "2026-01-05T09:00:00Z", end: "2026-01-05T11:00:00Z" },
    { start: "2026-01-05T12:00:00Z", end: "2026-01-05T13:00:00Z" },
    { start: "2026-01-05T13:00:00.001Z", end: "2026-01-05T14:00:00Z" },
  ]);
});

Deno.test("mergeIntervals: empty input and malformed instants", () => {
  assert.deepEqual(mergeIntervals([]), []);
  assert.throws(
    () => mergeIntervals([{ start: "2026-01-05T09:00:00", end: "2026-01-05T10:00:00Z" }]),
    RangeError,
  );
});
