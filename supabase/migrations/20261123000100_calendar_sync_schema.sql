-- Calendar sync: host tables (only if the app has none), connections, the sync log / outbox, and
-- OAuth state. RLS on every table; explicit grants because new Supabase projects no longer grant
-- public tables to the API roles automatically. Token columns are granted to no API role.

-- ---------------------------------------------------------------------------------------------
-- Host tables. The app owns these; we create minimal versions only when absent so this
-- repository runs standalone. An app with its own tables keeps them untouched.
-- ---------------------------------------------------------------------------------------------
create table if not exists public.tenants (
  id uuid primary key default gen_random_uuid(),
  name text not null,
  created_at timestamptz not null default now()
);

create table if not exists public.staff (
  id uuid primary key default gen_random_uuid(),
  tenant_id uuid not null references public.tenants (id) on delete cascade,
  profile_id uuid unique,
  email text,
  time_zone text not null default 'UTC',
  role text not null default 'staff' check (role in ('staff', 'admin')),
  created_at timestamptz not null default now()
);
create index if not exists staff_tenant_id_idx on public.staff (tenant_id);
create index if not exists staff_profile_id_idx on public.staff (profile_id);

create table if not exists public.appointments (
  id uuid primary key default gen_random_uuid(),
  tenant_id uuid not null references public.tenants (id) on delete cascade,
  staff_id uuid references public.staff (id) on delete set null,
  starts_at timestamptz not null,
  ends_at timestamptz not null,
  status text not null default 'scheduled',
  updated_at timestamptz not null default now()
);
create index if not exists appointments_tenant_id_idx on public.appointments (tenant_id);
create index if not exists appointments_staff_id_idx on public.appointments (staff_id);

-- ---------------------------------------------------------------------------------------------
-- Private helpers (not exposed through the API schema).
-- ---------------------------------------------------------------------------------------------
create schema if not exists calendar_private;
revoke all on schema calendar_private from public;
grant usage on schema calendar_private to authenticated, service_role;

-- The staff ids of the signed-in user. SECURITY DEFINER so policies need no grant on staff and
-- cannot recurse through staff's own policies.
create or replace function calendar_private.current_staff_ids()
returns setof uuid
language sql
stable
security definer
set search_path = ''
as $$
  select s.id from public.staff s where s.profile_id = (select auth.uid())
$$;

-- The tenants the signed-in user belongs to.
create or replace function calendar_private.current_tenant_ids()
returns setof uuid
language sql
stable
security definer
set search_path = ''
as $$
  select s.tenant_id from public.staff s where s.profile_id = (select auth.uid())
$$;

-- Whether the signed-in user administers the tenant. Apps with their own notion of an admin
-- replace this one function; every policy and view goes through it. plpgsql so that creating it
-- does not require the column to exist on an app's own staff table.
create or replace function calendar_private.is_tenant_admin(p_tenant_id uuid)
returns boolean
language plpgsql
stable
security definer
set search_path = ''
as $$
begin
  return exists (
    select 1 from public.staff s
    where s.profile_id = (select auth.uid()) and s.tenant_id = p_tenant_id and s.role = 'admin'
  );
exception when undefined_column then
  return false;
end
$$;

revoke all on all functions in schema calendar_private from public;
grant execute on function calendar_private.current_staff_ids() to authenticated, service_role;
grant execute on function calendar_private.current_tenant_ids() to authenticated, service_role;
grant execute on function calendar_private.is_tenant_admin(uuid) to authenticated, service_role;

-- ---------------------------------------------------------------------------------------------
-- staff_calendar_connections: one per (tenant, staff, provider). Tokens are AES-256-GCM envelopes
-- made by the functions (see _shared/crypto.ts); the database never sees a plaintext token.
-- ---------------------------------------------------------------------------------------------
create table if not exists public.staff_calendar_connections (
  id uuid primary key default gen_random_uuid(),
  tenant_id uuid not null references public.tenants (id) on delete cascade,
  staff_id uuid not null references public.staff (id) on delete cascade,
  provider text not null default 'google' check (provider in ('google', 'microsoft')),
  access_token_encrypted text,
  refresh_token_encrypted text,
  token_expires_at timestamptz,
  selected_calendar_id text not null default 'primary',
  connection_status text not null default 'connected'
    check (connection_status in ('connected', 'needs_reconnect', 'disconnected')),
  granted_scopes text[] not null default '{}',
  account_email text,
  last_sync_at timestamptz,
  last_error text,
  connected_at timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint staff_calendar_connections_tenant_staff_provider_key unique (tenant_id, staff_id, provider)
);
create index if not exists staff_calendar_connections_staff_id_idx on public.staff_calendar_connections (staff_id);
create index if not exists staff_calendar_connections_tenant_id_idx on public.staff_calendar_connections (tenant_id);

-- ---------------------------------------------------------------------------------------------
-- calendar_sync_log: one row per (appointment, staff); the durable outbox.
--   desired_action: what the calendar still needs ('upsert' | 'delete'), null once done
--   sync_status: 'pending' (work due at next_attempt_at), 'synced', 'failed' (dead letter)
--   lease_owner / lease_expires_at: a worker's claim; an expired lease is free again
--   appointment_key: the appointment id, kept after a hard delete (the FK is set null) because
--     the provider event id derives from it
-- ---------------------------------------------------------------------------------------------
create table if not exists public.calendar_sync_log (
  id uuid primary key default gen_random_uuid(),
  tenant_id uuid not null references public.tenants (id) on delete cascade,
  appointment_id uuid references public.appointments (id) on delete set null,
  appointment_key uuid not null,
  staff_id uuid not null references public.staff (id) on delete cascade,
  provider text not null default 'google' check (provider in ('google', 'microsoft')),
  google_event_id text,
  google_calendar_id text,
  event_etag text,
  sync_status text not null default 'pending' check (sync_status in ('synced', 'pending', 'failed')),
  sync_direction text not null default 'outbound' check (sync_direction in ('outbound')),
  desired_action text check (desired_action in ('upsert', 'delete')),
  next_attempt_at timestamptz,
  lease_owner text,
  lease_expires_at timestamptz,
  pending_since timestamptz,
  last_synced_at timestamptz,
  error_message text,
  last_error_code text,
  retry_count integer not null default 0,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint calendar_sync_log_appointment_id_staff_id_key unique (appointment_id, staff_id),
  constraint calendar_sync_log_appointment_key_staff_id_key unique (appointment_key, staff_id)
);
create index if not exists calendar_sync_log_tenant_id_idx on public.calendar_sync_log (tenant_id);
create index if not exists calendar_sync_log_staff_id_idx on public.calendar_sync_log (staff_id);
create index if not exists calendar_sync_log_due_idx on public.calendar_sync_log (next_attempt_at)
  where sync_status = 'pending';

-- ---------------------------------------------------------------------------------------------
-- calendar_oauth_states: single-use nonce behind each signed state JWT, with the PKCE verifier
-- (encrypted). Only the functions touch it.
-- ---------------------------------------------------------------------------------------------
create table if not exists public.calendar_oauth_states (
  id uuid primary key default gen_random_uuid(),
  nonce text not null unique,
  tenant_id uuid not null references public.tenants (id) on delete cascade,
  staff_id uuid not null references public.staff (id) on delete cascade,
  provider text not null default 'google' check (provider in ('google', 'microsoft')),
  code_verifier_encrypted text not null,
  return_to text,
  expires_at timestamptz not null,
  consumed_at timestamptz,
  created_at timestamptz not null default now()
);
create index if not exists calendar_oauth_states_staff_id_idx on public.calendar_oauth_states (staff_id);
create index if not exists calendar_oauth_states_expires_at_idx on public.calendar_oauth_states (expires_at);

-- ---------------------------------------------------------------------------------------------
-- updated_at maintenance
-- ---------------------------------------------------------------------------------------------
create or replace function calendar_private.touch_updated_at()
returns trigger
language plpgsql
set search_path = ''
as $$
begin
  new.updated_at := now();
  return new;
end
$$;

drop trigger if exists staff_calendar_connections_touch on public.staff_calendar_connections;
create trigger staff_calendar_connections_touch before update on public.staff_calendar_connections
  for each row execute function calendar_private.touch_updated_at();
drop trigger if exists calendar_sync_log_touch on public.calendar_sync_log;
create trigger calendar_sync_log_touch before update on public.calendar_sync_log
  for each row execute function calendar_private.touch_updated_at();

-- ---------------------------------------------------------------------------------------------
-- Row level security and grants
-- ---------------------------------------------------------------------------------------------
alter table public.staff_calendar_connections enable row level security;
alter table public.calendar_sync_log enable row level security;
alter table public.calendar_oauth_states enable row level security;

revoke all on public.staff_calendar_connections from anon, authenticated;
revoke all on public.calendar_sync_log from anon, authenticated;
revoke all on public.calendar_oauth_states from anon, authenticated;

-- Staff read their own connection's non-secret columns and may change only the calendar used.
grant select (
  id, tenant_id, staff_id, provider, token_expires_at, selected_calendar_id, connection_status,
  granted_scopes, account_email, last_sync_at, last_error, connected_at, created_at, updated_at
) on public.staff_calendar_connections to authenticated;
grant update (selected_calendar_id) on public.staff_calendar_connections to authenticated;

drop policy if exists "staff read own calendar connection" on public.staff_calendar_connections;
create policy "staff read own calendar connection" on public.staff_calendar_connections
  for select to authenticated
  using (staff_id in (select calendar_private.current_staff_ids()));

drop policy if exists "staff choose own calendar" on public.staff_calendar_connections;
create policy "staff choose own calendar" on public.staff_calendar_connections
  for update to authenticated
  using (staff_id in (select calendar_private.current_staff_ids()))
  with check (staff_id in (select calendar_private.current_staff_ids()));

-- Sync log: a staff member reads their own rows, a tenant admin the tenant's. No API writes.
grant select on public.calendar_sync_log to authenticated;
drop policy if exists "staff read own sync log" on public.calendar_sync_log;
create policy "staff read own sync log" on public.calendar_sync_log
  for select to authenticated
  using (
    staff_id in (select calendar_private.current_staff_ids())
    or (select calendar_private.is_tenant_admin(tenant_id))
  );

-- The service role (functions, server-side callers) has what the functions need.
grant all on public.staff_calendar_connections to service_role;
grant all on public.calendar_sync_log to service_role;
grant all on public.calendar_oauth_states to service_role;

-- Host tables we created get RLS too (an app's own tables keep the app's policies).
do $$
begin
  if not exists (
    select 1 from pg_policies where schemaname = 'public' and tablename = 'staff'
  ) then
    alter table public.tenants enable row level security;
    alter table public.staff enable row level security;
    alter table public.appointments enable row level security;
    grant select on public.tenants, public.staff to authenticated;
    grant select, insert, update, delete on public.appointments to authenticated;
    grant all on public.tenants, public.staff, public.appointments to service_role;
    create policy "members read own tenant" on public.tenants for select to authenticated
      using (id in (select calendar_private.current_tenant_ids()));
    create policy "members read tenant staff" on public.staff for select to authenticated
      using (tenant_id in (select calendar_private.current_tenant_ids()));
    create policy "members manage tenant appointments" on public.appointments for all to authenticated
      using (tenant_id in (select calendar_private.current_tenant_ids()))
      with check (tenant_id in (select calendar_private.current_tenant_ids()));
  end if;
end
$$;
