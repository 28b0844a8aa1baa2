-- Calendar sync: provider behaviour (idempotent).
--
-- 1. event_generation: which derived provider event id a sync row writes. When the appointment's
--    event vanished from a calendar that still exists (the user purged it, or moved it to another
--    calendar), its id can stay taken there; the worker raises the generation (under its lease,
--    before writing) and creates the event again under a fresh id that is still derived, so a
--    retried re-create finds its own event instead of duplicating it.
-- 2. first_failure_at: when the row's current run of retryable failures began. The worker gives up
--    (dead letter) once CALENDAR_SYNC_RETRY_BUDGET_HOURS have passed since then, not after a number
--    of attempts, so hours of rate limiting or an outage never dead-letter work that would succeed
--    later. Cleared by a success, a dead letter and a park (waiting for a reconnect).
-- 3. Choosing the calendar goes through calendar-select-calendar, which checks live with the
--    provider that the account may write to it (owner or writer). The bare column grant let any
--    value through (a read-only or a made-up calendar id), so it is revoked; the connection trigger
--    still re-queues work when selected_calendar_id changes.

alter table public.calendar_sync_log
  add column if not exists event_generation integer not null default 0;
alter table public.calendar_sync_log
  add column if not exists first_failure_at timestamptz;

do $$
begin
  if not exists (
    select 1 from pg_constraint
    where conname = 'calendar_sync_log_event_generation_check'
      and conrelid = 'public.calendar_sync_log'::regclass
  ) then
    alter table public.calendar_sync_log
      add constraint calendar_sync_log_event_generation_check
      check (event_generation between 0 and 1000000);
  end if;
end
$$;

comment on column public.calendar_sync_log.event_generation is
  'Which derived provider event id this row writes; raised when the event vanished from a calendar that still exists.';
comment on column public.calendar_sync_log.first_failure_at is
  'Start of the current run of retryable failures; the row is dead-lettered once the retry budget (hours) has passed since.';

revoke update (selected_calendar_id) on public.staff_calendar_connections from authenticated;
revoke update on public.staff_calendar_connections from authenticated;
drop policy if exists "staff choose own calendar" on public.staff_calendar_connections;
