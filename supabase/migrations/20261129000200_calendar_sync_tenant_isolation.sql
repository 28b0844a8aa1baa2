-- Calendar sync: tenant isolation, and privileges that give the API roles only what they need.
--
-- An appointment names a staff member by id. Before this migration the outbox matched on staff
-- alone, so an appointment of tenant A naming a staff member of tenant B (any tenant-A user can
-- insert one where the app's RLS checks only the appointment's tenant) queued work for B's
-- connection and the event landed on B's calendar; B's calendar id then showed in tenant A's sync
-- rows. Now every path matches the tenant as well as the staff member:
--   appointment.tenant_id = staff.tenant_id = connection.tenant_id = calendar_sync_log.tenant_id
--   * the trigger and calendar-sync-appointment (apply_sync_changes, enqueue_appointment) queue an
--     upsert only for a staff member of the appointment's tenant with a connection in that tenant;
--   * the backfill after a (re)connect queues only appointments of the staff member's tenant;
--   * our tables refuse a row whose tenant is not its staff member's (guard triggers), whoever
--     writes it;
--   * the worker (supabase/functions/_shared/sync) claims a row only when its connection has the
--     row's tenant, and writes an event only when appointment, staff and row share the tenant;
--   * where this project created the host tables (tenants, staff, appointments), a composite
--     foreign key appointments (tenant_id, staff_id) -> staff (tenant_id, id) makes such an
--     appointment impossible. An app's own tables are never altered.
-- Rows written before this migration with a tenant other than their staff member's are handed to
-- that staff member's tenant and queued as deletes, so an event that reached another tenant's
-- calendar is removed by the worker.
--
-- Privileges: Supabase's default privileges grant ALL (including TRUNCATE, REFERENCES, TRIGGER) on
-- every new table and view in public to anon, authenticated and service_role. TRUNCATE ignores
-- RLS, and TRIGGER lets a role attach triggers. Our tables, our status view and the host tables we
-- created get exactly the grants they need; an app's own tables keep the app's grants and RLS.
-- Idempotent: re-running changes nothing.

-- ---------------------------------------------------------------------------------------------
-- Host tables: ours or the app's? 20261123000100 creates minimal tenants / staff / appointments
-- only when absent, and gives them RLS, policies and grants when public.staff had no policy. We
-- recognise our own by a marker comment, set here the first time the tables match what that
-- migration creates exactly: the same columns, no comment, our three policies and no other, and
-- the same owner as our own tables. Anything else is the app's and is left alone.
-- ---------------------------------------------------------------------------------------------
create or replace function calendar_private.host_tables_are_ours()
returns boolean
language sql
stable
set search_path = ''
as $$
  select coalesce(bool_and(coalesce(obj_description(t.oid, 'pg_class'), '') like 'calendar-sync: host table%'), false)
    and count(*) = 3
  from pg_catalog.pg_class t
  where t.oid in (
    to_regclass('public.tenants'), to_regclass('public.staff'), to_regclass('public.appointments')
  )
$$;
revoke all on function calendar_private.host_tables_are_ours() from public;
grant execute on function calendar_private.host_tables_are_ours() to service_role;

comment on function calendar_private.host_tables_are_ours() is
  'True when public.tenants, staff and appointments were created by the calendar sync migrations (marker comment), so their constraints and grants are ours to manage.';

do $$
declare
  v_matches boolean;
  v_owner oid := (select relowner from pg_class where oid = 'public.staff_calendar_connections'::regclass);
begin
  if calendar_private.host_tables_are_ours() then
    return;
  end if;
  with expected (tbl, cols, policy) as (
    values
      ('tenants', 'created_at:timestamp with time zone,id:uuid,name:text', 'members read own tenant'),
      ('staff', 'created_at:timestamp with time zone,email:text,id:uuid,profile_id:uuid,role:text,'
        || 'tenant_id:uuid,time_zone:text', 'members read tenant staff'),
      ('appointments', 'ends_at:timestamp with time zone,id:uuid,staff_id:uuid,starts_at:timestamp with time zone,'
        || 'status:text,tenant_id:uuid,updated_at:timestamp with time zone', 'members manage tenant appointments')
  ),
  actual as (
    select e.tbl, e.cols, e.policy, c.oid, c.relowner, c.relkind,
      (select string_agg(a.attname || ':' || format_type(a.atttypid, a.atttypmod), ',' order by a.attname)
       from pg_attribute a where a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped) as got_cols,
      (select array_agg(p.policyname::text order by p.policyname)
       from pg_policies p where p.schemaname = 'public' and p.tablename = e.tbl) as got_policies
    from expected e
    left join pg_class c on c.oid = to_regclass('public.' || e.tbl)
  )
  select count(*) = 3 and bool_and(
      oid is not null and relkind = 'r' and relowner = v_owner
      and got_cols = cols
      and got_policies = array[policy]
      and obj_description(oid, 'pg_class') is null)
  into v_matches
  from actual;
  if not coalesce(v_matches, false) then
    if exists (
      select 1 from pg_policies
      where schemaname = 'public' and tablename = 'appointments' and policyname = 'members manage tenant appointments'
    ) then
      -- 20261123000100 took the app's tables for its own because public.staff had no policy. Undoing
      -- it now could lock the app out (RLS) or drop grants the app relies on, so it stays, and says so.
      raise warning 'calendar sync: public.tenants / staff / appointments are the app''s, but 20261123000100 enabled '
        'RLS on them and added the policies "members read own tenant", "members read tenant staff", "members '
        'manage tenant appointments" and grants to authenticated and service_role (public.staff had no policy '
        'then). They are left in place; review them against the app''s own access rules';
      return;
    end if;
    raise notice 'calendar sync: public.tenants / staff / appointments belong to the app; their grants, RLS and '
      'constraints are left as they are (see the host tables section of the docs)';
    return;
  end if;
  comment on table public.tenants is
    'calendar-sync: host table created by the calendar sync migrations because the app had none (minimal).';
  comment on table public.staff is
    'calendar-sync: host table created by the calendar sync migrations because the app had none (minimal).';
  comment on table public.appointments is
    'calendar-sync: host table created by the calendar sync migrations because the app had none (minimal).';
end
$$;

-- Our host tables: the composite foreign key, and grants without TRUNCATE / REFERENCES / TRIGGER.
do $$
begin
  if not calendar_private.host_tables_are_ours() then
    return;
  end if;
  if not exists (
    select 1 from pg_constraint
    where conrelid = 'public.staff'::regclass and conname = 'staff_tenant_id_id_key'
  ) then
    alter table public.staff add constraint staff_tenant_id_id_key unique (tenant_id, id);
  end if;
  if not exists (
    select 1 from pg_constraint
    where conrelid = 'public.appointments'::regclass and conname = 'appointments_tenant_id_staff_id_fkey'
  ) then
    -- Deleting a staff member clears only staff_id (the appointment keeps its tenant).
    alter table public.appointments add constraint appointments_tenant_id_staff_id_fkey
      foreign key (tenant_id, staff_id) references public.staff (tenant_id, id)
      on delete set null (staff_id) not valid;
  end if;
  if exists (
    select 1 from pg_constraint
    where conrelid = 'public.appointments'::regclass and conname = 'appointments_tenant_id_staff_id_fkey'
      and not convalidated
  ) then
    begin
      alter table public.appointments validate constraint appointments_tenant_id_staff_id_fkey;
    exception when foreign_key_violation then
      -- Still enforced for every new or changed row; the old rows are listed by this query.
      raise notice 'calendar sync: some appointments name a staff member of another tenant; the composite '
        'foreign key checks new and changed rows only until they are fixed: select a.id from '
        'public.appointments a join public.staff s on s.id = a.staff_id where s.tenant_id <> a.tenant_id';
    end;
  end if;

  revoke all on public.tenants, public.staff, public.appointments from anon, authenticated, service_role;
  grant select on public.tenants, public.staff to authenticated;
  grant select, insert, update, delete on public.appointments to authenticated;
  grant select, insert, update, delete on public.tenants, public.staff, public.appointments to service_role;
end
$$;

-- Our own tables and view: nothing for anon; no TRUNCATE, REFERENCES or TRIGGER for any API role.
-- (20261123000100 revoked all from anon and authenticated on the tables but granted service_role
-- ALL; the status view kept the default privileges.)
revoke truncate, references, trigger on public.staff_calendar_connections, public.calendar_sync_log,
  public.calendar_oauth_states from anon, authenticated, service_role;
grant select, insert, update, delete on public.staff_calendar_connections, public.calendar_sync_log,
  public.calendar_oauth_states to service_role;
revoke all on public.calendar_sync_status from anon, authenticated, service_role;
grant select on public.calendar_sync_status to authenticated, service_role;
revoke all on calendar_private.event_ledger from anon, authenticated, service_role;
grant select, insert, update, delete on calendar_private.event_ledger to service_role;

-- ---------------------------------------------------------------------------------------------
-- Rows written before this migration whose tenant is not their staff member's: the event (if one
-- was written) sits on a calendar of the staff member's tenant, for an appointment of another.
-- Hand the row to the staff member's tenant and queue a delete (the worker deletes because the
-- appointment's tenant differs); the ledger follows. A row a worker holds keeps its lease: the new
-- queue_version makes that worker leave it pending.
-- ---------------------------------------------------------------------------------------------
update public.calendar_sync_log l set
  tenant_id = s.tenant_id,
  sync_status = 'pending',
  desired_action = 'delete',
  next_attempt_at = now(),
  pending_since = coalesce(l.pending_since, now()),
  retry_count = 0,
  queue_version = l.queue_version + 1
from public.staff s
where s.id = l.staff_id and s.tenant_id is distinct from l.tenant_id;

update calendar_private.event_ledger g set tenant_id = s.tenant_id
from public.staff s
where s.id = g.staff_id and s.tenant_id is distinct from g.tenant_id;

-- ---------------------------------------------------------------------------------------------
-- Guards: a sync row or connection always carries its staff member's tenant, whoever writes it.
-- Checked on insert and when tenant_id or staff_id change (claims and outcomes touch neither).
-- ---------------------------------------------------------------------------------------------
create or replace function calendar_private.require_staff_tenant()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  if not exists (select 1 from public.staff s where s.id = new.staff_id and s.tenant_id = new.tenant_id) then
    raise exception 'calendar sync: staff % is not a staff member of tenant %', new.staff_id, new.tenant_id
      using errcode = 'foreign_key_violation',
        hint = 'tenant_id must be the staff member''s tenant (public.staff.tenant_id)';
  end if;
  return new;
end
$$;
revoke all on function calendar_private.require_staff_tenant() from public;

drop trigger if exists calendar_sync_log_staff_tenant on public.calendar_sync_log;
create trigger calendar_sync_log_staff_tenant
  before insert or update of tenant_id, staff_id on public.calendar_sync_log
  for each row execute function calendar_private.require_staff_tenant();

drop trigger if exists staff_calendar_connections_staff_tenant on public.staff_calendar_connections;
create trigger staff_calendar_connections_staff_tenant
  before insert or update of tenant_id, staff_id on public.staff_calendar_connections
  for each row execute function calendar_private.require_staff_tenant();

-- ---------------------------------------------------------------------------------------------
-- Apply (appointment, staff, action) changes to the outbox (replaces the version of
-- 20261123000200; same signature and return value).
--   upsert: only when the staff member belongs to the change's (the appointment's) tenant and has
--     a connection in that tenant that is not 'disconnected'; an upsert that does not qualify
--     queues nothing, and a delete for the same pair applies instead.
--   delete: only touches an existing row, whose own tenant is its staff member's (guard), and only
--     while that staff member has a connection in that tenant. Marking a row delete is always
--     safe: the worker reads the appointment and deletes only an event we wrote.
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
    select ch.tenant_id, ch.appointment_key, ch.appointment_id, ch.staff_id, ch.action
    from unnest(p_changes) as ch
    where ch.staff_id is not null and ch.appointment_key is not null and ch.tenant_id is not null
  ),
  upserts as (
    select distinct on (ch.appointment_key, ch.staff_id)
      ch.tenant_id, ch.appointment_key, ch.appointment_id, ch.staff_id, c.provider
    from changes ch
    join public.staff s on s.id = ch.staff_id and s.tenant_id = ch.tenant_id
    join public.staff_calendar_connections c
      on c.staff_id = ch.staff_id and c.tenant_id = ch.tenant_id and c.connection_status <> 'disconnected'
    where ch.action = 'upsert'
    order by ch.appointment_key, ch.staff_id, (c.connection_status = 'connected') desc, c.updated_at desc
  ),
  deletes as (
    select distinct ch.appointment_key, ch.staff_id
    from changes ch
    where ch.action = 'delete'
      and not exists (
        select 1 from upserts u where u.appointment_key = ch.appointment_key and u.staff_id = ch.staff_id
      )
  ),
  upserted as (
    insert into public.calendar_sync_log as l (
      tenant_id, appointment_id, appointment_key, staff_id, provider, sync_status, desired_action,
      next_attempt_at, pending_since, retry_count, queue_version
    )
    select u.tenant_id, u.appointment_id, u.appointment_key, u.staff_id, u.provider, 'pending', 'upsert',
      now(), now(), 0, 1
    from upserts u
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
    from deletes d
    where l.appointment_key = d.appointment_key
      and l.staff_id = d.staff_id
      and exists (
        select 1 from public.staff_calendar_connections c
        where c.staff_id = l.staff_id and c.tenant_id = l.tenant_id and c.connection_status <> 'disconnected'
      )
      and (p_force or not (l.sync_status = 'synced' and l.google_event_id is null and l.desired_action is null))
    returning 1
  )
  select (select count(*) from upserted) + (select count(*) from deleted) into v_count;
  return v_count;
end
$$;

-- ---------------------------------------------------------------------------------------------
-- The appointments trigger (replaces the version of 20261123000200). One change from it: an
-- appointment that moves to another tenant queues a delete for its old (tenant, staff) row too,
-- since the staff member may not belong to the new tenant.
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
        where o.staff_id is not null
          and (n.id is null or n.staff_id is distinct from o.staff_id or n.tenant_id is distinct from o.tenant_id)
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

-- ---------------------------------------------------------------------------------------------
-- Queue one appointment's rows from its current state (calendar-sync-appointment; replaces the
-- version of 20261123000200). While the appointment exists only rows of its tenant are touched:
-- its staff member's gets upsert (when that staff member belongs to the tenant; see
-- apply_sync_changes), the tenant's other rows of it get delete. After a hard delete every row of
-- it gets delete.
-- ---------------------------------------------------------------------------------------------
create or replace function calendar_private.enqueue_appointment(p_appointment_id uuid)
returns integer
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_changes calendar_private.sync_change[];
  v_tenant_id uuid;
  v_staff_id uuid;
  v_exists boolean;
begin
  select true, a.tenant_id, a.staff_id into v_exists, v_tenant_id, v_staff_id
  from public.appointments a where a.id = p_appointment_id;
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
      and (v_exists is null or l.tenant_id = v_tenant_id)
      and (v_exists is null or l.staff_id is distinct from v_staff_id)
  ) s;
  return calendar_private.apply_sync_changes(v_changes, true);
end
$$;

-- ---------------------------------------------------------------------------------------------
-- Backfill after a staff member (re)connects (replaces the version of 20261123000200; same
-- steps). The staff member's tenant is read from public.staff; only their connection in that
-- tenant counts, and only appointments of that tenant are queued as upserts. Their rows whose
-- appointment is gone, cancelled, reassigned or of another tenant are queued as deletes, as are
-- ledger events whose mapping a disconnect dropped.
-- ---------------------------------------------------------------------------------------------
create or replace function calendar_private.enqueue_staff_backfill(p_staff_id uuid)
returns integer
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_tenant_id uuid;
  v_provider text;
  v_count integer := 0;
  v_rows integer;
begin
  select s.tenant_id into v_tenant_id from public.staff s where s.id = p_staff_id;
  if v_tenant_id is null then
    return 0;
  end if;
  select c.provider into v_provider
  from public.staff_calendar_connections c
  where c.staff_id = p_staff_id and c.tenant_id = v_tenant_id and c.connection_status <> 'disconnected'
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
    and a.tenant_id = v_tenant_id
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
      where a.id = l.appointment_id and a.staff_id = l.staff_id and a.tenant_id = l.tenant_id
        and calendar_private.appointment_wants_event(a.status)
    )
    and not (l.sync_status = 'synced' and l.google_event_id is null and l.desired_action is null);
  get diagnostics v_rows = row_count;
  v_count := v_count + v_rows;

  insert into public.calendar_sync_log (
    tenant_id, appointment_id, appointment_key, staff_id, provider, google_event_id, google_calendar_id,
    sync_status, desired_action, next_attempt_at, pending_since, retry_count, queue_version
  )
  select v_tenant_id, a.id, g.appointment_key, g.staff_id, g.provider, g.event_id, g.calendar_id,
    'pending', 'delete', now(), now(), 0, 1
  from calendar_private.event_ledger g
  left join public.appointments a on a.id = g.appointment_key
  where g.staff_id = p_staff_id
    and g.provider = v_provider
    and not exists (
      select 1 from public.calendar_sync_log l
      where l.appointment_key = g.appointment_key and l.staff_id = g.staff_id
    )
    and not (a.id is not null and a.staff_id is not distinct from g.staff_id and a.tenant_id = v_tenant_id
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

revoke all on function calendar_private.apply_sync_changes(calendar_private.sync_change[], boolean) from public;
revoke all on function calendar_private.appointments_sync_trigger() from public;
revoke all on function calendar_private.enqueue_appointment(uuid) from public;
revoke all on function calendar_private.enqueue_staff_backfill(uuid) from public;
grant execute on function calendar_private.enqueue_appointment(uuid) to service_role;
grant execute on function calendar_private.enqueue_staff_backfill(uuid) to service_role;
