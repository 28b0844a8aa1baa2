/**
 * Retry delays (sync/backoff.ts): full-jitter exponential growth from the base, the cap, and
 * Retry-After as a floor clipped to its maximum.
 */
import assert from "node:assert/strict";
import { type BackoffPolicy, retryDelayMs } from "../../supabase/functions/_shared/sync/backoff.ts";

const policy: BackoffPolicy = { baseMs: 2_000, capMs: 900_000, retryAfterMaxMs: 3_600_000 };
const top = () => 0.999999999;
const bottom = () => 0;

Deno.test("the bound doubles from the base with each failed attempt", () => {
  assert.equal(retryDelayMs(1, policy, undefined, top), 2_000);
  assert.equal(retryDelayMs(2, policy, undefined, top), 4_000);
  assert.equal(retryDelayMs(3, policy, undefined, top), 8_000);
  assert.equal(retryDelayMs(5, policy, undefined, top), 32_000);
});

Deno.test("the bound never exceeds the cap, even after many attempts", () => {
  assert.equal(retryDelayMs(9, policy, undefined, top), 512_000);
  assert.equal(retryDelayMs(10, policy, undefined, top), 900_000);
  assert.equal(retryDelayMs(1_000, policy, undefined, top), 900_000);
});

Deno.test("full jitter: the delay is uniform between zero and the bound", () => {
  assert.equal(retryDelayMs(4, policy, undefined, bottom), 0);
  assert.equal(retryDelayMs(4, policy, undefined, () => 0.5), 8_000);
  const seen = new Set<number>();
  for (let i = 0; i < 200; i++) {
    const d = retryDelayMs(3, policy);
    assert.ok(d >= 0 && d <= 8_000, `delay ${d} out of range`);
    seen.add(d);
  }
  assert.ok(seen.size > 50, "delays are spread out, not identical");
});

Deno.test("Retry-After is a floor: never sooner than the provider asked", () => {
  assert.equal(retryDelayMs(1, policy, 30_000, top), 30_000);
  assert.equal(retryDelayMs(6, policy, 1_000, top), 64_000);
  assert.equal(retryDelayMs(1, policy, 0, bottom), 0);
});

Deno.test("an absurd Retry-After is clipped to retryAfterMaxMs", () => {
  assert.equal(retryDelayMs(1, policy, 86_400_000, bottom), 3_600_000);
  assert.equal(retryDelayMs(1, { ...policy, retryAfterMaxMs: 5_000 }, 60_000, bottom), 5_000);
});

Deno.test("small test tunables keep retries quick", () => {
  const quick: BackoffPolicy = { baseMs: 50, capMs: 400, retryAfterMaxMs: 2_000 };
  assert.equal(retryDelayMs(1, quick, undefined, top), 50);
  assert.equal(retryDelayMs(8, quick, undefined, top), 400);
  assert.equal(retryDelayMs(8, quick, 1_000, bottom), 1_000);
});
