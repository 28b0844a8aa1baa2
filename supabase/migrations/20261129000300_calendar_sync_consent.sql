-- Consent flow bound to the person who started it (OAuth 2.0 Security BCP, RFC 9700), the connected
-- account always known, and bounded OAuth state. Idempotent: safe to apply again.
--
-- * calendar_oauth_states.initiated_by: the Supabase user (JWT `sub`) who called auth-start, and
--   flow_secret_hash: SHA-256 of the flow id auth-start handed to that app (never in a URL). Only
--   that user, presenting that flow id, may confirm the grant the flow produces.
-- * calendar_pending_grants: a grant the callback received but did not attach. Tokens are encrypted
--   like connection tokens; the app confirms it with the initiating user's session
--   (calendar-auth-confirm), otherwise it is revoked at the provider and deleted.
-- * calendar_auth_rate_limits + calendar_private.take_auth_start_token(): a per-staff token bucket
--   for auth-start, one atomic statement under the row lock (transaction-pooler safe).
-- * calendar_sync_status gains account_email (the connected account, from the verified ID token).

alter table public.calendar_oauth_states add column if not exists initiated_by uuid;
alter table public.calendar_oauth_states add column if not exists flow_secret_hash text;
create index if not exists calendar_oauth_states_staff_created_idx
  on public.calendar_oauth_states (staff_id, created_at desc);

-- ---------------------------------------------------------------------------------------------
-- Grants waiting for the app's confirmation. Only the functions touch this table.
-- ---------------------------------------------------------------------------------------------
create table if not exists public.calendar_pending_grants (
  id uuid primary key default gen_random_uuid(),
  tenant_id uuid not null references public.tenants (id) on delete cascade,
  staff_id uuid not null references public.staff (id) on delete cascade,
  provider text not null default 'google' check (provider in ('google', 'microsoft')),
  initiated_by uuid not null,
  flow_secret_hash text not null,
  access_token_encrypted text not null,
  refresh_token_encrypted text,
  token_expires_at timestamptz not null,
  granted_scopes text[] not null default '{}',
  account_email text not null,
  return_to text,
  expires_at timestamptz not null,
  created_at timestamptz not null default now()
);
create index if not exists calendar_pending_grants_expires_at_idx on public.calendar_pending_grants (expires_at);
create index if not exists calendar_pending_grants_staff_id_idx on public.calendar_pending_grants (staff_id);

alter table public.calendar_pending_grants enable row level security;
revoke all on public.calendar_pending_grants from anon, authenticated, service_role;
grant select, insert, update, delete on public.calendar_pending_grants to service_role;

comment on table public.calendar_pending_grants is
  'OAuth grants received by calendar-auth-callback, waiting for calendar-auth-confirm by the user who started the flow; tokens encrypted; revoked and deleted when refused or expired.';

-- ---------------------------------------------------------------------------------------------
-- auth-start rate limit: a token bucket per staff member.
-- ---------------------------------------------------------------------------------------------
create table if not exists public.calendar_auth_rate_limits (
  staff_id uuid primary key references public.staff (id) on delete cascade,
  tokens double precision not null,
  refilled_at timestamptz not null default now()
);
alter table public.calendar_auth_rate_limits enable row level security;
revoke all on public.calendar_auth_rate_limits from anon, authenticated, service_role;
grant select, insert, update, delete on public.calendar_auth_rate_limits to service_role;

-- Take one token from the staff member's bucket (capacity p_capacity, one token back every
-- p_refill_seconds). Returns 0 when a token was taken, else the whole seconds until one is due.
-- The upsert holds the bucket row's lock until the caller's transaction ends, so concurrent
-- starts of one staff member are counted one after another.
create or replace function calendar_private.take_auth_start_token(
  p_staff_id uuid,
  p_capacity integer,
  p_refill_seconds double precision
)
returns integer
language plpgsql
set search_path = ''
as $$
declare
  v_tokens double precision;
begin
  insert into public.calendar_auth_rate_limits as r (staff_id, tokens, refilled_at)
  values (p_staff_id, p_capacity, clock_timestamp())
  on conflict (staff_id) do update
    set tokens = least(
          p_capacity::double precision,
          r.tokens + greatest(0, extract(epoch from clock_timestamp() - r.refilled_at)) / p_refill_seconds
        ),
        refilled_at = greatest(r.refilled_at, clock_timestamp())
  returning tokens into v_tokens;
  if v_tokens >= 1 then
    update public.calendar_auth_rate_limits set tokens = v_tokens - 1 where staff_id = p_staff_id;
    return 0;
  end if;
  return greatest(1, ceil((1 - v_tokens) * p_refill_seconds))::integer;
end
$$;

revoke all on function calendar_private.take_auth_start_token(uuid, integer, double precision) from public;
grant execute on function calendar_private.take_auth_start_token(uuid, integer, double precision) to service_role;

-- ---------------------------------------------------------------------------------------------
-- The status view shows which account is connected (columns appended: create or replace keeps
-- the existing ones in place).
-- ---------------------------------------------------------------------------------------------
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
  order by (c.connection_status = 'connected') desc, c.updated_at desc
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
