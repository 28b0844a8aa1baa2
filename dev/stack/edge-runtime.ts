/**
 * The local gateway's stand-in for the Supabase edge runtime's `EdgeRuntime.waitUntil(promise)`
 * (see supabase/functions/_shared/background.ts): a function that answers 202 and finishes its work
 * in the background behaves here as it does when deployed. The runtime keeps such work alive after
 * the response; here the gateway process is long-lived anyway, and on shutdown it waits for the
 * work still running (bounded), as the runtime does until its wall-clock limit.
 */

/** Background work registered through the installed global. */
export interface BackgroundWork {
  /** Promises registered and not yet settled. */
  pending(): number;
  /**
   * Wait until every registered promise has settled, or `timeoutMs` has passed.
   * @returns true when nothing is left running.
   */
  settle(timeoutMs: number): Promise<boolean>;
}

/**
 * Install `globalThis.EdgeRuntime = { waitUntil }` (once; a second call returns the same tracker).
 * A rejected promise is reported to `onError` (its error name only: it may carry request data).
 */
export function installEdgeRuntime(onError: (name: string) => void = () => {}): BackgroundWork {
  const g = globalThis as {
    EdgeRuntime?: { waitUntil(p: Promise<unknown>): void };
    __backgroundWork?: BackgroundWork;
  };
  if (g.__backgroundWork) return g.__backgroundWork;
  const running = new Set<Promise<unknown>>();
  g.EdgeRuntime = {
    waitUntil(promise: Promise<unknown>) {
      const tracked: Promise<unknown> = Promise.resolve(promise)
        .catch((err) => onError((err as Error)?.name ?? "Error"))
        .finally(() => running.delete(tracked));
      running.add(tracked);
    },
  };
  const work: BackgroundWork = {
    pending: () => running.size,
    async settle(timeoutMs) {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const timedOut = new Promise<void>((resolve) => (timer = setTimeout(resolve, timeoutMs)));
      while (running.size > 0) {
        const done = await Promise.race([
          Promise.allSettled([...running]).then(() => true),
          timedOut.then(() => false),
        ]);
        if (!done) break;
      }
      clearTimeout(timer);
      return running.size === 0;
    },
  };
  g.__backgroundWork = work;
  return work;
}
