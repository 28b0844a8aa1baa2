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
  /** The appointment's tenant (after a hard delete: the tenant of its newest sync row). */
  tenantId: string;
  /** Present while the appointment row exists. */
  exists: boolean;
  staffId: string | null;
  /** False when the appointment names a staff member who is not staff of its tenant (or no staff
   * row at all): such an appointment never reaches any calendar. True when it names none. */
  staffInTenant: boolean;
  /** True when the appointment exists, has a staff member of its tenant and its status wants an event. */
  wantsEvent: boolean;
  /** calendar_sync_log rows of this appointment in `tenantId` (any staff member), before queuing. */
  rows: { id: string; staff_id: string; provider: ProviderId; event_id: string | null }[];
}

/**
 * Look up an appointment and its sync rows in its tenant. A hard-deleted appointment is still found
 * through its rows (appointment_key), so "delete" after deleting the row works as the seed contract
 * expects. Rows of other tenants are never part of the target.
 * @returns null when neither the appointment nor any row of it exists.
 */
export async function findAppointmentTarget(
  sql: Sql,
  appointmentId: string,
): Promise<AppointmentTarget | null> {
  const [appointment] = await sql<
    { tenant_id: string; staff_id: string | null; staff_in_tenant: boolean; wants_event: boolean }[]
  >`
    select a.tenant_id, a.staff_id,
      (a.staff_id is null or exists (
        select 1 from public.staff s where s.id = a.staff_id and s.tenant_id = a.tenant_id
      )) as staff_in_tenant,
      calendar_private.appointment_wants_event(a.status) as wants_event
    from public.appointments a where a.id = ${appointmentId}`;
  const rows = await sql<
    {
      id: string;
      tenant_id: string;
      staff_id: string;
      provider: ProviderId;
      event_id: string | null;
    }[]
  >`
    select id, tenant_id, staff_id, provider, event_id from public.calendar_sync_log
    where appointment_key = ${appointmentId}
    order by updated_at desc, id`;
  if (!appointment && rows.length === 0) return null;
  const tenantId = appointment?.tenant_id ?? rows[0].tenant_id;
  return {
    appointmentId,
    tenantId,
    exists: !!appointment,
    staffId: appointment?.staff_id ?? null,
    staffInTenant: appointment?.staff_in_tenant ?? true,
    wantsEvent: !!appointment && appointment.staff_id !== null && appointment.staff_in_tenant &&
      appointment.wants_event,
    rows: rows.filter((r) => r.tenant_id === tenantId).map(({ id, staff_id, provider, event_id }) => ({
      id,
      staff_id,
      provider,
      event_id,
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
 * Queue the appointment's rows (forced: even rows that look done) and process those of `tenantId`
 * now (the appointment's tenant, {@link AppointmentTarget.tenantId}). Rows of staff members whose
 * connection is not workable are queued (parked) but not processed.
 * @returns one result per row of the appointment in the tenant after queuing, on the provider of its
 *   staff member's active connection (calendar_private.active_connection).
 */
export async function syncAppointmentNow(
  deps: ProcessDeps & { owner?: string },
  appointmentId: string,
  tenantId: string,
): Promise<RowResult[]> {
  const { sql } = deps;
  await sql`select calendar_private.enqueue_appointment(${appointmentId}::uuid)`;
  // Rows of a provider that is not the staff member's active connection wait for that provider (its
  // grant is gone): they are neither processed nor what the answer is about.
  const rows = await sql<{ id: string; staff_id: string }[]>`
    select l.id, l.staff_id from public.calendar_sync_log l
    where l.appointment_key = ${appointmentId} and l.tenant_id = ${tenantId}
      and exists (
        select 1 from calendar_private.active_connection(l.tenant_id, l.staff_id) c where c.provider = l.provider
      )`;
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
    await sql`select calendar_private.kick_worker(${"appointment"})`.catch(() => {});
  }
  return results;
}
