-- Calendar sync: remember that a write's outcome is unknown, so a disconnect never drops the only
-- record of an event that may exist (idempotent).
--
-- write_unresolved is set when a worker claims the row (the attempt may create an event at the
-- provider: a create, a Microsoft delete that finds its event by creating with the same
-- transactionId) and cleared only when the attempt's success is recorded (the event id stored, or the
-- event deleted). A timeout after the provider carried out the create, a delete that found the event
-- but failed to delete it, a worker that died: the flag stays set whatever happens to the row's other
-- columns. calendar-disconnect used to infer this from "no event id and first_failure_at set", but a
-- park (waiting for a reconnect) clears first_failure_at, so such a row was dropped and its event
-- stayed on the calendar for good, known neither to a row nor to the ledger. Rows with the flag now
-- survive a disconnect; the reconnect's backfill re-queues them.

alter table public.calendar_sync_log
  add column if not exists write_unresolved boolean not null default false;

comment on column public.calendar_sync_log.write_unresolved is
  'True from a claim until a success is recorded: an event this row does not name may exist at the provider, so the row is kept on disconnect.';

-- Rows the old rule kept (no event id after a failed or unrecorded write) keep that protection.
update public.calendar_sync_log set write_unresolved = true
where not write_unresolved and event_id is null
  and (first_failure_at is not null or lease_owner is not null);
