/**
 * The channel queue (calendar_channel_jobs, docs/decisions.md decision 17): claiming jobs with a lease,
 * running one through its channel operation (inbound/channels.ts), and recording the outcome with the
 * outbox's rules, reused rather than restated: sync/failures.ts decides what a failure means (park,
 * retry, fail), sync/backoff.ts how long a retry waits, and the retry budget is the outbox's
 * (CALENDAR_SYNC_RETRY_BUDGET_HOURS, time since the first failure).
 *
 * A job becomes `done` only if it was not requested again while it ran (`queue_version` unchanged);
 * otherwise it stays pending and runs again. Every outcome is written only while the lease is ours.
 * A `create` job that is dead-lettered marks its channel `failed` (the worker's sweep opens a new one
 * later); every failure is noted on the channel (`error_count`, `last_error_code`, `last_error_at`).
 */
import type { Config } from "../config.ts";
import {
  connectionFromPrefixed,
  type ConnectionRow,
  markNeedsReconnect,
  prefixedConnectionColumns,
} from "../connections.ts";
import type { Sql, TransactionSql } from "../db/client.ts";
import type { CalendarProvider, ProviderId } from "../providers/types.ts";
import { retryDelayMs } from "../sync/backoff.ts";
import { decideFailure } from "../sync/failures.ts";
import { retryAssignments, type RetryFailure } from "../sync/retry-budget.ts";
import type { WorkerOptions } from "../sync/options.ts";
import { runChannelJob } from "./channels.ts";

/** What a channel job does (calendar_channel_jobs.kind). */
export type ChannelJobKind = "create" | "renew" | "stop" | "sync";

/**
 * A claimed job. `queue_version` is the bigint as text, as the claim's snapshot saw it; `connection`
 * is the staff member's active connection when it is the channel's (null otherwise).
 */
export interface ClaimedJob {
  id: string;
  tenant_id: string;
  staff_id: string;
  channel_id: string;
  kind: ChannelJobKind;
  retry_count: number;
  queue_version: string;
  lease_owner: string;
  /** The channel's provider. */
  provider: ProviderId;
  /** The channel's calendar. */
  calendar_id: string;
  connection: ConnectionRow | null;
}

/** Claim up to `limit` due jobs (calendar_private.claim_channel_jobs), leased to `owner` for `leaseMs`. */
export async function claimJobs(
  sql: Sql,
  req: { owner: string; limit: number; leaseMs: number; excludeStaffIds?: string[] },
): Promise<ClaimedJob[]> {
  if (req.limit <= 0) return [];
  const exclude = req.excludeStaffIds ?? [];
  const rows = await sql<Record<string, unknown>[]>`
    with due as (
      select id from calendar_private.claim_channel_jobs(${req.limit}::integer, ${
    exclude.length > 0 ? exclude : null
  }::uuid[]) id
    ),
    claimed as (
      update public.calendar_channel_jobs j
      set lease_owner = ${req.owner},
        lease_expires_at = now() + ${Math.ceil(req.leaseMs)}::integer * interval '1 millisecond'
      from due where j.id = due.id
      returning j.*
    )
    select j.id, j.tenant_id, j.staff_id, j.channel_id, j.kind, j.retry_count, j.lease_owner,
      -- The version this statement's snapshot saw (see sync/outbox.ts claimRows).
      coalesce((select x.queue_version from public.calendar_channel_jobs x where x.id = j.id), -1)::text
        as queue_version,
      ch.provider, ch.calendar_id,
      ${prefixedConnectionColumns(sql, "conn_")}
    from claimed j
    join public.calendar_channels ch on ch.id = j.channel_id
    left join lateral calendar_private.active_connection(j.tenant_id, j.staff_id) c on c.id = ch.connection_id`;
  return rows.map((r) => {
    const job: Record<string, unknown> = {};
    for (const [key, value] of Object.entries(r)) if (!key.startsWith("conn_")) job[key] = value;
    return { ...job, connection: connectionFromPrefixed(r, "conn_") } as unknown as ClaimedJob;
  });
}

/** Pending jobs due now that a worker could claim (calendar_private.count_due_channel_jobs). */
export async function countDueJobs(sql: Sql): Promise<number> {
  // The bound `true` keeps postgres.js from pipelining behind this query (db/client.ts).
  const [row] = await sql<
    { n: number }[]
  >`select calendar_private.count_due_channel_jobs() as n where ${true}`;
  return row.n;
}

/** Extend the leases `owner` still holds on `ids` by `leaseMs` from now. @returns how many. */
export async function extendJobLeases(
  sql: Sql,
  owner: string,
  ids: string[],
  leaseMs: number,
): Promise<number> {
  if (ids.length === 0) return 0;
  const result = await sql`
    update public.calendar_channel_jobs j
    set lease_expires_at = now() + ${Math.ceil(leaseMs)}::integer * interval '1 millisecond'
    where j.id = any(${ids}::uuid[]) and j.lease_owner = ${owner}`;
  return result.count;
}

/**
 * Record a success: `done`, or still pending when the job was requested again while it ran.
 * @returns "done", "requeued" or "lost" (the lease was taken over).
 */
export async function recordJobDone(sql: Sql, job: ClaimedJob): Promise<"done" | "requeued" | "lost"> {
  const v = job.queue_version;
  const rows = await sql<{ status: string }[]>`
    update public.calendar_channel_jobs j set
      status = case when j.queue_version = ${v}::bigint then 'done' else 'pending' end,
      next_attempt_at = case when j.queue_version = ${v}::bigint then null else j.next_attempt_at end,
      pending_since = case when j.queue_version = ${v}::bigint then null else j.pending_since end,
      retry_count = case when j.queue_version = ${v}::bigint then 0 else j.retry_count end,
      first_failure_at = null,
      last_error_code = null,
      error_message = null,
      lease_owner = null,
      lease_expires_at = null
    where j.id = ${job.id} and j.lease_owner = ${job.lease_owner}
    returning j.status`;
  if (rows.length === 0) return "lost";
  return rows[0].status === "done" ? "done" : "requeued";
}

/**
 * The channel notes a failed attempt recorded by the statement's `job` CTE; a dead-lettered `create`
 * fails its (still pending) channel.
 */
function noteOnChannel(sql: Sql | TransactionSql, job: ClaimedJob, code: string) {
  return sql`
    update public.calendar_channels ch set
      error_count = ch.error_count + 1,
      last_error_code = ${code},
      last_error_at = now(),
      sync_stage = case when ${job.kind === "create"} and ch.sync_stage = 'pending'
                          and exists (select 1 from job where job.status = 'failed')
                        then 'failed' else ch.sync_stage end
    where ch.id = ${job.channel_id} and exists (select 1 from job)
    returning 1`;
}

/**
 * Record a retryable failure: the next attempt after `delayMs` (never past the end of the retry
 * budget), or `failed` (dead letter) once `budgetMs` has passed since the first failure, as the
 * outbox does (sync/outbox.ts recordRetry).
 * @returns the job's status afterwards, or "lost" when the lease was taken over.
 */
export async function recordJobRetry(
  sql: Sql,
  job: ClaimedJob,
  failure: RetryFailure,
): Promise<"pending" | "failed" | "lost"> {
  const rows = await channelFirst(sql, job, (tx) =>
    tx<{ status: "pending" | "failed" }[]>`
    with job as (
      update public.calendar_channel_jobs j set
        ${
      retryAssignments(tx, { alias: "j", statusColumn: "status", queueVersion: job.queue_version }, failure)
    }
      where j.id = ${job.id} and j.lease_owner = ${job.lease_owner}
      returning j.status
    ),
    noted as (${noteOnChannel(tx, job, failure.code)})
    select status from job`);
  return rows[0]?.status ?? "lost";
}

/**
 * Record a permanent failure: `failed` (dead letter) with the error, unless the job was requested
 * again meanwhile (then it stays pending and runs again).
 */
export async function recordJobFailure(
  sql: Sql,
  job: ClaimedJob,
  failure: { code: string; message: string },
): Promise<"failed" | "pending" | "lost"> {
  const v = job.queue_version;
  const rows = await channelFirst(sql, job, (tx) =>
    tx<{ status: "pending" | "failed" }[]>`
    with job as (
      update public.calendar_channel_jobs j set
        error_message = ${failure.message},
        last_error_code = ${failure.code},
        status = case when j.queue_version = ${v}::bigint then 'failed' else 'pending' end,
        next_attempt_at = case when j.queue_version = ${v}::bigint then null else j.next_attempt_at end,
        first_failure_at = case when j.queue_version = ${v}::bigint then null else j.first_failure_at end,
        lease_owner = null,
        lease_expires_at = null
      where j.id = ${job.id} and j.lease_owner = ${job.lease_owner}
      returning j.status
    ),
    noted as (${noteOnChannel(tx, job, failure.code)})
    select status from job`);
  return rows[0]?.status ?? "lost";
}

/**
 * Run `write` (which updates the job and then its channel) in a transaction that locks the channel
 * first. The webhook's recorders update the channel and then request its job; taking the job's row
 * before the channel's here deadlocked with them (one side aborted: a job's outcome went unrecorded
 * until its lease ran out).
 */
async function channelFirst<T>(
  sql: Sql,
  job: ClaimedJob,
  write: (tx: TransactionSql) => Promise<T>,
): Promise<T> {
  return await sql.begin(async (tx) => {
    await tx`select 1 from public.calendar_channels where id = ${job.channel_id} for no key update`;
    return await write(tx);
  }) as T;
}

/**
 * Give a job back without counting an attempt (its connection needs a reconnect: due again at once,
 * claimable after one), or deferred to `notBefore` (its account is rate limited).
 */
export async function releaseJob(
  sql: Sql,
  job: ClaimedJob,
  opts: { notBefore?: Date; error?: { code: string; message: string } } = {},
): Promise<void> {
  await sql`
    update public.calendar_channel_jobs j set
      lease_owner = null,
      lease_expires_at = null,
      next_attempt_at = greatest(coalesce(j.next_attempt_at, now()), ${opts.notBefore ?? null}::timestamptz),
      error_message = coalesce(${opts.error?.message ?? null}, j.error_message),
      last_error_code = coalesce(${opts.error?.code ?? null}, j.last_error_code),
      first_failure_at = case when ${opts.error !== undefined} then null else j.first_failure_at end
    where j.id = ${job.id} and j.lease_owner = ${job.lease_owner}`;
}

/** What running a job came to. */
export type JobOutcome =
  | { status: "done"; kind: ChannelJobKind; settled: boolean }
  | {
    status: "retry" | "failed" | "parked";
    kind: ChannelJobKind;
    code: string;
    message: string;
    retryAt?: Date;
  };

/** What running a job needs. `deadline` (epoch ms) bounds a sync job's pages. */
export interface JobDeps {
  sql: Sql;
  config: Config;
  options: WorkerOptions;
  provider: (id: ProviderId) => CalendarProvider;
  deadline: number;
  /** Called when an account answered rate_limited, with the time before which it should rest. */
  onRateLimited?: (staffId: string, until: Date) => void;
  random?: () => number;
}

/** Run a claimed job and record its outcome; never throws for provider or data problems. */
export async function processJob(job: ClaimedJob, deps: JobDeps): Promise<JobOutcome> {
  const { sql, options } = deps;
  try {
    if (!job.connection?.workable) {
      // Disconnected or needs reconnect since the claim: the job waits for a reconnect.
      await releaseJob(sql, job);
      return { status: "parked", kind: job.kind, code: "not_connected", message: "waiting for a reconnect" };
    }
    await runChannelJob(deps, job, job.connection);
    const recorded = await recordJobDone(sql, job);
    return { status: "done", kind: job.kind, settled: recorded === "done" };
  } catch (err) {
    const decision = decideFailure(err, job.calendar_id);
    try {
      if (decision.decision === "park") {
        if (decision.markNeedsReconnect && job.connection) {
          await markNeedsReconnect(sql, job.connection.id, decision.message);
        }
        await releaseJob(sql, job, { error: { code: decision.code, message: decision.message } });
        return { status: "parked", kind: job.kind, code: decision.code, message: decision.message };
      }
      if (decision.decision === "fail") {
        const status = await recordJobFailure(sql, job, decision);
        return { status: status === "failed" ? "failed" : "retry", kind: job.kind, ...decision };
      }
      const delayMs = retryDelayMs(
        job.retry_count + 1,
        {
          baseMs: options.backoffBaseMs,
          capMs: options.backoffCapMs,
          retryAfterMaxMs: options.retryAfterMaxMs,
        },
        decision.retryAfterMs,
        deps.random,
      );
      const status = await recordJobRetry(sql, job, {
        ...decision,
        delayMs,
        budgetMs: options.retryBudgetMs,
      });
      if (decision.rateLimited) deps.onRateLimited?.(job.staff_id, new Date(Date.now() + delayMs));
      return {
        status: status === "failed" ? "failed" : "retry",
        kind: job.kind,
        code: decision.code,
        message: decision.message,
        ...(status === "pending" ? { retryAt: new Date(Date.now() + delayMs) } : {}),
      };
    } catch (recordErr) {
      // The database itself failed; the lease expires and another run retries the job.
      const name = recordErr instanceof Error ? recordErr.name : "error";
      console.error(
        JSON.stringify({ level: "error", event: "channel_job_record_failed", job_id: job.id, name }),
      );
      return {
        status: "retry",
        kind: job.kind,
        code: "internal_error",
        message: "could not record the outcome",
      };
    }
  }
}
