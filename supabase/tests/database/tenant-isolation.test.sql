-- Tenant isolation and privileges (20261129000200_calendar_sync_tenant_isolation.sql), written as
-- attacks that fail: a tenant-A user names a tenant-B staff member on appointments, with and
-- without the composite foreign key; rows and connections written with a foreign tenant; the
-- backfill after B (re)connects; what tenant A can read afterwards; and what the API roles may do
-- to our tables. Runs with `supabase test db` and pg_prove. One transaction, rolled back.
begin;
create extension if not exists pgtap with schema extensions;
set local search_path = public, extensions;

select plan(33);

-- Clinic A: mallory (staff, the attacker) and an admin. Clinic B: bob (connected).
insert into auth.users (id, email) values
  ('a2000000-0000-4000-8000-000000000001', 'mallory@a.test'),
  ('a2000000-0000-4000-8000-000000000002', 'admin@a.test'),
  ('a2000000-0000-4000-8000-000000000003', 'bob@b.test');
insert into public.tenants (id, name) values
  ('b2000000-0000-4000-8000-000000000001', 'Clinic A'),
  ('b2000000-0000-4000-8000-000000000002', 'Clinic B');
insert into public.staff (id, tenant_id, profile_id, role) values
  ('c2000000-0000-4000-8000-000000000001', 'b2000000-0000-4000-8000-000000000001',
   'a2000000-0000-4000-8000-000000000001', 'staff'),
  ('c2000000-0000-4000-8000-000000000002', 'b2000000-0000-4000-8000-000000000001',
   'a2000000-0000-4000-8000-000000000002', 'admin'),
  ('c2000000-0000-4000-8000-000000000003', 'b2000000-0000-4000-8000-000000000002',
   'a2000000-0000-4000-8000-000000000003', 'staff');
insert into public.staff_calendar_connections
  (tenant_id, staff_id, refresh_token_encrypted, connection_status, selected_calendar_id)
values
  ('b2000000-0000-4000-8000-000000000002', 'c2000000-0000-4000-8000-000000000003', 'v1.k1.x.y', 'connected',
   'bob-private-calendar@b.test');

-- Host tables we created: recognised, and the composite foreign key refuses the attack ----------
select ok(calendar_private.host_tables_are_ours(),
  'the host tables this project created carry the marker (so their constraints and grants are ours)');
select has_unique('public', 'staff', 'staff (tenant_id, id) is unique, for the composite foreign key');
select fk_ok('public', 'appointments', array['tenant_id', 'staff_id'], 'public', 'staff', array['tenant_id', 'id'],
  'appointments (tenant_id, staff_id) references staff (tenant_id, id)');

set local role authenticated;
set local request.jwt.claims = '{"sub":"a2000000-0000-4000-8000-000000000001","role":"authenticated"}';
select throws_ok(
  $$insert into public.appointments (tenant_id, staff_id, starts_at, ends_at) values
    ('b2000000-0000-4000-8000-000000000001', 'c2000000-0000-4000-8000-000000000003',
     now() + interval '1 day', now() + interval '1 day 1 hour')$$,
  '23503', null,
  'attack: a tenant-A user inserting an appointment that names a tenant-B staff member is refused');
reset role;

-- The same attack where the app's tables have no such key (dropped here, inside this transaction) --
alter table public.appointments drop constraint appointments_tenant_id_staff_id_fkey;

set local role authenticated;
set local request.jwt.claims = '{"sub":"a2000000-0000-4000-8000-000000000001","role":"authenticated"}';
select lives_ok(
  $$insert into public.appointments (tenant_id, staff_id, starts_at, ends_at)
    select 'b2000000-0000-4000-8000-000000000001', 'c2000000-0000-4000-8000-000000000003',
      now() + (g || ' hours')::interval, now() + (g || ' hours')::interval + interval '30 minutes'
    from generate_series(1, 200) g$$,
  'without the key, the app''s RLS lets a tenant-A user insert 200 appointments naming a tenant-B staff member');
select lives_ok(
  $$update public.appointments set starts_at = starts_at + interval '1 minute', ends_at = ends_at + interval '1 minute'
    where staff_id = 'c2000000-0000-4000-8000-000000000003'$$,
  '... and move them all');
reset role;
select is((select count(*)::int from public.calendar_sync_log where staff_id = 'c2000000-0000-4000-8000-000000000003'),
  0, 'attack: the trigger queues nothing for the tenant-B staff member (so no kick, no provider call)');

select is(
  calendar_private.apply_sync_changes(array[row('b2000000-0000-4000-8000-000000000001',
    'e2000000-0000-4000-8000-000000000099', 'e2000000-0000-4000-8000-000000000099',
    'c2000000-0000-4000-8000-000000000003', 'upsert')::calendar_private.sync_change]),
  0, 'attack: an upsert naming another tenant''s staff member is dropped by the outbox itself');
select is(
  calendar_private.enqueue_appointment(
    (select id from public.appointments where staff_id = 'c2000000-0000-4000-8000-000000000003' limit 1)),
  0, 'attack: queuing one of those appointments by id (calendar-sync-appointment) queues nothing');

select is(calendar_private.enqueue_staff_backfill('c2000000-0000-4000-8000-000000000003'), 0,
  'attack: the backfill when the tenant-B staff member (re)connects skips tenant A''s appointments');
insert into public.appointments (id, tenant_id, staff_id, starts_at, ends_at) values
  ('e2000000-0000-4000-8000-000000000001', 'b2000000-0000-4000-8000-000000000002',
   'c2000000-0000-4000-8000-000000000003', now() + interval '2 days', now() + interval '2 days 1 hour');
select results_eq(
  $$select appointment_key, tenant_id from public.calendar_sync_log
    where staff_id = 'c2000000-0000-4000-8000-000000000003'$$,
  $$values ('e2000000-0000-4000-8000-000000000001'::uuid, 'b2000000-0000-4000-8000-000000000002'::uuid)$$,
  'tenant B''s own appointment is queued as before, under tenant B');
select is(calendar_private.enqueue_staff_backfill('c2000000-0000-4000-8000-000000000003'), 1,
  'the backfill queues exactly tenant B''s own appointment');

-- Moving an appointment to another tenant removes the event of the staff member left behind ------
update public.calendar_sync_log set sync_status = 'synced', desired_action = null, event_id = 'ev-b',
  calendar_id = 'bob-private-calendar@b.test', pending_since = null
  where appointment_key = 'e2000000-0000-4000-8000-000000000001';
update public.appointments set tenant_id = 'b2000000-0000-4000-8000-000000000001'
  where id = 'e2000000-0000-4000-8000-000000000001';
select results_eq(
  $$select tenant_id, sync_status, desired_action from public.calendar_sync_log
    where appointment_key = 'e2000000-0000-4000-8000-000000000001'$$,
  $$values ('b2000000-0000-4000-8000-000000000002'::uuid, 'pending'::text, 'delete'::text)$$,
  'an appointment moved to another tenant queues a delete on its staff member''s calendar, and the row stays in B');

-- Rows and connections always carry their staff member's tenant, whoever writes them -----------
select throws_ok(
  $$insert into public.calendar_sync_log (tenant_id, appointment_key, staff_id) values
    ('b2000000-0000-4000-8000-000000000001', gen_random_uuid(), 'c2000000-0000-4000-8000-000000000003')$$,
  '23503', null, 'attack: a sync row of tenant A for a tenant-B staff member is refused, even to the owner role');
select throws_ok(
  $$update public.calendar_sync_log set tenant_id = 'b2000000-0000-4000-8000-000000000001'
    where staff_id = 'c2000000-0000-4000-8000-000000000003'$$,
  '23503', null, 'attack: moving tenant B''s sync row into tenant A is refused');
select throws_ok(
  $$insert into public.staff_calendar_connections (tenant_id, staff_id, provider) values
    ('b2000000-0000-4000-8000-000000000001', 'c2000000-0000-4000-8000-000000000003', 'microsoft')$$,
  '23503', null, 'attack: a tenant-A connection for a tenant-B staff member is refused');

-- Nothing of tenant B's is readable by tenant A -----------------------------------------------
set local role authenticated;
set local request.jwt.claims = '{"sub":"a2000000-0000-4000-8000-000000000002","role":"authenticated"}';
select is((select count(*)::int from public.calendar_sync_status
  where staff_id = 'c2000000-0000-4000-8000-000000000003' or tenant_id = 'b2000000-0000-4000-8000-000000000002'),
  0, 'tenant A''s admin sees no status line of tenant B');
select is((select count(*)::int from public.calendar_sync_log
  where staff_id = 'c2000000-0000-4000-8000-000000000003' or calendar_id like '%b.test'),
  0, 'tenant A''s admin reads no sync row of tenant B (no calendar id)');
select is((select count(*)::int from public.staff_calendar_connections
  where staff_id = 'c2000000-0000-4000-8000-000000000003'),
  0, 'tenant A''s admin reads no connection of tenant B');
set local request.jwt.claims = '{"sub":"a2000000-0000-4000-8000-000000000001","role":"authenticated"}';
select is((select count(*)::int from public.calendar_sync_status), 0, 'the attacker has no status line at all');
select is((select count(*)::int from public.calendar_sync_log), 0, 'the attacker reads no sync row');
reset role;

-- Privileges: nothing for anon; no TRUNCATE / REFERENCES / TRIGGER for any API role --------------
create temporary table calendar_relations on commit drop as
  select c.oid, c.relname::text as relname from pg_class c join pg_namespace n on n.oid = c.relnamespace
  where n.nspname = 'public' and c.relkind in ('r', 'v', 'm', 'p')
    and (c.relname like 'calendar%' or c.relname = 'staff_calendar_connections');
select ok((select count(*) >= 4 from calendar_relations), 'the calendar tables and views are found');
select is(
  (select array_agg(relname order by relname) from calendar_relations
   where has_table_privilege('anon', oid, 'SELECT, INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER')
      or has_any_column_privilege('anon', oid, 'SELECT, INSERT, UPDATE, REFERENCES')),
  null, 'anon has no privilege on any calendar table or view');
select is(
  (select array_agg(relname order by relname) from calendar_relations
   where has_table_privilege('authenticated', oid, 'TRUNCATE, REFERENCES, TRIGGER')),
  null, 'authenticated has no TRUNCATE, REFERENCES or TRIGGER on any calendar table or view');
select is(
  (select array_agg(relname order by relname) from calendar_relations
   where has_table_privilege('service_role', oid, 'TRUNCATE, REFERENCES, TRIGGER')),
  null, 'service_role has no TRUNCATE, REFERENCES or TRIGGER on any calendar table or view');
select ok(not has_table_privilege('authenticated', 'public.staff_calendar_connections', 'INSERT, DELETE')
  and not has_table_privilege('authenticated', 'public.calendar_sync_log', 'INSERT, UPDATE, DELETE')
  and not has_any_column_privilege('authenticated', 'public.calendar_oauth_states', 'SELECT, INSERT, UPDATE')
  and not has_table_privilege('authenticated', 'public.calendar_sync_status', 'INSERT, UPDATE, DELETE'),
  'authenticated writes none of our tables or the view directly');
select is(
  (select array_agg(a.attname::text order by a.attname) from pg_attribute a
   where a.attrelid = 'public.staff_calendar_connections'::regclass and a.attnum > 0 and not a.attisdropped
     and has_column_privilege('authenticated', a.attrelid, a.attnum, 'UPDATE')
     and a.attname <> 'selected_calendar_id'),
  null, 'authenticated may update no connection column but the calendar choice');
select ok(not has_table_privilege('authenticated', 'calendar_private.event_ledger', 'SELECT')
  and not has_table_privilege('service_role', 'calendar_private.event_ledger', 'TRUNCATE, REFERENCES, TRIGGER'),
  'the event ledger is not readable by authenticated, and service_role cannot truncate it');

-- Our host tables: only what the app needs; anon nothing, no TRUNCATE / REFERENCES / TRIGGER -------
select is(
  (select array_agg(t order by t) from unnest(array['tenants', 'staff', 'appointments']) t
   where has_table_privilege('anon', 'public.' || t, 'SELECT, INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER')),
  null, 'anon has no privilege on the host tables we created');
select is(
  (select array_agg(t order by t) from unnest(array['tenants', 'staff', 'appointments']) t
   where has_table_privilege('authenticated', 'public.' || t, 'TRUNCATE, REFERENCES, TRIGGER')
      or has_table_privilege('service_role', 'public.' || t, 'TRUNCATE, REFERENCES, TRIGGER')),
  null, 'no API role may TRUNCATE, reference or attach triggers to the host tables we created');
select ok(has_table_privilege('authenticated', 'public.appointments', 'SELECT, INSERT, UPDATE, DELETE')
  and has_table_privilege('authenticated', 'public.staff', 'SELECT')
  and not has_table_privilege('authenticated', 'public.staff', 'INSERT, UPDATE, DELETE')
  and not has_table_privilege('authenticated', 'public.tenants', 'INSERT, UPDATE, DELETE'),
  'authenticated reads tenants and staff and manages appointments (under RLS), nothing more');
set local role authenticated;
set local request.jwt.claims = '{"sub":"a2000000-0000-4000-8000-000000000001","role":"authenticated"}';
select throws_ok($$truncate public.appointments$$, '42501', null,
  'attack: a signed-in user cannot TRUNCATE appointments (TRUNCATE ignores RLS)');
select throws_ok($$truncate public.calendar_sync_log$$, '42501', null,
  'attack: a signed-in user cannot TRUNCATE the sync log');
reset role;

select * from finish();
rollback;
