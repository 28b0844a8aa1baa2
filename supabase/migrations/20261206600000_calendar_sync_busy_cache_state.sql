-- When the busy cache may answer an availability question (idempotent).
--
-- calendar-get-availability answers from public.calendar_busy_blocks instead of calling the provider
-- only when the cache is known to hold the staff member's selected calendar, up to date, over the whole
-- range asked. calendar_private.busy_cache_state is that rule, written once; the function's one
-- statement reads it beside the blocks (supabase/functions/_shared/availability.ts). The cache is usable
-- when every one of these holds, and the first that fails is the reason it is not:
--   not_connected      the staff member has no active connection (calendar_private.active_connection)
--   needs_reconnect    it is not workable (calendar_private.connection_is_workable): a revoked grant
--                      answers 409 through the live path rather than from what was cached before
--   no_channel         no live channel watches the connection's selected calendar (none yet, or one
--                      for a previously selected calendar)
--   not_incremental    the channel's first, full sync has not finished (stage pending or full_sync)
--   expired            the channel has no expiry or it has passed: notifications may no longer come
--   never_synced       no sync has completed
--   lifecycle_pending  a Graph subscriptionRemoved or missed notification came after the last sync:
--                      changes were lost until the resync it asks for runs
--   sync_failed        the channel's sync job is dead-lettered: notified changes were never read
--   sync_lagging       a sync job has waited longer than p_max_lag_seconds: a change the provider
--                      notified is not in the cache yet
--   too_old            the last sync is older than p_max_age_seconds (notifications can be lost
--                      without a trace; the periodic sync bounds how stale the cache may be)
--   outside_window     [p_time_min, p_time_max) is not inside [cache_window_start, cache_window_end),
--                      the span the sync reads
-- as_of is the channel's last_synced_at when usable: the busy times are as the provider showed them
-- then (up to p_max_lag_seconds of notified changes may still be on their way).
--
-- PL/pgSQL, not SQL: the functions' client sends unnamed statements (prepare: false, for transaction
-- poolers), so the server plans every statement it receives; a SQL function would be inlined into the
-- caller's statement and planned again on every request (about 1 ms here), while PL/pgSQL keeps its
-- statement's plan for the server session. It is called once per request, never per row, so nothing
-- is lost by not inlining it.
--
-- The blocks are read by connection and start; calendar_busy_blocks_connection_window_idx serves the
-- range query (starts_at < time_max and ends_at > time_min) inside one connection's blocks, both
-- bounds checked in the index.

create or replace function calendar_private.busy_cache_state(
  p_tenant_id uuid,
  p_staff_id uuid,
  p_time_min timestamptz,
  p_time_max timestamptz,
  p_max_lag_seconds integer,
  p_max_age_seconds integer
)
returns table (connection_id uuid, channel_id uuid, usable boolean, reason text, as_of timestamptz)
language plpgsql
stable
rows 1
as $$
#variable_conflict use_column
begin
  return query
  select s.connection_id, s.channel_id, s.reason is null, s.reason,
    case when s.reason is null then s.last_synced_at end
  from (
    select c.id as connection_id, ch.id as channel_id, ch.last_synced_at,
      case
        when c.id is null then 'not_connected'
        when not calendar_private.connection_is_workable(c) then 'needs_reconnect'
        when ch.id is null then 'no_channel'
        when ch.sync_stage <> 'incremental' then 'not_incremental'
        when ch.expires_at is null or ch.expires_at <= now() then 'expired'
        when ch.last_synced_at is null then 'never_synced'
        when ch.subscription_removed_at > ch.last_synced_at or ch.missed_at > ch.last_synced_at
          then 'lifecycle_pending'
        when j.status = 'failed' then 'sync_failed'
        when j.status = 'pending' and j.pending_since <= now() - make_interval(secs => p_max_lag_seconds)
          then 'sync_lagging'
        when ch.last_synced_at <= now() - make_interval(secs => p_max_age_seconds) then 'too_old'
        when ch.cache_window_start is null or p_time_min < ch.cache_window_start
          or p_time_max > ch.cache_window_end then 'outside_window'
      end as reason
    from (select) as one
    left join calendar_private.active_connection(p_tenant_id, p_staff_id) c on true
    left join lateral (
      select ch.* from public.calendar_channels ch
      where ch.connection_id = c.id and ch.calendar_id = c.selected_calendar_id
        and calendar_private.channel_is_live(ch.sync_stage)
    ) ch on true
    left join public.calendar_channel_jobs j on j.channel_id = ch.id and j.kind = 'sync'
  ) s;
end
$$;

comment on function calendar_private.busy_cache_state(uuid, uuid, timestamptz, timestamptz, integer, integer) is
  'Whether the busy cache may answer availability for the staff member over [p_time_min, p_time_max): one row with the active connection, its live channel for the selected calendar, usable, the reason it is not (null when usable) and as_of (last_synced_at when usable).';

create index if not exists calendar_busy_blocks_connection_window_idx
  on public.calendar_busy_blocks (connection_id, starts_at, ends_at);

revoke all on function calendar_private.busy_cache_state(uuid, uuid, timestamptz, timestamptz, integer, integer)
  from public;
grant execute on function calendar_private.busy_cache_state(uuid, uuid, timestamptz, timestamptz, integer, integer)
  to service_role;
