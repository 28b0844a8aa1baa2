/**
 * Conflict rows (`calendar_conflicts`, decision 14): what inbound sync found, per appointment, without
 * PHI (kinds, provider and times only). At most one open row per (appointment, kind), as the schema
 * enforces (`calendar_conflicts_one_open_key`): a new finding while one is open updates it, and
 * resolution closes it (`resolved_at`).
 *
 * Overlaps are re-evaluated for the whole staff member on every page a sync applies
 * ({@link reconcileOverlaps}), not per changed event: so a conflict also resolves when the appointment
 * side moves (an appointment moved or cancelled: its event's write is itself a change the next sync
 * reads, and an appointment the calendar never hears of is caught on the staff member's next run).
 */
import type { TransactionSql } from "../db/client.ts";
import type { Json } from "../db/rows.ts";
import type { ProviderId } from "../providers/types.ts";

/** Whose conflicts: a channel's tenant, staff member, connection and provider. */
export interface ConflictScope {
  tenant_id: string;
  staff_id: string;
  connection_id: string;
  provider: ProviderId;
}

/** What happened to one of our events outside the product (kinds of calendar_conflicts). */
export type ExternalEditKind =
  | "external_edit_restored"
  | "external_edit_reported"
  | "external_delete_restored"
  | "external_delete_reported";

/** Every kind about our own events, resolved together once the event agrees with its appointment. */
export const EXTERNAL_EDIT_KINDS: readonly ExternalEditKind[] = Object.freeze([
  "external_edit_restored",
  "external_edit_reported",
  "external_delete_restored",
  "external_delete_reported",
]);

/**
 * Open (or refresh) the appointment's conflict of `kind`: inserted when none is open, else the open
 * row's details and detection time are updated.
 * @param details provider, times; never a title, a description or a person (the schema caps it at 2 KiB).
 * @returns true when a new row was opened.
 */
export async function openConflict(
  tx: TransactionSql,
  scope: ConflictScope,
  appointmentId: string,
  kind: ExternalEditKind | "overlap",
  details: Record<string, Json>,
): Promise<boolean> {
  const rows = await tx<{ opened: boolean }[]>`
    insert into public.calendar_conflicts as c (tenant_id, staff_id, appointment_id, kind, details)
    values (${scope.tenant_id}, ${scope.staff_id}, ${appointmentId}, ${kind}, ${tx.json(details)})
    on conflict (appointment_id, kind) where resolved_at is null do update set
      details = excluded.details, detected_at = now()
    returning (c.xmax = 0) as opened`;
  return rows[0]?.opened ?? false;
}

/**
 * Resolve the appointment's open conflicts of these kinds (its event agrees with it again).
 * @returns how many were resolved.
 */
export async function resolveConflicts(
  tx: TransactionSql,
  scope: Pick<ConflictScope, "tenant_id" | "staff_id">,
  appointmentId: string,
  kinds: readonly string[],
): Promise<number> {
  const result = await tx`
    update public.calendar_conflicts c set resolved_at = now()
    where c.appointment_id = ${appointmentId} and c.tenant_id = ${scope.tenant_id}
      and c.staff_id = ${scope.staff_id} and c.kind = any(${kinds as string[]}::text[])
      and c.resolved_at is null`;
  return result.count;
}

/**
 * Re-evaluate the staff member's overlaps: every appointment of theirs (this tenant, a status that
 * wants an event: calendar_private.appointment_wants_event) overlapping at least one busy block of the
 * connection that is not our own event (`ours`) has an open `overlap` conflict, with the span of the
 * blocks it overlaps in its details; every other open `overlap` conflict of the staff member is
 * resolved. Open conflicts of other kinds whose appointment no longer wants an event (cancelled,
 * reassigned, deleted) are resolved too: there is nothing left to restore.
 * @returns conflicts opened and resolved.
 */
export async function reconcileOverlaps(
  tx: TransactionSql,
  scope: ConflictScope,
): Promise<{ opened: number; resolved: number }> {
  const [row] = await tx<{ opened: number; resolved: number }[]>`
    with overlapping as (
      select a.id as appointment_id, min(b.starts_at) as busy_start, max(b.ends_at) as busy_end,
        count(*)::int as blocks
      from public.appointments a
      join public.calendar_busy_blocks b
        on b.connection_id = ${scope.connection_id} and b.staff_id = a.staff_id and not b.ours
          and b.starts_at < a.ends_at and b.ends_at > a.starts_at
      where a.tenant_id = ${scope.tenant_id} and a.staff_id = ${scope.staff_id}
        and calendar_private.appointment_wants_event(a.status)
      group by a.id
    ),
    opened as (
      insert into public.calendar_conflicts as c (tenant_id, staff_id, appointment_id, kind, details)
      select ${scope.tenant_id}, ${scope.staff_id}, o.appointment_id, 'overlap',
        jsonb_build_object('provider', ${scope.provider}::text, 'busy_start', o.busy_start,
          'busy_end', o.busy_end, 'blocks', o.blocks)
      from overlapping o
      on conflict (appointment_id, kind) where resolved_at is null do update set details = excluded.details
        where c.details is distinct from excluded.details
      returning (c.xmax = 0) as inserted
    ),
    resolved as (
      update public.calendar_conflicts c set resolved_at = now()
      where c.tenant_id = ${scope.tenant_id} and c.staff_id = ${scope.staff_id} and c.resolved_at is null
        and (
          (c.kind = 'overlap' and c.appointment_id not in (select o.appointment_id from overlapping o))
          or (c.kind <> 'overlap' and not exists (
            select 1 from public.appointments a
            where a.id = c.appointment_id and a.tenant_id = c.tenant_id and a.staff_id = c.staff_id
              and calendar_private.appointment_wants_event(a.status)))
        )
      returning 1
    )
    select (select count(*) from opened where inserted)::int as opened,
      (select count(*) from resolved)::int as resolved`;
  return row;
}
