/**
 * After a staff member (re)connects a calendar, queue every current appointment of theirs so the
 * calendar converges even for appointments that changed while they were disconnected. Writes are
 * idempotent (derived event ids), so re-queuing an already-synced appointment never duplicates.
 * The SQL function lives in the outbox migration; it also kicks the worker.
 */
import type { Sql } from "../db/client.ts";

/** Queue the staff member's appointments (see calendar_private.enqueue_staff_backfill). @returns rows queued. */
export async function enqueueBackfill(sql: Sql, staffId: string): Promise<number> {
  const [row] = await sql<{ queued: number }[]>`
    select calendar_private.enqueue_staff_backfill(${staffId}::uuid) as queued`;
  return row?.queued ?? 0;
}
