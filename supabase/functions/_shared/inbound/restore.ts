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
 * - Confirmed with another version but the appointment's exact start and end (not all-day): either a
 *   retitle or a change to something we do not write (colour, reminders, categories, a dismissed
 *   reminder: providers make new versions for those too). The page does not say which (it carries no
 *   titles), so the event is a title candidate ({@link TitleCandidate}): after the page's transaction
 *   {@link settleTitleCandidate} reads that one event's title (our own event's, through
 *   `readOwnEventTitle`; held in memory for the comparison only, never stored or logged: decision
 *   13) and compares it with the title we write: another title is an edit (restored or reported as
 *   below, details `{title_changed: true}`, never the title), the same title agrees, and an event gone
 *   meanwhile is a delete. A provider without `readOwnEventTitle` takes every such change as agreeing.
 *   When the event agrees with the appointment its open external-edit conflicts are resolved.
 * - Confirmed at other times (moved, resized, made all-day): an edit; cancelled or removed: a delete
 *   (Graph reports an event moved out of the window as removed too; restoring it moves it back).
 *   With CALENDAR_INBOUND_EXTERNAL_EDITS=restore the appointment's sync row is re-queued
 *   (sync/outbox.ts requeueMapping) and the worker writes the appointment back, one write (a deleted
 *   event takes the engine's "event vanished" path: a fresh id), and a conflict
 *   `external_{edit|delete}_restored` is opened; the worker resolves it when it records the restoring
 *   write (sync/outbox.ts recordSuccess). With `report` only
 *   `external_{edit|delete}_reported` is opened; it resolves when the event agrees again (the user
 *   moves it back, or the appointment's next write).
 */
import type { Sql, TransactionSql } from "../db/client.ts";
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
  for (const row of await lockOurRows(tx, scope, ids)) byEventId.set(row.event_id!, row);
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

/**
 * The sync rows of the scope storing one of `eventIds`, with their appointments, locked without
 * waiting: a row another transaction holds (the worker recording a write, the app re-queuing it) has
 * work in flight and is not judged now. Never waiting also means never deadlocking with the app's
 * multi-row statements.
 */
async function lockOurRows(tx: TransactionSql, scope: RestoreScope, eventIds: string[]): Promise<OurRow[]> {
  const rows = await tx<Record<string, unknown>[]>`
    select l.id, l.tenant_id, l.appointment_key, l.staff_id, l.provider, l.event_id, l.event_generation,
      l.event_etag, l.sync_status, coalesce(l.lease_expires_at > now(), false) as leased, l.last_synced_at,
      ${tx.unsafe(APPOINTMENT_COLUMNS)}
    from public.calendar_sync_log l
    left join public.appointments a on a.id = l.appointment_id
    left join public.staff s on s.id = a.staff_id
    where l.tenant_id = ${scope.tenant_id} and l.staff_id = ${scope.staff_id} and l.provider = ${scope.provider}
      and l.event_id = any(${eventIds}::text[])
    for update of l skip locked`;
  return rows.map((r) => ({ ...r, appointment: appointmentFromPrefixed(r) } as unknown as OurRow));
}

/** How a page's events of ours were judged. */
export interface RestoreOutcome {
  restored: number;
  reported: number;
  conflictsOpened: number;
  conflictsResolved: number;
}

/**
 * One of our events whose version changed while its times agree with the appointment: a retitle or a
 * benign change, told apart by {@link settleTitleCandidate} after the page's transaction.
 */
export interface TitleCandidate {
  /** The event as the page had it. */
  event: ExternalEvent;
  /** The version the sync row stored when the page was judged (`event_etag`): still that one to act. */
  seenEtag: string | null;
}

/**
 * Judge each of our events in the page (see the module doc) and act: re-queue and record, record only,
 * or resolve. The last occurrence of an id in the page wins.
 * @param readAt when the page was read (database clock): a row written since is newer than the page.
 * @param mode CALENDAR_INBOUND_EXTERNAL_EDITS.
 * @param readsTitles whether the provider can read our event's title (`readOwnEventTitle`): if so,
 *   a new version at the appointment's times is returned as a candidate instead of agreeing.
 * @returns the outcome, and the title candidates for {@link settleTitleCandidate}.
 */
export async function judgeOurEvents(
  tx: TransactionSql,
  scope: RestoreScope,
  events: ExternalEvent[],
  found: OurEvents,
  opts: { readAt: Date; mode: "restore" | "report"; readsTitles: boolean },
): Promise<RestoreOutcome & { titleCandidates: TitleCandidate[] }> {
  const outcome: RestoreOutcome = { restored: 0, reported: 0, conflictsOpened: 0, conflictsResolved: 0 };
  const titleCandidates: TitleCandidate[] = [];
  const latest = new Map<string, ExternalEvent>();
  for (const e of events) if (found.byEventId.has(e.id)) latest.set(e.id, e);
  for (const event of latest.values()) {
    const row = found.byEventId.get(event.id)!;
    const verdict = judge(event, row, opts.readAt);
    if (verdict === "title?" && opts.readsTitles) {
      titleCandidates.push({ event, seenEtag: row.event_etag });
      continue;
    }
    await act(tx, scope, row, verdict === "title?" ? "agrees" : verdict, event, opts.mode, outcome);
  }
  return { ...outcome, titleCandidates };
}

/**
 * Settle one title candidate (module doc): read the event's title with `readTitle` (a provider call,
 * made outside any transaction: no HTTP while holding row locks), then, in one short transaction,
 * act only if the sync row is still as the page saw it (synced, not leased, not written since
 * `readAt`, `event_etag` still `seenEtag`, the appointment still at the event's times). The title is
 * compared and dropped: never stored, logged or put in the conflict's details.
 * @param expectedTitle the title we write (CALENDAR_EVENT_TITLE).
 * @throws whatever `readTitle` throws (ProviderError, DomainError); database errors.
 */
export async function settleTitleCandidate(
  sql: Sql,
  scope: RestoreScope,
  candidate: TitleCandidate,
  readTitle: () => Promise<string | null>,
  opts: { readAt: Date; mode: "restore" | "report"; expectedTitle: string },
): Promise<RestoreOutcome> {
  const outcome: RestoreOutcome = { restored: 0, reported: 0, conflictsOpened: 0, conflictsResolved: 0 };
  const title = await readTitle();
  const verdict = title === null ? "delete" : title === opts.expectedTitle ? "agrees" : "retitle";
  await sql.begin(async (tx) => {
    const [row] = await lockOurRows(tx, scope, [candidate.event.id]);
    if (!row || row.event_etag !== candidate.seenEtag) return;
    if (judge(candidate.event, row, opts.readAt) !== "title?") return;
    await act(tx, scope, row, verdict, candidate.event, opts.mode, outcome);
  });
  return outcome;
}

/** Act on a verdict (module doc): resolve, or re-queue and record, or record only; counted in `outcome`. */
async function act(
  tx: TransactionSql,
  scope: RestoreScope,
  row: OurRow,
  verdict: "skip" | "agrees" | "edit" | "retitle" | "delete",
  event: ExternalEvent,
  mode: "restore" | "report",
  outcome: RestoreOutcome,
): Promise<void> {
  if (verdict === "skip") return;
  const appointment = row.appointment!;
  if (verdict === "agrees") {
    outcome.conflictsResolved += await resolveConflicts(tx, scope, appointment.id, EXTERNAL_EDIT_KINDS);
    return;
  }
  const details: Record<string, Json> = { provider: scope.provider };
  if (verdict === "edit") {
    details.event_start = event.start;
    details.event_end = event.end;
    details.all_day = event.allDay;
  } else if (verdict === "retitle") {
    // That it changed, never what it says: a clinician's words may name a patient.
    details.title_changed = true;
  }
  const what = verdict === "delete" ? "delete" : "edit";
  const kind = `external_${what}_${mode === "restore" ? "restored" : "reported"}` as const;
  if (mode === "restore") {
    await requeueMapping(tx, row);
    outcome.restored++;
  } else {
    outcome.reported++;
  }
  if (await openConflict(tx, scope, appointment.id, kind, details)) outcome.conflictsOpened++;
}

/**
 * The verdict on one of our events (module doc); `title?` is a new version at the appointment's
 * times, which only the event's title can settle.
 */
function judge(
  event: ExternalEvent,
  row: OurRow,
  readAt: Date,
): "skip" | "agrees" | "edit" | "delete" | "title?" {
  const busyElsewhere = row.sync_status !== "synced" || row.leased ||
    (row.last_synced_at !== null && row.last_synced_at.getTime() >= readAt.getTime());
  if (busyElsewhere || !eventWanted(row, row.appointment)) return "skip";
  if (event.status === "cancelled") return "delete";
  if (event.version !== null && event.version === row.event_etag) return "agrees";
  const appointment = row.appointment!;
  const sameTimes = !event.allDay && event.start !== null && event.end !== null &&
    parseInstant(event.start) === appointment.starts_at.getTime() &&
    parseInstant(event.end) === appointment.ends_at.getTime();
  return sameTimes ? "title?" : "edit";
}
