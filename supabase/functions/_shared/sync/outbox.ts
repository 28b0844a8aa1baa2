/**
 * The outbox's SQL: claiming rows with a lease, and recording each outcome. The trigger, the
 * backfill and the enqueue function live in the migrations (20261123000200_calendar_sync_outbox.sql,
 * with the tenant matching of 20261129000200_calendar_sync_tenant_isolation.sql).
 *
 * Claims use `FOR UPDATE SKIP LOCKED` and a lease (`lease_owner`, `lease_expires_at`), so parallel
 * workers never take the same row and a crashed worker's rows are claimable again once its lease
 * expires. Only rows whose staff member's connection in the row's tenant is `connected` are
 * claimed (a connection of the same staff id under another tenant never matches): the rest are
 * parked and resume by themselves after a reconnect. Every outcome is written only while the lease
 * is still ours (`lease_owner` = the claim's owner), and marks a row done only if it was not
 * re-queued since the claim (`queue_version` unchanged); otherwise it stays pending for another pass.
 * A running worker renews its leases while calls are in flight ({@link extendLeases}), so a short
 * lease only decides how soon a dead worker's rows come back.
 */
import { connectionFromPrefixed, type ConnectionRow, prefixedConnectionColumns } from "../connections.ts";
import type { Sql, TransactionSql } from "../db/client.ts";
import type { Narrow, Row } from "../db/rows.ts";
import type { ProviderId } from "../providers/types.ts";
import { retryAssignments, type RetryFailure } from "./retry-budget.ts";

/**
 * A claimed calendar_sync_log row, as the worker needs it (the generated row type's columns).
 * `appointment_key` is the appointment id, kept after a hard delete; the provider event id derives
 * from it. `queue_version` is the bigint as text, compared back in SQL to detect a re-queue during
 * processing. `lease_owner` is set: the claim took the row. `event_generation` says which derived event
 * id the row writes (raised when the event vanished from its calendar).
 */
export type ClaimedRow = ClaimedLogRow & {
  /** The appointment as the claim read it (null once it was hard-deleted): see {@link AppointmentState}. */
  appointment: AppointmentState | null;
  /** The staff member's active connection of the row's provider in the row's tenant, as the claim
   * read it (calendar_private.active_connection), or null when there is none. */
  connection: ConnectionRow | null;
};

/** The calendar_sync_log columns of a {@link ClaimedRow}. */
export type ClaimedLogRow = Narrow<
  Pick<
    Row<"calendar_sync_log">,
    | "id"
    | "tenant_id"
    | "appointment_id"
    | "appointment_key"
    | "staff_id"
    | "provider"
    | "event_id"
    | "calendar_id"
    | "desired_action"
    | "retry_count"
    | "event_generation"
    | "queue_version"
    | "lease_owner"
  >,
  { provider: ProviderId; desired_action: "upsert" | "delete" | null; lease_owner: string }
>;

/** An appointment's state when its row was claimed, with whether its status wants an event. */
export interface AppointmentState {
  id: string;
  tenant_id: string;
  staff_id: string | null;
  /** The tenant of the staff member named (null when none, or no such staff row). */
  staff_tenant_id: string | null;
  starts_at: Date;
  ends_at: Date;
  wants_event: boolean;
  /** The staff member's IANA zone, for display in the calendar; null when unknown. */
  time_zone: string | null;
}

/**
 * Whether the row's event should exist: the appointment exists, is assigned to the row's staff
 * member, and appointment, staff member and row share one tenant (an appointment naming a staff
 * member of another tenant never reaches that staff member's calendar), and its status wants an event.
 */
export function eventWanted(
  row: Pick<ClaimedLogRow, "staff_id" | "tenant_id">,
  appointment: AppointmentState | null,
): appointment is AppointmentState {
  return appointment !== null && appointment.staff_id === row.staff_id &&
    appointment.tenant_id === row.tenant_id && appointment.staff_tenant_id === row.tenant_id &&
    appointment.wants_event;
}

/** What a claim may take. */
export interface ClaimRequest {
  owner: string;
  limit: number;
  leaseMs: number;
  /** Only these row ids (calendar-sync-appointment); due or not. */
  ids?: string[];
  /** Skip rows of these staff members (rate-limited accounts, and those whose slots are full, in this run). */
  excludeStaffIds?: string[];
  /**
   * Due rows only: take at most this many rows of one staff member (fair claims: one staff member's
   * burst never fills the batch). Unset: no cap.
   */
  perStaff?: number;
}

const ROW_COLUMNS = `l.id, l.tenant_id, l.appointment_id, l.appointment_key, l.staff_id, l.provider,
  l.event_id, l.calendar_id, l.desired_action, l.retry_count, l.event_generation, l.lease_owner`;

/**
 * Claim up to `limit` pending rows that are due (or the given ids), unleased or with an expired
 * lease, whose staff connection is `connected`; oldest due first, at most `perStaff` of one staff
 * member among the oldest 4 x `limit` claimable rows (calendar_private.claim_due_rows). Locked rows
 * (an app transaction queuing them right now, another worker claiming) are skipped, never waited for.
 */
export async function claimRows(sql: Sql, req: ClaimRequest): Promise<ClaimedRow[]> {
  if (req.limit <= 0 || (req.ids && req.ids.length === 0)) return [];
  const exclude = req.excludeStaffIds ?? [];
  // Due rows come from calendar_private.claim_due_rows (the claim index, in order, whatever the
  // statistics say); given ids are few and found by primary key. Either way only rows whose
  // connection can be worked on (calendar_private.workable_connection, one definition, in SQL): the
  // others wait, parked, instead of being claimed and released in a tight loop.
  const due = req.ids
    ? sql`select l.id from public.calendar_sync_log l
        where l.id = any(${req.ids}::uuid[]) and l.sync_status = 'pending'
          and (l.lease_expires_at is null or l.lease_expires_at <= now())
          ${exclude.length > 0 ? sql`and l.staff_id <> all(${exclude}::uuid[])` : sql``}
          and exists (select 1 from calendar_private.workable_connection(l.tenant_id, l.staff_id, l.provider))
        order by l.next_attempt_at, l.id
        limit ${req.limit}
        for update of l skip locked`
    // No exclusions go as NULL, not as an empty array: postgres.js serialises [] as '' when it has
    // not looked up the array type (through PgBouncer), and PostgreSQL refuses that literal.
    : sql`select id from calendar_private.claim_due_rows(${req.limit}::integer, ${
      exclude.length > 0 ? exclude : null
    }::uuid[], ${req.perStaff ?? null}::integer) id`;
  // One round trip brings what processing a row needs: the row, its appointment (as
  // loadAppointment used to read it) and its connection (as findConnection reads it). Both may change
  // after the claim: an appointment change re-queues the row (queue_version, so the outcome keeps
  // it pending for another pass), a disconnect drops it (the outcome is "lost" and re-queued), and a
  // token refresh re-reads the connection under its row lock.
  const rows = await sql<Record<string, unknown>[]>`
    with due as (${due}),
    claimed as (
      update public.calendar_sync_log l
      set lease_owner = ${req.owner},
        lease_expires_at = now() + ${Math.ceil(req.leaseMs)}::integer * interval '1 millisecond',
        -- Until a success is recorded, this attempt may leave an event the row does not name.
        write_unresolved = true
      from due where l.id = due.id
      returning l.*
    )
    select ${sql.unsafe(ROW_COLUMNS)},
      -- The queue version this statement's snapshot saw, the snapshot the appointment and the
      -- connection below are read in: the claimed row itself is the latest version (locking follows
      -- updates committed after the snapshot), so a re-queue committed in between would pair a new
      -- version with old appointment state and settle the row on a stale write. With the snapshot's
      -- version (-1 when the row is newer than the snapshot) such a row is recorded as re-queued
      -- and runs again.
      coalesce((select x.queue_version from public.calendar_sync_log x where x.id = l.id), -1)::text
        as queue_version,
      ${sql.unsafe(APPOINTMENT_COLUMNS)},
      ${prefixedConnectionColumns(sql, "conn_")}
    from claimed l
    left join public.appointments a on a.id = l.appointment_id
    left join public.staff s on s.id = a.staff_id
    left join lateral calendar_private.active_connection(l.tenant_id, l.staff_id) c on c.provider = l.provider`;
  return rows.map(toClaimedRow);
}

/**
 * The select list of an {@link AppointmentState} as `appt_*` columns, for a statement that joins a
 * sync row's appointment as `a` (`left join public.appointments a on a.id = l.appointment_id`) and
 * its staff member as `s` (`left join public.staff s on s.id = a.staff_id`); read back with
 * {@link appointmentFromPrefixed}.
 */
export const APPOINTMENT_COLUMNS =
  `a.id as appt_id, a.tenant_id as appt_tenant_id, a.staff_id as appt_staff_id,
  s.tenant_id as appt_staff_tenant_id, a.starts_at as appt_starts_at, a.ends_at as appt_ends_at,
  calendar_private.appointment_wants_event(a.status) as appt_wants_event, s.time_zone as appt_time_zone`;

/** The appointment of a row selected with {@link APPOINTMENT_COLUMNS}, or null when it does not exist. */
export function appointmentFromPrefixed(r: Record<string, unknown>): AppointmentState | null {
  return r.appt_id === null || r.appt_id === undefined ? null : {
    id: r.appt_id as string,
    tenant_id: r.appt_tenant_id as string,
    staff_id: r.appt_staff_id as string | null,
    staff_tenant_id: r.appt_staff_tenant_id as string | null,
    starts_at: r.appt_starts_at as Date,
    ends_at: r.appt_ends_at as Date,
    wants_event: r.appt_wants_event as boolean,
    time_zone: r.appt_time_zone as string | null,
  };
}

/** A claim's result row (log columns, `appt_*`, `conn_*`) as a {@link ClaimedRow}. */
function toClaimedRow(r: Record<string, unknown>): ClaimedRow {
  const log: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(r)) {
    if (!key.startsWith("appt_") && !key.startsWith("conn_")) log[key] = value;
  }
  return {
    ...(log as ClaimedLogRow),
    appointment: appointmentFromPrefixed(r),
    connection: connectionFromPrefixed(r, "conn_"),
  };
}

/** Pending rows due now that a worker could claim (calendar_private.count_due: workable connection, no live lease). */
export async function countDue(sql: Sql): Promise<number> {
  // The bound `true` keeps postgres.js from pipelining behind this query (db/client.ts).
  const [row] = await sql<{ n: number }[]>`select calendar_private.count_due() as n where ${true}`;
  return row.n;
}

/** The provider's answer for a successful row: the event that now exists, or none after a delete. */
export interface SuccessRecord {
  action: "upsert" | "delete";
  eventId: string | null;
  calendarId: string | null;
  etag: string | null;
}

/**
 * Record a success. The event facts (id, calendar, etag) are stored whenever the lease is still
 * ours, and the event ledger is updated even when it is not (the event exists either way); the row
 * becomes `synced` only if it was not re-queued since the claim.
 * @returns "synced", "requeued" (stays pending for another pass) or "lost" (lease taken over).
 */
export async function recordSuccess(
  sql: Sql,
  row: ClaimedRow,
  result: SuccessRecord,
): Promise<"synced" | "requeued" | "lost"> {
  const ledger = result.action === "upsert" && result.eventId && result.calendarId
    ? sql`insert into calendar_private.event_ledger
          (staff_id, provider, appointment_key, tenant_id, calendar_id, event_id)
        values (${row.staff_id}, ${row.provider}, ${row.appointment_key}, ${row.tenant_id},
          ${result.calendarId}, ${result.eventId})
        on conflict (staff_id, provider, appointment_key) do update set
          calendar_id = excluded.calendar_id, event_id = excluded.event_id, updated_at = now()
        returning 1`
    : sql`delete from calendar_private.event_ledger
        where staff_id = ${row.staff_id} and provider = ${row.provider}
          and appointment_key = ${row.appointment_key}
        returning 1`;
  const rows = await sql<{ settled: boolean }[]>`
    with ledger as (${ledger}),
    done as (
      update public.calendar_sync_log l set
        event_id = ${result.eventId},
        calendar_id = ${result.calendarId},
        event_etag = ${result.etag},
        last_synced_at = now(),
        error_message = null,
        last_error_code = null,
        first_failure_at = null,
        sync_status = case when l.queue_version = ${row.queue_version}::bigint then 'synced' else 'pending' end,
        desired_action = case when l.queue_version = ${row.queue_version}::bigint then null
                              else l.desired_action end,
        next_attempt_at = case when l.queue_version = ${row.queue_version}::bigint then null
                               else l.next_attempt_at end,
        pending_since = case when l.queue_version = ${row.queue_version}::bigint then null
                             else l.pending_since end,
        retry_count = case when l.queue_version = ${row.queue_version}::bigint then 0 else l.retry_count end,
        write_unresolved = false,
        lease_owner = null,
        lease_expires_at = null
      where l.id = ${row.id} and l.lease_owner = ${row.lease_owner}
      returning l.sync_status = 'synced' as settled
    ),
    -- The event now shows the appointment: a restore of it (inbound/restore.ts) is done. Resolved
    -- here rather than when the write's echo is read, which a sync may skip (the row was written
    -- after its page was read) and never see again.
    restored as (
      update public.calendar_conflicts c set resolved_at = now()
      where ${result.action === "upsert"} and c.tenant_id = ${row.tenant_id} and c.staff_id = ${row.staff_id}
        and c.appointment_id::text = ${row.appointment_key}::text
        and c.kind in ('external_edit_restored', 'external_delete_restored') and c.resolved_at is null
        and exists (select 1 from done where done.settled)
      returning 1
    )
    select settled from done`;
  if (rows.length === 0) {
    // Our lease was taken over (it expired mid-call) or the row was dropped and queued afresh (a
    // disconnect and reconnect): whoever holds the (appointment, staff, provider) row now may have written
    // before us, so our write can be stale. Re-queue that row: its holder finishes with
    // "requeued" and runs again, or the next drain does; either way the latest state wins.
    await requeueMapping(sql, row);
    return "lost";
  }
  return rows[0].settled ? "synced" : "requeued";
}

/**
 * Mark the current row of this (appointment, staff, provider) pending again, if any, with its
 * queue version raised, so the worker writes the appointment's current state (a write whose lease was
 * lost; inbound sync restoring an event changed outside the product, inbound/restore.ts).
 */
export async function requeueMapping(
  sql: Sql | TransactionSql,
  row: Pick<ClaimedLogRow, "appointment_key" | "staff_id" | "provider">,
): Promise<void> {
  await sql`
    update public.calendar_sync_log l set
      sync_status = 'pending',
      desired_action = coalesce(l.desired_action, 'upsert'),
      next_attempt_at = now(),
      pending_since = coalesce(l.pending_since, now()),
      retry_count = 0,
      queue_version = l.queue_version + 1
    where l.appointment_key = ${row.appointment_key} and l.staff_id = ${row.staff_id}
      and l.provider = ${row.provider}`;
}

/**
 * Extend the leases this worker still holds on `ids` by `leaseMs` from now, while their provider
 * calls are in flight, so only a worker that stopped (crashed, killed) ever loses its rows.
 * @returns how many leases were extended.
 */
export async function extendLeases(sql: Sql, owner: string, ids: string[], leaseMs: number): Promise<number> {
  if (ids.length === 0) return 0;
  const result = await sql`
    update public.calendar_sync_log l
    set lease_expires_at = now() + ${Math.ceil(leaseMs)}::integer * interval '1 millisecond'
    where l.id = any(${ids}::uuid[]) and l.lease_owner = ${owner}`;
  return result.count;
}

/**
 * Record a retryable failure: one more attempt counted and the next one after `delayMs`, but never
 * later than the end of the retry budget; or `failed` (dead letter) once `budgetMs` has passed since
 * the first failure of the row's current run of failures (`first_failure_at`, set by the first one).
 * The budget is time, not attempts, so hours of rate limiting never dead-letter a row. A row
 * re-queued since the claim keeps its fresh schedule (and its budget: the failures go on).
 * @returns the row's status afterwards, or "lost" when the lease was taken over.
 */
export async function recordRetry(
  sql: Sql,
  row: ClaimedRow,
  failure: RetryFailure,
): Promise<"pending" | "failed" | "lost"> {
  const rows = await sql<{ sync_status: "pending" | "failed" }[]>`
    update public.calendar_sync_log l set
      ${
    retryAssignments(
      sql,
      { alias: "l", statusColumn: "sync_status", queueVersion: row.queue_version },
      failure,
    )
  }
    where l.id = ${row.id} and l.lease_owner = ${row.lease_owner}
    returning l.sync_status`;
  return rows[0]?.sync_status ?? "lost";
}

/**
 * Move the row to its next event generation before writing the event again under a fresh id (the
 * event vanished from a calendar that still exists). Stored first, under our lease, so a retry of
 * the re-create derives the same id and finds its own event rather than creating a second one.
 * @returns the new generation.
 * @throws Error when the lease was lost or the generation moved meanwhile (nothing is written then).
 */
export async function nextEventGeneration(sql: Sql, row: ClaimedRow, current: number): Promise<number> {
  const rows = await sql<{ event_generation: number }[]>`
    update public.calendar_sync_log l set
      event_generation = l.event_generation + 1,
      event_id = null,
      event_etag = null
    where l.id = ${row.id} and l.lease_owner = ${row.lease_owner} and l.event_generation = ${current}
    returning l.event_generation`;
  if (rows.length === 0) {
    throw new Error(`sync row ${row.id}: lease lost before the event could be re-created`);
  }
  return rows[0].event_generation;
}

/**
 * Record a permanent failure: `failed` with the error (dead letter), unless the row was re-queued
 * since the claim (then it stays pending with the error noted, and is tried again).
 */
export async function recordFailure(
  sql: Sql,
  row: ClaimedRow,
  failure: { code: string; message: string },
): Promise<"failed" | "pending" | "lost"> {
  const v = row.queue_version;
  const rows = await sql<{ sync_status: "pending" | "failed" }[]>`
    update public.calendar_sync_log l set
      error_message = ${failure.message},
      last_error_code = ${failure.code},
      sync_status = case when l.queue_version = ${v}::bigint then 'failed' else 'pending' end,
      next_attempt_at = case when l.queue_version = ${v}::bigint then null else l.next_attempt_at end,
      first_failure_at = case when l.queue_version = ${v}::bigint then null else l.first_failure_at end,
      lease_owner = null,
      lease_expires_at = null
    where l.id = ${row.id} and l.lease_owner = ${row.lease_owner}
    returning l.sync_status`;
  return rows[0]?.sync_status ?? "lost";
}

/**
 * Give a row back without counting an attempt: parked (the connection needs a reconnect; it is
 * due again at once so it resumes right after one), or deferred to `notBefore` (its account is
 * rate limited). The error, when given, is recorded for the status view; a parked row (one with an
 * error) also starts a fresh retry budget, since waiting for the staff member is not failing.
 */
export async function releaseRow(
  sql: Sql,
  row: ClaimedRow,
  opts: { notBefore?: Date; error?: { code: string; message: string } } = {},
): Promise<void> {
  await sql`
    update public.calendar_sync_log l set
      lease_owner = null,
      lease_expires_at = null,
      next_attempt_at = greatest(coalesce(l.next_attempt_at, now()), ${opts.notBefore ?? null}::timestamptz),
      error_message = coalesce(${opts.error?.message ?? null}, l.error_message),
      last_error_code = coalesce(${opts.error?.code ?? null}, l.last_error_code),
      first_failure_at = case when ${opts.error !== undefined} then null else l.first_failure_at end
    where l.id = ${row.id} and l.lease_owner = ${row.lease_owner}`;
}

/**
 * Push back every unleased pending row of a rate-limited account to `notBefore`, so the whole
 * account honours Retry-After rather than each row discovering the limit by itself.
 */
export async function deferStaff(
  sql: Sql,
  staffId: string,
  provider: ProviderId,
  notBefore: Date,
): Promise<void> {
  // SKIP LOCKED: a row another transaction holds (an app's appointment update re-queuing it, a
  // disconnect, another slot's deferral) is left alone rather than waited for. Waiting made this
  // multi-row update deadlock with those (seen under MailboxConcurrency 429s), failing the app's
  // statement; a skipped row meets the rate limit on its own attempt and is deferred then.
  await sql`
    update public.calendar_sync_log l set next_attempt_at = ${notBefore}
    where l.id in (
      select d.id from public.calendar_sync_log d
      where d.staff_id = ${staffId} and d.provider = ${provider} and d.sync_status = 'pending'
        and d.next_attempt_at < ${notBefore}
        and (d.lease_expires_at is null or d.lease_expires_at <= now())
      for update skip locked)`;
}

/** Note the last successful sync on the connections that had one (for the status view). */
export async function touchConnections(sql: Sql, staffIds: Iterable<string>): Promise<void> {
  const ids = [...new Set(staffIds)];
  if (ids.length === 0) return;
  await sql`
    update public.staff_calendar_connections c set last_sync_at = now()
    where c.staff_id = any(${ids}::uuid[]) and calendar_private.connection_is_workable(c)`;
}
