/**
 * The outbox worker: one bounded drain of due calendar_sync_log rows (docs/decisions.md decision 7).
 *
 * Rows are processed with at most `concurrency` provider calls in flight ("slots"), each row by one
 * call chain at a time, and at most the provider's `callsPerConnection` rows for one mailbox
 * (sync/pacing.ts): a row whose mailbox is at its limit waits in the buffer while rows of other
 * staff members take the free slots, oldest claimed first. Claims run ahead of the slots: while
 * slots are busy the next batch is claimed in the background into a buffer of at most
 * `concurrency` rows, so a slot that frees takes its next row at once and never waits for a claim.
 * Claims are fair: one takes at most {@link MAX_CALLS_PER_CONNECTION} rows of a staff member, and
 * leaves out staff members whose held rows fill their slots twice over, so a burst of one staff
 * member's rows never fills the buffer. Buffered rows are held like rows in flight: their leases
 * are renewed with them. A run stops claiming after
 * `maxRunMs` or after `maxRunRows` rows, and returns once the rows in flight are recorded, so it
 * fits the edge runtime's wall clock and CPU-time limit; whatever is left is picked up by the next
 * run (the worker kicks it itself when it ran in the background: sync/follow-up.ts), a kick or the
 * pg_cron sweep. A rate-limited account is skipped for the rest of the run (its rows are deferred
 * in the database too).
 * While rows are in flight their leases are renewed every third of `leaseMs`, so a slow provider
 * never lets another worker take a row this one is still writing; only a stopped worker's leases
 * run out.
 *
 * Channel jobs (inbound/jobs.ts: create, renew, stop, sync) share the slots and the per-mailbox
 * pacing: a run claims at most half its slots' worth of them (at least one) at its start, ahead of
 * the rows, and they are buffered, paced, leased and renewed like rows. Jobs requested during the run
 * wait for the next one (the request kicks it).
 */
import type { Config } from "../config.ts";
import type { Sql } from "../db/client.ts";
import { MAX_CALLS_PER_CONNECTION, providerFor } from "../providers/registry.ts";
import type { CalendarProvider, ProviderId } from "../providers/types.ts";
import type { WorkerOptions } from "./options.ts";
import {
  type ClaimedRow,
  claimRows,
  countDue,
  extendLeases,
  releaseRow,
  touchConnections,
} from "./outbox.ts";
import {
  type ClaimedJob,
  claimJobs,
  countDueJobs,
  extendJobLeases,
  type JobOutcome,
  processJob,
} from "../inbound/jobs.ts";
import { ConnectionPacer } from "./pacing.ts";
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
  /** Channel jobs of this run, and those still due after it. */
  channel_jobs: ChannelJobSummary;
}

/** Channel job counts of one drain. */
export interface ChannelJobSummary {
  claimed: number;
  done: number;
  retried: number;
  failed: number;
  parked: number;
  remaining: number;
}

/** Channel jobs one run claims at most: half its slots (at least one), so rows keep the other half. */
export function channelJobsPerRun(options: Pick<WorkerOptions, "concurrency">): number {
  return Math.max(1, Math.floor(options.concurrency / 2));
}

const isJob = (item: ClaimedRow | ClaimedJob): item is ClaimedJob => "channel_id" in item;

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
  /** Called with each channel job's outcome (tests, logs). */
  onJobOutcome?: (job: ClaimedJob, outcome: JobOutcome) => void;
  /** Filled with this run's slot accounting when given (the benchmark's slot utilisation). */
  slots?: SlotStats;
}

/**
 * How busy a run kept its slots, in ms: `busyMs` sums the time each row spent being processed,
 * `capacityMs` is `concurrency` times the run's length (from its start until its last row was
 * recorded). Utilisation is busyMs / capacityMs.
 */
export interface SlotStats {
  busyMs: number;
  capacityMs: number;
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
  const summary: DrainSummary = {
    claimed: 0,
    synced: 0,
    retried: 0,
    failed: 0,
    parked: 0,
    remaining: 0,
    channel_jobs: { claimed: 0, done: 0, retried: 0, failed: 0, parked: 0, remaining: 0 },
  };
  const resting = new Map<string, number>();
  const syncedStaff = new Set<string>();
  const processDeps: ProcessDeps = {
    sql,
    config: deps.config,
    options,
    provider: deps.provider ?? cachedProviders(deps.config),
    onRateLimited: (staffId, until) => resting.set(staffId, until.getTime()),
  };
  const jobDeps = { ...processDeps, deadline };
  const inFlight = new Set<Promise<void>>();
  /** Claimed rows and jobs waiting for a slot (their leases are renewed with those in flight). */
  const buffer: (ClaimedRow | ClaimedJob)[] = [];
  const held = new Set<string>();
  const heldJobs = new Set<string>();
  const pacer = new ConnectionPacer();
  let exhausted = false;
  let claimError: unknown;
  let claiming: Promise<void> | null = null;
  const startedAt = Date.now();
  let lastDoneAt = startedAt;
  let busyMs = 0;

  const startJob = (job: ClaimedJob) => {
    const t0 = Date.now();
    const leave = pacer.start(job);
    const p = processJob(job, jobDeps).then((outcome) => {
      const c = summary.channel_jobs;
      if (outcome.status === "done") c.done++;
      else if (outcome.status === "retry") c.retried++;
      else if (outcome.status === "failed") c.failed++;
      else c.parked++;
      deps.onJobOutcome?.(job, outcome);
    }).finally(() => {
      leave();
      pacer.release(job);
      heldJobs.delete(job.id);
      inFlight.delete(p);
      lastDoneAt = Date.now();
      busyMs += lastDoneAt - t0;
    });
    inFlight.add(p);
  };

  const start = (item: ClaimedRow | ClaimedJob) => {
    if (isJob(item)) return startJob(item);
    const row = item;
    const t0 = Date.now();
    const leave = pacer.start(row);
    const until = resting.get(row.staff_id);
    // Its account became rate limited while the row sat in the buffer: give it back, due after the rest.
    const work = until !== undefined && until > t0
      ? releaseRow(sql, row, { notBefore: new Date(until) }).then((): RowOutcome => ({
        status: "retry",
        action: row.desired_action ?? "upsert",
        code: "rate_limited",
        message: "the account is rate limited; deferred without an attempt",
        retryAt: new Date(until),
      })).catch((): RowOutcome => ({
        status: "retry",
        action: row.desired_action ?? "upsert",
        code: "internal_error",
        message: "could not release the row",
      }))
      : processRow(row, processDeps);
    const p = work.then((outcome) => {
      count(summary, outcome);
      if (outcome.status === "synced") syncedStaff.add(row.staff_id);
      deps.onOutcome?.(row, outcome);
    }).finally(() => {
      leave();
      pacer.release(row);
      held.delete(row.id);
      inFlight.delete(p);
      lastDoneAt = Date.now();
      busyMs += lastDoneAt - t0;
      // A finished row may have been re-queued, or new rows may have arrived: look again, unless its
      // staff member is still left out of claims (a burst's rows then ask once per freed set of slots).
      if (lastDoneAt < deadline && !pacer.isSaturated(row.staff_id)) exhausted = false;
    });
    inFlight.add(p);
  };

  /**
   * Start buffered rows on every free slot, oldest claimed first, passing over rows whose mailbox
   * is at its limit (they keep their place and start when one of its rows is done).
   */
  const fill = () => {
    for (let i = 0; i < buffer.length && inFlight.size < options.concurrency;) {
      if (pacer.canStart(buffer[i])) start(buffer.splice(i, 1)[0]);
      else i++;
    }
  };

  /**
   * Claim in the background (one claim at a time) to keep slots and buffer full: up to
   * 2 x `concurrency` rows held in all, claimed once half a batch is missing (claims stay batched),
   * or whatever is missing when nothing is held or the run's row bound is near. Buffered rows beyond
   * what their mailbox can run at once are not counted: they cannot take a slot that frees, so they
   * must not keep other staff members' rows from being claimed.
   */
  const claimAhead = () => {
    if (claiming || exhausted || claimError !== undefined || Date.now() >= deadline) return;
    const budget = options.maxRunRows - summary.claimed;
    const want = Math.min(2 * options.concurrency - inFlight.size - pacer.runnable(buffer), budget);
    if (want <= 0) return;
    if (want * 2 < options.concurrency && held.size > 0 && want < budget) return;
    const now = Date.now();
    for (const [staffId, until] of resting) if (until <= now) resting.delete(staffId);
    claiming = claimRows(sql, {
      owner,
      limit: want,
      leaseMs: options.leaseMs,
      excludeStaffIds: [...new Set([...resting.keys(), ...pacer.saturated()])],
      perStaff: MAX_CALLS_PER_CONNECTION,
    }).then((rows) => {
      summary.claimed += rows.length;
      const perStaff = new Map<string, number>();
      for (const row of rows) {
        held.add(row.id);
        pacer.hold(row);
        buffer.push(row);
        perStaff.set(row.staff_id, (perStaff.get(row.staff_id) ?? 0) + 1);
      }
      // A short claim means nothing more is due, unless the per-staff cap cut it short: then more of
      // that staff member's rows, or other staff members' rows past the claim's window (behind a
      // burst), may be due; the next claim takes them or, once the staff member is left out, reads past.
      const capped = [...perStaff.values()].some((n) => n >= MAX_CALLS_PER_CONNECTION);
      if (rows.length < want && !capped) exhausted = true;
    }, (err) => {
      claimError = err;
    }).finally(() => {
      claiming = null;
      fill();
    });
  };

  // Lease renewal: one UPDATE for all rows held (in flight and buffered), never two at once. A failed
  // renewal is harmless (the next one retries; outcomes are only written while the lease is ours).
  let renewal: Promise<unknown> | null = null;
  const renew = setInterval(() => {
    if (renewal || held.size + heldJobs.size === 0) return;
    renewal = Promise.all([
      extendLeases(sql, owner, [...held], options.leaseMs),
      extendJobLeases(sql, owner, [...heldJobs], options.leaseMs),
    ]).catch(() => 0).finally(() => {
      renewal = null;
    });
  }, Math.max(100, Math.floor(options.leaseMs / 3)));

  try {
    // Channel jobs first: one bounded claim per run (see the module doc).
    try {
      const jobs = await claimJobs(sql, {
        owner,
        limit: channelJobsPerRun(options),
        leaseMs: options.leaseMs,
      });
      summary.channel_jobs.claimed = jobs.length;
      for (const job of jobs) {
        heldJobs.add(job.id);
        pacer.hold(job);
        buffer.push(job);
      }
    } catch (err) {
      claimError = err;
    }
    await runLoop();
  } finally {
    clearInterval(renew);
    await renewal;
  }
  if (deps.slots) {
    deps.slots.busyMs += busyMs;
    deps.slots.capacityMs += options.concurrency * (lastDoneAt - startedAt);
  }
  await touchConnections(sql, syncedStaff).catch(() => {});
  if (claimError !== undefined) throw claimError;
  summary.remaining = await countDue(sql);
  summary.channel_jobs.remaining = await countDueJobs(sql);
  return summary;

  async function runLoop(): Promise<void> {
    while (true) {
      fill();
      claimAhead();
      fill();
      if (inFlight.size === 0 && buffer.length === 0 && !claiming) {
        // Nothing held and no claim running: claimAhead declined, so the run is over.
        break;
      }
      // Claimed rows (the buffer) are always processed, also after the deadline or a claim error.
      await Promise.race(claiming ? [...inFlight, claiming] : [...inFlight]);
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
