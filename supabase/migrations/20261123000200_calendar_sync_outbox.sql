-- Calendar sync outbox (docs/decisions.md decision 7): the trigger that marks calendar_sync_log rows
-- pending in the same transaction as the appointment change, the kick (pg_notify always, pg_net
-- when installed), backfill after a (re)connect, the per-staff status view and the re-queue
-- function. The worker (supabase/functions/_shared/sync/worker.ts) claims and processes the rows.
--
-- Row life cycle:
--   trigger / enqueue  -> sync_status 'pending', desired_action 'upsert' | 'delete',
--                         next_attempt_at now(), retry_count 0, queue_version + 1
--   worker claim       -> lease_owner / lease_expires_at set (rows of connected staff only)
--   worker success     -> 'synced', desired_action null (unless re-queued meanwhile: queue_version)
--   transient failure  -> still 'pending', retry_count + 1, next_attempt_at = now() + backoff
--   max attempts / permanent failure -> 'failed' (dead letter; calendar_requeue_failed re-queues)
-- Everything here is idempotent: re-running the migration changes nothing.

-- ---------------------------------------------------------------------------------------------
-- Columns the outbox needs beyond the first migration.
-- queue_version: bumped on every enqueue, so a worker finishing a row it claimed earlier can tell
--   whether the row was re-queued meanwhile (then it stays pending and is processed again).
-- ---------------------------------------------------------------------------------------------
alter table public.calendar_sync_log add column if not exists queue_version bigint not null default 0;

create index if not exists calendar_sync_log_claim_idx on public.calendar_sync_log (next_attempt_at, staff_id)
  where sync_status = 'pending';
create index if not exists calendar_sync_log_failed_idx on public.calendar_sync_log (staff_id)
  where sync_status = 'failed';

-- ---------------------------------------------------------------------------------------------
-- The events we wrote, per (staff, provider, appointment). calendar_sync_log rows are the
-- mappings, and calendar-disconnect drops them while leaving the events on the calendar; this
-- ledger survives that, so a backfill after reconnecting can still delete the events whose
-- appointment was cancelled, deleted or reassigned in the meantime (no orphans). The worker
-- writes it on every successful upsert or delete. Not exposed to any API role.
-- ---------------------------------------------------------------------------------------------
create table if not exists calendar_private.event_ledger (
  staff_id uuid not null references public.staff (id) on delete cascade,
  provider text not null,
  appointment_key uuid not null,
  tenant_id uuid not null references public.tenants (id) on delete cascade,
  calendar_id text not null,
  event_id text not null,
  updated_at timestamptz not null default now(),
  primary key (staff_id, provider, appointment_key)
);
create index if not exists event_ledger_tenant_id_idx on calendar_private.event_ledger (tenant_id);
alter table calendar_private.event_ledger enable row level security;
revoke all on calendar_private.event_ledger from public;
grant all on calendar_private.event_ledger to service_role;

-- ---------------------------------------------------------------------------------------------
-- Which appointment statuses put an event on the calendar. Apps with other status names replace
-- this one function (the trigger, backfill and worker all go through it).
-- ---------------------------------------------------------------------------------------------
create or replace function calendar_private.appointment_wants_event(p_status text)
returns boolean
language sql
immutable
set search_path = ''
as $$
  select lower(coalesce(p_status, '')) not in ('cancelled', 'canceled', 'no_show', 'no-show', 'noshow')
$$;

do $$
begin
  create type calendar_private.sync_change as (
    tenant_id uuid,
    appointment_key uuid,
    appointment_id uuid,
    staff_id uuid,
    action text
  );
exception when duplicate_object then
  null;
end
$$;

-- ---------------------------------------------------------------------------------------------
-- Apply a set of (appointment, staff, action) changes to the outbox, coalescing with pending work:
-- one row per (appointment, staff), whatever the number of edits. Only staff with a connection that
-- is not 'disconnected' get work ('needs_reconnect' rows wait, parked, until reconnect).
-- 'upsert' inserts the row if needed; 'delete' only touches an existing row (no row means we never
-- wrote an event) and skips rows already synced without an event, unless p_force.
-- Returns the number of rows marked pending.
-- ---------------------------------------------------------------------------------------------
create or replace function calendar_private.apply_sync_changes(
  p_changes calendar_private.sync_change[],
  p_force boolean default false
)
returns integer
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_count integer;
begin
  if p_changes is null or cardinality(p_changes) = 0 then
    return 0;
  end if;
  with changes as (
    select distinct on (ch.appointment_key, ch.staff_id)
      ch.tenant_id, ch.appointment_key, ch.appointment_id, ch.staff_id, ch.action
    from unnest(p_changes) as ch
    where ch.staff_id is not null and ch.appointment_key is not null
    order by ch.appointment_key, ch.staff_id, (ch.action = 'upsert') desc
  ),
  eligible as (
    select distinct on (ch.appointment_key, ch.staff_id) ch.*, c.provider
    from changes ch
    join public.staff_calendar_connections c
      on c.staff_id = ch.staff_id and c.connection_status <> 'disconnected'
    order by ch.appointment_key, ch.staff_id, (c.connection_status = 'connected') desc, c.updated_at desc
  ),
  upserted as (
    insert into public.calendar_sync_log as l (
      tenant_id, appointment_id, appointment_key, staff_id, provider, sync_status, desired_action,
      next_attempt_at, pending_since, retry_count, queue_version
    )
    select e.tenant_id, e.appointment_id, e.appointment_key, e.staff_id, e.provider, 'pending', 'upsert',
      now(), now(), 0, 1
    from eligible e
    where e.action = 'upsert'
    on conflict (appointment_key, staff_id) do update set
      tenant_id = excluded.tenant_id,
      appointment_id = coalesce(excluded.appointment_id, l.appointment_id),
      sync_status = 'pending',
      desired_action = 'upsert',
      next_attempt_at = now(),
      pending_since = coalesce(l.pending_since, now()),
      retry_count = 0,
      queue_version = l.queue_version + 1
    returning 1
  ),
  deleted as (
    update public.calendar_sync_log l set
      sync_status = 'pending',
      desired_action = 'delete',
      next_attempt_at = now(),
      pending_since = coalesce(l.pending_since, now()),
      retry_count = 0,
      queue_version = l.queue_version + 1
    from eligible e
    where e.action = 'delete'
      and l.appointment_key = e.appointment_key
      and l.staff_id = e.staff_id
      and (p_force or not (l.sync_status = 'synced' and l.google_event_id is null and l.desired_action is null))
    returning 1
  )
  select (select count(*) from upserted) + (select count(*) from deleted) into v_count;
  return v_count;
end
$$;


-- ---------------------------------------------------------------------------------------------
-- The kick: pg_notify('calendar_sync_kick') always (the local dispatcher LISTENs), and an HTTP POST
-- to calendar-sync-worker through pg_net when the extension is installed and Vault holds the URL
-- ('calendar_sync_worker_url') and bearer secret ('calendar_sync_worker_secret'). Both are
-- transactional: nothing is sent unless the transaction commits. A failure here is only a warning:
-- the row is the truth and pg_cron sweeps every minute.
-- ---------------------------------------------------------------------------------------------
create or replace function calendar_private.kick_worker(p_reason text default 'enqueue')
returns void
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_url text;
  v_secret text;
  v_waiting boolean := false;
begin
  begin
    -- A constant payload per reason, so a transaction touching many rows sends one notification.
    perform pg_notify('calendar_sync_kick', coalesce(p_reason, 'enqueue'));
  exception when others then
    raise warning 'calendar sync: pg_notify failed (%)', sqlstate;
  end;
  begin
    if to_regproc('net.http_post') is null or to_regclass('vault.decrypted_secrets') is null then
      return;
    end if;
    execute $q$
      select max(decrypted_secret) filter (where name = 'calendar_sync_worker_url'),
             max(decrypted_secret) filter (where name = 'calendar_sync_worker_secret')
      from vault.decrypted_secrets
      where name in ('calendar_sync_worker_url', 'calendar_sync_worker_secret')$q$
      into v_url, v_secret;
    if v_url is null or v_secret is null then
      return;
    end if;
    -- A kick still waiting in pg_net's queue starts a worker that will see these rows too.
    if to_regclass('net.http_request_queue') is not null then
      execute 'select exists (select 1 from net.http_request_queue where url = $1)' into v_waiting using v_url;
    end if;
    if not coalesce(v_waiting, false) then
      execute 'select net.http_post(url := $1, body := $2, headers := $3, timeout_milliseconds := 5000)'
        using v_url, '{}'::jsonb,
          jsonb_build_object('Content-Type', 'application/json', 'Authorization', 'Bearer ' || v_secret);
    end if;
  exception when others then
    raise warning 'calendar sync: pg_net kick failed (%)', sqlstate;
  end;
end
$$;

-- ---------------------------------------------------------------------------------------------
-- The trigger on appointments: statement level with transition tables, so a bulk change queues its
-- rows in one statement and kicks once. Only changes that alter the event count: staff, tenant,
-- start, end, and whether the status wants an event (scheduled <-> cancelled / no-show); edits to
-- any other column queue nothing. Reassignment deletes from the old staff member's calendar and
-- creates on the new one's. A hard delete keeps the log row (appointment_id is set null by the FK,
-- appointment_key stays) and marks it delete. Sync never fails the app's statement: errors other
-- than serialization failures and deadlocks (which the app retries anyway) become warnings.
-- ---------------------------------------------------------------------------------------------
create or replace function calendar_private.appointments_sync_trigger()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_changes calendar_private.sync_change[];
  v_count integer := 0;
begin
  begin
    if tg_op = 'INSERT' then
      select array_agg(row(
          n.tenant_id, n.id, n.id, n.staff_id,
          case when calendar_private.appointment_wants_event(n.status) then 'upsert' else 'delete' end
        )::calendar_private.sync_change)
      into v_changes
      from new_rows n
      where n.staff_id is not null;
    elsif tg_op = 'DELETE' then
      select array_agg(row(o.tenant_id, o.id, null, o.staff_id, 'delete')::calendar_private.sync_change)
      into v_changes
      from old_rows o
      where o.staff_id is not null;
    else
      select array_agg(s.ch) into v_changes
      from (
        select row(o.tenant_id, o.id, null, o.staff_id, 'delete')::calendar_private.sync_change as ch
        from old_rows o
        left join new_rows n on n.id = o.id
        where o.staff_id is not null and (n.id is null or n.staff_id is distinct from o.staff_id)
        union all
        select row(
            n.tenant_id, n.id, n.id, n.staff_id,
            case when calendar_private.appointment_wants_event(n.status) then 'upsert' else 'delete' end
          )::calendar_private.sync_change
        from new_rows n
        left join old_rows o on o.id = n.id
        where n.staff_id is not null
          and (
            o.id is null
            or o.staff_id is distinct from n.staff_id
            or o.tenant_id is distinct from n.tenant_id
            or calendar_private.appointment_wants_event(o.status)
              <> calendar_private.appointment_wants_event(n.status)
            or (calendar_private.appointment_wants_event(n.status)
              and (o.starts_at is distinct from n.starts_at or o.ends_at is distinct from n.ends_at))
          )
      ) s;
    end if;
    v_count := calendar_private.apply_sync_changes(v_changes);
  exception
    when serialization_failure or deadlock_detected then
      raise;
    when others then
      raise warning 'calendar sync: appointment changes were not queued (%: %)', sqlstate, sqlerrm;
      return null;
  end;
  if v_count > 0 then
    perform calendar_private.kick_worker('appointments');
  end if;
  return null;
end
$$;

drop trigger if exists appointments_calendar_sync_insert on public.appointments;
create trigger appointments_calendar_sync_insert
  after insert on public.appointments
  referencing new table as new_rows
  for each statement execute function calendar_private.appointments_sync_trigger();

drop trigger if exists appointments_calendar_sync_update on public.appointments;
create trigger appointments_calendar_sync_update
  after update on public.appointments
  referencing old table as old_rows new table as new_rows
  for each statement execute function calendar_private.appointments_sync_trigger();

drop trigger if exists appointments_calendar_sync_delete on public.appointments;
create trigger appointments_calendar_sync_delete
  after delete on public.appointments
  referencing old table as old_rows
  for each statement execute function calendar_private.appointments_sync_trigger();

-- ---------------------------------------------------------------------------------------------
-- Connection changes: choosing another calendar moves the events (the worker deletes from the old
-- calendar and creates on the new one); becoming 'connected' again kicks the worker so parked
-- rows resume at once (pg_cron would pick them up within a minute anyway).
-- ---------------------------------------------------------------------------------------------
create or replace function calendar_private.connections_sync_trigger()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_count integer := 0;
begin
  begin
    if new.connection_status <> 'disconnected'
      and new.selected_calendar_id is distinct from old.selected_calendar_id then
      update public.calendar_sync_log l set
        sync_status = 'pending',
        desired_action = coalesce(l.desired_action, 'upsert'),
        next_attempt_at = now(),
        pending_since = coalesce(l.pending_since, now()),
        retry_count = 0,
        queue_version = l.queue_version + 1
      where l.staff_id = new.staff_id
        and l.provider = new.provider
        and l.google_event_id is not null
        and l.google_calendar_id is distinct from new.selected_calendar_id;
      get diagnostics v_count = row_count;
    end if;
    if new.connection_status = 'connected' and old.connection_status is distinct from 'connected' then
      v_count := v_count + 1;
    end if;
  exception
    when serialization_failure or deadlock_detected then
      raise;
    when others then
      raise warning 'calendar sync: connection change was not queued (%: %)', sqlstate, sqlerrm;
      return null;
  end;
  if v_count > 0 then
    perform calendar_private.kick_worker('connection');
  end if;
  return null;
end
$$;

drop trigger if exists staff_calendar_connections_sync on public.staff_calendar_connections;
create trigger staff_calendar_connections_sync
  after update of selected_calendar_id, connection_status on public.staff_calendar_connections
  for each row execute function calendar_private.connections_sync_trigger();

-- ---------------------------------------------------------------------------------------------
-- Queue one appointment's rows from its current state (calendar-sync-appointment): its staff
-- member's row gets upsert (or delete when cancelled), every other row of the appointment (an
-- earlier staff member, or all of them after a hard delete) gets delete. Forced: rows are marked
-- pending even when they look done, because the caller asked for a sync now. No kick: the caller
-- processes the rows itself.
-- ---------------------------------------------------------------------------------------------
create or replace function calendar_private.enqueue_appointment(p_appointment_id uuid)
returns integer
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_changes calendar_private.sync_change[];
begin
  select array_agg(s.ch) into v_changes
  from (
    select row(
        a.tenant_id, a.id, a.id, a.staff_id,
        case when calendar_private.appointment_wants_event(a.status) then 'upsert' else 'delete' end
      )::calendar_private.sync_change as ch
    from public.appointments a
    where a.id = p_appointment_id and a.staff_id is not null
    union all
    select row(l.tenant_id, l.appointment_key, l.appointment_id, l.staff_id, 'delete')::calendar_private.sync_change
    from public.calendar_sync_log l
    where l.appointment_key = p_appointment_id
      and not exists (
        select 1 from public.appointments a where a.id = p_appointment_id and a.staff_id = l.staff_id
      )
  ) s;
  return calendar_private.apply_sync_changes(v_changes, true);
end
$$;

-- ---------------------------------------------------------------------------------------------
-- Backfill after a staff member (re)connects (called by _shared/sync/backfill.ts, in the same
-- transaction as storing the grant):
--   1. every current or future appointment of theirs that wants an event is queued as upsert
--      (writes are idempotent, so an event that already exists is updated, never duplicated); a
--      new row starts from the ledger's event, so one left on another calendar is moved;
--   2. their rows whose appointment no longer wants an event with them are queued as delete;
--   3. events in the ledger whose mapping row was dropped by a disconnect and whose appointment was
--      cancelled, deleted or reassigned meanwhile get a delete row.
-- Kicks the worker. Returns the rows queued (0 when the staff member has no usable connection).
-- ---------------------------------------------------------------------------------------------
create or replace function calendar_private.enqueue_staff_backfill(p_staff_id uuid)
returns integer
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_provider text;
  v_count integer := 0;
  v_rows integer;
begin
  select c.provider into v_provider
  from public.staff_calendar_connections c
  where c.staff_id = p_staff_id and c.connection_status <> 'disconnected'
  order by (c.connection_status = 'connected') desc, c.updated_at desc
  limit 1;
  if v_provider is null then
    return 0;
  end if;

  insert into public.calendar_sync_log as l (
    tenant_id, appointment_id, appointment_key, staff_id, provider, google_event_id, google_calendar_id,
    sync_status, desired_action, next_attempt_at, pending_since, retry_count, queue_version
  )
  select a.tenant_id, a.id, a.id, a.staff_id, v_provider, g.event_id, g.calendar_id,
    'pending', 'upsert', now(), now(), 0, 1
  from public.appointments a
  left join calendar_private.event_ledger g
    on g.staff_id = a.staff_id and g.provider = v_provider and g.appointment_key = a.id
  where a.staff_id = p_staff_id
    and a.ends_at > now()
    and calendar_private.appointment_wants_event(a.status)
  on conflict (appointment_key, staff_id) do update set
    tenant_id = excluded.tenant_id,
    appointment_id = excluded.appointment_id,
    google_event_id = coalesce(l.google_event_id, excluded.google_event_id),
    google_calendar_id = case when l.google_event_id is null then excluded.google_calendar_id
                              else l.google_calendar_id end,
    sync_status = 'pending',
    desired_action = 'upsert',
    next_attempt_at = now(),
    pending_since = coalesce(l.pending_since, now()),
    retry_count = 0,
    queue_version = l.queue_version + 1;
  get diagnostics v_rows = row_count;
  v_count := v_count + v_rows;

  update public.calendar_sync_log l set
    sync_status = 'pending',
    desired_action = 'delete',
    next_attempt_at = now(),
    pending_since = coalesce(l.pending_since, now()),
    retry_count = 0,
    queue_version = l.queue_version + 1
  where l.staff_id = p_staff_id
    and not exists (
      select 1 from public.appointments a
      where a.id = l.appointment_id and a.staff_id = l.staff_id
        and calendar_private.appointment_wants_event(a.status)
    )
    and not (l.sync_status = 'synced' and l.google_event_id is null and l.desired_action is null);
  get diagnostics v_rows = row_count;
  v_count := v_count + v_rows;

  insert into public.calendar_sync_log (
    tenant_id, appointment_id, appointment_key, staff_id, provider, google_event_id, google_calendar_id,
    sync_status, desired_action, next_attempt_at, pending_since, retry_count, queue_version
  )
  select g.tenant_id, a.id, g.appointment_key, g.staff_id, g.provider, g.event_id, g.calendar_id,
    'pending', 'delete', now(), now(), 0, 1
  from calendar_private.event_ledger g
  left join public.appointments a on a.id = g.appointment_key
  where g.staff_id = p_staff_id
    and g.provider = v_provider
    and not exists (
      select 1 from public.calendar_sync_log l
      where l.appointment_key = g.appointment_key and l.staff_id = g.staff_id
    )
    and not (a.id is not null and a.staff_id is not distinct from g.staff_id
      and calendar_private.appointment_wants_event(a.status))
  on conflict do nothing;
  get diagnostics v_rows = row_count;
  v_count := v_count + v_rows;

  if v_count > 0 then
    perform calendar_private.kick_worker('backfill');
  end if;
  return v_count;
end
$$;

-- ---------------------------------------------------------------------------------------------
-- Operator: put dead-lettered rows back in the queue (all, one staff member's, or one tenant's).
-- The worker reads each appointment's current state, so a re-queued row does what is needed now.
-- ---------------------------------------------------------------------------------------------
create or replace function public.calendar_requeue_failed(
  p_staff_id uuid default null,
  p_tenant_id uuid default null
)
returns integer
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_count integer;
begin
  update public.calendar_sync_log l set
    sync_status = 'pending',
    desired_action = coalesce(l.desired_action, 'upsert'),
    next_attempt_at = now(),
    pending_since = coalesce(l.pending_since, now()),
    retry_count = 0,
    queue_version = l.queue_version + 1
  where l.sync_status = 'failed'
    and (p_staff_id is null or l.staff_id = p_staff_id)
    and (p_tenant_id is null or l.tenant_id = p_tenant_id);
  get diagnostics v_count = row_count;
  if v_count > 0 then
    perform calendar_private.kick_worker('requeue');
  end if;
  return v_count;
end
$$;

-- ---------------------------------------------------------------------------------------------
-- Status per staff member (security invoker: the caller's RLS applies, so a staff member sees
-- their own line and a tenant admin the tenant's). Ages in seconds.
-- ---------------------------------------------------------------------------------------------
drop policy if exists "tenant admins read tenant calendar connections" on public.staff_calendar_connections;
create policy "tenant admins read tenant calendar connections" on public.staff_calendar_connections
  for select to authenticated
  using ((select calendar_private.is_tenant_admin(tenant_id)));

create or replace view public.calendar_sync_status
with (security_invoker = true)
as
with people as (
  select c.tenant_id, c.staff_id from public.staff_calendar_connections c
  union
  select l.tenant_id, l.staff_id from public.calendar_sync_log l
)
select
  p.tenant_id,
  p.staff_id,
  c.provider,
  c.connection_status,
  c.selected_calendar_id,
  coalesce(l.pending_count, 0)::integer as pending_count,
  coalesce(l.failed_count, 0)::integer as failed_count,
  l.oldest_pending_since,
  floor(extract(epoch from now() - l.oldest_pending_since))::integer as oldest_pending_age_seconds,
  case when c.connection_status is distinct from 'connected' and c.last_error is not null then c.last_error
    else coalesce(l.last_error, c.last_error) end as last_error,
  l.last_error_code,
  greatest(l.last_synced_at, c.last_sync_at) as last_synced_at
from people p
left join lateral (
  select c.provider, c.connection_status, c.selected_calendar_id, c.last_error, c.last_sync_at
  from public.staff_calendar_connections c
  where c.staff_id = p.staff_id and c.tenant_id = p.tenant_id
  order by (c.connection_status = 'connected') desc, c.updated_at desc
  limit 1
) c on true
left join lateral (
  select
    count(*) filter (where x.sync_status = 'pending') as pending_count,
    count(*) filter (where x.sync_status = 'failed') as failed_count,
    min(x.pending_since) filter (where x.sync_status = 'pending') as oldest_pending_since,
    max(x.last_synced_at) as last_synced_at,
    (array_agg(x.error_message order by x.updated_at desc)
      filter (where x.error_message is not null and x.sync_status <> 'synced'))[1] as last_error,
    (array_agg(x.last_error_code order by x.updated_at desc)
      filter (where x.last_error_code is not null and x.sync_status <> 'synced'))[1] as last_error_code
  from public.calendar_sync_log x
  where x.staff_id = p.staff_id and x.tenant_id = p.tenant_id
) l on true;

comment on view public.calendar_sync_status is
  'Calendar sync health per staff member: connection status, pending and failed rows, oldest pending age (s), last error, last sync.';

-- ---------------------------------------------------------------------------------------------
-- Privileges. Functions are executable by PUBLIC by default; nothing here is meant for API roles
-- except reading the status view.
-- ---------------------------------------------------------------------------------------------
revoke all on function calendar_private.appointment_wants_event(text) from public;
revoke all on function calendar_private.apply_sync_changes(calendar_private.sync_change[], boolean) from public;
revoke all on function calendar_private.kick_worker(text) from public;
revoke all on function calendar_private.appointments_sync_trigger() from public;
revoke all on function calendar_private.connections_sync_trigger() from public;
revoke all on function calendar_private.enqueue_appointment(uuid) from public;
revoke all on function calendar_private.enqueue_staff_backfill(uuid) from public;
revoke all on function public.calendar_requeue_failed(uuid, uuid) from public, anon, authenticated;

grant execute on function calendar_private.appointment_wants_event(text) to authenticated, service_role;
grant execute on function calendar_private.kick_worker(text) to service_role;
grant execute on function calendar_private.enqueue_appointment(uuid) to service_role;
grant execute on function calendar_private.enqueue_staff_backfill(uuid) to service_role;
grant execute on function public.calendar_requeue_failed(uuid, uuid) to service_role;

revoke all on public.calendar_sync_status from anon;
grant select on public.calendar_sync_status to authenticated, service_role;
