-- calendar_sync_status shows each staff member's connection by the one rule of "active"
-- (calendar_private.connection_is_active, migration 20261130000100) instead of its own copy.
--
-- Until now the view picked `order by (connection_status = 'connected') desc, updated_at desc`: the
-- rule from before needs_reconnect counted as active, so a staff member whose active connection
-- needs a reconnect, beside a more recently updated disconnected row of another provider, was shown
-- as disconnected. Now the active connection (connected or needs_reconnect; at most one, by
-- staff_calendar_connections_one_active_key) is shown, else the latest disconnected one.
--
-- Why connection_is_active and not calendar_private.active_connection(): the view is
-- security_invoker, read by signed-in staff, who may select only the non-secret columns of
-- staff_calendar_connections; active_connection() returns whole rows (token columns included), so
-- reading it as them is refused. connection_is_active is the predicate active_connection() itself
-- applies, executable by everyone (it is the unique index's predicate). For the same reason the
-- "last error" column keeps asking whether the connection is connected rather than
-- connection_is_workable(), which needs the refresh token column the reader cannot see.
--
-- The view is otherwise unchanged: its columns, comment and grants are restated as they were.

create or replace view public.calendar_sync_status
with (security_invoker = true)
as
with people as (
  select c.tenant_id, c.staff_id from public.staff_calendar_connections c
  union
  select l.tenant_id, l.staff_id from public.calendar_sync_log l
)
select
  p.tenant_id,
  p.staff_id,
  c.provider,
  c.connection_status,
  c.selected_calendar_id,
  coalesce(l.pending_count, 0)::integer as pending_count,
  coalesce(l.failed_count, 0)::integer as failed_count,
  l.oldest_pending_since,
  floor(extract(epoch from now() - l.oldest_pending_since))::integer as oldest_pending_age_seconds,
  case when c.connection_status is distinct from 'connected' and c.last_error is not null then c.last_error
    else coalesce(l.last_error, c.last_error) end as last_error,
  l.last_error_code,
  greatest(l.last_synced_at, c.last_sync_at) as last_synced_at,
  c.account_email
from people p
left join lateral (
  select c.provider, c.connection_status, c.selected_calendar_id, c.last_error, c.last_sync_at, c.account_email
  from public.staff_calendar_connections c
  where c.staff_id = p.staff_id and c.tenant_id = p.tenant_id
  order by calendar_private.connection_is_active(c.connection_status) desc, c.updated_at desc
  limit 1
) c on true
left join lateral (
  select
    count(*) filter (where x.sync_status = 'pending') as pending_count,
    count(*) filter (where x.sync_status = 'failed') as failed_count,
    min(x.pending_since) filter (where x.sync_status = 'pending') as oldest_pending_since,
    max(x.last_synced_at) as last_synced_at,
    (array_agg(x.error_message order by x.updated_at desc)
      filter (where x.error_message is not null and x.sync_status <> 'synced'))[1] as last_error,
    (array_agg(x.last_error_code order by x.updated_at desc)
      filter (where x.last_error_code is not null and x.sync_status <> 'synced'))[1] as last_error_code
  from public.calendar_sync_log x
  where x.staff_id = p.staff_id and x.tenant_id = p.tenant_id
) l on true;

comment on view public.calendar_sync_status is
  'Calendar sync health per staff member: connection status, connected account email, pending and failed rows, oldest pending age (s), last error, last sync.';

revoke all on public.calendar_sync_status from anon;
grant select on public.calendar_sync_status to authenticated, service_role;
