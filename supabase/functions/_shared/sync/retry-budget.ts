/**
 * The retry budget's bookkeeping, shared by the outbox (calendar_sync_log) and the channel job queue
 * (calendar_channel_jobs), whose rows carry the same columns: `queue_version`, `retry_count`,
 * `first_failure_at`, `next_attempt_at`, `error_message`, `last_error_code`, the lease, and a status
 * column (`sync_status` / `status`) that is `pending` or `failed`.
 */
import type { Sql, TransactionSql } from "../db/client.ts";

/** A retryable failure: error code and message, the backoff delay and the retry budget, both in ms. */
export interface RetryFailure {
  code: string;
  message: string;
  delayMs: number;
  budgetMs: number;
}

/**
 * The SET list of an UPDATE that records a retryable failure on the row aliased `alias`, claimed at
 * `queueVersion`: one more attempt counted and the next one after `delayMs`, but never later than the
 * end of the retry budget; or `failed` (dead letter) once `budgetMs` has passed since the first
 * failure of the row's current run of failures (`first_failure_at`). A row requested again since the
 * claim keeps its fresh schedule (and its budget: the failures go on). The lease is released.
 */
export function retryAssignments(
  sql: Sql | TransactionSql,
  target: { alias: string; statusColumn: string; queueVersion: string },
  failure: RetryFailure,
) {
  const a = sql(target.alias);
  const v = target.queueVersion;
  const budget = sql`${Math.ceil(failure.budgetMs)}::bigint * interval '1 millisecond'`;
  const spent = sql`(coalesce(${a}.first_failure_at, now()) + ${budget} <= now())`;
  const dead = sql`(${a}.queue_version = ${v}::bigint and ${spent})`;
  const hours = Math.round((failure.budgetMs / 3_600_000) * 100) / 100;
  return sql`
    error_message = case when ${dead}
      then ${`gave up after the retry budget of ${hours} h; last error: ${failure.message}`}
      else ${failure.message} end,
    last_error_code = ${failure.code},
    retry_count = case when ${a}.queue_version = ${v}::bigint then ${a}.retry_count + 1 else ${a}.retry_count end,
    first_failure_at = case when ${dead} then null else coalesce(${a}.first_failure_at, now()) end,
    ${sql(target.statusColumn)} = case when ${dead} then 'failed' else 'pending' end,
    next_attempt_at = case when ${a}.queue_version <> ${v}::bigint then ${a}.next_attempt_at
                           when ${spent} then null
                           else least(
                             now() + ${Math.ceil(failure.delayMs)}::bigint * interval '1 millisecond',
                             coalesce(${a}.first_failure_at, now()) + ${budget}
                           ) end,
    lease_owner = null,
    lease_expires_at = null`;
}
