/**
 * The local stand-in for pg_net and pg_cron (docs/decisions.md decision 9): it LISTENs for the
 * outbox kick (`pg_notify('calendar_sync_kick', reason)`, sent by the appointment trigger, the
 * backfill, the re-queue function and the sweep) and POSTs `calendar-sync-worker`, and once per
 * sweep interval runs `calendar_private.sweep_outbox()` plus one worker run, so retries that came
 * due and kicks that were lost are picked up, as pg_cron does every minute on hosted Supabase.
 *
 * Runs are single-flight: a kick arriving during a run schedules exactly one follow-up run, and a
 * run repeats while the worker answers `remaining > 0`. A worker 5xx, a network error or a
 * database error is logged (ids and counts only, never the secret) and retried at the next kick
 * or sweep. postgres.js re-establishes the LISTEN after a lost connection by itself.
 */
import postgres from "postgres";
// The worker's answer (handlers/sync-worker.ts).
import { needsFollowUp } from "../../supabase/functions/_shared/sync/follow-up.ts";
import type { DrainSummary } from "../../supabase/functions/_shared/sync/worker.ts";

/** What {@link startDispatcher} needs. */
export interface DispatcherOptions {
  /** Postgres connection string of the database whose outbox is served. */
  databaseUrl: string;
  /** Full URL of the worker function, e.g. `http://127.0.0.1:54321/functions/v1/calendar-sync-worker`. */
  workerUrl: string;
  /** CALENDAR_WORKER_SECRET, sent as `Authorization: Bearer <secret>`. */
  workerSecret: string;
  /** Milliseconds between sweeps (pg_cron runs every minute); default 60000. */
  sweepIntervalMs?: number;
  /** Where log lines go; default `console.log`. */
  log?: (line: string) => void;
}

/** A running dispatcher. */
export interface Dispatcher {
  /** Stop listening and sweeping, wait for a run in progress (aborting its HTTP call after 5 s), close the database connection. */
  close(): Promise<void>;
  /** Ask for a worker run now (what a kick does); resolves when that run (or the run it joined) is over. */
  kick(reason?: string): Promise<void>;
}

/** A run stops repeating after this many consecutive drains, then waits for the next kick or sweep. */
const MAX_REPEATS = 50;
const CLOSE_GRACE_MS = 5_000;

/**
 * Start the dispatcher: LISTEN on `calendar_sync_kick`, sweep every `sweepIntervalMs`.
 * Resolves once the LISTEN is established.
 * @throws when the database cannot be reached for the LISTEN.
 */
export async function startDispatcher(opts: DispatcherOptions): Promise<Dispatcher> {
  const log = opts.log ?? ((line: string) => console.log(line));
  const sweepIntervalMs = opts.sweepIntervalMs ?? 60_000;
  const sql = postgres(opts.databaseUrl, {
    max: 2,
    prepare: false,
    onnotice: () => {},
    connection: { application_name: "calendar-sync-dispatcher" },
  });
  const abort = new AbortController();
  let closed = false;
  let running: Promise<void> | null = null;
  let again = false;

  const say = (event: string, fields: Record<string, unknown> = {}) => {
    // Nested values (the summary's channel_jobs counts) as JSON, not "[object Object]".
    const parts = Object.entries(fields).map(([k, v]) =>
      `${k}=${typeof v === "object" && v !== null ? JSON.stringify(v) : v}`
    );
    log(`[dispatcher] ${event}${parts.length ? " " + parts.join(" ") : ""}`);
  };

  /** One POST to the worker; null when it failed (already logged). */
  async function callWorker(reason: string): Promise<DrainSummary | null> {
    try {
      const res = await fetch(opts.workerUrl, {
        method: "POST",
        headers: { authorization: `Bearer ${opts.workerSecret}`, "content-type": "application/json" },
        body: "{}",
        signal: abort.signal,
      });
      const text = await res.text();
      if (!res.ok) {
        let code = "unknown";
        let requestId = "";
        try {
          const body = JSON.parse(text);
          code = body?.error?.code ?? code;
          requestId = body?.request_id ?? "";
        } catch {
          // Not the envelope (e.g. a proxy page): the status says enough.
        }
        say("worker_failed", { reason, status: res.status, code, request_id: requestId });
        return null;
      }
      return JSON.parse(text) as DrainSummary;
    } catch (err) {
      if (!closed) say("worker_unreachable", { reason, error: (err as Error)?.name ?? "Error" });
      return null;
    }
  }

  async function runLoop(reason: string): Promise<void> {
    let repeats = 0;
    do {
      again = false;
      const summary = await callWorker(reason);
      if (closed) break;
      // A failed run is not repeated by itself (the next kick or sweep retries), but a kick that
      // arrived during it still gets its follow-up run.
      if (summary) {
        if (summary.claimed > 0 || summary.remaining > 0 || summary.channel_jobs?.claimed > 0) {
          say("worker_run", { reason, ...summary });
        }
        // `remaining` counts rows due now; claimed 0 with rows remaining means another worker holds
        // them or they are rate limited: the next kick or sweep comes back for them.
        if (needsFollowUp(summary)) again = true;
      }
      reason = "follow_up";
    } while (again && !closed && ++repeats < MAX_REPEATS);
  }

  function requestRun(reason: string): Promise<void> {
    if (closed) return Promise.resolve();
    if (running) {
      again = true;
      return running;
    }
    running = runLoop(reason).finally(() => {
      running = null;
    });
    return running;
  }

  async function sweep(): Promise<void> {
    if (closed) return;
    try {
      const [row] = await sql<{ due: number }[]>`select calendar_private.sweep_outbox() as due`;
      if (row && row.due > 0) say("sweep", { due: row.due });
    } catch (err) {
      say("sweep_failed", { code: (err as { code?: string })?.code ?? (err as Error)?.name ?? "Error" });
    }
    await requestRun("sweep");
  }

  let listens = 0;
  const listener = await sql.listen(
    "calendar_sync_kick",
    (payload) => void requestRun(/^[a-z_]{1,32}$/.test(payload) ? payload : "kick"),
    () => {
      // postgres.js LISTENs again after a lost connection; kicks sent meanwhile were lost, so run once.
      if (++listens > 1) {
        say("relistened", { channel: "calendar_sync_kick" });
        void requestRun("relisten");
      }
    },
  );
  say("listening", { channel: "calendar_sync_kick", sweep_ms: sweepIntervalMs });
  const timer = setInterval(() => void sweep(), sweepIntervalMs);
  // Work that was queued while nothing was listening (e.g. before a restart).
  void sweep();

  return {
    kick: (reason = "manual") => requestRun(reason),
    async close() {
      if (closed) return;
      closed = true;
      clearInterval(timer);
      const grace = setTimeout(() => abort.abort(), CLOSE_GRACE_MS);
      try {
        await running;
      } finally {
        clearTimeout(grace);
      }
      await listener.unlisten().catch(() => {});
      await sql.end({ timeout: 2 });
      say("stopped");
    },
  };
}
