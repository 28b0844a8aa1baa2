-- Calendar sync: a provider-neutral core (idempotent: re-running changes nothing).
--
-- 1. Neutral column names in calendar_sync_log: google_event_id -> event_id, google_calendar_id ->
--    calendar_id. event_etag keeps its name: an entity tag is HTTP's (RFC 9110), and both providers
--    return one for an event (Google `etag`, Microsoft Graph `@odata.etag`). The seed's names stay
--    readable as STORED GENERATED columns (google_event_id = event_id, google_calendar_id =
--    calendar_id): a `select google_event_id from calendar_sync_log` (the seed's app, PostgREST) works
--    unchanged on the same table, under the same RLS and grants, which a view of another name could
--    not give. Generated columns cannot be written; nothing writes them (only the functions write this
--    table, and they write the neutral names), and a stale writer fails loudly instead of writing a
--    column nobody reads. Adding them rewrites the table once.
--
-- 2. The outbox identity includes the provider: one row per (appointment, staff, provider), each row
--    the mapping of at most one event at that provider. A provider's events can only be changed with
--    that provider's grant, so nothing is ever "moved" across providers: when a staff member switches
--    from Google to Microsoft (disconnect Google, connect Microsoft), the Microsoft backfill creates
--    Microsoft rows while any Google row still held by a worker's lease (disconnect keeps those) stays
--    a Google row. Keyed on (appointment, staff) alone, the Microsoft upsert would have hit that Google
--    row and left it claimable by no connection, its event never written. Rows of a provider that is
--    not the staff member's active connection wait (no claim takes them) and are reconciled by that
--    provider's backfill if it is connected again; the event ledger keeps the events after a disconnect.
--
-- 3. One active connection per staff member (status connected or needs_reconnect), enforced by a
--    partial unique index, and each rule written once, as SQL functions every path uses:
--      calendar_private.connection_is_active(status)       the index predicate and active_connection
--      calendar_private.active_connection(tenant, staff)   the staff member's active connection (tenant
--                                                          AND staff matched), at most one row
--      calendar_private.connection_is_workable(connection) work may run on it: connected with a refresh
--                                                          token (needs_reconnect and token-less wait)
--      calendar_private.workable_connection(tenant, staff, provider)  the active connection if workable
--                                                          (and of that provider, when given)
--      calendar_private.count_due()                        rows a worker could claim now
--    Triggers, backfill, sweep (these functions), the worker's claim and countDue, and the handlers
--    (supabase/functions/_shared/connections.ts, sync/outbox.ts) read connections only through them.
--    The predicate functions are plain SQL without SECURITY DEFINER or a SET clause so the planner
--    inlines them into the claim (a function call per candidate row would not be index-friendly);
--    every name in them is schema-qualified.
--    Before the index: a staff member with two active connections keeps the one the old lookups chose
--    (connected first, then the most recently updated); the others are disconnected as calendar-
--    disconnect does (tokens forgotten, mapping rows not held by a worker dropped; the ledger keeps
--    their events). Their grants cannot be revoked from SQL; a notice says how many there were.

-- ---------------------------------------------------------------------------------------------
-- 3a. "Active" and the index that allows one active connection per staff member.
-- ---------------------------------------------------------------------------------------------
create or replace function calendar_private.connection_is_active(p_status text)
returns boolean
language sql
immutable
parallel safe
as $$
  select p_status in ('connected', 'needs_reconnect')
$$;

comment on function calendar_private.connection_is_active(text) is
  'Whether a connection in this status is the staff member''s active one (at most one per staff member: staff_calendar_connections_one_active_key).';

do $$
declare
  v_superseded integer;
begin
  if to_regclass('public.staff_calendar_connections_one_active_key') is not null then
    return;
  end if;
  with ranked as (
    select c.id, c.tenant_id, c.staff_id, c.provider,
      row_number() over (
        partition by c.staff_id
        order by (c.connection_status = 'connected') desc, c.updated_at desc, c.id
      ) as rank
    from public.staff_calendar_connections c
    where calendar_private.connection_is_active(c.connection_status)
  ),
  superseded as (
    update public.staff_calendar_connections c set
      access_token_encrypted = null, refresh_token_encrypted = null, token_expires_at = null,
      connection_status = 'disconnected', granted_scopes = '{}',
      last_error = 'disconnected: a staff member has one active calendar connection, and another one was kept'
    from ranked r
    where r.id = c.id and r.rank > 1
    returning c.tenant_id, c.staff_id, c.provider
  ),
  dropped as (
    delete from public.calendar_sync_log l
    using superseded s
    where l.tenant_id = s.tenant_id and l.staff_id = s.staff_id and l.provider = s.provider
      and (l.lease_expires_at is null or l.lease_expires_at <= now())
    returning 1
  )
  select count(*) into v_superseded from superseded;
  if v_superseded > 0 then
    raise notice 'calendar sync: % connection(s) were disconnected so that each staff member has one active '
      'connection; their grants are still live at the provider until the account holder removes them', v_superseded;
  end if;
end
$$;

create unique index if not exists staff_calendar_connections_one_active_key
  on public.staff_calendar_connections (staff_id)
  where calendar_private.connection_is_active(connection_status);

-- ---------------------------------------------------------------------------------------------
-- 1. Neutral names, with the seed's names kept readable.
-- ---------------------------------------------------------------------------------------------
do $$
declare
  v_pair text[];
begin
  foreach v_pair slice 1 in array array[['google_event_id', 'event_id'], ['google_calendar_id', 'calendar_id']]
  loop
    if exists (
      select 1 from pg_attribute
      where attrelid = 'public.calendar_sync_log'::regclass and attname = v_pair[1]
        and not attisdropped and attgenerated = ''
    ) and not exists (
      select 1 from pg_attribute
      where attrelid = 'public.calendar_sync_log'::regclass and attname = v_pair[2] and not attisdropped
    ) then
      execute format('alter table public.calendar_sync_log rename column %I to %I', v_pair[1], v_pair[2]);
    end if;
  end loop;
end
$$;

alter table public.calendar_sync_log
  add column if not exists google_event_id text generated always as (event_id) stored;
alter table public.calendar_sync_log
  add column if not exists google_calendar_id text generated always as (calendar_id) stored;

comment on column public.calendar_sync_log.event_id is
  'The provider''s id of the event this row wrote (Google event id, Microsoft Graph event id); null when none.';
comment on column public.calendar_sync_log.calendar_id is
  'The provider calendar the event is on; null when there is no event.';
comment on column public.calendar_sync_log.event_etag is
  'The event''s entity tag as the provider last returned it (Google etag, Graph @odata.etag).';
comment on column public.calendar_sync_log.google_event_id is
  'Read-only copy of event_id under the seed''s name (generated); write event_id.';
comment on column public.calendar_sync_log.google_calendar_id is
  'Read-only copy of calendar_id under the seed''s name (generated); write calendar_id.';

-- ---------------------------------------------------------------------------------------------
-- 2. The outbox identity: (appointment, staff, provider).
-- ---------------------------------------------------------------------------------------------
do $$
declare
  v_key text;
begin
  foreach v_key in array array['appointment_key', 'appointment_id'] loop
    if not exists (
      select 1 from pg_constraint
      where conrelid = 'public.calendar_sync_log'::regclass
        and conname = format('calendar_sync_log_%s_staff_provider_key', v_key)
    ) then
      execute format(
        'alter table public.calendar_sync_log add constraint %I unique (%I, staff_id, provider)',
        format('calendar_sync_log_%s_staff_provider_key', v_key), v_key);
    end if;
  end loop;
end
$$;
alter table public.calendar_sync_log drop constraint if exists calendar_sync_log_appointment_key_staff_id_key;
alter table public.calendar_sync_log drop constraint if exists calendar_sync_log_appointment_id_staff_id_key;

-- ---------------------------------------------------------------------------------------------
-- 3b. The connection rules, once.
-- ---------------------------------------------------------------------------------------------
create or replace function calendar_private.active_connection(p_tenant_id uuid, p_staff_id uuid)
returns setof public.staff_calendar_connections
language sql
stable
rows 1
as $$
  select c.* from public.staff_calendar_connections c
  where c.tenant_id = p_tenant_id and c.staff_id = p_staff_id
    and calendar_private.connection_is_active(c.connection_status)
$$;

comment on function calendar_private.active_connection(uuid, uuid) is
  'The staff member''s active calendar connection in the tenant (connected or needs_reconnect), or no row. Tenant and staff both match.';

create or replace function calendar_private.connection_is_workable(p_connection public.staff_calendar_connections)
returns boolean
language sql
immutable
parallel safe
as $$
  select p_connection.connection_status = 'connected' and p_connection.refresh_token_encrypted is not null
$$;

comment on function calendar_private.connection_is_workable(public.staff_calendar_connections) is
  'Whether sync work may run on this connection: connected and holding a refresh token (needs_reconnect and token-less connections wait for a reconnect).';

create or replace function calendar_private.workable_connection(
  p_tenant_id uuid,
  p_staff_id uuid,
  p_provider text default null
)
returns setof public.staff_calendar_connections
language sql
stable
rows 1
as $$
  select c.* from calendar_private.active_connection(p_tenant_id, p_staff_id) c
  where calendar_private.connection_is_workable(c)
    and (p_provider is null or c.provider = p_provider)
$$;

comment on function calendar_private.workable_connection(uuid, uuid, text) is
  'The staff member''s active connection in the tenant when sync work may run on it (and it is of p_provider, when given), or no row.';

create or replace function calendar_private.count_due()
returns integer
language sql
stable
as $$
  select count(*)::integer from public.calendar_sync_log l
  where l.sync_status = 'pending'
    and l.next_attempt_at <= now()
    and (l.lease_expires_at is null or l.lease_expires_at <= now())
    and exists (select 1 from calendar_private.workable_connection(l.tenant_id, l.staff_id, l.provider))
$$;

comment on function calendar_private.count_due() is
  'Pending rows due now that a worker could claim: no live lease, and a workable connection of the row''s tenant, staff member and provider.';

-- ---------------------------------------------------------------------------------------------
-- The outbox functions, on the rules above and the neutral names (each replaces the latest
-- version: 20261129000200_calendar_sync_tenant_isolation.sql, 20261124000100 for the connection
-- trigger, 20261123000300 for the sweep; same signatures, same grants).
-- ---------------------------------------------------------------------------------------------

-- Apply (appointment, staff, action) changes. upsert: for a staff member of the change's tenant
-- with an active connection there, on that connection's provider. delete: the staff member's rows of
-- the appointment on the provider of their active connection (other providers' rows wait for that
-- provider's backfill).
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
    cross join lateral calendar_private.active_connection(ch.tenant_id, ch.staff_id) c
    where ch.action = 'upsert'
    order by ch.appointment_key, ch.staff_id
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
    on conflict (appointment_key, staff_id, provider) do update set
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
        select 1 from calendar_private.active_connection(l.tenant_id, l.staff_id) c
        where c.provider = l.provider
      )
      and (p_force or not (l.sync_status = 'synced' and l.event_id is null and l.desired_action is null))
    returning 1
  )
  select (select count(*) from upserted) + (select count(*) from deleted) into v_count;
  return v_count;
end
$$;

-- Connection changes: choosing another calendar moves the events of the connection's rows (tenant,
-- staff and provider matched); becoming workable again kicks the worker so parked rows resume.
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
    if calendar_private.connection_is_active(new.connection_status)
      and new.selected_calendar_id is distinct from old.selected_calendar_id then
      update public.calendar_sync_log l set
        sync_status = 'pending',
        desired_action = coalesce(l.desired_action, 'upsert'),
        next_attempt_at = now(),
        pending_since = coalesce(l.pending_since, now()),
        retry_count = 0,
        queue_version = l.queue_version + 1
      where l.tenant_id = new.tenant_id
        and l.staff_id = new.staff_id
        and l.provider = new.provider
        and (
          (l.event_id is not null and l.calendar_id is distinct from new.selected_calendar_id)
          or (l.sync_status = 'pending' and l.lease_expires_at > now())
          or (l.sync_status = 'failed' and l.last_error_code = 'calendar_not_found')
        );
      get diagnostics v_count = row_count;
    end if;
    if calendar_private.connection_is_workable(new) and not calendar_private.connection_is_workable(old) then
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

-- Backfill after a staff member (re)connects: the same three steps as before, on the provider of
-- their workable connection in their tenant, and on that provider's rows only.
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
  select c.provider into v_provider from calendar_private.workable_connection(v_tenant_id, p_staff_id) c;
  if v_provider is null then
    return 0;
  end if;

  insert into public.calendar_sync_log as l (
    tenant_id, appointment_id, appointment_key, staff_id, provider, event_id, calendar_id,
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
  on conflict (appointment_key, staff_id, provider) do update set
    tenant_id = excluded.tenant_id,
    appointment_id = excluded.appointment_id,
    event_id = coalesce(l.event_id, excluded.event_id),
    calendar_id = case when l.event_id is null then excluded.calendar_id else l.calendar_id end,
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
    and l.provider = v_provider
    and not exists (
      select 1 from public.appointments a
      where a.id = l.appointment_id and a.staff_id = l.staff_id and a.tenant_id = l.tenant_id
        and calendar_private.appointment_wants_event(a.status)
    )
    and not (l.sync_status = 'synced' and l.event_id is null and l.desired_action is null);
  get diagnostics v_rows = row_count;
  v_count := v_count + v_rows;

  insert into public.calendar_sync_log (
    tenant_id, appointment_id, appointment_key, staff_id, provider, event_id, calendar_id,
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
      where l.appointment_key = g.appointment_key and l.staff_id = g.staff_id and l.provider = g.provider
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

-- The pg_cron safety net: kick only when a worker could claim something.
create or replace function calendar_private.sweep_outbox()
returns integer
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_due integer := calendar_private.count_due();
begin
  if v_due > 0 then
    perform calendar_private.kick_worker('sweep');
  end if;
  return v_due;
end
$$;

-- ---------------------------------------------------------------------------------------------
-- Privileges. connection_is_active is the index predicate, evaluated for whoever writes the table,
-- and says nothing about any row: executable by all. The rest is for the functions' role.
-- ---------------------------------------------------------------------------------------------
revoke all on function calendar_private.active_connection(uuid, uuid) from public;
revoke all on function calendar_private.connection_is_workable(public.staff_calendar_connections) from public;
revoke all on function calendar_private.workable_connection(uuid, uuid, text) from public;
revoke all on function calendar_private.count_due() from public;
revoke all on function calendar_private.apply_sync_changes(calendar_private.sync_change[], boolean) from public;
revoke all on function calendar_private.connections_sync_trigger() from public;
revoke all on function calendar_private.enqueue_staff_backfill(uuid) from public;
revoke all on function calendar_private.sweep_outbox() from public;
grant execute on function calendar_private.connection_is_active(text) to public;
grant execute on function calendar_private.active_connection(uuid, uuid) to service_role;
grant execute on function calendar_private.connection_is_workable(public.staff_calendar_connections) to service_role;
grant execute on function calendar_private.workable_connection(uuid, uuid, text) to service_role;
grant execute on function calendar_private.count_due() to service_role;
grant execute on function calendar_private.enqueue_staff_backfill(uuid) to service_role;
grant execute on function calendar_private.sweep_outbox() to service_role;
