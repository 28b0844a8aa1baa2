/**
 * The outbox worker as its own OS process, for the concurrency, crash and convergence tests and the
 * benchmark: real processes draining the same database over real HTTP to the provider sandbox.
 *
 * Runs `drain()` (supabase/functions/_shared/sync/worker.ts) in a loop until SIGTERM/SIGINT (the
 * current drain finishes first) or until killed (SIGKILL, the crash test). Between drains that
 * claimed nothing it sleeps WORKER_IDLE_MS. Configuration comes from the environment exactly as for
 * the functions (DATABASE_URL, GOOGLE_*, TOKEN_ENCRYPTION_KEY, ...; see _shared/config.ts) plus the
 * CALENDAR_SYNC_* tunables (_shared/sync/options.ts), and:
 *   WORKER_NAME      prefix of this process's lease owner (default "worker")
 *   WORKER_IDLE_MS   pause after an empty drain, ms (default 50)
 *   WORKER_MAX_DB    postgres connections (default concurrency + 2)
 *   WORKER_EXIT_ON_STDIN_EOF  "1": stop gracefully when stdin closes (the parent test went away)
 *   WORKER_COUNT_ROUND_TRIPS  "1": count database round trips (the benchmark), see below
 *
 * stdout, one JSON object per line: `{"event":"ready","owner":...}` once, then
 * `{"event":"drain", claimed, synced, retried, failed, parked, remaining, channel_jobs}` for every
 * drain that claimed something (outbox rows or channel jobs) (with `slot_busy_ms` and `slot_capacity_ms`: sync/worker.ts SlotStats), and
 * `{"event":"stopped"}` on a graceful stop. Ids and counts only.
 * With WORKER_COUNT_ROUND_TRIPS=1 each drain line also carries `round_trips`: the database round
 * trips of that drain, counted in postgres.js's `debug` hook (called once per statement sent): one
 * per statement, plus one for each statement with parameters, which postgres.js under
 * `prepare: false` sends describe-first (Parse/Describe/Flush, wait, then Bind/Execute/Sync).
 */
import { parseConfig } from "../../supabase/functions/_shared/config.ts";
import postgres from "postgres";
import { clientOptions, createSql } from "../../supabase/functions/_shared/db/client.ts";
import { parseWorkerOptions } from "../../supabase/functions/_shared/sync/options.ts";
import { cachedProviders, drain } from "../../supabase/functions/_shared/sync/worker.ts";

const env = Deno.env.toObject();
const config = parseConfig(env);
const options = parseWorkerOptions(env);
const name = env.WORKER_NAME || "worker";
const idleMs = Number(env.WORKER_IDLE_MS || 50);
const owner = `${name}:${crypto.randomUUID()}`;
const maxDb = Number(env.WORKER_MAX_DB || options.concurrency + 2);
let roundTrips = 0;
const sql = env.WORKER_COUNT_ROUND_TRIPS === "1"
  // The worker's own client options, with the counting hook added.
  ? postgres(config.databaseUrl, {
    ...clientOptions({ max: maxDb }),
    debug: (_conn: number, _query: string, params: unknown[]) => {
      roundTrips += params.length > 0 ? 2 : 1;
    },
  } as postgres.Options<Record<string, never>>)
  : createSql(config.databaseUrl, { max: maxDb });
const counting = env.WORKER_COUNT_ROUND_TRIPS === "1";
const provider = cachedProviders(config);

let stopping = false;
const stop = () => {
  stopping = true;
};
Deno.addSignalListener("SIGTERM", stop);
Deno.addSignalListener("SIGINT", stop);
if (env.WORKER_EXIT_ON_STDIN_EOF === "1") {
  // A parent that dies without stopping us closes our stdin; do not outlive it.
  (async () => {
    try {
      for await (const _ of Deno.stdin.readable) { /* ignore input */ }
    } catch { /* closed */ }
    stop();
  })();
}

const emit = (event: string, fields: Record<string, unknown> = {}) =>
  console.log(JSON.stringify({ event, name, ...fields }));

emit("ready", { owner });
while (!stopping) {
  try {
    roundTrips = 0;
    const slots = { busyMs: 0, capacityMs: 0 };
    const summary = await drain({ sql, config, options, provider, owner, slots });
    if (summary.claimed > 0 || summary.channel_jobs.claimed > 0) {
      emit("drain", {
        ...summary,
        slot_busy_ms: slots.busyMs,
        slot_capacity_ms: slots.capacityMs,
        ...(counting ? { round_trips: roundTrips } : {}),
      });
    } else await new Promise((r) => setTimeout(r, idleMs));
  } catch (err) {
    // The SQLSTATE too (a code, never data), so a failing test says which database error it was.
    const code = (err as { code?: unknown })?.code;
    emit("drain_error", {
      name: err instanceof Error ? err.name : "error",
      ...(typeof code === "string" ? { code } : {}),
    });
    await new Promise((r) => setTimeout(r, idleMs * 4));
  }
}
await sql.end({ timeout: 5 });
emit("stopped");
Deno.exit(0);
