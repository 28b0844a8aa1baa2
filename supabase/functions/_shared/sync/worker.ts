/**
 * The outbox worker: one bounded drain of due calendar_sync_log rows (docs/decisions.md decision 7).
 *
 * Rows are claimed as slots free up (never more than `concurrency` held at once, so no claimed
 * row waits long enough for its lease to matter), processed with at most `concurrency` provider
 * calls in flight, and each row by one call chain at a time. A run stops claiming after
 * `maxRunMs` or after `maxRunRows` rows, and returns once the rows in flight are recorded, so it
 * fits the edge runtime's wall clock and CPU-time limit; whatever is left is picked up by the next
 * run (the worker kicks it itself when it ran in the background: sync/follow-up.ts), a kick or the
 * pg_cron sweep. A rate-limited account is skipped for the rest of the run (its rows are deferred
 * in the database too).
 * While rows are in flight their leases are renewed every third of `leaseMs`, so a slow provider
 * never lets another worker take a row this one is still writing; only a stopped worker's leases
 * run out.
 */
import type { Config } from "../config.ts";
import type { Sql } from "../db/client.ts";
import { providerFor } from "../providers/registry.ts";
import type { CalendarProvider, ProviderId } from "../providers/types.ts";
import type { WorkerOptions } from "./options.ts";
import { type ClaimedRow, claimRows, countDue, extendLeases, touchConnections } from "./outbox.ts";
import { type ProcessDeps, processRow, type RowOutcome } from "./process.ts";

/** The answer of one drain (and of calendar-sync-worker). Counts are rows. */
export interface DrainSummary {
  /** Rows claimed in this run. */
  claimed: number;
  /** Rows whose provider call succeeded (including rows re-queued meanwhile, which run again). */
  synced: number;
  /** Rows scheduled for another attempt (transient failure or rate limit). */
  retried: number;
  /** Rows that became `failed` (permanent error, or the last attempt). */
  failed: number;
  /** Rows released without an attempt because their connection needs a reconnect. */
  parked: number;
  /** Rows still due now after this run (another drain should follow when > 0). */
  remaining: number;
}

/** What a drain needs. `provider` defaults to {@link providerFor} with the config. */
export interface DrainDeps {
  sql: Sql;
  config: Config;
  options: WorkerOptions;
  provider?: (id: ProviderId) => CalendarProvider;
  /** Names this worker's leases (default: a random uuid per run). */
  owner?: string;
  /** Called with each row's outcome (tests, logs). */
  onOutcome?: (row: ClaimedRow, outcome: RowOutcome) => void;
}

/** A provider factory that builds each provider once per run. */
export function cachedProviders(config: Config): (id: ProviderId) => CalendarProvider {
  const cache = new Map<ProviderId, CalendarProvider>();
  return (id) => {
    let p = cache.get(id);
    if (!p) {
      p = providerFor(id, config);
      cache.set(id, p);
    }
    return p;
  };
}

/**
 * Process claimed rows with at most `concurrency` in flight.
 * @returns each row's outcome, in the order given.
 */
export async function processRows(
  rows: ClaimedRow[],
  deps: ProcessDeps,
  concurrency: number,
): Promise<RowOutcome[]> {
  const out: RowOutcome[] = new Array(rows.length);
  let next = 0;
  const lane = async () => {
    while (next < rows.length) {
      const i = next++;
      out[i] = await processRow(rows[i], deps);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, rows.length) }, lane));
  return out;
}

/**
 * Drain due rows for at most `options.maxRunMs` and `options.maxRunRows` rows (claiming stops at
 * either bound; rows in flight finish).
 * Never throws for provider failures; a database failure while claiming ends the run early and is
 * rethrown after the rows in flight are recorded.
 */
export async function drain(deps: DrainDeps): Promise<DrainSummary> {
  const { sql, options } = deps;
  const owner = deps.owner ?? `worker:${crypto.randomUUID()}`;
  const deadline = Date.now() + options.maxRunMs;
  const summary: DrainSummary = { claimed: 0, synced: 0, retried: 0, failed: 0, parked: 0, remaining: 0 };
  const resting = new Map<string, number>();
  const syncedStaff = new Set<string>();
  const processDeps: ProcessDeps = {
    sql,
    config: deps.config,
    options,
    provider: deps.provider ?? cachedProviders(deps.config),
    onRateLimited: (staffId, until) => resting.set(staffId, until.getTime()),
  };
  const inFlight = new Set<Promise<void>>();
  const held = new Set<string>();
  let exhausted = false;
  let claimError: unknown;

  const start = (row: ClaimedRow) => {
    held.add(row.id);
    const p = processRow(row, processDeps).then((outcome) => {
      count(summary, outcome);
      if (outcome.status === "synced") syncedStaff.add(row.staff_id);
      deps.onOutcome?.(row, outcome);
    }).finally(() => {
      held.delete(row.id);
      inFlight.delete(p);
    });
    inFlight.add(p);
  };

  // Lease renewal: one UPDATE for all rows in flight, never two at once. A failed renewal is
  // harmless (the next one retries; outcomes are only written while the lease is ours).
  let renewal: Promise<unknown> | null = null;
  const renew = setInterval(() => {
    if (renewal || held.size === 0) return;
    renewal = extendLeases(sql, owner, [...held], options.leaseMs).catch(() => 0).finally(() => {
      renewal = null;
    });
  }, Math.max(100, Math.floor(options.leaseMs / 3)));

  try {
    await runLoop();
  } finally {
    clearInterval(renew);
    await renewal;
  }
  await touchConnections(sql, syncedStaff).catch(() => {});
  if (claimError !== undefined) throw claimError;
  summary.remaining = await countDue(sql);
  return summary;

  async function runLoop(): Promise<void> {
    while (true) {
      const budget = options.maxRunRows - summary.claimed;
      const free = Math.min(options.concurrency - inFlight.size, budget);
      const wantMore = !exhausted && claimError === undefined && Date.now() < deadline && budget > 0;
      // Claim when at least half the slots are free (or none is busy, or this is the run's last
      // batch under its row bound), to keep claims batched.
      if (
        wantMore && free > 0 && (free * 2 >= options.concurrency || inFlight.size === 0 || free === budget)
      ) {
        const now = Date.now();
        for (const [staffId, until] of resting) if (until <= now) resting.delete(staffId);
        try {
          const rows = await claimRows(sql, {
            owner,
            limit: free,
            leaseMs: options.leaseMs,
            excludeStaffIds: [...resting.keys()],
          });
          summary.claimed += rows.length;
          for (const row of rows) start(row);
          if (rows.length < free) exhausted = true;
        } catch (err) {
          claimError = err;
        }
      }
      if (inFlight.size === 0) {
        if (exhausted || claimError !== undefined || Date.now() >= deadline || budget <= 0) break;
        continue;
      }
      await Promise.race(inFlight);
      // A finished row may have been re-queued, or new rows may have arrived: look again.
      if (exhausted && Date.now() < deadline && inFlight.size < options.concurrency) exhausted = false;
    }
  }
}

function count(summary: DrainSummary, outcome: RowOutcome): void {
  switch (outcome.status) {
    case "synced":
      summary.synced++;
      break;
    case "retry":
      summary.retried++;
      break;
    case "failed":
      summary.failed++;
      break;
    case "parked":
      summary.parked++;
      break;
  }
}
