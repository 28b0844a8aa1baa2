-- Calendar sync schedule: pg_cron runs the sweep every minute, the safety net behind the kicks
-- (retries that came due, kicks that were lost, leases of crashed workers that expired).
--
-- The sweep itself (calendar_private.sweep_outbox) kicks the worker only when a row is due for a
-- connected staff member, so an idle project (or one whose only work is parked) costs no function
-- invocation. The kick is pg_notify (the local dispatcher) plus,
-- when pg_net is installed and Vault holds the worker's URL and secret, an HTTP POST to
-- calendar-sync-worker (see kick_worker in 20261123000200_calendar_sync_outbox.sql):
--
--   select vault.create_secret('https://<project-ref>.supabase.co/functions/v1/calendar-sync-worker',
--     'calendar_sync_worker_url');
--   select vault.create_secret('<CALENDAR_WORKER_SECRET>', 'calendar_sync_worker_secret');
--
-- Guarded: on PostgreSQL without pg_cron (or where it cannot be enabled, e.g. not in
-- shared_preload_libraries, or another database than cron.database_name) the migration succeeds
-- and says so in a notice; the local stack's dispatcher sweeps instead. Idempotent.

create or replace function calendar_private.sweep_outbox()
returns integer
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_due integer;
begin
  select count(*)::integer into v_due
  from public.calendar_sync_log l
  where l.sync_status = 'pending'
    and l.next_attempt_at <= now()
    and (l.lease_expires_at is null or l.lease_expires_at <= now())
    and exists (
      select 1 from public.staff_calendar_connections c
      where c.staff_id = l.staff_id and c.provider = l.provider and c.connection_status = 'connected'
    );
  if v_due > 0 then
    perform calendar_private.kick_worker('sweep');
  end if;
  return v_due;
end
$$;

revoke all on function calendar_private.sweep_outbox() from public;
grant execute on function calendar_private.sweep_outbox() to service_role;

-- pg_net carries the kick to the worker on hosted Supabase; enable it where it is available.
do $$
begin
  if not exists (select 1 from pg_extension where extname = 'pg_net')
    and exists (select 1 from pg_available_extensions where name = 'pg_net') then
    begin
      create extension if not exists pg_net with schema extensions;
    exception when others then
      raise notice 'calendar sync: pg_net is available but could not be enabled (%); kicks use pg_notify only',
        sqlerrm;
    end;
  end if;
end
$$;

do $$
begin
  if not exists (select 1 from pg_extension where extname = 'pg_cron')
    and exists (select 1 from pg_available_extensions where name = 'pg_cron') then
    begin
      create extension if not exists pg_cron with schema pg_catalog;
    exception when others then
      raise notice 'calendar sync: pg_cron is available but could not be enabled here (%)', sqlerrm;
    end;
  end if;
  if exists (select 1 from pg_extension where extname = 'pg_cron') then
    -- cron.schedule with an existing job name replaces that job (pg_cron >= 1.3).
    perform cron.schedule('calendar-sync-worker', '* * * * *', 'select calendar_private.sweep_outbox()');
  else
    raise notice 'calendar sync: pg_cron is not installed; run calendar-sync-worker every minute some other way '
      '(the local stack''s dispatcher does)';
  end if;
end
$$;
