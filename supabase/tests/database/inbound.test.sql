-- Inbound sync tables (20261206100000_calendar_sync_inbound.sql): RLS per role the way PostgREST
-- switches roles (`set local role` plus `request.jwt.claims`), tenant isolation guards, no secret
-- column readable by anon or authenticated, one live channel per calendar, the webhook recorders,
-- and the outbox claim never taking a channel job. One transaction, rolled back.
begin;
create extension if not exists pgtap with schema extensions;
set local search_path = public, extensions;

select plan(47);

-- Clinic A: alice (Google), carol (Microsoft), an admin. Clinic B: bob (Google).
insert into auth.users (id, email) values
  ('a6000000-0000-4000-8000-000000000001', 'alice@a.test'),
  ('a6000000-0000-4000-8000-000000000002', 'carol@a.test'),
  ('a6000000-0000-4000-8000-000000000003', 'admin@a.test'),
  ('a6000000-0000-4000-8000-000000000004', 'bob@b.test');
insert into public.tenants (id, name) values
  ('b6000000-0000-4000-8000-000000000001', 'Clinic A'),
  ('b6000000-0000-4000-8000-000000000002', 'Clinic B');
insert into public.staff (id, tenant_id, profile_id, role) values
  ('c6000000-0000-4000-8000-000000000001', 'b6000000-0000-4000-8000-000000000001',
   'a6000000-0000-4000-8000-000000000001', 'staff'),
  ('c6000000-0000-4000-8000-000000000002', 'b6000000-0000-4000-8000-000000000001',
   'a6000000-0000-4000-8000-000000000002', 'staff'),
  ('c6000000-0000-4000-8000-000000000003', 'b6000000-0000-4000-8000-000000000001',
   'a6000000-0000-4000-8000-000000000003', 'admin'),
  ('c6000000-0000-4000-8000-000000000004', 'b6000000-0000-4000-8000-000000000002',
   'a6000000-0000-4000-8000-000000000004', 'staff');
insert into public.staff_calendar_connections (id, tenant_id, staff_id, provider, refresh_token_encrypted) values
  ('d6000000-0000-4000-8000-000000000001', 'b6000000-0000-4000-8000-000000000001',
   'c6000000-0000-4000-8000-000000000001', 'google', 'v1.k1.iv.a'),
  ('d6000000-0000-4000-8000-000000000002', 'b6000000-0000-4000-8000-000000000001',
   'c6000000-0000-4000-8000-000000000002', 'microsoft', 'v1.k1.iv.c'),
  ('d6000000-0000-4000-8000-000000000004', 'b6000000-0000-4000-8000-000000000002',
   'c6000000-0000-4000-8000-000000000004', 'google', 'v1.k1.iv.b');
insert into public.appointments (id, tenant_id, staff_id, starts_at, ends_at) values
  ('e6000000-0000-4000-8000-000000000001', 'b6000000-0000-4000-8000-000000000001',
   'c6000000-0000-4000-8000-000000000001', now() + interval '1 day', now() + interval '1 day 1 hour'),
  ('e6000000-0000-4000-8000-000000000004', 'b6000000-0000-4000-8000-000000000002',
   'c6000000-0000-4000-8000-000000000004', now() + interval '1 day', now() + interval '1 day 1 hour');
insert into public.calendar_channels
  (id, tenant_id, staff_id, connection_id, provider, calendar_id, provider_channel_id, resource_id, secret_hash,
   sync_cursor, sync_stage)
values
  ('f6000000-0000-4000-8000-000000000001', 'b6000000-0000-4000-8000-000000000001',
   'c6000000-0000-4000-8000-000000000001', 'd6000000-0000-4000-8000-000000000001', 'google', 'primary',
   'alice-channel', 'alice-resource', sha256('alice-token'), 'alice-sync-token', 'incremental'),
  ('f6000000-0000-4000-8000-000000000002', 'b6000000-0000-4000-8000-000000000001',
   'c6000000-0000-4000-8000-000000000002', 'd6000000-0000-4000-8000-000000000002', 'microsoft', 'default',
   'carol-subscription', 'me/calendars/default/events', sha256('carol-state'), 'carol-delta-link', 'incremental'),
  ('f6000000-0000-4000-8000-000000000004', 'b6000000-0000-4000-8000-000000000002',
   'c6000000-0000-4000-8000-000000000004', 'd6000000-0000-4000-8000-000000000004', 'google', 'primary',
   'bob-channel', 'bob-resource', sha256('bob-token'), 'bob-sync-token', 'incremental');
insert into public.calendar_busy_blocks (tenant_id, staff_id, connection_id, event_key, starts_at, ends_at) values
  ('b6000000-0000-4000-8000-000000000001', 'c6000000-0000-4000-8000-000000000001',
   'd6000000-0000-4000-8000-000000000001', sha256('dentist'), now() + interval '2 days',
   now() + interval '2 days 1 hour'),
  ('b6000000-0000-4000-8000-000000000001', 'c6000000-0000-4000-8000-000000000002',
   'd6000000-0000-4000-8000-000000000002', sha256('gym'), now() + interval '2 days',
   now() + interval '2 days 1 hour'),
  ('b6000000-0000-4000-8000-000000000002', 'c6000000-0000-4000-8000-000000000004',
   'd6000000-0000-4000-8000-000000000004', sha256('school run'), now() + interval '2 days',
   now() + interval '2 days 1 hour');
insert into public.calendar_conflicts (tenant_id, staff_id, appointment_id, kind, details) values
  ('b6000000-0000-4000-8000-000000000001', 'c6000000-0000-4000-8000-000000000001',
   'e6000000-0000-4000-8000-000000000001', 'overlap', '{"provider":"google"}'),
  ('b6000000-0000-4000-8000-000000000002', 'c6000000-0000-4000-8000-000000000004',
   'e6000000-0000-4000-8000-000000000004', 'external_edit_restored', '{"provider":"google","fields":["start"]}');

-- Structure and privileges -------------------------------------------------------------------
select ok((select bool_and(relrowsecurity) from pg_class where oid in (
    'public.calendar_channels'::regclass, 'public.calendar_busy_blocks'::regclass,
    'public.calendar_conflicts'::regclass, 'public.calendar_channel_jobs'::regclass)),
  'RLS is enabled on the four inbound tables');
select ok(not exists (
    select 1 from unnest(array['calendar_channels', 'calendar_busy_blocks', 'calendar_conflicts',
      'calendar_channel_jobs']) t,
      unnest(array['select', 'insert', 'update', 'delete', 'truncate', 'references', 'trigger']) p
    where has_table_privilege('anon', 'public.' || t, p)),
  'anon has no privilege on any inbound table');
select ok(not exists (
    select 1 from pg_attribute a
    where a.attrelid in ('public.calendar_channels'::regclass, 'public.calendar_channel_jobs'::regclass)
      and a.attnum > 0 and not a.attisdropped
      and (has_column_privilege('authenticated', a.attrelid, a.attname, 'select')
        or has_column_privilege('anon', a.attrelid, a.attname, 'select'))),
  'no column of channels or channel jobs (secret digest, cursors, provider ids) is readable by an API role');
select ok(not has_column_privilege('authenticated', 'public.calendar_channels', 'secret_hash', 'select')
    and not has_column_privilege('authenticated', 'public.calendar_channels', 'sync_cursor', 'select')
    and not has_column_privilege('authenticated', 'public.calendar_channels', 'page_cursor', 'select'),
  'authenticated cannot select secret_hash, sync_cursor or page_cursor');
select ok(not exists (
    select 1 from unnest(array['calendar_busy_blocks', 'calendar_conflicts']) t,
      unnest(array['insert', 'update', 'delete', 'truncate', 'references', 'trigger']) p
    where has_table_privilege('authenticated', 'public.' || t, p)),
  'authenticated may only read busy blocks and conflicts');
select columns_are('public', 'calendar_busy_blocks',
  array['tenant_id', 'staff_id', 'connection_id', 'event_key', 'starts_at', 'ends_at', 'all_day', 'seen_at', 'ours'],
  'the busy cache holds times and a digest of the event id (and when sync saw it, whether it is ours), nothing else');
select ok(not exists (
    select 1 from unnest(array['record_google_notification(text,bytea,text,text,bigint)',
      'record_microsoft_notifications(text[],bytea[],text[])', 'request_channel_job(uuid,text,integer)']) f,
      unnest(array['anon', 'authenticated']) r
    where has_function_privilege(r, 'calendar_private.' || f, 'execute')),
  'the webhook recorders and the job request are the functions'' (service_role) only');
select ok(
  not exists (select 1 from pg_publication where pubname = 'supabase_realtime')
    or exists (select 1 from pg_publication_tables where pubname = 'supabase_realtime'
      and schemaname = 'public' and tablename = 'calendar_conflicts'),
  'calendar_conflicts is in the supabase_realtime publication wherever the publication exists');

-- Alice, a clinician of clinic A -------------------------------------------------------------
set local role authenticated;
set local request.jwt.claims = '{"sub":"a6000000-0000-4000-8000-000000000001","role":"authenticated"}';
select results_eq($$select staff_id from public.calendar_busy_blocks$$,
  $$values ('c6000000-0000-4000-8000-000000000001'::uuid)$$,
  'a clinician reads her own busy blocks only');
select results_eq($$select kind from public.calendar_conflicts$$, $$values ('overlap')$$,
  'a clinician reads her own conflicts only');
select throws_ok($$select id from public.calendar_channels$$, '42501', null,
  'a clinician cannot read channels, not even her own');
select throws_ok($$select secret_hash from public.calendar_channels$$, '42501', null,
  'a clinician cannot read a channel secret digest');
select throws_ok($$select sync_cursor from public.calendar_channels$$, '42501', null,
  'a clinician cannot read a sync cursor');
select throws_ok($$select * from public.calendar_channel_jobs$$, '42501', null,
  'a clinician cannot read channel jobs');
select throws_ok(
  $$insert into public.calendar_busy_blocks (tenant_id, staff_id, connection_id, event_key, starts_at, ends_at)
    values ('b6000000-0000-4000-8000-000000000001', 'c6000000-0000-4000-8000-000000000001',
      'd6000000-0000-4000-8000-000000000001', sha256('x'), now(), now() + interval '1 hour')$$,
  '42501', null, 'a clinician cannot write busy blocks');
select throws_ok($$update public.calendar_conflicts set resolved_at = now()$$, '42501', null,
  'a clinician cannot resolve conflicts through the API');
select throws_ok($$delete from public.calendar_busy_blocks$$, '42501', null,
  'a clinician cannot delete busy blocks');
select throws_ok(
  $$select calendar_private.record_google_notification('alice-channel', sha256('alice-token'), 'alice-resource',
    'exists', 99)$$,
  '42501', null, 'a clinician cannot call the webhook recorder');

-- The admin of clinic A: the tenant's rows, nothing of clinic B ---------------------------------
set local request.jwt.claims = '{"sub":"a6000000-0000-4000-8000-000000000003","role":"authenticated"}';
select is((select count(*)::int from public.calendar_busy_blocks), 2, 'a tenant admin reads the tenant''s busy blocks');
select is((select count(*)::int from public.calendar_busy_blocks
  where tenant_id = 'b6000000-0000-4000-8000-000000000002'), 0, 'a tenant admin reads no other tenant''s busy blocks');
select results_eq($$select kind from public.calendar_conflicts$$, $$values ('overlap')$$,
  'a tenant admin reads the tenant''s conflicts and none of another tenant');

-- Bob, clinic B --------------------------------------------------------------------------------
set local request.jwt.claims = '{"sub":"a6000000-0000-4000-8000-000000000004","role":"authenticated"}';
select is((select count(*)::int from public.calendar_busy_blocks
  where tenant_id = 'b6000000-0000-4000-8000-000000000001'), 0, 'clinic A''s busy blocks are invisible to clinic B');
select is((select count(*)::int from public.calendar_conflicts
  where tenant_id = 'b6000000-0000-4000-8000-000000000001'), 0, 'clinic A''s conflicts are invisible to clinic B');

-- anon -------------------------------------------------------------------------------------------
set local role anon;
set local request.jwt.claims = '{"role":"anon"}';
select throws_ok($$select * from public.calendar_busy_blocks$$, '42501', null, 'anon cannot read busy blocks');
select throws_ok($$select * from public.calendar_conflicts$$, '42501', null, 'anon cannot read conflicts');
select throws_ok($$select provider_channel_id from public.calendar_channels$$, '42501', null,
  'anon cannot read channels');
reset role;

-- Tenant isolation guards, whoever writes -------------------------------------------------------
select throws_ok(
  $$insert into public.calendar_channels (tenant_id, staff_id, connection_id, provider, calendar_id, secret_hash)
    values ('b6000000-0000-4000-8000-000000000001', 'c6000000-0000-4000-8000-000000000001',
      'd6000000-0000-4000-8000-000000000004', 'google', 'team', sha256('t'))$$,
  '23503', null, 'a channel on another tenant''s connection is refused');
select throws_ok(
  $$insert into public.calendar_channels (tenant_id, staff_id, connection_id, provider, calendar_id, secret_hash)
    values ('b6000000-0000-4000-8000-000000000001', 'c6000000-0000-4000-8000-000000000001',
      'd6000000-0000-4000-8000-000000000001', 'microsoft', 'team', sha256('t'))$$,
  '23503', null, 'a channel of another provider than its connection is refused');
select throws_ok(
  $$insert into public.calendar_busy_blocks (tenant_id, staff_id, connection_id, event_key, starts_at, ends_at)
    values ('b6000000-0000-4000-8000-000000000001', 'c6000000-0000-4000-8000-000000000004',
      'd6000000-0000-4000-8000-000000000004', sha256('y'), now(), now() + interval '1 hour')$$,
  '23503', null, 'a busy block of another tenant''s staff member is refused');
select throws_ok(
  $$insert into public.calendar_conflicts (tenant_id, staff_id, appointment_id, kind)
    values ('b6000000-0000-4000-8000-000000000001', 'c6000000-0000-4000-8000-000000000001',
      'e6000000-0000-4000-8000-000000000004', 'overlap')$$,
  '23503', null, 'a conflict naming another tenant''s appointment is refused');
select throws_ok(
  $$insert into public.calendar_channel_jobs (tenant_id, staff_id, channel_id, kind)
    values ('b6000000-0000-4000-8000-000000000001', 'c6000000-0000-4000-8000-000000000001',
      'f6000000-0000-4000-8000-000000000004', 'sync')$$,
  '23503', null, 'a job for another tenant''s channel is refused');
select throws_ok(
  $$insert into public.calendar_conflicts (tenant_id, staff_id, appointment_id, kind, details)
    values ('b6000000-0000-4000-8000-000000000001', 'c6000000-0000-4000-8000-000000000001',
      'e6000000-0000-4000-8000-000000000001', 'external_edit_reported', '["not an object"]')$$,
  '23514', null, 'conflict details are a JSON object');

-- One live channel per (connection, calendar) ---------------------------------------------------
select throws_ok(
  $$insert into public.calendar_channels (tenant_id, staff_id, connection_id, provider, calendar_id, secret_hash)
    values ('b6000000-0000-4000-8000-000000000001', 'c6000000-0000-4000-8000-000000000001',
      'd6000000-0000-4000-8000-000000000001', 'google', 'primary', sha256('second'))$$,
  '23505', null, 'a second live channel on the same calendar is refused');
select lives_ok(
  $$insert into public.calendar_channels (tenant_id, staff_id, connection_id, provider, calendar_id, secret_hash,
      sync_stage, stopped_at)
    values ('b6000000-0000-4000-8000-000000000001', 'c6000000-0000-4000-8000-000000000001',
      'd6000000-0000-4000-8000-000000000001', 'google', 'primary', sha256('old'), 'stopped', now())$$,
  'stopped channels of the same calendar are history and may be many');
select lives_ok(
  $$insert into public.calendar_channels (tenant_id, staff_id, connection_id, provider, calendar_id, secret_hash)
    values ('b6000000-0000-4000-8000-000000000001', 'c6000000-0000-4000-8000-000000000001',
      'd6000000-0000-4000-8000-000000000001', 'google', 'team@group.calendar.google.com', sha256('team'))$$,
  'another calendar of the same connection may have its own live channel');

-- The recorders --------------------------------------------------------------------------------
select ok(calendar_private.digests_equal(sha256('a'), sha256('a'))
    and not calendar_private.digests_equal(sha256('a'), sha256('b'))
    and not calendar_private.digests_equal(sha256('a'), null)
    and not calendar_private.digests_equal(sha256('a'), substring(sha256('a') from 1 for 31)),
  'digests_equal: equal digests only; null and a shorter value are unequal');
select is(
  array[
    calendar_private.record_google_notification('alice-channel', sha256('wrong'), 'alice-resource', 'exists', 5),
    calendar_private.record_google_notification('no-such-channel', sha256('alice-token'), 'alice-resource', 'exists', 5),
    calendar_private.record_google_notification('alice-channel', sha256('alice-token'), 'bob-resource', 'exists', 5),
    calendar_private.record_google_notification('bob-channel', sha256('alice-token'), 'bob-resource', 'exists', 5),
    calendar_private.record_google_notification('alice-channel', sha256('alice-token'), 'alice-resource', 'sync', 1)],
  array['forged', 'unknown', 'forged', 'forged', 'acknowledged'],
  'Google: a wrong token, an unknown id, another resource, another tenant''s channel, a sync message');
select is((select count(*)::int from public.calendar_channel_jobs), 0, '... and none of them queued a job');
select is(
  (select array_agg(calendar_private.record_google_notification('alice-channel', sha256('alice-token'),
     'alice-resource', 'exists', n) order by o)
   from unnest(array[10, 10, 7, 12]) with ordinality as m(n, o)),
  array['sync_requested', 'replayed', 'replayed', 'sync_requested'],
  'Google: a repeated or older message number is a replay');
select results_eq(
  $$select c.last_message_number, j.kind, j.status, j.request_count
    from public.calendar_channels c join public.calendar_channel_jobs j on j.channel_id = c.id
    where c.id = 'f6000000-0000-4000-8000-000000000001'$$,
  $$values (12::bigint, 'sync', 'pending', 2::bigint)$$,
  'the highest number is kept and the two new messages share one pending sync job');
select is(
  (select count(*)::int from generate_series(13, 1012) n
   where calendar_private.record_google_notification('alice-channel', sha256('alice-token'), 'alice-resource',
     'exists', n) = 'sync_requested'),
  1000, 'a storm of 1,000 messages is recorded ...');
select results_eq(
  $$select count(*)::int, sum(request_count)::int from public.calendar_channel_jobs
    where channel_id = 'f6000000-0000-4000-8000-000000000001' and status = 'pending'$$,
  $$values (1, 1002)$$,
  '... as one pending sync job that counts every request');
select results_eq(
  $$select ordinal, outcome from calendar_private.record_microsoft_notifications(
      array['carol-subscription', 'carol-subscription', 'nobody', 'carol-subscription'],
      array[sha256('carol-state'), sha256('forged'), sha256('carol-state'), sha256('carol-state')],
      array[null, null, null, 'missed'])$$,
  $$values (1, 'accepted'), (2, 'forged'), (3, 'unknown'), (4, 'accepted')$$,
  'Microsoft: each entry of a batch is judged on its own');
select results_eq(
  $$select j.request_count, c.missed_at is not null, c.reauthorization_required_at is null
    from public.calendar_channels c join public.calendar_channel_jobs j on j.channel_id = c.id
    where c.id = 'f6000000-0000-4000-8000-000000000002'$$,
  $$values (2::bigint, true, true)$$,
  'Microsoft: the accepted entries request one sync job; the lifecycle event is recorded on the channel');

-- A done job comes back pending on the next request; a backoff is kept while pending -------------
update public.calendar_channel_jobs set status = 'done', next_attempt_at = null
where channel_id = 'f6000000-0000-4000-8000-000000000002';
do $$ begin perform calendar_private.request_channel_job('f6000000-0000-4000-8000-000000000002', 'sync'); end $$;
update public.calendar_channel_jobs set next_attempt_at = now() + interval '1 hour', retry_count = 3
where channel_id = 'f6000000-0000-4000-8000-000000000002';
do $$ begin perform calendar_private.request_channel_job('f6000000-0000-4000-8000-000000000002', 'sync'); end $$;
select results_eq(
  $$select status, request_count, retry_count, next_attempt_at > now() from public.calendar_channel_jobs
    where channel_id = 'f6000000-0000-4000-8000-000000000002'$$,
  $$values ('pending', 2::bigint, 3, true)$$,
  'a done job is pending again on request; a pending job keeps its backoff and retry count');

-- The outbox's claim never takes a channel job ---------------------------------------------------
update public.calendar_channel_jobs set next_attempt_at = now() - interval '1 minute';
set local role service_role;
select results_eq(
  $$select count(*) > 0, bool_and(c.id in (select l.id from public.calendar_sync_log l)),
      bool_or(c.id in (select j.id from public.calendar_channel_jobs j))
    from calendar_private.claim_due_rows(1000) as c(id)$$,
  $$values (true, true, false)$$,
  'calendar_private.claim_due_rows claims the due outbox rows (the appointments'' upserts) and no channel job');
reset role;
select ok((select count(*) from public.calendar_channel_jobs where status = 'pending' and next_attempt_at <= now()) = 2,
  '(the two channel jobs were due and unleased while it ran)');

select * from finish();
rollback;
