-- Fair claims (supabase/functions/_shared/sync/outbox.ts claimRows, sync/pacing.ts): a claim takes at
-- most p_per_staff rows of one staff member, so a burst of one staff member's rows (a bulk import, a
-- reconnect's backfill) never fills a worker's batch while other staff members' rows wait behind it.
-- The worker passes its providers' largest per-connection limit, and leaves out (p_exclude_staff)
-- staff members whose rows already fill their slots twice over.
--
-- The rows are read as before: the claim index (next_attempt_at, id) in order, locked with SKIP
-- LOCKED, under the settings that keep the plan on that index whatever the statistics say (see
-- 20261130000200_calendar_sync_claim_index.sql); nothing is sorted. The scan stops after
-- 4 x p_limit claimable rows, so a burst at the head of the queue costs a bounded read: the claim
-- then comes back short, and the worker claims again once that staff member is left out. Rows read
-- past a staff member's cap stay locked until the claim's statement ends (a concurrent claim skips
-- them, as it skips any row being claimed) and are not leased.
drop function if exists calendar_private.claim_due_rows(integer, uuid[]);

create function calendar_private.claim_due_rows(
  p_limit integer,
  p_exclude_staff uuid[] default '{}',
  p_per_staff integer default null
)
returns setof uuid
rows 10
language plpgsql
volatile
set enable_sort = off
set enable_bitmapscan = off
set enable_seqscan = off
as $$
declare
  due record;
  cap integer := greatest(coalesce(p_per_staff, p_limit), 1);
  taken integer := 0;
  -- Rows taken per staff member so far (parallel arrays: a claim sees a few dozen staff at most).
  staff uuid[] := '{}';
  counts integer[] := '{}';
  i integer;
begin
  if coalesce(p_limit, 0) <= 0 then
    return;
  end if;
  for due in
    select l.id, l.staff_id from public.calendar_sync_log l
    where l.sync_status = 'pending'
      and l.next_attempt_at <= now()
      and (l.lease_expires_at is null or l.lease_expires_at <= now())
      and l.staff_id <> all(coalesce(p_exclude_staff, '{}'))
      -- A per-row filter on the ordered scan (a scalar subquery is never turned into a join).
      and coalesce((
        select true from calendar_private.workable_connection(l.tenant_id, l.staff_id, l.provider) limit 1
      ), false)
    order by l.next_attempt_at, l.id
    limit 4 * p_limit::bigint
    for update of l skip locked
  loop
    i := array_position(staff, due.staff_id);
    if i is null then
      staff := staff || due.staff_id;
      counts := counts || 1;
    elsif counts[i] < cap then
      counts[i] := counts[i] + 1;
    else
      continue;
    end if;
    return next due.id;
    taken := taken + 1;
    exit when taken >= p_limit;
  end loop;
end;
$$;

comment on function calendar_private.claim_due_rows(integer, uuid[], integer) is
  'Ids of up to p_limit due pending rows a worker may claim (no live lease, workable connection, staff not in p_exclude_staff), oldest first and at most p_per_staff of one staff member (unset: no cap) among the first 4 x p_limit claimable rows, row-locked with SKIP LOCKED; read in calendar_sync_log_claim_order_idx order whatever the statistics say.';

revoke all on function calendar_private.claim_due_rows(integer, uuid[], integer) from public;
grant execute on function calendar_private.claim_due_rows(integer, uuid[], integer) to service_role;
