/**
 * Retry delays: exponential backoff with full jitter (AWS Architecture Blog, "Exponential Backoff
 * and Jitter"): the delay is uniform in [0, min(cap, base * 2^attempt)], so retries of many rows
 * that failed together spread out instead of hitting the provider in waves. A provider's
 * Retry-After (Google sends it with 429 and some 403 rate limits, docs/providers/google.md A2) is a
 * floor: we never come back sooner than it asks.
 */

/** Backoff parameters in milliseconds. */
export interface BackoffPolicy {
  baseMs: number;
  capMs: number;
  /** Largest Retry-After honoured; a larger one is clipped to this. */
  retryAfterMaxMs: number;
}

/**
 * The delay before the next attempt, in milliseconds.
 * @param failedAttempts attempts that already failed, counting the one that just failed (>= 1).
 * @param retryAfterMs the provider's Retry-After in ms, when it sent one.
 * @param random a source of uniform numbers in [0, 1) (tests pass a fixed one).
 */
export function retryDelayMs(
  failedAttempts: number,
  policy: BackoffPolicy,
  retryAfterMs?: number,
  random: () => number = Math.random,
): number {
  const exponent = Math.max(0, Math.min(failedAttempts - 1, 40));
  const bound = Math.min(policy.capMs, policy.baseMs * 2 ** exponent);
  const jittered = Math.floor(random() * (bound + 1));
  const floor = retryAfterMs === undefined ? 0 : Math.min(Math.max(0, retryAfterMs), policy.retryAfterMaxMs);
  return Math.max(jittered, floor);
}
