-- The calendar sync outbox in SQL (20261123000200_calendar_sync_outbox.sql): what the appointment
-- trigger queues, coalescing, reassignment, hard deletes, staff without a usable connection, the
-- backfill, the re-queue function's privileges, and the status view under RLS. Runs with
-- `supabase test db` and pg_prove. One transaction, rolled back.
begin;
create extension if not exists pgtap with schema extensions;
set local search_path = public, extensions;

select plan(43);

-- Clinic A: alice (connected), bob (connected), carol (no connection), dave (needs_reconnect),
-- erin (disconnected), and an admin. Clinic B: zoe (connected).
insert into auth.users (id, email) values
  ('a1000000-0000-4000-8000-000000000001', 'alice@a.test'),
  ('a1000000-0000-4000-8000-000000000002', 'bob@a.test'),
  ('a1000000-0000-4000-8000-000000000009', 'admin@a.test'),
  ('a1000000-0000-4000-8000-000000000010', 'zoe@b.test');
insert into public.tenants (id, name) values
  ('b1000000-0000-4000-8000-000000000001', 'Clinic A'),
  ('b1000000-0000-4000-8000-000000000002', 'Clinic B');
insert into public.staff (id, tenant_id, profile_id, role) values
  ('c1000000-0000-4000-8000-000000000001', 'b1000000-0000-4000-8000-000000000001',
   'a1000000-0000-4000-8000-000000000001', 'staff'),
  ('c1000000-0000-4000-8000-000000000002', 'b1000000-0000-4000-8000-000000000001',
   'a1000000-0000-4000-8000-000000000002', 'staff'),
  ('c1000000-0000-4000-8000-000000000003', 'b1000000-0000-4000-8000-000000000001', null, 'staff'),
  ('c1000000-0000-4000-8000-000000000004', 'b1000000-0000-4000-8000-000000000001', null, 'staff'),
  ('c1000000-0000-4000-8000-000000000005', 'b1000000-0000-4000-8000-000000000001', null, 'staff'),
  ('c1000000-0000-4000-8000-000000000009', 'b1000000-0000-4000-8000-000000000001',
   'a1000000-0000-4000-8000-000000000009', 'admin'),
  ('c1000000-0000-4000-8000-000000000010', 'b1000000-0000-4000-8000-000000000002',
   'a1000000-0000-4000-8000-000000000010', 'staff');
insert into public.staff_calendar_connections (tenant_id, staff_id, refresh_token_encrypted, connection_status)
values
  ('b1000000-0000-4000-8000-000000000001', 'c1000000-0000-4000-8000-000000000001', 'v1.k1.x.y', 'connected'),
  ('b1000000-0000-4000-8000-000000000001', 'c1000000-0000-4000-8000-000000000002', 'v1.k1.x.y', 'connected'),
  ('b1000000-0000-4000-8000-000000000001', 'c1000000-0000-4000-8000-000000000004', 'v1.k1.x.y', 'needs_reconnect'),
  ('b1000000-0000-4000-8000-000000000001', 'c1000000-0000-4000-8000-000000000005', null, 'disconnected'),
  ('b1000000-0000-4000-8000-000000000002', 'c1000000-0000-4000-8000-000000000010', 'v1.k1.x.y', 'connected');

create temporary table log_row on commit drop as
  select null::text as sync_status, null::text as desired_action, 0::bigint as queue_version limit 0;

-- Structure ---------------------------------------------------------------------------------
select has_trigger('public', 'appointments', 'appointments_calendar_sync_insert', 'insert trigger exists');
select has_trigger('public', 'appointments', 'appointments_calendar_sync_update', 'update trigger exists');
select has_trigger('public', 'appointments', 'appointments_calendar_sync_delete', 'delete trigger exists');
select ok(
  (select bool_and(p.prosecdef and p.proconfig @> array['search_path=""'])
   from pg_proc p join pg_namespace n on n.oid = p.pronamespace
   where n.nspname = 'calendar_private'
     and p.proname in ('appointments_sync_trigger', 'apply_sync_changes', 'kick_worker',
                       'enqueue_staff_backfill', 'enqueue_appointment')),
  'trigger and queue functions are security definer with an empty search_path');

-- A new appointment, inserted the way the app does (as an authenticated user) -----------------
set local role authenticated;
set local request.jwt.claims = '{"sub":"a1000000-0000-4000-8000-000000000001","role":"authenticated"}';
select lives_ok(
  $$insert into public.appointments (id, tenant_id, staff_id, starts_at, ends_at) values
    ('e1000000-0000-4000-8000-000000000001', 'b1000000-0000-4000-8000-000000000001',
     'c1000000-0000-4000-8000-000000000001', now() + interval '1 day', now() + interval '1 day 1 hour')$$,
  'an authenticated user inserts an appointment; the trigger needs no grant on the sync log');
reset role;
select results_eq(
  $$select sync_status, desired_action, retry_count, next_attempt_at <= now(), pending_since is not null
    from public.calendar_sync_log where appointment_key = 'e1000000-0000-4000-8000-000000000001'$$,
  $$values ('pending'::text, 'upsert'::text, 0, true, true)$$,
  'a new appointment queues one pending upsert, due now');

-- Coalescing: ten edits make one row; an unrelated column queues nothing ----------------------
update public.calendar_sync_log set sync_status = 'synced', desired_action = null, pending_since = null,
  event_id = 'ev1', calendar_id = 'primary'
  where appointment_key = 'e1000000-0000-4000-8000-000000000001';
insert into log_row select sync_status, desired_action, queue_version from public.calendar_sync_log
  where appointment_key = 'e1000000-0000-4000-8000-000000000001';
update public.appointments set updated_at = now() + interval '1 second'
  where id = 'e1000000-0000-4000-8000-000000000001';
select results_eq(
  $$select sync_status, queue_version from public.calendar_sync_log
    where appointment_key = 'e1000000-0000-4000-8000-000000000001'$$,
  $$select sync_status, queue_version from log_row$$,
  'an edit to a column that does not affect the event queues nothing');

do $$
begin
  for i in 1..10 loop
    update public.appointments set starts_at = starts_at + interval '1 minute',
      ends_at = ends_at + interval '1 minute'
    where id = 'e1000000-0000-4000-8000-000000000001';
  end loop;
end
$$;
select is(
  (select count(*)::int from public.calendar_sync_log where appointment_key = 'e1000000-0000-4000-8000-000000000001'),
  1, 'ten time changes leave one row');
select results_eq(
  $$select sync_status, desired_action, queue_version - (select queue_version from log_row)
    from public.calendar_sync_log where appointment_key = 'e1000000-0000-4000-8000-000000000001'$$,
  $$values ('pending'::text, 'upsert'::text, 10::bigint)$$,
  'a time change marks the row pending upsert again (version bumped per change)');
select is(
  (select event_id from public.calendar_sync_log where appointment_key = 'e1000000-0000-4000-8000-000000000001'),
  'ev1', 're-queuing keeps the known event id');

-- Cancel, cancel again, restore ----------------------------------------------------------------
update public.appointments set status = 'cancelled' where id = 'e1000000-0000-4000-8000-000000000001';
select is(
  (select desired_action from public.calendar_sync_log where appointment_key = 'e1000000-0000-4000-8000-000000000001'),
  'delete', 'cancelling asks for the event to be deleted');
update public.calendar_sync_log set sync_status = 'synced', desired_action = null, event_id = null,
  pending_since = null where appointment_key = 'e1000000-0000-4000-8000-000000000001';
update public.appointments set status = 'no_show', starts_at = starts_at + interval '1 hour',
  ends_at = ends_at + interval '1 hour' where id = 'e1000000-0000-4000-8000-000000000001';
select is(
  (select sync_status from public.calendar_sync_log where appointment_key = 'e1000000-0000-4000-8000-000000000001'),
  'synced', 'cancelled to no_show (and moving a cancelled appointment) queues nothing');
update public.appointments set status = 'scheduled' where id = 'e1000000-0000-4000-8000-000000000001';
select results_eq(
  $$select sync_status, desired_action from public.calendar_sync_log
    where appointment_key = 'e1000000-0000-4000-8000-000000000001'$$,
  $$values ('pending'::text, 'upsert'::text)$$,
  'back to an active status restores the event');

-- Reassignment -------------------------------------------------------------------------------
update public.appointments set staff_id = 'c1000000-0000-4000-8000-000000000002'
  where id = 'e1000000-0000-4000-8000-000000000001';
select results_eq(
  $$select staff_id, desired_action from public.calendar_sync_log
    where appointment_key = 'e1000000-0000-4000-8000-000000000001' order by staff_id$$,
  $$values ('c1000000-0000-4000-8000-000000000001'::uuid, 'delete'::text),
           ('c1000000-0000-4000-8000-000000000002'::uuid, 'upsert'::text)$$,
  'reassignment deletes on the old staff member''s row and creates on the new one''s');

-- Staff without a usable connection --------------------------------------------------------------
insert into public.appointments (id, tenant_id, staff_id, starts_at, ends_at) values
  ('e1000000-0000-4000-8000-000000000003', 'b1000000-0000-4000-8000-000000000001',
   'c1000000-0000-4000-8000-000000000003', now() + interval '2 days', now() + interval '2 days 1 hour'),
  ('e1000000-0000-4000-8000-000000000004', 'b1000000-0000-4000-8000-000000000001',
   'c1000000-0000-4000-8000-000000000004', now() + interval '2 days', now() + interval '2 days 1 hour'),
  ('e1000000-0000-4000-8000-000000000005', 'b1000000-0000-4000-8000-000000000001',
   'c1000000-0000-4000-8000-000000000005', now() + interval '2 days', now() + interval '2 days 1 hour'),
  ('e1000000-0000-4000-8000-000000000006', 'b1000000-0000-4000-8000-000000000001',
   null, now() + interval '2 days', now() + interval '2 days 1 hour');
select is(
  (select count(*)::int from public.calendar_sync_log where appointment_key = 'e1000000-0000-4000-8000-000000000003'),
  0, 'a staff member with no connection: nothing queued, no error');
select is(
  (select sync_status from public.calendar_sync_log where appointment_key = 'e1000000-0000-4000-8000-000000000004'),
  'pending', 'a staff member who needs to reconnect: queued (parked until the reconnect)');
select is(
  (select count(*)::int from public.calendar_sync_log where appointment_key = 'e1000000-0000-4000-8000-000000000005'),
  0, 'a disconnected staff member: nothing queued');
select is(
  (select count(*)::int from public.calendar_sync_log where appointment_key = 'e1000000-0000-4000-8000-000000000006'),
  0, 'an appointment without staff: nothing queued');
select is(
  (select count(*)::int from public.calendar_sync_log where appointment_key = 'e1000000-0000-4000-8000-000000000007'),
  0, 'nothing for an appointment that does not exist');
insert into public.appointments (id, tenant_id, staff_id, starts_at, ends_at, status) values
  ('e1000000-0000-4000-8000-000000000008', 'b1000000-0000-4000-8000-000000000001',
   'c1000000-0000-4000-8000-000000000001', now() + interval '3 days', now() + interval '3 days 1 hour', 'cancelled');
select is(
  (select count(*)::int from public.calendar_sync_log where appointment_key = 'e1000000-0000-4000-8000-000000000008'),
  0, 'a new appointment that is already cancelled needs no event and queues nothing');

-- Hard delete --------------------------------------------------------------------------------
update public.calendar_sync_log set sync_status = 'synced', desired_action = null, event_id = 'ev2'
  where appointment_key = 'e1000000-0000-4000-8000-000000000001'
    and staff_id = 'c1000000-0000-4000-8000-000000000002';
delete from public.appointments where id = 'e1000000-0000-4000-8000-000000000001';
select results_eq(
  $$select appointment_id, sync_status, desired_action, event_id from public.calendar_sync_log
    where appointment_key = 'e1000000-0000-4000-8000-000000000001'
      and staff_id = 'c1000000-0000-4000-8000-000000000002'$$,
  $$values (null::uuid, 'pending'::text, 'delete'::text, 'ev2'::text)$$,
  'a hard delete keeps the row (appointment_key) and marks it delete');

-- One statement, many rows: one row each ------------------------------------------------------
insert into public.appointments (tenant_id, staff_id, starts_at, ends_at)
  select 'b1000000-0000-4000-8000-000000000001', 'c1000000-0000-4000-8000-000000000002',
    now() + make_interval(days => 10 + g), now() + make_interval(days => 10 + g, hours => 1)
  from generate_series(1, 50) g;
select is(
  (select count(*)::int from public.calendar_sync_log l join public.appointments a on a.id = l.appointment_id
   where a.starts_at > now() + interval '10 days'),
  50, 'a bulk insert of 50 appointments queues 50 rows');

-- A failure inside sync never fails the app's statement ----------------------------------------
create function pg_temp.fail_queue() returns trigger language plpgsql as $$
begin raise exception 'simulated outbox failure'; end $$;
alter table public.calendar_sync_log disable trigger calendar_sync_log_touch;
create trigger simulated_failure before insert or update on public.calendar_sync_log
  for each row execute function pg_temp.fail_queue();
select lives_ok(
  $$insert into public.appointments (id, tenant_id, staff_id, starts_at, ends_at) values
    ('e1000000-0000-4000-8000-000000000009', 'b1000000-0000-4000-8000-000000000001',
     'c1000000-0000-4000-8000-000000000001', now() + interval '1 day', now() + interval '1 day 1 hour')$$,
  'the app''s insert succeeds even when queuing the sync fails');
select is(
  (select count(*)::int from public.appointments where id = 'e1000000-0000-4000-8000-000000000009'),
  1, 'and the appointment is stored');
drop trigger simulated_failure on public.calendar_sync_log;
alter table public.calendar_sync_log enable trigger calendar_sync_log_touch;

-- Backfill after a reconnect --------------------------------------------------------------------
insert into calendar_private.event_ledger (staff_id, provider, appointment_key, tenant_id, calendar_id, event_id)
values ('c1000000-0000-4000-8000-000000000005', 'google', 'e1000000-0000-4000-8000-0000000000aa',
        'b1000000-0000-4000-8000-000000000001', 'primary', 'orphan');
update public.staff_calendar_connections set connection_status = 'connected', refresh_token_encrypted = 'v1.k1.x.y'
  where staff_id = 'c1000000-0000-4000-8000-000000000005';
select is(
  calendar_private.enqueue_staff_backfill('c1000000-0000-4000-8000-000000000005'),
  2, 'backfill queues the current appointment and the ledger''s orphaned event');
select results_eq(
  $$select appointment_key, desired_action, event_id from public.calendar_sync_log
    where staff_id = 'c1000000-0000-4000-8000-000000000005' order by appointment_key$$,
  $$values ('e1000000-0000-4000-8000-000000000005'::uuid, 'upsert'::text, null::text),
           ('e1000000-0000-4000-8000-0000000000aa'::uuid, 'delete'::text, 'orphan'::text)$$,
  'the backfill rows: upsert for the appointment, delete for the event left from before the disconnect');
select is(
  calendar_private.enqueue_staff_backfill('c1000000-0000-4000-8000-000000000003'),
  0, 'backfill for a staff member without a connection queues nothing');

-- Explicit sync of one appointment: forced, even when it looks done ---------------------------------
update public.calendar_sync_log set sync_status = 'synced', desired_action = null
  where appointment_key = 'e1000000-0000-4000-8000-000000000005';
select is(
  calendar_private.enqueue_appointment('e1000000-0000-4000-8000-000000000005'),
  1, 'enqueue_appointment re-queues a synced row');

-- Choosing another calendar moves the events -------------------------------------------------------
update public.calendar_sync_log set sync_status = 'synced', desired_action = null, event_id = 'ev5',
  calendar_id = 'primary' where appointment_key = 'e1000000-0000-4000-8000-000000000005';
update public.staff_calendar_connections set selected_calendar_id = 'team@group.calendar.google.com'
  where staff_id = 'c1000000-0000-4000-8000-000000000005';
select results_eq(
  $$select sync_status, desired_action from public.calendar_sync_log
    where appointment_key = 'e1000000-0000-4000-8000-000000000005'$$,
  $$values ('pending'::text, 'upsert'::text)$$,
  'a new selected calendar queues the staff member''s events to move');

-- A row in flight (leased, no event yet) and a row dead-lettered because the calendar vanished are
-- queued again too when the staff member picks another calendar.
update public.calendar_sync_log set sync_status = 'pending', event_id = null, calendar_id = null,
  lease_owner = 'worker:test', lease_expires_at = now() + interval '1 minute'
  where appointment_key = 'e1000000-0000-4000-8000-000000000005';
update public.calendar_sync_log set sync_status = 'failed', desired_action = 'delete',
  last_error_code = 'calendar_not_found', next_attempt_at = null
  where appointment_key = 'e1000000-0000-4000-8000-0000000000aa';
delete from log_row;
insert into log_row select sync_status, desired_action, queue_version from public.calendar_sync_log
  where appointment_key = 'e1000000-0000-4000-8000-000000000005';
update public.staff_calendar_connections set selected_calendar_id = 'primary'
  where staff_id = 'c1000000-0000-4000-8000-000000000005';
select is(
  (select queue_version - (select queue_version from log_row) from public.calendar_sync_log
   where appointment_key = 'e1000000-0000-4000-8000-000000000005'),
  1::bigint, 'a row in flight when the calendar changes is re-queued (its writer''s success will not settle it)');
select results_eq(
  $$select sync_status, desired_action, retry_count, next_attempt_at <= now() from public.calendar_sync_log
    where appointment_key = 'e1000000-0000-4000-8000-0000000000aa'$$,
  $$values ('pending'::text, 'delete'::text, 0, true)$$,
  'a calendar_not_found dead letter is queued again when another calendar is chosen');
update public.calendar_sync_log set lease_owner = null, lease_expires_at = null
  where appointment_key = 'e1000000-0000-4000-8000-000000000005';

-- Dead letters and re-queue ------------------------------------------------------------------------
update public.calendar_sync_log set sync_status = 'failed', error_message = 'calendar was not found',
  last_error_code = 'calendar_not_found', retry_count = 8
  where appointment_key = 'e1000000-0000-4000-8000-000000000005';
select ok(not has_function_privilege('authenticated', 'public.calendar_requeue_failed(uuid, uuid)', 'execute'),
  'authenticated cannot re-queue');
select ok(not has_function_privilege('anon', 'public.calendar_requeue_failed(uuid, uuid)', 'execute'),
  'anon cannot re-queue');
select ok(has_function_privilege('service_role', 'public.calendar_requeue_failed(uuid, uuid)', 'execute'),
  'the service role can re-queue');
select ok(not has_function_privilege('authenticated', 'calendar_private.apply_sync_changes(calendar_private.sync_change[], boolean)', 'execute'),
  'authenticated cannot queue sync work directly');

-- The status view, as each kind of user --------------------------------------------------------------
set local role authenticated;
set local request.jwt.claims = '{"sub":"a1000000-0000-4000-8000-000000000009","role":"authenticated"}';
select results_eq(
  $$select connection_status, pending_count, failed_count, last_error_code
    from public.calendar_sync_status where staff_id = 'c1000000-0000-4000-8000-000000000005'$$,
  $$values ('connected'::text, 1, 1, 'calendar_not_found'::text)$$,
  'a tenant admin sees a staff member''s pending and failed rows and the error');
select is(
  (select count(*)::int from public.calendar_sync_status),
  4, 'a tenant admin sees every staff member of the tenant with a connection or rows');
select is(
  (select count(*)::int from public.calendar_sync_status where tenant_id = 'b1000000-0000-4000-8000-000000000002'),
  0, 'but nothing of another tenant');
set local request.jwt.claims = '{"sub":"a1000000-0000-4000-8000-000000000002","role":"authenticated"}';
select results_eq(
  $$select staff_id, connection_status, pending_count > 0, oldest_pending_age_seconds >= 0
    from public.calendar_sync_status$$,
  $$values ('c1000000-0000-4000-8000-000000000002'::uuid, 'connected'::text, true, true)$$,
  'a staff member sees only their own line, with pending work and its age');
select throws_ok(
  $$select public.calendar_requeue_failed()$$,
  '42501', null, 'a staff member cannot call the re-queue function');
reset role;

set local role service_role;
select is(public.calendar_requeue_failed(p_tenant_id => 'b1000000-0000-4000-8000-000000000002'), 0,
  're-queue limited to another tenant touches nothing');
select is(public.calendar_requeue_failed('c1000000-0000-4000-8000-000000000005'), 1,
  'the service role re-queues a staff member''s failed rows');
reset role;
select results_eq(
  $$select sync_status, retry_count, next_attempt_at <= now() from public.calendar_sync_log
    where appointment_key = 'e1000000-0000-4000-8000-000000000005'$$,
  $$values ('pending'::text, 0, true)$$,
  'a re-queued row is pending again with a fresh attempt count');

select * from finish();
rollback;
