/**
 * Spawn outbox workers (tests/support/worker-process.ts) as separate OS processes, for the
 * concurrency, crash and convergence tests and the benchmark. Each process gets exactly the
 * environment given (the stack's function env plus CALENDAR_SYNC_* tunables) and PATH-like tooling
 * variables; nothing else of the test process leaks in. A worker exits by itself when this process
 * goes away (its stdin reaches EOF), so a failed test never leaves workers draining a dropped DB.
 */

import { pumpLines, spawnDenoScript } from "../../dev/stack/child-process.ts";
import type { DrainSummary } from "../../supabase/functions/_shared/sync/worker.ts";

const MAIN = new URL("./worker-process.ts", import.meta.url);

/** One `{"event":"drain",...}` line of a worker (worker-process.ts): the drain's row counts. */
export interface DrainLine extends DrainSummary {
  event: "drain";
  /** Database round trips of the drain, when the worker counts them (WORKER_COUNT_ROUND_TRIPS=1). */
  round_trips?: number;
  /** The drain's slot accounting (sync/worker.ts SlotStats), ms. */
  slot_busy_ms?: number;
  slot_capacity_ms?: number;
}

/** A running worker process. */
export interface WorkerProcess {
  name: string;
  pid: number;
  /** Every drain that claimed something, in order. */
  drains: DrainLine[];
  /** The most recent output lines (stdout and stderr, at most 200), for diagnosing a failure. */
  logs(): string[];
  /** Resolves with the exit code once the process is gone. */
  exited: Promise<number>;
  /** Send a signal (e.g. SIGKILL for the crash test). */
  kill(signal: Deno.Signal): void;
  /** Graceful stop: SIGTERM (the current drain finishes), SIGKILL after 10 s. Idempotent. */
  stop(): Promise<void>;
}

/**
 * Start a worker process and wait for its `ready` line.
 * @param o.env the function environment (must hold DATABASE_URL or SUPABASE_DB_URL, GOOGLE_*, secrets).
 * @param o.name prefix of its lease owner, shown in logs.
 * @param o.extra overrides applied last (CALENDAR_SYNC_*, WORKER_IDLE_MS, ...).
 * @throws Error with the child's output when it exits before it is ready, or after 30 s.
 */
export async function spawnWorker(o: {
  env: Record<string, string>;
  name: string;
  extra?: Record<string, string>;
}): Promise<WorkerProcess> {
  const child = spawnDenoScript(MAIN, {
    ...o.env,
    WORKER_NAME: o.name,
    WORKER_EXIT_ON_STDIN_EOF: "1",
    ...o.extra,
  });
  const stdin = child.stdin.getWriter();
  const recent: string[] = [];
  const drains: DrainLine[] = [];
  let ready: (() => void) | undefined;
  const readyPromise = new Promise<void>((r) => (ready = r));

  const pump = (stream: ReadableStream<Uint8Array>) =>
    pumpLines(stream, (line) => {
      if (!line.startsWith("{")) return;
      try {
        const msg = JSON.parse(line);
        if (msg.event === "ready") ready?.();
        if (msg.event === "drain") drains.push(msg);
      } catch { /* not a JSON line */ }
    }, recent).catch(() => {/* the child went away */});
  const pumps = Promise.all([pump(child.stdout), pump(child.stderr)]);
  const exited = child.status.then(async (s) => {
    await pumps;
    return s.code;
  });

  const kill = (signal: Deno.Signal) => {
    try {
      child.kill(signal);
    } catch { /* already gone */ }
  };
  let stopping: Promise<void> | undefined;
  const stop = () =>
    stopping ??= (async () => {
      kill("SIGTERM");
      let timer: ReturnType<typeof setTimeout> | undefined;
      const gone = await Promise.race([
        exited.then(() => true),
        new Promise<boolean>((r) => (timer = setTimeout(() => r(false), 10_000))),
      ]);
      clearTimeout(timer);
      if (!gone) kill("SIGKILL");
      await exited;
      await stdin.close().catch(() => {});
    })();

  let timer: ReturnType<typeof setTimeout> | undefined;
  const outcome = await Promise.race([
    readyPromise.then(() => "ready" as const),
    exited.then(() => "exited" as const),
    new Promise<"timeout">((r) => (timer = setTimeout(() => r("timeout"), 30_000))),
  ]);
  clearTimeout(timer);
  if (outcome !== "ready") {
    await stop();
    throw new Error(`worker ${o.name} ${outcome} before it was ready:\n${recent.join("\n")}`);
  }
  return { name: o.name, pid: child.pid, drains, logs: () => [...recent], exited, kill, stop };
}

/** Start `count` workers named `${prefix}-1..count` with the same environment. */
export async function spawnWorkers(
  count: number,
  o: { env: Record<string, string>; prefix: string; extra?: Record<string, string> },
): Promise<WorkerProcess[]> {
  return await Promise.all(
    Array.from(
      { length: count },
      (_, i) => spawnWorker({ env: o.env, name: `${o.prefix}-${i + 1}`, extra: o.extra }),
    ),
  );
}
