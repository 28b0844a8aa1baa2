/**
 * The worker's own next run. A run is bounded (sync/options.ts: CALENDAR_SYNC_MAX_RUN_MS and
 * CALENDAR_SYNC_MAX_RUN_ROWS); when it ran in the background (a 202 answer, handlers/sync-worker.ts)
 * nobody is waiting for its summary, so when due rows remain it kicks the next run itself instead of
 * leaving them to the pg_cron sweep a minute later. The kick is the database's own
 * (`calendar_private.kick_worker('continue')`): the same pg_net POST with the URL and secret from
 * Vault, and the same pg_notify, that an appointment change sends.
 */
import type { Sql } from "../db/client.ts";
import type { DrainSummary } from "./worker.ts";

/**
 * Whether another run should follow at once: rows (or channel jobs) are due now (`remaining` counts only rows that
 * are due, unleased and whose connection can work) and this run made progress (claimed at least one
 * row, or job). Rows due later (backoff, Retry-After, a future `next_attempt_at`) never count, and a run
 * that could claim nothing (the due rows are held or resting) does not follow itself, so a chain of
 * runs cannot spin on work that is not ready: the sweep and the next kick pick that up.
 */
export function needsFollowUp(summary: DrainSummary): boolean {
  const jobs = summary.channel_jobs;
  return (summary.remaining > 0 && summary.claimed > 0) || (jobs.remaining > 0 && jobs.claimed > 0);
}

/**
 * Kick the next worker run through the database (pg_net + Vault where configured, and pg_notify).
 * @throws the database error when the kick cannot be queued (the caller logs it; the sweep remains).
 */
export async function kickFollowUp(sql: Sql): Promise<void> {
  await sql`select calendar_private.kick_worker(${"continue"})`;
}
