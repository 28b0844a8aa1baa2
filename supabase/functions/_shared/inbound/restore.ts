/**
 * Our events changed outside the product (decision 14: the clinic's schedule is the authority).
 *
 * Recognising ours: an event of the page is ours when its id is the `event_id` a sync row of the
 * staff member (this tenant and provider) stores: that covers both providers and every generation,
 * and only such events are judged. Events we wrote whose id no row stores yet (a create whose answer
 * was lost) are recognised as well, by the appointment their id names (Google `ourAppointment`) or
 * by their idempotency key (Graph `transactionId` = `inbound.idempotencyKeyFor` of a row without an
 * id), but only to mark their busy block `ours`: their row's write is unresolved, and the worker
 * settles it.
 *
 * Judging one of ours, against its sync row and appointment as stored now:
 * - The row has work in flight or newer knowledge than the page (pending, leased, or written after
 *   the page was read): skip. The worker writes the appointment's state anyway; judging now would
 *   take our own write, read before it was recorded, for an outside edit.
 * - The appointment no longer wants an event: skip (the row's delete is the worker's business).
 * - Confirmed with the version (Google etag, Graph @odata.etag) the worker recorded on its last write:
 *   the echo of our own write. Nothing to do.
 * - Confirmed with another version but the appointment's exact start and end (not all-day): a change
 *   to something we do not write or cannot see (colour, reminders, the title: we never read titles).
 *   Benign: nothing is written. Either way the event agrees with the appointment, so the
 *   appointment's open external-edit conflicts are resolved.
 * - Confirmed at other times (moved, resized, made all-day): an edit; cancelled or removed: a delete
 *   (Graph reports an event moved out of the window as removed too; restoring it moves it back).
 *   With CALENDAR_INBOUND_EXTERNAL_EDITS=restore the appointment's sync row is re-queued
 *   (sync/outbox.ts requeueMapping) and the worker writes the appointment back, one write (a deleted
 *   event takes the engine's "event vanished" path: a fresh id), and a conflict
 *   `external_{edit|delete}_restored` is opened; its write's echo resolves it. With `report` only
 *   `external_{edit|delete}_reported` is opened; it resolves when the event agrees again (the user
 *   moves it back, or the appointment's next write).
 */
import type { TransactionSql } from "../db/client.ts";
import type { Json } from "../db/rows.ts";
import type { ExternalEvent, InboundCalendarCalls } from "../providers/types.ts";
import {
  APPOINTMENT_COLUMNS,
  appointmentFromPrefixed,
  type AppointmentState,
  type ClaimedLogRow,
  eventWanted,
  requeueMapping,
} from "../sync/outbox.ts";
import { parseInstant } from "../time-ranges.ts";
import { type ConflictScope, EXTERNAL_EDIT_KINDS, openConflict, resolveConflicts } from "./conflicts.ts";

/** A sync row whose event a page names, locked for the page's transaction, with its appointment. */
export type OurRow =
  & Pick<
    ClaimedLogRow,
    "id" | "tenant_id" | "appointment_key" | "staff_id" | "provider" | "event_id" | "event_generation"
  >
  & {
    event_etag: string | null;
    sync_status: string;
    /** A worker holds the row (live lease). */
    leased: boolean;
    last_synced_at: Date | null;
    appointment: AppointmentState | null;
  };

/** What a page's events are to us. */
export interface OurEvents {
  /** Sync rows by the event id they store, locked for the transaction (the events we judge). */
  byEventId: Map<string, OurRow>;
  /** Ids of the page's events that are ours, judged or not (their busy blocks are `ours`). */
  ours: Set<string>;
}

/** The channel a page belongs to, as restore needs it. */
export interface RestoreScope extends ConflictScope {
  calendar_id: string;
}

/**
 * Find the page's events that are ours (see the module doc) and lock the sync rows that store their
 * ids (`for update skip locked`: the worker's claim skips them until the page is applied; a row
 * locked elsewhere is not judged).
 */
export async function findOurEvents(
  tx: TransactionSql,
  scope: RestoreScope,
  events: ExternalEvent[],
  inbound: Pick<InboundCalendarCalls, "idempotencyKeyFor">,
): Promise<OurEvents> {
  const byEventId = new Map<string, OurRow>();
  const ours = new Set<string>();
  if (events.length === 0) return { byEventId, ours };
  const ids = events.map((e) => e.id);
  const stored = await tx<{ event_id: string }[]>`
    select l.event_id from public.calendar_sync_log l
    where l.tenant_id = ${scope.tenant_id} and l.staff_id = ${scope.staff_id} and l.provider = ${scope.provider}
      and l.event_id = any(${ids}::text[])`;
  for (const r of stored) ours.add(r.event_id);
  // The rows to judge, locked without waiting: a row another transaction holds (the worker recording
  // a write, the app re-queuing it) has work in flight and is not judged now. Never waiting also
  // means never deadlocking with the app's multi-row statements.
  const rows = await tx<Record<string, unknown>[]>`
    select l.id, l.tenant_id, l.appointment_key, l.staff_id, l.provider, l.event_id, l.event_generation,
      l.event_etag, l.sync_status, coalesce(l.lease_expires_at > now(), false) as leased, l.last_synced_at,
      ${tx.unsafe(APPOINTMENT_COLUMNS)}
    from public.calendar_sync_log l
    left join public.appointments a on a.id = l.appointment_id
    left join public.staff s on s.id = a.staff_id
    where l.tenant_id = ${scope.tenant_id} and l.staff_id = ${scope.staff_id} and l.provider = ${scope.provider}
      and l.event_id = any(${ids}::text[])
    for update of l skip locked`;
  for (const r of rows) {
    const row = { ...r, appointment: appointmentFromPrefixed(r) } as unknown as OurRow;
    byEventId.set(row.event_id!, row);
  }
  // Ours without a stored id: Google names the appointment in the id; Graph keeps our key.
  const named = events.filter((e) => !ours.has(e.id) && e.ourAppointment);
  if (named.length > 0) {
    const keys = await tx<{ appointment_key: string }[]>`
      select distinct l.appointment_key from public.calendar_sync_log l
      where l.tenant_id = ${scope.tenant_id} and l.staff_id = ${scope.staff_id} and l.provider = ${scope.provider}
        and l.appointment_key = any(${named.map((e) => e.ourAppointment!.appointmentId)}::uuid[])`;
    const known = new Set(keys.map((k) => k.appointment_key));
    for (const e of named) if (known.has(e.ourAppointment!.appointmentId)) ours.add(e.id);
  }
  const keyed = events.filter((e) => !ours.has(e.id) && e.idempotencyKey);
  if (keyed.length > 0) {
    const unresolved = await tx<
      { appointment_key: string; event_generation: number; calendar_id: string | null }[]
    >`
      select l.appointment_key, l.event_generation, l.calendar_id from public.calendar_sync_log l
      where l.tenant_id = ${scope.tenant_id} and l.staff_id = ${scope.staff_id} and l.provider = ${scope.provider}
        and (l.event_id is null or l.write_unresolved)`;
    const expected = new Set(
      unresolved.map((l) =>
        inbound.idempotencyKeyFor({
          calendarId: l.calendar_id ?? scope.calendar_id,
          appointmentId: l.appointment_key,
          eventGeneration: l.event_generation,
        })
      ),
    );
    for (const e of keyed) if (expected.has(e.idempotencyKey)) ours.add(e.id);
  }
  return { byEventId, ours };
}

/** How a page's events of ours were judged. */
export interface RestoreOutcome {
  restored: number;
  reported: number;
  conflictsOpened: number;
  conflictsResolved: number;
}

/**
 * Judge each of our events in the page (see the module doc) and act: re-queue and record, record only,
 * or resolve. The last occurrence of an id in the page wins.
 * @param readAt when the page was read (database clock): a row written since is newer than the page.
 * @param mode CALENDAR_INBOUND_EXTERNAL_EDITS.
 */
export async function judgeOurEvents(
  tx: TransactionSql,
  scope: RestoreScope,
  events: ExternalEvent[],
  found: OurEvents,
  opts: { readAt: Date; mode: "restore" | "report" },
): Promise<RestoreOutcome> {
  const outcome: RestoreOutcome = { restored: 0, reported: 0, conflictsOpened: 0, conflictsResolved: 0 };
  const latest = new Map<string, ExternalEvent>();
  for (const e of events) if (found.byEventId.has(e.id)) latest.set(e.id, e);
  for (const event of latest.values()) {
    const row = found.byEventId.get(event.id)!;
    const verdict = judge(event, row, opts.readAt);
    if (verdict === "skip") continue;
    const appointment = row.appointment!;
    if (verdict === "agrees") {
      outcome.conflictsResolved += await resolveConflicts(tx, scope, appointment.id, EXTERNAL_EDIT_KINDS);
      continue;
    }
    const details: Record<string, Json> = { provider: scope.provider };
    if (verdict === "edit") {
      details.event_start = event.start;
      details.event_end = event.end;
      details.all_day = event.allDay;
    }
    const kind = `external_${verdict}_${opts.mode === "restore" ? "restored" : "reported"}` as const;
    if (opts.mode === "restore") {
      await requeueMapping(tx, row);
      outcome.restored++;
    } else {
      outcome.reported++;
    }
    if (await openConflict(tx, scope, appointment.id, kind, details)) outcome.conflictsOpened++;
  }
  return outcome;
}

/** The verdict on one of our events (module doc). */
function judge(event: ExternalEvent, row: OurRow, readAt: Date): "skip" | "agrees" | "edit" | "delete" {
  const busyElsewhere = row.sync_status !== "synced" || row.leased ||
    (row.last_synced_at !== null && row.last_synced_at.getTime() >= readAt.getTime());
  if (busyElsewhere || !eventWanted(row, row.appointment)) return "skip";
  if (event.status === "cancelled") return "delete";
  if (event.version !== null && event.version === row.event_etag) return "agrees";
  const appointment = row.appointment!;
  const sameTimes = !event.allDay && event.start !== null && event.end !== null &&
    parseInstant(event.start) === appointment.starts_at.getTime() &&
    parseInstant(event.end) === appointment.ends_at.getTime();
  return sameTimes ? "agrees" : "edit";
}
