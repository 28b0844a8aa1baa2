-- Channel jobs and the channel life cycle's SQL (20261206400000_calendar_sync_channel_jobs.sql): requests
-- that report whether they made a job pending, the claim (due, unleased, workable connection only,
-- excluded staff skipped, oldest first), the due count, open_channel / retire_channel, renewals planned
-- near expiry, the standby stage, and privileges. One transaction, rolled back.
begin;
create extension if not exists pgtap with schema extensions;
set local search_path = public, extensions;

select plan(27);

-- Clinic A: alice (Google, connected), dave (Microsoft, needs_reconnect).
insert into auth.users (id, email) values
  ('a7000000-0000-4000-8000-000000000001', 'alice@a.test'),
  ('a7000000-0000-4000-8000-000000000002', 'dave@a.test');
insert into public.tenants (id, name) values ('b7000000-0000-4000-8000-000000000001', 'Clinic A');
insert into public.staff (id, tenant_id, profile_id, role) values
  ('c7000000-0000-4000-8000-000000000001', 'b7000000-0000-4000-8000-000000000001',
   'a7000000-0000-4000-8000-000000000001', 'staff'),
  ('c7000000-0000-4000-8000-000000000002', 'b7000000-0000-4000-8000-000000000001',
   'a7000000-0000-4000-8000-000000000002', 'staff');
insert into public.staff_calendar_connections
  (id, tenant_id, staff_id, provider, refresh_token_encrypted, connection_status) values
  ('d7000000-0000-4000-8000-000000000001', 'b7000000-0000-4000-8000-000000000001',
   'c7000000-0000-4000-8000-000000000001', 'google', 'v1.k1.iv.a', 'connected'),
  ('d7000000-0000-4000-8000-000000000002', 'b7000000-0000-4000-8000-000000000001',
   'c7000000-0000-4000-8000-000000000002', 'microsoft', 'v1.k1.iv.d', 'needs_reconnect');
insert into public.calendar_channels
  (id, tenant_id, staff_id, connection_id, provider, calendar_id, provider_channel_id, secret_hash, sync_stage,
   expires_at)
values
  ('f7000000-0000-4000-8000-000000000002', 'b7000000-0000-4000-8000-000000000001',
   'c7000000-0000-4000-8000-000000000002', 'd7000000-0000-4000-8000-000000000002', 'microsoft', 'primary',
   'dave-subscription', sha256('dave'), 'incremental', now() + interval '1 hour');

-- open_channel ---------------------------------------------------------------------------------
select isnt(calendar_private.open_channel('d7000000-0000-4000-8000-000000000001', false), null,
  'open_channel opens a channel on a workable connection without one');
select results_eq(
  $$select calendar_id, sync_stage, provider_channel_id from public.calendar_channels
    where connection_id = 'd7000000-0000-4000-8000-000000000001'$$,
  $$values ('primary'::text, 'pending'::text, null::text)$$,
  'the new channel is pending on the selected calendar, with no provider id yet');
select results_eq(
  $$select j.kind, j.status from public.calendar_channel_jobs j join public.calendar_channels ch on ch.id = j.channel_id
    where ch.connection_id = 'd7000000-0000-4000-8000-000000000001'$$,
  $$values ('create'::text, 'pending'::text)$$,
  'and its create job is pending');
select is(calendar_private.open_channel('d7000000-0000-4000-8000-000000000001', false), null,
  'a second call opens nothing: the calendar has its live channel');
select is(calendar_private.open_channel('d7000000-0000-4000-8000-000000000002', false), null,
  'a connection that needs a reconnect gets no channel');

-- The claim --------------------------------------------------------------------------------------
create temp table alice_channel as
  select id from public.calendar_channels where connection_id = 'd7000000-0000-4000-8000-000000000001';
select is(calendar_private.count_due_channel_jobs(), 1, 'one job is due');
select ok(calendar_private.request_channel_job('f7000000-0000-4000-8000-000000000002', 'renew'),
  'a first request makes the job pending (and kicks)');
select ok(not calendar_private.request_channel_job('f7000000-0000-4000-8000-000000000002', 'renew'),
  'a request for a pending job coalesces (no kick)');
select is((select request_count from public.calendar_channel_jobs
    where channel_id = 'f7000000-0000-4000-8000-000000000002' and kind = 'renew'), 2::bigint,
  'the coalesced request is counted');
select is(calendar_private.count_due_channel_jobs(), 1,
  'a job of a connection that needs a reconnect is not due for anyone');
select results_eq($$select * from calendar_private.claim_channel_jobs(10)$$,
  $$select j.id from public.calendar_channel_jobs j where j.channel_id = (select id from alice_channel)$$,
  'the claim takes the workable connection''s job only');
select is((select count(*)::int from calendar_private.claim_channel_jobs(10, array['c7000000-0000-4000-8000-000000000001'::uuid])),
  0, 'an excluded staff member''s jobs are skipped');
update public.calendar_channel_jobs set lease_owner = 'w1', lease_expires_at = now() + interval '1 minute'
  where channel_id = (select id from alice_channel);
select is((select count(*)::int from calendar_private.claim_channel_jobs(10)), 0, 'a leased job is not claimed');
update public.calendar_channel_jobs set lease_expires_at = now() - interval '1 second'
  where channel_id = (select id from alice_channel);
select is((select count(*)::int from calendar_private.claim_channel_jobs(10)), 1, 'an expired lease is claimable again');
update public.calendar_channel_jobs set next_attempt_at = now() + interval '1 minute'
  where channel_id = (select id from alice_channel);
select is((select count(*)::int from calendar_private.claim_channel_jobs(10)), 0, 'a job in backoff is not due');
update public.calendar_channel_jobs set status = 'done', next_attempt_at = null
  where channel_id = (select id from alice_channel);
select ok(calendar_private.request_channel_job((select id from alice_channel), 'create'),
  'a request revives a done job (and kicks)');
select is((select retry_count from public.calendar_channel_jobs
    where channel_id = (select id from alice_channel) and kind = 'create'), 0, 'with a fresh retry count');
select ok(not exists (select 1 from calendar_private.claim_due_rows(100) id
    where id in (select j.id from public.calendar_channel_jobs j)),
  'the outbox claim still never takes a channel job');

-- Renewals ---------------------------------------------------------------------------------------
update public.calendar_channels set provider_channel_id = 'alice-channel', sync_stage = 'incremental',
  expires_at = now() + interval '3 days' where id = (select id from alice_channel);
select is(calendar_private.plan_channel_renewals(), 0,
  'nothing to renew: alice''s channel has days left, dave''s connection needs a reconnect');
update public.calendar_channels set expires_at = now() + interval '2 hours' where id = (select id from alice_channel);
select is(calendar_private.plan_channel_renewals(), 1, 'a channel within a day of its expiry gets a renew job');
select is(calendar_private.plan_channel_renewals(), 0, 'and only one');

-- Standby, reselection, replacement ---------------------------------------------------------------
select lives_ok(
  $$insert into public.calendar_channels (tenant_id, staff_id, connection_id, provider, calendar_id,
      provider_channel_id, secret_hash, sync_stage)
    values ('b7000000-0000-4000-8000-000000000001', 'c7000000-0000-4000-8000-000000000001',
      'd7000000-0000-4000-8000-000000000001', 'google', 'primary', 'alice-standby', sha256('s'), 'standby')$$,
  'a standby replacement is not live: it sits beside the live channel of its calendar');
select throws_ok(
  $$insert into public.calendar_channels (tenant_id, staff_id, connection_id, provider, calendar_id, secret_hash)
    values ('b7000000-0000-4000-8000-000000000001', 'c7000000-0000-4000-8000-000000000001',
      'd7000000-0000-4000-8000-000000000001', 'google', 'primary', sha256('t'))$$,
  '23505', null, 'a second live channel on one calendar is refused');
update public.staff_calendar_connections set selected_calendar_id = 'work@group.calendar.google.com'
  where id = 'd7000000-0000-4000-8000-000000000001';
select isnt(calendar_private.open_channel('d7000000-0000-4000-8000-000000000001', false), null,
  'another calendar chosen: a channel opens there');
select results_eq(
  $$select sync_stage, (select status from public.calendar_channel_jobs j where j.channel_id = ch.id and j.kind = 'stop')
    from public.calendar_channels ch where id = (select id from alice_channel)$$,
  $$values ('stopped'::text, 'pending'::text)$$,
  'the old calendar''s channel is stopped at once and its provider stop queued');
select isnt(calendar_private.open_channel('d7000000-0000-4000-8000-000000000001', true), null,
  'replace: a fresh channel even though one is live');
select is((select count(*)::int from public.calendar_channels
    where connection_id = 'd7000000-0000-4000-8000-000000000001' and calendar_private.channel_is_live(sync_stage)), 1,
  'one live channel remains');

rollback;
