/**
 * The busy cache's configuration (config.ts `busyCache`): CALENDAR_BUSY_CACHE_MAX_LAG_SECONDS and
 * CALENDAR_BUSY_CACHE_MAX_AGE_SECONDS, their defaults and bounds; and what availability.ts makes of
 * cached blocks (instants with milliseconds, as timestamptz keeps them) before they leave the function.
 */
import assert from "node:assert/strict";
import { normaliseBusy } from "../../supabase/functions/_shared/availability.ts";
import { ConfigError, parseConfig } from "../../supabase/functions/_shared/config.ts";
import { formatInstant } from "../../supabase/functions/_shared/time-ranges.ts";

const env = (over: Record<string, string> = {}) => ({
  SUPABASE_URL: "http://127.0.0.1:54321",
  SUPABASE_DB_URL: "postgres://postgres@127.0.0.1:5432/app",
  GOOGLE_CLIENT_ID: "client.apps.googleusercontent.com",
  GOOGLE_CLIENT_SECRET: "GOCSPX-fake",
  GOOGLE_REDIRECT_URI: "http://127.0.0.1:54321/functions/v1/calendar-auth-callback",
  OAUTH_STATE_SIGNING_SECRET: "state-signing-secret-of-at-least-32-chars!!",
  TOKEN_ENCRYPTION_KEY: btoa(String.fromCharCode(...new Uint8Array(32).fill(7))),
  ...over,
});

Deno.test("busy cache config: 120 s of lag and an hour since the last sync by default", () => {
  assert.deepEqual(parseConfig(env()).busyCache, { maxLagSeconds: 120, maxAgeSeconds: 3600 });
  assert.deepEqual(
    parseConfig(
      env({ CALENDAR_BUSY_CACHE_MAX_LAG_SECONDS: "30", CALENDAR_BUSY_CACHE_MAX_AGE_SECONDS: "900" }),
    )
      .busyCache,
    { maxLagSeconds: 30, maxAgeSeconds: 900 },
  );
});

Deno.test("busy cache config: max age 0 turns the cache off; out-of-range values are refused by name", () => {
  assert.equal(parseConfig(env({ CALENDAR_BUSY_CACHE_MAX_AGE_SECONDS: "0" })).busyCache.maxAgeSeconds, 0);
  for (
    const [name, value] of [
      ["CALENDAR_BUSY_CACHE_MAX_LAG_SECONDS", "0"],
      ["CALENDAR_BUSY_CACHE_MAX_LAG_SECONDS", "1.5"],
      ["CALENDAR_BUSY_CACHE_MAX_AGE_SECONDS", "-1"],
      ["CALENDAR_BUSY_CACHE_MAX_AGE_SECONDS", "604801"],
      ["CALENDAR_BUSY_CACHE_MAX_AGE_SECONDS", "an hour"],
    ]
  ) {
    assert.throws(() => parseConfig(env({ [name]: value })), (err: unknown) => {
      assert.ok(err instanceof ConfigError);
      assert.match(err.message, new RegExp(name));
      return true;
    }, `${name}=${value}`);
  }
});

Deno.test("cached blocks: millisecond instants are kept, touching blocks merge, all is clipped", () => {
  const ms = (iso: string) => formatInstant(Date.parse(iso));
  const window = { startMs: Date.parse("2026-03-02T09:00:00Z"), endMs: Date.parse("2026-03-02T12:00:00Z") };
  const busy = normaliseBusy([
    { start: ms("2026-03-02T10:00:00.250Z"), end: ms("2026-03-02T10:30:00.500Z") },
    { start: ms("2026-03-02T10:30:00.500Z"), end: ms("2026-03-02T11:00:00Z") },
    { start: ms("2026-03-01T00:00:00Z"), end: ms("2026-03-02T09:15:00Z") }, // an all-day block, clipped
    { start: ms("2026-03-02T11:59:59.999Z"), end: ms("2026-03-03T00:00:00Z") },
  ], window);
  assert.deepEqual(busy, [
    { start: "2026-03-02T09:00:00Z", end: "2026-03-02T09:15:00Z" },
    { start: "2026-03-02T10:00:00.250Z", end: "2026-03-02T11:00:00Z" },
    { start: "2026-03-02T11:59:59.999Z", end: "2026-03-02T12:00:00Z" },
  ]);
});
