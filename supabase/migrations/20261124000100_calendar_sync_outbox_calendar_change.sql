-- Calendar sync outbox: what choosing another calendar re-queues (replaces the connection trigger
-- function of 20261123000200_calendar_sync_outbox.sql; idempotent).
--
-- Before, only rows whose event sat on another calendar were queued to move. Two kinds were missed:
--   * a row in flight at that moment (leased by a worker) whose first write was going to the calendar
--     chosen before: it was recorded as synced there and the event never moved;
--   * rows that failed with calendar_not_found (the old calendar was deleted at the provider): the
--     staff member did what the error asked, choosing another calendar, and the rows stayed failed.
-- Now both are queued too. A leased row gets a new queue_version, so the worker's success leaves it
-- pending and the next pass moves the event; rows waiting in the queue need nothing (the worker reads
-- the selected calendar when it processes them).

create or replace function calendar_private.connections_sync_trigger()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_count integer := 0;
begin
  begin
    if new.connection_status <> 'disconnected'
      and new.selected_calendar_id is distinct from old.selected_calendar_id then
      update public.calendar_sync_log l set
        sync_status = 'pending',
        desired_action = coalesce(l.desired_action, 'upsert'),
        next_attempt_at = now(),
        pending_since = coalesce(l.pending_since, now()),
        retry_count = 0,
        queue_version = l.queue_version + 1
      where l.staff_id = new.staff_id
        and l.provider = new.provider
        and (
          (l.google_event_id is not null and l.google_calendar_id is distinct from new.selected_calendar_id)
          or (l.sync_status = 'pending' and l.lease_expires_at > now())
          or (l.sync_status = 'failed' and l.last_error_code = 'calendar_not_found')
        );
      get diagnostics v_count = row_count;
    end if;
    if new.connection_status = 'connected' and old.connection_status is distinct from 'connected' then
      v_count := v_count + 1;
    end if;
  exception
    when serialization_failure or deadlock_detected then
      raise;
    when others then
      raise warning 'calendar sync: connection change was not queued (%: %)', sqlstate, sqlerrm;
      return null;
  end;
  if v_count > 0 then
    perform calendar_private.kick_worker('connection');
  end if;
  return null;
end
$$;

revoke all on function calendar_private.connections_sync_trigger() from public;
