-- Channel life cycle and the channel job runner's SQL (docs/decisions.md decision 17). Idempotent.
--
-- 1. Stage `standby`: a Google replacement channel, watched at the provider before it takes over from
--    the channel it renews. Not live (calendar_private.channel_is_live is unchanged), so it never
--    collides with the live channel in calendar_channels_one_live_key; the swap (old stopped, new
--    live) is one transaction (supabase/functions/_shared/inbound/channels.ts).
-- 2. calendar_private.request_channel_job kicks the worker when its request made a job pending (a
--    new job, or one that was done or failed), and not when it coalesced into a pending one: the
--    webhook, the hooks and the sweep all request jobs through it. It now answers that boolean.
-- 3. calendar_private.claim_channel_jobs: the sibling of claim_due_rows over
--    calendar_channel_jobs_claim_order_idx (due, unleased, the channel's connection workable through
--    calendar_private.workable_connection), locked with SKIP LOCKED; count_due_channel_jobs beside it.
-- 4. calendar_private.open_channel: a live channel on the connection's selected calendar (a new row
--    `pending` with a `create` job), retiring the connection's other live channels (or all of them,
--    p_replace: a reconnect, a removed subscription); calendar_private.retire_channel marks one
--    stopped and queues its provider stop.
-- 5. calendar_private.plan_channel_renewals: `renew` jobs for live channels expiring within a margin;
--    sweep_outbox (pg_cron, every minute) plans them and kicks the worker when channel jobs are due,
--    and once an hour in any case, so the worker's self-healing (channels for workable connections
--    that have none, supabase/functions/_shared/inbound/channels.ts sweepChannels) runs on a quiet
--    system too.

-- ---------------------------------------------------------------------------------------------
-- 1. The standby stage.
-- ---------------------------------------------------------------------------------------------
alter table public.calendar_channels drop constraint if exists calendar_channels_sync_stage_check;
alter table public.calendar_channels add constraint calendar_channels_sync_stage_check
  check (sync_stage in ('pending', 'full_sync', 'incremental', 'failed', 'stopped', 'standby'));

comment on column public.calendar_channels.sync_stage is
  'pending (created, not watched yet), full_sync, incremental: live (one per connection and calendar); standby: a replacement being watched, not live yet; failed: its creation gave up; stopped: history.';

-- ---------------------------------------------------------------------------------------------
-- 2. Requests kick the worker when they make a job pending.
-- ---------------------------------------------------------------------------------------------
drop function if exists calendar_private.request_channel_job(uuid, text, integer);

create function calendar_private.request_channel_job(
  p_channel_id uuid,
  p_kind text,
  p_requests integer default 1
)
returns boolean
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_was text;
  v_found boolean;
begin
  -- The status before this request (null: no row yet). Locked, so two requests do not both see `done`.
  select j.status into v_was from public.calendar_channel_jobs j
  where j.channel_id = p_channel_id and j.kind = p_kind
  for update;
  insert into public.calendar_channel_jobs as j (
    tenant_id, staff_id, channel_id, kind, status, next_attempt_at, pending_since, queue_version, request_count
  )
  select ch.tenant_id, ch.staff_id, ch.id, p_kind, 'pending', now(), now(), 1, p_requests
  from public.calendar_channels ch
  where ch.id = p_channel_id
  on conflict (channel_id, kind) do update set
    status = 'pending',
    next_attempt_at = case when j.status = 'pending' then j.next_attempt_at else now() end,
    pending_since = case when j.status = 'pending' then j.pending_since else now() end,
    retry_count = case when j.status = 'pending' then j.retry_count else 0 end,
    first_failure_at = case when j.status = 'pending' then j.first_failure_at end,
    request_count = case when j.status = 'pending' then j.request_count else 0 end + excluded.request_count,
    queue_version = j.queue_version + 1;
  v_found := found;
  if v_found and v_was is distinct from 'pending' then
    -- Leaves only if the transaction commits; one notification per transaction and reason.
    perform calendar_private.kick_worker('channel');
    return true;
  end if;
  return false;
end
$$;

comment on function calendar_private.request_channel_job(uuid, text, integer) is
  'Mark the channel''s job of this kind pending (one row per channel and kind: requests coalesce; a pending job keeps its next_attempt_at). Kicks the worker and answers true when the job was not pending before.';

-- ---------------------------------------------------------------------------------------------
-- 3. The claim.
-- ---------------------------------------------------------------------------------------------
-- Read in calendar_channel_jobs_claim_order_idx order under the planner settings of claim_due_rows
-- (20261130000200_calendar_sync_claim_index.sql), so nothing is sorted whatever the statistics say.
-- A job is claimable when its channel's connection is the staff member's workable one: the others
-- (needs_reconnect, disconnected) wait unclaimed, as their outbox rows do.
create or replace function calendar_private.claim_channel_jobs(
  p_limit integer,
  p_exclude_staff uuid[] default null
)
returns setof uuid
rows 10
language sql
volatile
set enable_sort = off
set enable_bitmapscan = off
set enable_seqscan = off
as $$
  select j.id from public.calendar_channel_jobs j
  where j.status = 'pending'
    and j.next_attempt_at <= now()
    and (j.lease_expires_at is null or j.lease_expires_at <= now())
    and j.staff_id <> all(coalesce(p_exclude_staff, '{}'))
    and coalesce((
      select true from public.calendar_channels ch
      join calendar_private.workable_connection(ch.tenant_id, ch.staff_id, ch.provider) c
        on c.id = ch.connection_id
      where ch.id = j.channel_id
      limit 1
    ), false)
  order by j.next_attempt_at, j.id
  limit greatest(coalesce(p_limit, 0), 0)
  for update of j skip locked
$$;

comment on function calendar_private.claim_channel_jobs(integer, uuid[]) is
  'Ids of up to p_limit due pending channel jobs a worker may claim (no live lease, the channel''s connection workable, staff not in p_exclude_staff), oldest first, row-locked with SKIP LOCKED.';

create or replace function calendar_private.count_due_channel_jobs()
returns integer
language sql
stable
as $$
  select count(*)::integer from public.calendar_channel_jobs j
  join public.calendar_channels ch on ch.id = j.channel_id
  where j.status = 'pending'
    and j.next_attempt_at <= now()
    and (j.lease_expires_at is null or j.lease_expires_at <= now())
    and exists (
      select 1 from calendar_private.workable_connection(ch.tenant_id, ch.staff_id, ch.provider) c
      where c.id = ch.connection_id
    )
$$;

comment on function calendar_private.count_due_channel_jobs() is
  'Pending channel jobs due now that a worker could claim (as claim_channel_jobs would).';

-- ---------------------------------------------------------------------------------------------
-- 4. Opening and retiring channels.
-- ---------------------------------------------------------------------------------------------

-- Retire a channel: stopped now (its notifications are unknown from this moment), and its provider
-- channel stopped by a `stop` job when it may exist at the provider (a provider id is known, or a
-- create may be in flight). Nothing for a channel already stopped.
create or replace function calendar_private.retire_channel(p_channel_id uuid)
returns void
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_channel public.calendar_channels;
begin
  update public.calendar_channels ch set sync_stage = 'stopped', stopped_at = now()
  where ch.id = p_channel_id and ch.sync_stage <> 'stopped'
  returning ch.* into v_channel;
  if v_channel.id is not null and v_channel.provider_channel_id is not null then
    perform calendar_private.request_channel_job(v_channel.id, 'stop');
  end if;
end
$$;

comment on function calendar_private.retire_channel(uuid) is
  'Mark a channel stopped and queue its stop at the provider (when it has a provider id).';

-- A live channel on the connection's selected calendar, when the connection is workable: the live
-- one there (unless p_replace), else a new `pending` row whose `create` job watches the calendar.
-- The connection's other live channels (all of them with p_replace) are retired in the same
-- transaction. Returns the new channel's id, or null when none was created. The connection row is
-- locked, so two callers never both create.
create or replace function calendar_private.open_channel(p_connection_id uuid, p_replace boolean default false)
returns uuid
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_conn public.staff_calendar_connections;
  v_old record;
  v_id uuid;
begin
  select c.* into v_conn from public.staff_calendar_connections c
  where c.id = p_connection_id and calendar_private.connection_is_workable(c)
  for update;
  if v_conn.id is null or v_conn.selected_calendar_id is null then
    return null;
  end if;
  for v_old in
    select ch.id from public.calendar_channels ch
    where ch.connection_id = v_conn.id and calendar_private.channel_is_live(ch.sync_stage)
      and (p_replace or ch.calendar_id <> v_conn.selected_calendar_id)
  loop
    perform calendar_private.retire_channel(v_old.id);
  end loop;
  if exists (
    select 1 from public.calendar_channels ch
    where ch.connection_id = v_conn.id and ch.calendar_id = v_conn.selected_calendar_id
      and calendar_private.channel_is_live(ch.sync_stage)
  ) then
    return null;
  end if;
  -- The secret is chosen by the create job right before its watch; until then a digest of nothing
  -- anyone knows stands in, so no notification can match the row.
  insert into public.calendar_channels (tenant_id, staff_id, connection_id, provider, calendar_id, secret_hash)
  values (v_conn.tenant_id, v_conn.staff_id, v_conn.id, v_conn.provider, v_conn.selected_calendar_id,
    sha256(convert_to(gen_random_uuid()::text || clock_timestamp()::text, 'UTF8')))
  returning id into v_id;
  perform calendar_private.request_channel_job(v_id, 'create');
  return v_id;
end
$$;

comment on function calendar_private.open_channel(uuid, boolean) is
  'Ensure a live channel on the workable connection''s selected calendar (a new pending row and its create job), retiring its live channels on other calendars (all of them with p_replace). Returns the new channel id or null.';

-- ---------------------------------------------------------------------------------------------
-- 5. Renewals and the sweep.
-- ---------------------------------------------------------------------------------------------

-- Request `renew` for live channels of workable connections that expire within p_margin (Google
-- channels and Graph subscriptions both last at most 7 days; a day's margin leaves a day of retries).
-- A channel whose renew job is already pending is left alone. Returns how many were requested.
create or replace function calendar_private.plan_channel_renewals(p_margin interval default interval '24 hours')
returns integer
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_channel record;
  v_count integer := 0;
begin
  for v_channel in
    select ch.id from public.calendar_channels ch
    where calendar_private.channel_is_live(ch.sync_stage)
      and ch.expires_at <= now() + p_margin
      and ch.provider_channel_id is not null
      and exists (
        select 1 from calendar_private.workable_connection(ch.tenant_id, ch.staff_id, ch.provider) c
        where c.id = ch.connection_id
      )
      and not exists (
        select 1 from public.calendar_channel_jobs j
        where j.channel_id = ch.id and j.kind = 'renew' and j.status = 'pending'
      )
    order by ch.expires_at
  loop
    perform calendar_private.request_channel_job(v_channel.id, 'renew');
    v_count := v_count + 1;
  end loop;
  return v_count;
end
$$;

comment on function calendar_private.plan_channel_renewals(interval) is
  'Request renew jobs for live channels (workable connection) expiring within p_margin that have none pending; returns how many.';

-- The pg_cron safety net (replaces 20261130000100's): plan renewals, then kick when outbox rows or
-- channel jobs are due, and at the top of every hour in any case (the worker's channel self-healing).
create or replace function calendar_private.sweep_outbox()
returns integer
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_due integer;
begin
  perform calendar_private.plan_channel_renewals();
  v_due := calendar_private.count_due() + calendar_private.count_due_channel_jobs();
  if v_due > 0 or extract(minute from now()) = 0 then
    perform calendar_private.kick_worker('sweep');
  end if;
  return v_due;
end
$$;

revoke all on function calendar_private.request_channel_job(uuid, text, integer) from public;
revoke all on function calendar_private.claim_channel_jobs(integer, uuid[]) from public;
revoke all on function calendar_private.count_due_channel_jobs() from public;
revoke all on function calendar_private.retire_channel(uuid) from public;
revoke all on function calendar_private.open_channel(uuid, boolean) from public;
revoke all on function calendar_private.plan_channel_renewals(interval) from public;
revoke all on function calendar_private.sweep_outbox() from public;
grant execute on function calendar_private.request_channel_job(uuid, text, integer) to service_role;
grant execute on function calendar_private.claim_channel_jobs(integer, uuid[]) to service_role;
grant execute on function calendar_private.count_due_channel_jobs() to service_role;
grant execute on function calendar_private.retire_channel(uuid) to service_role;
grant execute on function calendar_private.open_channel(uuid, boolean) to service_role;
grant execute on function calendar_private.plan_channel_renewals(interval) to service_role;
grant execute on function calendar_private.sweep_outbox() to service_role;
