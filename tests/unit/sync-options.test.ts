/** Worker tunables from the environment (sync/options.ts): defaults, overrides, and clear errors. */
import assert from "node:assert/strict";
import { ConfigError } from "../../supabase/functions/_shared/config.ts";
import { DEFAULT_WORKER_OPTIONS, parseWorkerOptions } from "../../supabase/functions/_shared/sync/options.ts";

Deno.test("defaults: 16 in flight, a 24 h retry budget, 2 s base, 15 min cap, 25 s and 100 rows per run, 2 min lease", () => {
  assert.deepEqual(parseWorkerOptions({}), {
    concurrency: 16,
    retryBudgetMs: 24 * 3_600_000,
    leaseMs: 120_000,
    backoffBaseMs: 2_000,
    backoffCapMs: 900_000,
    retryAfterMaxMs: 3_600_000,
    maxRunMs: 25_000,
    maxRunRows: 100,
  });
  assert.deepEqual(DEFAULT_WORKER_OPTIONS, parseWorkerOptions({}));
});

Deno.test("every tunable can be set; empty strings count as unset", () => {
  const o = parseWorkerOptions({
    CALENDAR_SYNC_CONCURRENCY: "4",
    CALENDAR_SYNC_RETRY_BUDGET_HOURS: "1.5",
    CALENDAR_SYNC_LEASE_MS: "3000",
    CALENDAR_SYNC_BACKOFF_BASE_MS: "50",
    CALENDAR_SYNC_BACKOFF_CAP_MS: "400",
    CALENDAR_SYNC_RETRY_AFTER_MAX_MS: "2000",
    CALENDAR_SYNC_MAX_RUN_MS: "",
    CALENDAR_SYNC_MAX_RUN_ROWS: "7",
  });
  assert.deepEqual(o, {
    concurrency: 4,
    retryBudgetMs: 5_400_000,
    leaseMs: 3_000,
    backoffBaseMs: 50,
    backoffCapMs: 400,
    retryAfterMaxMs: 2_000,
    maxRunMs: 25_000,
    maxRunRows: 7,
  });
});

Deno.test("a cap below the base is raised to the base", () => {
  const o = parseWorkerOptions({ CALENDAR_SYNC_BACKOFF_BASE_MS: "500", CALENDAR_SYNC_BACKOFF_CAP_MS: "10" });
  assert.equal(o.backoffCapMs, 500);
});

Deno.test("a malformed value is a ConfigError naming the variable, not a silent default", () => {
  for (
    const [key, value] of [
      ["CALENDAR_SYNC_CONCURRENCY", "0"],
      ["CALENDAR_SYNC_LEASE_MS", "soon"],
      ["CALENDAR_SYNC_RETRY_BUDGET_HOURS", "0.05"],
      ["CALENDAR_SYNC_RETRY_BUDGET_HOURS", "169"],
      ["CALENDAR_SYNC_RETRY_BUDGET_HOURS", "a day"],
      ["CALENDAR_SYNC_MAX_RUN_ROWS", "0"],
    ]
  ) {
    assert.throws(() => parseWorkerOptions({ [key]: value }), (err: unknown) => {
      assert.ok(err instanceof ConfigError);
      assert.match(err.message, new RegExp(key));
      return true;
    });
  }
});

Deno.test("the retry budget is time: the retired attempt limit no longer bounds retries", () => {
  const o = parseWorkerOptions({ CALENDAR_SYNC_MAX_ATTEMPTS: "3" });
  assert.equal(o.retryBudgetMs, 24 * 3_600_000);
  assert.ok(!("maxAttempts" in o));
});
