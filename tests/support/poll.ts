/** Polling with a deadline, for tests that wait on asynchronous work (never a timing assertion). */

/**
 * Poll `probe` until it returns a value `done` accepts, or fail after `timeoutMs` with `what` and
 * the last value seen. No timing assertion: the deadline only bounds a hung test.
 */
export async function waitFor<T>(
  what: string,
  probe: () => Promise<T>,
  done: (value: T) => boolean,
  o: { timeoutMs?: number; intervalMs?: number } = {},
): Promise<T> {
  const deadline = Date.now() + (o.timeoutMs ?? 20_000);
  let last: T;
  for (;;) {
    last = await probe();
    if (done(last)) return last;
    if (Date.now() > deadline) {
      throw new Error(`timed out waiting for ${what}; last value: ${JSON.stringify(last)?.slice(0, 1000)}`);
    }
    await new Promise((r) => setTimeout(r, o.intervalMs ?? 50));
  }
}
