-- calendar_private.busy_cache_state (20261206600000_calendar_sync_busy_cache_state.sql): when the busy
-- cache may answer availability, and each reason it may not, one condition at a time from a usable
-- state; who may call it. One transaction (now() is fixed), rolled back.
begin;
create extension if not exists pgtap with schema extensions;
set local search_path = public, extensions;

select plan(26);

-- Clinic A: alice (Google, selected calendar 'primary'). Clinic B: bob.
insert into auth.users (id, email) values
  ('a7000000-0000-4000-8000-000000000001', 'alice@a.test'),
  ('a7000000-0000-4000-8000-000000000002', 'bob@b.test');
insert into public.tenants (id, name) values
  ('b7000000-0000-4000-8000-000000000001', 'Clinic A'),
  ('b7000000-0000-4000-8000-000000000002', 'Clinic B');
insert into public.staff (id, tenant_id, profile_id, role) values
  ('c7000000-0000-4000-8000-000000000001', 'b7000000-0000-4000-8000-000000000001',
   'a7000000-0000-4000-8000-000000000001', 'staff'),
  ('c7000000-0000-4000-8000-000000000002', 'b7000000-0000-4000-8000-000000000002',
   'a7000000-0000-4000-8000-000000000002', 'staff');
insert into public.staff_calendar_connections (id, tenant_id, staff_id, provider, refresh_token_encrypted,
  selected_calendar_id) values
  ('d7000000-0000-4000-8000-000000000001', 'b7000000-0000-4000-8000-000000000001',
   'c7000000-0000-4000-8000-000000000001', 'google', 'v1.k1.iv.a', 'primary');
insert into public.calendar_channels (id, tenant_id, staff_id, connection_id, provider, calendar_id,
  provider_channel_id, secret_hash, sync_stage, expires_at, last_synced_at, cache_window_start, cache_window_end)
values
  ('f7000000-0000-4000-8000-000000000001', 'b7000000-0000-4000-8000-000000000001',
   'c7000000-0000-4000-8000-000000000001', 'd7000000-0000-4000-8000-000000000001', 'google', 'primary',
   'alice-channel', sha256('alice-token'), 'incremental', now() + interval '6 days',
   now() - interval '30 seconds', now() - interval '1 day', now() + interval '30 days');

-- The state for alice over [now + p_from, now + p_to): 'usable', or the reason it is not.
create function pg_temp.state(p_from interval default '1 day', p_to interval default '2 days')
returns text language sql as $$
  select case when usable then 'usable' else reason end
  from calendar_private.busy_cache_state('b7000000-0000-4000-8000-000000000001',
    'c7000000-0000-4000-8000-000000000001', now() + p_from, now() + p_to, 120, 3600)
$$;

-- Usable, and what it names ----------------------------------------------------------------------
select is(pg_temp.state(), 'usable', 'a live incremental channel, synced 30 s ago, window covered: usable');
select results_eq(
  $$select connection_id, channel_id, reason, as_of from calendar_private.busy_cache_state(
    'b7000000-0000-4000-8000-000000000001', 'c7000000-0000-4000-8000-000000000001',
    now() + interval '1 day', now() + interval '2 days', 120, 3600)$$,
  $$values ('d7000000-0000-4000-8000-000000000001'::uuid, 'f7000000-0000-4000-8000-000000000001'::uuid,
    null::text, now() - interval '30 seconds')$$,
  'usable names the connection and channel, no reason, and as_of = last_synced_at');
select is(pg_temp.state('-1 day', '30 days'), 'usable', 'exactly the cached window is covered (half-open bounds)');

-- The window -----------------------------------------------------------------------------------
select is(pg_temp.state('29 days', '31 days'), 'outside_window', 'ending after cache_window_end: outside_window');
select is(pg_temp.state('-2 days', '-1 hour'), 'outside_window', 'starting before cache_window_start: outside_window');
update public.calendar_channels set cache_window_start = null, cache_window_end = null;
select is(pg_temp.state(), 'outside_window', 'no window recorded: outside_window');
update public.calendar_channels set cache_window_start = now() - interval '1 day',
  cache_window_end = now() + interval '30 days';

-- Freshness ----------------------------------------------------------------------------------------
update public.calendar_channels set last_synced_at = now() - interval '3601 seconds';
select is(pg_temp.state(), 'too_old', 'last sync older than max age: too_old');
update public.calendar_channels set last_synced_at = null;
select is(pg_temp.state(), 'never_synced', 'never synced: never_synced');
update public.calendar_channels set last_synced_at = now() - interval '30 seconds';

insert into public.calendar_channel_jobs (tenant_id, staff_id, channel_id, kind, status, next_attempt_at,
  pending_since)
values ('b7000000-0000-4000-8000-000000000001', 'c7000000-0000-4000-8000-000000000001',
  'f7000000-0000-4000-8000-000000000001', 'sync', 'pending', now(), now() - interval '10 seconds');
select is(pg_temp.state(), 'usable', 'a sync job pending for 10 s (within the lag bound): still usable');
update public.calendar_channel_jobs set pending_since = now() - interval '121 seconds';
select is(pg_temp.state(), 'sync_lagging', 'a sync job pending beyond the lag bound: sync_lagging');
update public.calendar_channel_jobs set status = 'failed';
select is(pg_temp.state(), 'sync_failed', 'a dead-lettered sync job: sync_failed');
update public.calendar_channel_jobs set status = 'done';
select is(pg_temp.state(), 'usable', 'a done sync job, however old: usable');

-- Graph lifecycle flags ----------------------------------------------------------------------------
update public.calendar_channels set missed_at = now();
select is(pg_temp.state(), 'lifecycle_pending', 'missed after the last sync: lifecycle_pending');
update public.calendar_channels set missed_at = now() - interval '1 minute';
select is(pg_temp.state(), 'usable', 'missed before the last sync (processed): usable');
update public.calendar_channels set subscription_removed_at = now();
select is(pg_temp.state(), 'lifecycle_pending', 'subscriptionRemoved after the last sync: lifecycle_pending');
update public.calendar_channels set subscription_removed_at = null, missed_at = null;

-- The channel --------------------------------------------------------------------------------------
update public.calendar_channels set expires_at = now() - interval '1 second';
select is(pg_temp.state(), 'expired', 'expired channel: expired');
update public.calendar_channels set expires_at = null;
select is(pg_temp.state(), 'expired', 'a channel without an expiry: expired');
update public.calendar_channels set expires_at = now() + interval '6 days', sync_stage = 'full_sync';
select is(pg_temp.state(), 'not_incremental', 'a full sync in progress: not_incremental');
update public.calendar_channels set sync_stage = 'stopped';
select is(pg_temp.state(), 'no_channel', 'a stopped channel is no channel');
update public.calendar_channels set sync_stage = 'incremental';
update public.staff_calendar_connections set selected_calendar_id = 'team@group.calendar.google.com';
select is(pg_temp.state(), 'no_channel', 'the live channel watches a previously selected calendar: no_channel');
update public.staff_calendar_connections set selected_calendar_id = 'primary';

-- The connection -----------------------------------------------------------------------------------
update public.staff_calendar_connections set connection_status = 'needs_reconnect';
select is(pg_temp.state(), 'needs_reconnect', 'a connection waiting for a reconnect: needs_reconnect');
update public.staff_calendar_connections set connection_status = 'disconnected';
select is(pg_temp.state(), 'not_connected', 'disconnected: not_connected');
update public.staff_calendar_connections set connection_status = 'connected';
select is(pg_temp.state(), 'usable', 'connected again with everything in place: usable');
select is(
  (select reason from calendar_private.busy_cache_state('b7000000-0000-4000-8000-000000000002',
    'c7000000-0000-4000-8000-000000000001', now() + interval '1 day', now() + interval '2 days', 120, 3600)),
  'not_connected', 'alice asked about under another tenant: not_connected (tenant and staff both match)');

-- Privileges -----------------------------------------------------------------------------------------
select ok(not has_function_privilege('authenticated',
    'calendar_private.busy_cache_state(uuid,uuid,timestamptz,timestamptz,integer,integer)', 'execute')
  and not has_function_privilege('anon',
    'calendar_private.busy_cache_state(uuid,uuid,timestamptz,timestamptz,integer,integer)', 'execute'),
  'anon and authenticated cannot call busy_cache_state');
select ok(has_function_privilege('service_role',
    'calendar_private.busy_cache_state(uuid,uuid,timestamptz,timestamptz,integer,integer)', 'execute'),
  'the functions (service_role) can');

select * from finish();
rollback;
