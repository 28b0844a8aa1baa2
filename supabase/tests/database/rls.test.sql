-- Row level security and grants on the calendar tables, checked the way PostgREST runs queries:
-- `set local role authenticated` plus `request.jwt.claims`. Runs with `supabase test db` and with
-- pg_prove in CI. Everything happens in one transaction that is rolled back.
begin;
create extension if not exists pgtap with schema extensions;
set local search_path = public, extensions;

select plan(23);

-- Two clinics, a clinician in each, an admin in the first, and a connection per clinician.
insert into auth.users (id, email) values
  ('a0000000-0000-4000-8000-000000000001', 'alice@clinic-a.test'),
  ('a0000000-0000-4000-8000-000000000002', 'bob@clinic-b.test'),
  ('a0000000-0000-4000-8000-000000000003', 'admin@clinic-a.test'),
  ('a0000000-0000-4000-8000-000000000004', 'carol@clinic-a.test');
insert into public.tenants (id, name) values
  ('b0000000-0000-4000-8000-000000000001', 'Clinic A'),
  ('b0000000-0000-4000-8000-000000000002', 'Clinic B');
insert into public.staff (id, tenant_id, profile_id, email, role) values
  ('c0000000-0000-4000-8000-000000000001', 'b0000000-0000-4000-8000-000000000001',
   'a0000000-0000-4000-8000-000000000001', 'alice@clinic-a.test', 'staff'),
  ('c0000000-0000-4000-8000-000000000002', 'b0000000-0000-4000-8000-000000000002',
   'a0000000-0000-4000-8000-000000000002', 'bob@clinic-b.test', 'staff'),
  ('c0000000-0000-4000-8000-000000000003', 'b0000000-0000-4000-8000-000000000001',
   'a0000000-0000-4000-8000-000000000003', 'admin@clinic-a.test', 'admin'),
  ('c0000000-0000-4000-8000-000000000004', 'b0000000-0000-4000-8000-000000000001',
   'a0000000-0000-4000-8000-000000000004', 'carol@clinic-a.test', 'staff');
insert into public.staff_calendar_connections
  (id, tenant_id, staff_id, access_token_encrypted, refresh_token_encrypted, token_expires_at)
values
  ('d0000000-0000-4000-8000-000000000001', 'b0000000-0000-4000-8000-000000000001',
   'c0000000-0000-4000-8000-000000000001', 'v1.k1.iv.alice-access', 'v1.k1.iv.alice-refresh', now()),
  ('d0000000-0000-4000-8000-000000000002', 'b0000000-0000-4000-8000-000000000002',
   'c0000000-0000-4000-8000-000000000002', 'v1.k1.iv.bob-access', 'v1.k1.iv.bob-refresh', now()),
  ('d0000000-0000-4000-8000-000000000004', 'b0000000-0000-4000-8000-000000000001',
   'c0000000-0000-4000-8000-000000000004', 'v1.k1.iv.carol-access', 'v1.k1.iv.carol-refresh', now());
insert into public.appointments (id, tenant_id, staff_id, starts_at, ends_at) values
  ('e0000000-0000-4000-8000-000000000001', 'b0000000-0000-4000-8000-000000000001',
   'c0000000-0000-4000-8000-000000000001', now() + interval '1 day', now() + interval '1 day 1 hour'),
  ('e0000000-0000-4000-8000-000000000002', 'b0000000-0000-4000-8000-000000000002',
   'c0000000-0000-4000-8000-000000000002', now() + interval '1 day', now() + interval '1 day 1 hour');
-- Mappings written directly (the service side); the trigger may have written them already.
insert into public.calendar_sync_log (tenant_id, appointment_id, appointment_key, staff_id, sync_status)
values
  ('b0000000-0000-4000-8000-000000000001', 'e0000000-0000-4000-8000-000000000001',
   'e0000000-0000-4000-8000-000000000001', 'c0000000-0000-4000-8000-000000000001', 'synced'),
  ('b0000000-0000-4000-8000-000000000002', 'e0000000-0000-4000-8000-000000000002',
   'e0000000-0000-4000-8000-000000000002', 'c0000000-0000-4000-8000-000000000002', 'synced')
on conflict (appointment_key, staff_id, provider) do nothing;

-- Structure ---------------------------------------------------------------------------------
select ok((select relrowsecurity from pg_class where oid = 'public.staff_calendar_connections'::regclass),
  'RLS is enabled on staff_calendar_connections');
select ok((select relrowsecurity from pg_class where oid = 'public.calendar_sync_log'::regclass),
  'RLS is enabled on calendar_sync_log');
select ok((select relrowsecurity from pg_class where oid = 'public.calendar_oauth_states'::regclass),
  'RLS is enabled on calendar_oauth_states');
select ok(not has_column_privilege('authenticated', 'public.staff_calendar_connections',
  'access_token_encrypted', 'select'), 'authenticated cannot select the access token column');
select ok(not has_column_privilege('authenticated', 'public.staff_calendar_connections',
  'refresh_token_encrypted', 'select'), 'authenticated cannot select the refresh token column');
select ok(not has_column_privilege('anon', 'public.staff_calendar_connections',
  'refresh_token_encrypted', 'select'), 'anon cannot select the refresh token column');
select ok(not has_table_privilege('authenticated', 'public.calendar_oauth_states', 'select'),
  'authenticated cannot read OAuth states');

-- Alice, a clinician in clinic A ------------------------------------------------------------
set local role authenticated;
set local request.jwt.claims = '{"sub":"a0000000-0000-4000-8000-000000000001","role":"authenticated"}';

select results_eq(
  $$select staff_id from public.staff_calendar_connections$$,
  $$values ('c0000000-0000-4000-8000-000000000001'::uuid)$$,
  'a clinician sees only her own connection');
select throws_ok(
  $$select refresh_token_encrypted from public.staff_calendar_connections$$,
  '42501', null, 'a clinician cannot read her own refresh token ciphertext');
select throws_ok(
  $$select access_token_encrypted from public.staff_calendar_connections$$,
  '42501', null, 'a clinician cannot read her own access token ciphertext');
select throws_ok(
  $$update public.staff_calendar_connections set selected_calendar_id = 'team@group.calendar.google.com'$$,
  '42501', null,
  'a clinician cannot set the calendar directly (calendar-select-calendar checks it is writable)');
select throws_ok(
  $$update public.staff_calendar_connections set connection_status = 'connected'$$,
  '42501', null, 'a clinician cannot change the connection status');
select throws_ok(
  $$update public.staff_calendar_connections set refresh_token_encrypted = 'x'$$,
  '42501', null, 'a clinician cannot overwrite tokens');
select throws_ok(
  $$delete from public.staff_calendar_connections$$,
  '42501', null, 'a clinician cannot delete connections');
select throws_ok(
  $$insert into public.staff_calendar_connections (tenant_id, staff_id) values
    ('b0000000-0000-4000-8000-000000000001', 'c0000000-0000-4000-8000-000000000001')$$,
  '42501', null, 'a clinician cannot insert connections');
select is(
  (select count(*)::int from public.calendar_sync_log),
  1, 'a clinician sees only her own sync log rows');
select throws_ok(
  $$update public.calendar_sync_log set sync_status = 'synced'$$,
  '42501', null, 'a clinician cannot write the sync log');
select throws_ok(
  $$select * from public.calendar_oauth_states$$,
  '42501', null, 'a clinician cannot read OAuth states');

-- Bob, clinic B: nothing of clinic A is visible or writable -----------------------------------
set local request.jwt.claims = '{"sub":"a0000000-0000-4000-8000-000000000002","role":"authenticated"}';
select is(
  (select count(*)::int from public.staff_calendar_connections
    where tenant_id = 'b0000000-0000-4000-8000-000000000001'),
  0, 'another tenant''s connections are invisible');
select throws_ok(
  $$update public.staff_calendar_connections set selected_calendar_id = 'hijack'
    where staff_id = 'c0000000-0000-4000-8000-000000000001'$$,
  '42501', null, 'another tenant cannot set the calendar either');
reset role;
select is(
  (select selected_calendar_id from public.staff_calendar_connections
    where staff_id = 'c0000000-0000-4000-8000-000000000001'),
  'primary', 'another tenant''s update changes nothing');

-- The admin of clinic A reads the tenant's sync log but not other tenants' --------------------
set local role authenticated;
set local request.jwt.claims = '{"sub":"a0000000-0000-4000-8000-000000000003","role":"authenticated"}';
select is(
  (select count(*)::int from public.calendar_sync_log
    where tenant_id = 'b0000000-0000-4000-8000-000000000001'),
  1, 'a tenant admin sees the tenant''s sync log');
select is(
  (select count(*)::int from public.calendar_sync_log
    where tenant_id = 'b0000000-0000-4000-8000-000000000002'),
  0, 'a tenant admin sees nothing of another tenant');
reset role;

select * from finish();
rollback;
