-- The provider-neutral core (20261130000100_calendar_sync_neutral_core.sql): one active connection
-- per staff member (the partial unique index), the connection rules as SQL functions
-- (active_connection, connection_is_workable, workable_connection, count_due) and the status view
-- choosing by the same rule, the neutral column
-- names with the seed's google_* names readable, and the outbox keyed by provider. Runs with
-- `supabase test db` and pg_prove. One transaction, rolled back.
begin;
create extension if not exists pgtap with schema extensions;
set local search_path = public, extensions;

select plan(39);

-- Clinic A: alice (google, connected), bob (google, needs_reconnect), carol (google, connected but no
-- refresh token), dave (google, disconnected), erin (no connection). Clinic B: zoe (google, connected).
insert into auth.users (id, email) values
  ('a9000000-0000-4000-8000-000000000001', 'alice@a.test');
insert into public.tenants (id, name) values
  ('b9000000-0000-4000-8000-000000000001', 'Clinic A'),
  ('b9000000-0000-4000-8000-000000000002', 'Clinic B');
insert into public.staff (id, tenant_id, profile_id) values
  ('c9000000-0000-4000-8000-000000000001', 'b9000000-0000-4000-8000-000000000001',
   'a9000000-0000-4000-8000-000000000001'),
  ('c9000000-0000-4000-8000-000000000002', 'b9000000-0000-4000-8000-000000000001', null),
  ('c9000000-0000-4000-8000-000000000003', 'b9000000-0000-4000-8000-000000000001', null),
  ('c9000000-0000-4000-8000-000000000004', 'b9000000-0000-4000-8000-000000000001', null),
  ('c9000000-0000-4000-8000-000000000005', 'b9000000-0000-4000-8000-000000000001', null),
  ('c9000000-0000-4000-8000-000000000010', 'b9000000-0000-4000-8000-000000000002', null);
insert into public.staff_calendar_connections (tenant_id, staff_id, provider, refresh_token_encrypted, connection_status)
values
  ('b9000000-0000-4000-8000-000000000001', 'c9000000-0000-4000-8000-000000000001', 'google', 'v1.k1.x.y', 'connected'),
  ('b9000000-0000-4000-8000-000000000001', 'c9000000-0000-4000-8000-000000000002', 'google', 'v1.k1.x.y', 'needs_reconnect'),
  ('b9000000-0000-4000-8000-000000000001', 'c9000000-0000-4000-8000-000000000003', 'google', null, 'connected'),
  ('b9000000-0000-4000-8000-000000000001', 'c9000000-0000-4000-8000-000000000004', 'google', null, 'disconnected'),
  ('b9000000-0000-4000-8000-000000000002', 'c9000000-0000-4000-8000-000000000010', 'google', 'v1.k1.x.y', 'connected');

-- Structure ---------------------------------------------------------------------------------
select ok(
  (select i.indisunique and i.indpred is not null
     and pg_get_indexdef(i.indexrelid) like '%(staff_id) WHERE calendar_private.connection_is_active(connection_status)%'
   from pg_index i where i.indexrelid = 'public.staff_calendar_connections_one_active_key'::regclass),
  'a partial unique index on staff_id allows one active connection per staff member');
select has_column('public', 'calendar_sync_log', 'event_id', 'calendar_sync_log.event_id exists');
select has_column('public', 'calendar_sync_log', 'calendar_id', 'calendar_sync_log.calendar_id exists');
select is(
  (select array_agg(a.attname::text || '=' || pg_get_expr(d.adbin, d.adrelid) order by a.attname)
   from pg_attribute a join pg_attrdef d on d.adrelid = a.attrelid and d.adnum = a.attnum
   where a.attrelid = 'public.calendar_sync_log'::regclass and a.attgenerated = 's'),
  array['google_calendar_id=calendar_id', 'google_event_id=event_id'],
  'the seed''s google_event_id / google_calendar_id are stored generated copies of the neutral columns');
select col_is_unique('public', 'calendar_sync_log', array['appointment_key', 'staff_id', 'provider'],
  'the outbox identity is (appointment, staff, provider)');
select ok(
  not exists (
    select 1 from pg_constraint
    where conrelid = 'public.calendar_sync_log'::regclass and contype = 'u'
      and not (conkey @> array[(select attnum from pg_attribute
                                where attrelid = 'public.calendar_sync_log'::regclass and attname = 'provider')])),
  'no unique constraint of the outbox leaves the provider out');
select ok(
  (select bool_and(p.prolang = (select oid from pg_language where lanname = 'sql')
     and not p.prosecdef and p.proconfig is null and p.provolatile in ('i', 's'))
   from pg_proc p join pg_namespace n on n.oid = p.pronamespace
   where n.nspname = 'calendar_private'
     and p.proname in ('connection_is_active', 'active_connection', 'connection_is_workable', 'workable_connection')),
  'the connection rules are plain SQL functions the planner can inline into claims');
select ok(
  (select count(*) = 4 from pg_proc p join pg_namespace n on n.oid = p.pronamespace
   where n.nspname = 'calendar_private'
     and p.proname in ('apply_sync_changes', 'connections_sync_trigger', 'enqueue_staff_backfill', 'count_due')
     and (p.prosrc like '%calendar_private.active_connection(%'
       or p.prosrc like '%calendar_private.workable_connection(%'
       or p.prosrc like '%calendar_private.connection_is_%')
     and p.prosrc not like '%connection_status <> ''disconnected''%'),
  'triggers, backfill and the due count read connections through the rule functions');

-- One active connection per staff member -----------------------------------------------------
select throws_ok(
  $$insert into public.staff_calendar_connections (tenant_id, staff_id, provider, refresh_token_encrypted, connection_status)
    values ('b9000000-0000-4000-8000-000000000001', 'c9000000-0000-4000-8000-000000000001', 'microsoft', 'v1.k1.x.y', 'connected')$$,
  '23505', null, 'a second connected connection for a staff member is refused');
select throws_ok(
  $$insert into public.staff_calendar_connections (tenant_id, staff_id, provider, connection_status)
    values ('b9000000-0000-4000-8000-000000000001', 'c9000000-0000-4000-8000-000000000001', 'microsoft', 'needs_reconnect')$$,
  '23505', null, 'a needs_reconnect connection counts as active too');
select lives_ok(
  $$insert into public.staff_calendar_connections (tenant_id, staff_id, provider, connection_status)
    values ('b9000000-0000-4000-8000-000000000001', 'c9000000-0000-4000-8000-000000000001', 'microsoft', 'disconnected')$$,
  'a disconnected connection beside the active one is allowed');
select lives_ok(
  $$insert into public.staff_calendar_connections (tenant_id, staff_id, provider, refresh_token_encrypted, connection_status)
    values ('b9000000-0000-4000-8000-000000000001', 'c9000000-0000-4000-8000-000000000004', 'microsoft', 'v1.k1.x.y', 'connected')$$,
  'a staff member whose Google connection is disconnected may connect Microsoft');
select throws_ok(
  $$update public.staff_calendar_connections set connection_status = 'connected', refresh_token_encrypted = 'v1.k1.x.y'
    where staff_id = 'c9000000-0000-4000-8000-000000000004' and provider = 'google'$$,
  '23505', null, 'the old connection cannot come back while another one is active');

-- active_connection: tenant AND staff --------------------------------------------------------
select results_eq(
  $$select provider, connection_status from calendar_private.active_connection(
      'b9000000-0000-4000-8000-000000000001', 'c9000000-0000-4000-8000-000000000001')$$,
  $$values ('google'::text, 'connected'::text)$$,
  'active_connection returns the one active row, not the disconnected one beside it');
select is(
  (select connection_status from calendar_private.active_connection(
     'b9000000-0000-4000-8000-000000000001', 'c9000000-0000-4000-8000-000000000002')),
  'needs_reconnect', 'a needs_reconnect connection is the active one');
select is(
  (select provider from calendar_private.active_connection(
     'b9000000-0000-4000-8000-000000000001', 'c9000000-0000-4000-8000-000000000004')),
  'microsoft', 'after switching provider the new connection is the active one');
select is_empty(
  $$select 1 from calendar_private.active_connection(
      'b9000000-0000-4000-8000-000000000002', 'c9000000-0000-4000-8000-000000000001')$$,
  'a staff id asked for under another tenant finds nothing');
select is_empty(
  $$select 1 from calendar_private.active_connection(
      'b9000000-0000-4000-8000-000000000001', 'c9000000-0000-4000-8000-000000000005')$$,
  'no connection, no active connection');

-- workable -------------------------------------------------------------------------------------
select results_eq(
  $$select s.id, exists (select 1 from calendar_private.workable_connection(s.tenant_id, s.id))
    from public.staff s where s.id::text like 'c9%' order by s.id$$,
  $$values ('c9000000-0000-4000-8000-000000000001'::uuid, true),
           ('c9000000-0000-4000-8000-000000000002'::uuid, false),
           ('c9000000-0000-4000-8000-000000000003'::uuid, false),
           ('c9000000-0000-4000-8000-000000000004'::uuid, true),
           ('c9000000-0000-4000-8000-000000000005'::uuid, false),
           ('c9000000-0000-4000-8000-000000000010'::uuid, true)$$,
  'workable: connected with a refresh token; not needs_reconnect, not token-less, not disconnected, not none');
select is_empty(
  $$select 1 from calendar_private.workable_connection(
      'b9000000-0000-4000-8000-000000000001', 'c9000000-0000-4000-8000-000000000001', 'microsoft')$$,
  'a row of another provider than the active connection''s is not workable');
select isnt_empty(
  $$select 1 from calendar_private.workable_connection(
      'b9000000-0000-4000-8000-000000000001', 'c9000000-0000-4000-8000-000000000001', 'google')$$,
  'a row of the active connection''s provider is workable');
select is_empty(
  $$select 1 from calendar_private.workable_connection(
      'b9000000-0000-4000-8000-000000000001', 'c9000000-0000-4000-8000-000000000010')$$,
  'another tenant''s staff member is never workable under this tenant');
select ok(
  (select calendar_private.connection_is_workable(c) from public.staff_calendar_connections c
   where c.staff_id = 'c9000000-0000-4000-8000-000000000001' and c.provider = 'google')
  and not (select calendar_private.connection_is_workable(c) from public.staff_calendar_connections c
   where c.staff_id = 'c9000000-0000-4000-8000-000000000003'),
  'connection_is_workable answers for a connection row (the handlers read it as `workable`)');

-- Neutral names, seed names readable ----------------------------------------------------------
insert into public.appointments (id, tenant_id, staff_id, starts_at, ends_at) values
  ('e9000000-0000-4000-8000-000000000001', 'b9000000-0000-4000-8000-000000000001',
   'c9000000-0000-4000-8000-000000000001', now() + interval '1 day', now() + interval '1 day 1 hour');
select is(
  (select provider from public.calendar_sync_log where appointment_key = 'e9000000-0000-4000-8000-000000000001'),
  'google', 'the trigger queues on the provider of the staff member''s active connection');
update public.calendar_sync_log set event_id = 'ev-1', calendar_id = 'cal-1', sync_status = 'synced',
  desired_action = null, next_attempt_at = null, pending_since = null
  where appointment_key = 'e9000000-0000-4000-8000-000000000001';
select results_eq(
  $$select google_event_id, google_calendar_id from public.calendar_sync_log
    where appointment_key = 'e9000000-0000-4000-8000-000000000001'$$,
  $$values ('ev-1'::text, 'cal-1'::text)$$,
  'google_event_id / google_calendar_id read the neutral columns');
select throws_ok(
  $$update public.calendar_sync_log set google_event_id = 'other'
    where appointment_key = 'e9000000-0000-4000-8000-000000000001'$$,
  '428C9', null, 'the seed names are read-only: a stale writer fails loudly');
set local role authenticated;
set local request.jwt.claims = '{"sub":"a9000000-0000-4000-8000-000000000001","role":"authenticated"}';
select results_eq(
  $$select google_event_id, event_id from public.calendar_sync_log$$,
  $$values ('ev-1'::text, 'ev-1'::text)$$,
  'a staff member reads both names of their own rows through RLS');
reset role;
reset request.jwt.claims;

-- The outbox keyed by provider ----------------------------------------------------------------
select lives_ok(
  $$insert into public.calendar_sync_log (tenant_id, appointment_id, appointment_key, staff_id, provider,
      event_id, calendar_id, sync_status)
    values ('b9000000-0000-4000-8000-000000000001', 'e9000000-0000-4000-8000-000000000001',
      'e9000000-0000-4000-8000-000000000001', 'c9000000-0000-4000-8000-000000000001', 'microsoft',
      'ms-1', 'ms-cal', 'synced')$$,
  'one appointment and staff member may have a row per provider');
update public.staff_calendar_connections set selected_calendar_id = 'cal-2'
  where staff_id = 'c9000000-0000-4000-8000-000000000001' and provider = 'google';
select results_eq(
  $$select provider, sync_status, desired_action from public.calendar_sync_log
    where appointment_key = 'e9000000-0000-4000-8000-000000000001' order by provider$$,
  $$values ('google'::text, 'pending'::text, 'upsert'::text), ('microsoft', 'synced', null)$$,
  'choosing another calendar moves the events of that connection''s provider only');
update public.appointments set status = 'cancelled' where id = 'e9000000-0000-4000-8000-000000000001';
select results_eq(
  $$select provider, sync_status, desired_action from public.calendar_sync_log
    where appointment_key = 'e9000000-0000-4000-8000-000000000001' order by provider$$,
  $$values ('google'::text, 'pending'::text, 'delete'::text), ('microsoft', 'synced', null)$$,
  'a cancellation queues the delete on the active provider''s row; the other provider''s row waits');

-- count_due and the sweep: workable connections only ------------------------------------------
insert into public.appointments (id, tenant_id, staff_id, starts_at, ends_at) values
  ('e9000000-0000-4000-8000-000000000002', 'b9000000-0000-4000-8000-000000000001',
   'c9000000-0000-4000-8000-000000000002', now() + interval '1 day', now() + interval '1 day 1 hour'),
  ('e9000000-0000-4000-8000-000000000003', 'b9000000-0000-4000-8000-000000000001',
   'c9000000-0000-4000-8000-000000000003', now() + interval '1 day', now() + interval '1 day 1 hour'),
  ('e9000000-0000-4000-8000-000000000004', 'b9000000-0000-4000-8000-000000000001',
   'c9000000-0000-4000-8000-000000000005', now() + interval '1 day', now() + interval '1 day 1 hour');
insert into public.appointments (id, tenant_id, staff_id, starts_at, ends_at) values
  ('e9000000-0000-4000-8000-000000000010', 'b9000000-0000-4000-8000-000000000002',
   'c9000000-0000-4000-8000-000000000010', now() + interval '1 day', now() + interval '1 day 1 hour');
select results_eq(
  $$select staff_id, provider from public.calendar_sync_log where sync_status = 'pending' order by staff_id$$,
  $$values ('c9000000-0000-4000-8000-000000000001'::uuid, 'google'::text),
           ('c9000000-0000-4000-8000-000000000002'::uuid, 'google'::text),
           ('c9000000-0000-4000-8000-000000000003'::uuid, 'google'::text),
           ('c9000000-0000-4000-8000-000000000010'::uuid, 'google'::text)$$,
  'rows are queued for every active connection (parked ones included), none without one');
select is(calendar_private.count_due(), 2, 'count_due counts the rows of workable connections only');
select is(calendar_private.sweep_outbox(), 2, 'the sweep kicks for exactly those rows');
update public.calendar_sync_log set lease_owner = 'w1', lease_expires_at = now() + interval '1 minute'
  where staff_id = 'c9000000-0000-4000-8000-000000000010';
select is(calendar_private.count_due(), 1, 'a leased row is not due');

-- Backfill: the workable connection's provider, and its rows only -----------------------------
insert into public.appointments (id, tenant_id, staff_id, starts_at, ends_at, status) values
  ('e9000000-0000-4000-8000-000000000005', 'b9000000-0000-4000-8000-000000000001',
   'c9000000-0000-4000-8000-000000000004', now() + interval '1 day', now() + interval '1 day 1 hour', 'cancelled'),
  ('e9000000-0000-4000-8000-000000000006', 'b9000000-0000-4000-8000-000000000001',
   'c9000000-0000-4000-8000-000000000004', now() + interval '2 days', now() + interval '2 days 1 hour', 'scheduled');
insert into public.calendar_sync_log (tenant_id, appointment_id, appointment_key, staff_id, provider,
    event_id, calendar_id, sync_status)
values
  ('b9000000-0000-4000-8000-000000000001', 'e9000000-0000-4000-8000-000000000005',
   'e9000000-0000-4000-8000-000000000005', 'c9000000-0000-4000-8000-000000000004', 'google', 'g-5', 'primary', 'synced'),
  ('b9000000-0000-4000-8000-000000000001', 'e9000000-0000-4000-8000-000000000005',
   'e9000000-0000-4000-8000-000000000005', 'c9000000-0000-4000-8000-000000000004', 'microsoft', 'm-5', 'AAMk', 'synced');
select is(calendar_private.enqueue_staff_backfill('c9000000-0000-4000-8000-000000000004'), 2,
  'the backfill queues the upsert and the delete of the active provider');
select results_eq(
  $$select appointment_key, provider, sync_status, desired_action from public.calendar_sync_log
    where staff_id = 'c9000000-0000-4000-8000-000000000004' order by appointment_key, provider$$,
  $$values ('e9000000-0000-4000-8000-000000000005'::uuid, 'google'::text, 'synced'::text, null::text),
           ('e9000000-0000-4000-8000-000000000005'::uuid, 'microsoft'::text, 'pending'::text, 'delete'::text),
           ('e9000000-0000-4000-8000-000000000006'::uuid, 'microsoft'::text, 'pending'::text, 'upsert'::text)$$,
  'the old provider''s row is left for that provider (its grant is gone); the new provider''s rows are queued');
select is(calendar_private.enqueue_staff_backfill('c9000000-0000-4000-8000-000000000002'), 0,
  'no backfill for a connection that needs a reconnect');
select is(calendar_private.enqueue_staff_backfill('c9000000-0000-4000-8000-000000000003'), 0,
  'no backfill for a connection without a refresh token');

-- The status view shows the active connection by the same rule ------------------------------
-- bob's active connection needs a reconnect; a disconnected microsoft row of his, updated later,
-- must not hide it (20261201000200_calendar_sync_status_active_rule.sql).
insert into public.staff_calendar_connections (tenant_id, staff_id, provider, connection_status, updated_at)
values ('b9000000-0000-4000-8000-000000000001', 'c9000000-0000-4000-8000-000000000002', 'microsoft',
        'disconnected', now() + interval '1 hour');
select results_eq(
  $$select provider, connection_status from public.calendar_sync_status
    where staff_id = 'c9000000-0000-4000-8000-000000000002'$$,
  $$values ('google'::text, 'needs_reconnect'::text)$$,
  'calendar_sync_status shows the active connection (needs_reconnect counts), not a later disconnected one');

select * from finish();
rollback;
