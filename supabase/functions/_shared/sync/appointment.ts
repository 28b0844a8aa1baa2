/**
 * Sync one appointment now (calendar-sync-appointment): queue its rows from its current state with
 * the same coalescing as the trigger (`calendar_private.enqueue_appointment`), then claim exactly
 * those rows and run them through the worker's code ({@link processRows}). A row another worker
 * holds is left to it (the answer says pending) and the worker is kicked for the re-queued work.
 */
import type { Sql } from "../db/client.ts";
import type { ProviderId } from "../providers/types.ts";
import { claimRows } from "./outbox.ts";
import type { ProcessDeps, RowOutcome } from "./process.ts";
import { processRows } from "./worker.ts";

/** The appointment as the caller's checks need it; null fields when it was hard-deleted. */
export interface AppointmentTarget {
  appointmentId: string;
  tenantId: string;
  /** Present while the appointment row exists. */
  exists: boolean;
  staffId: string | null;
  /** True when the appointment exists, has a staff member and its status wants an event. */
  wantsEvent: boolean;
  /** calendar_sync_log rows of this appointment (any staff member), before queuing. */
  rows: { id: string; staff_id: string; provider: ProviderId; google_event_id: string | null }[];
}

/**
 * Look up an appointment and its sync rows. A hard-deleted appointment is still found through its
 * rows (appointment_key), so "delete" after deleting the row works as the seed contract expects.
 * @returns null when neither the appointment nor any row of it exists.
 */
export async function findAppointmentTarget(
  sql: Sql,
  appointmentId: string,
): Promise<AppointmentTarget | null> {
  const [appointment] = await sql<{ tenant_id: string; staff_id: string | null; wants_event: boolean }[]>`
    select a.tenant_id, a.staff_id, calendar_private.appointment_wants_event(a.status) as wants_event
    from public.appointments a where a.id = ${appointmentId}`;
  const rows = await sql<
    {
      id: string;
      tenant_id: string;
      staff_id: string;
      provider: ProviderId;
      google_event_id: string | null;
    }[]
  >`
    select id, tenant_id, staff_id, provider, google_event_id from public.calendar_sync_log
    where appointment_key = ${appointmentId}
    order by updated_at desc`;
  if (!appointment && rows.length === 0) return null;
  return {
    appointmentId,
    tenantId: appointment?.tenant_id ?? rows[0].tenant_id,
    exists: !!appointment,
    staffId: appointment?.staff_id ?? null,
    wantsEvent: !!appointment && appointment.staff_id !== null && appointment.wants_event,
    rows: rows.map(({ id, staff_id, provider, google_event_id }) => ({
      id,
      staff_id,
      provider,
      google_event_id,
    })),
  };
}

/** The result for one row of the appointment. */
export interface RowResult {
  rowId: string;
  staffId: string;
  /** The outcome, or null when another worker holds the row (it stays pending for that worker). */
  outcome: RowOutcome | null;
}

/**
 * Queue the appointment's rows (forced: even rows that look done) and process them now.
 * Rows of staff members whose connection is not `connected` are queued (parked) but not processed.
 * @returns one result per row of the appointment after queuing.
 */
export async function syncAppointmentNow(
  deps: ProcessDeps & { owner?: string },
  appointmentId: string,
): Promise<RowResult[]> {
  const { sql } = deps;
  await sql`select calendar_private.enqueue_appointment(${appointmentId}::uuid)`;
  const rows = await sql<{ id: string; staff_id: string }[]>`
    select id, staff_id from public.calendar_sync_log where appointment_key = ${appointmentId}`;
  const claimed = await claimRows(sql, {
    owner: deps.owner ?? `appointment:${crypto.randomUUID()}`,
    limit: rows.length,
    leaseMs: deps.options.leaseMs,
    ids: rows.map((r) => r.id),
  });
  const outcomes = await processRows(claimed, deps, deps.options.concurrency);
  const byId = new Map(claimed.map((row, i) => [row.id, outcomes[i]]));
  const results = rows.map((r) => ({ rowId: r.id, staffId: r.staff_id, outcome: byId.get(r.id) ?? null }));
  const unsettled = results.some((r) =>
    r.outcome === null || (r.outcome.status === "synced" && !r.outcome.settled)
  );
  if (unsettled) {
    // Work is left for a worker (a row held elsewhere, or re-queued meanwhile): make sure one runs.
    await sql`select calendar_private.kick_worker('appointment')`.catch(() => {});
  }
  return results;
}
