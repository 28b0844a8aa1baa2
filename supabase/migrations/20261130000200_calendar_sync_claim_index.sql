-- The worker's claim, index-driven for any backlog (supabase/functions/_shared/sync/outbox.ts,
-- claimRows). Rows queued by one statement share `next_attempt_at` (the statement's now()), so the
-- claim's `order by next_attempt_at, id` must be answered by an index on exactly those columns:
-- with only (next_attempt_at[, staff_id]) indexed, PostgreSQL sorts every due row of the tie group
-- (an incremental sort degenerates to a full one) before it can take the first few, which cost
-- 81 ms per claim at a 100k backlog. The predicate matches the claim's (pending rows only), so the
-- index holds just the queue and stays small once rows are synced.
create index if not exists calendar_sync_log_claim_order_idx
  on public.calendar_sync_log (next_attempt_at, id)
  where sync_status = 'pending';

comment on index public.calendar_sync_log_claim_order_idx is
  'The claim''s order (next_attempt_at, id) over pending rows: a claim reads the first due rows in order instead of sorting the backlog.';

-- The rows a claim takes: pending and due, no live lease, not of an excluded (rate-limited) staff
-- member, on a workable connection (calendar_private.workable_connection, the one definition),
-- oldest due first, locked (skipping rows locked elsewhere). The index alone does not settle the
-- plan: right after a bulk enqueue the table has not been analysed, the planner believes a few
-- rows are due and prefers a bitmap scan plus a sort of everything due. The function's settings
-- take sorts, bitmap and sequential scans off the table for this one query, so the plan reads the
-- claim index in order and stops after p_limit rows whatever the statistics say (an SQL function
-- with SET clauses is planned at each call with them in force; they never leak to the session).
create or replace function calendar_private.claim_due_rows(p_limit integer, p_exclude_staff uuid[] default '{}')
returns setof uuid
rows 10
language sql
volatile
set enable_sort = off
set enable_bitmapscan = off
set enable_seqscan = off
as $$
  select l.id from public.calendar_sync_log l
  where l.sync_status = 'pending'
    and l.next_attempt_at <= now()
    and (l.lease_expires_at is null or l.lease_expires_at <= now())
    and l.staff_id <> all(coalesce(p_exclude_staff, '{}'))
    -- A per-row filter on the ordered scan (a scalar subquery is never turned into a join).
    and coalesce((
      select true from calendar_private.workable_connection(l.tenant_id, l.staff_id, l.provider) limit 1
    ), false)
  order by l.next_attempt_at, l.id
  limit greatest(p_limit, 0)
  for update of l skip locked
$$;

comment on function calendar_private.claim_due_rows(integer, uuid[]) is
  'Ids of up to p_limit due pending rows a worker may claim (no live lease, workable connection, staff not in p_exclude_staff), oldest first, row-locked with SKIP LOCKED; read in calendar_sync_log_claim_order_idx order whatever the statistics say.';

revoke all on function calendar_private.claim_due_rows(integer, uuid[]) from public;
grant execute on function calendar_private.claim_due_rows(integer, uuid[]) to service_role;
