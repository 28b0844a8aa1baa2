-- Calendar sync, inbound foundation (docs/decisions.md decisions 13, 14 and 16). Idempotent.
--
-- 1. calendar_channels: one provider push channel per row (a Google events.watch channel, a Graph
--    subscription) with its life cycle, sync cursors and error counters. The channel's secret (the
--    Google channel token, the Graph clientState) is kept only as its SHA-256 digest, and neither the
--    digest nor the cursors nor the provider ids are granted to any API role. One live channel per
--    (connection, calendar): a partial unique index on calendar_private.channel_is_live(sync_stage).
-- 2. calendar_busy_blocks: the busy cache. Start, end, all-day and the SHA-256 of the provider's
--    event id, and nothing else: no title, description, attendee or place of a clinician's own
--    events is ever stored (decision 13).
-- 3. calendar_conflicts: what inbound sync found (our event edited or deleted outside the product,
--    an outside busy block overlapping an appointment; decision 14), without PHI, in the Realtime
--    publication when there is one.
-- 4. calendar_channel_jobs: the channel queue (decision 17). One row per (channel, kind) that cycles
--    pending -> done | failed like calendar_sync_log's rows do, with the same lease, backoff and
--    dead-letter columns, so a storm of notifications coalesces into one pending job. It is a table
--    of its own: calendar_private.claim_due_rows reads calendar_sync_log only and never sees it.
-- 5. The webhook's two statements, calendar_private.record_google_notification and
--    calendar_private.record_microsoft_notifications: find the live channel of an active
--    connection, compare the secret's digest in constant time, drop replays, record, and request a
--    sync job, in one round trip; a forged or unknown notification writes nothing.
-- Every tenant-scoped row carries its staff member's tenant (calendar_private.require_staff_tenant)
-- and references only connections, channels and appointments of that tenant and staff member
-- (calendar_private.require_tenant_references), whoever writes it.

-- ---------------------------------------------------------------------------------------------
-- Rules, once.
-- ---------------------------------------------------------------------------------------------
create or replace function calendar_private.channel_is_live(p_sync_stage text)
returns boolean
language sql
immutable
parallel safe
as $$
  select p_sync_stage in ('pending', 'full_sync', 'incremental')
$$;

comment on function calendar_private.channel_is_live(text) is
  'Whether a channel in this sync stage is live (at most one per connection and calendar: calendar_channels_one_live_key); stopped and failed channels are history.';

-- Equal digests, looking at every byte whatever differs first: the time taken says nothing about
-- where two digests part (a digest of the secret leaks nothing of the secret anyway; this removes
-- even that). Different lengths or a null are simply unequal.
create or replace function calendar_private.digests_equal(p_a bytea, p_b bytea)
returns boolean
language sql
immutable
parallel safe
set search_path = ''
as $$
  select coalesce(
    octet_length(p_a) = octet_length(p_b)
      and (select bit_or(get_byte(p_a, i) # get_byte(p_b, i))
           from generate_series(0, octet_length(p_a) - 1) as i) = 0,
    false)
$$;

comment on function calendar_private.digests_equal(bytea, bytea) is
  'Constant-time equality of two digests (every byte compared, no early exit); false for a null or a length mismatch.';

-- ---------------------------------------------------------------------------------------------
-- Tenant references: a row's connection, channel and appointment (whichever the row has) belong
-- to its tenant, and the connection and channel to its staff member (and provider, when the row
-- has one). Read through to_jsonb so one function serves every table.
-- ---------------------------------------------------------------------------------------------
create or replace function calendar_private.require_tenant_references()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_row jsonb := to_jsonb(new);
  v_provider text := v_row ->> 'provider';
begin
  if v_row ? 'connection_id' and not exists (
    select 1 from public.staff_calendar_connections c
    where c.id = (v_row ->> 'connection_id')::uuid and c.tenant_id = new.tenant_id
      and c.staff_id = (v_row ->> 'staff_id')::uuid and (v_provider is null or c.provider = v_provider)
  ) then
    raise exception 'calendar sync: connection % is not a connection of staff % in tenant %',
      v_row ->> 'connection_id', v_row ->> 'staff_id', new.tenant_id
      using errcode = 'foreign_key_violation';
  end if;
  if v_row ? 'channel_id' and not exists (
    select 1 from public.calendar_channels ch
    where ch.id = (v_row ->> 'channel_id')::uuid and ch.tenant_id = new.tenant_id
      and ch.staff_id = (v_row ->> 'staff_id')::uuid
  ) then
    raise exception 'calendar sync: channel % is not a channel of staff % in tenant %',
      v_row ->> 'channel_id', v_row ->> 'staff_id', new.tenant_id
      using errcode = 'foreign_key_violation';
  end if;
  if v_row ? 'appointment_id' and v_row ->> 'appointment_id' is not null and not exists (
    select 1 from public.appointments a
    where a.id = (v_row ->> 'appointment_id')::uuid and a.tenant_id = new.tenant_id
  ) then
    raise exception 'calendar sync: appointment % is not an appointment of tenant %',
      v_row ->> 'appointment_id', new.tenant_id
      using errcode = 'foreign_key_violation';
  end if;
  return new;
end
$$;

-- ---------------------------------------------------------------------------------------------
-- 1. Channels.
-- ---------------------------------------------------------------------------------------------
create table if not exists public.calendar_channels (
  id uuid primary key default gen_random_uuid(),
  tenant_id uuid not null references public.tenants (id) on delete cascade,
  staff_id uuid not null references public.staff (id) on delete cascade,
  connection_id uuid not null references public.staff_calendar_connections (id) on delete cascade,
  provider text not null check (provider in ('google', 'microsoft')),
  calendar_id text not null,
  -- Google: the channel id we choose before events.watch; Graph: the subscription id it assigns.
  provider_channel_id text check (char_length(provider_channel_id) between 1 and 256),
  -- Google: resourceId and resourceUri of the watched collection; Graph: the subscription resource.
  resource_id text,
  resource_uri text,
  -- SHA-256 of the Google channel token / the Graph clientState; the secret itself is not kept.
  secret_hash bytea not null check (octet_length(secret_hash) = 32),
  expires_at timestamptz,
  -- Google nextSyncToken / Graph @odata.deltaLink; the page cursor of a run in progress (Google
  -- nextPageToken / Graph @odata.nextLink). Useless without the connection's access token.
  sync_cursor text,
  page_cursor text,
  sync_stage text not null default 'pending'
    check (sync_stage in ('pending', 'full_sync', 'incremental', 'failed', 'stopped')),
  -- Google X-Goog-Message-Number: the highest seen; older and equal numbers are replays.
  last_message_number bigint,
  error_count integer not null default 0 check (error_count >= 0),
  last_error_code text,
  last_error_at timestamptz,
  sync_requested_at timestamptz,
  last_notified_at timestamptz,
  last_synced_at timestamptz,
  -- Graph lifecycle notifications, for the worker to act on: reauthorize (PATCH), recreate, resync.
  reauthorization_required_at timestamptz,
  subscription_removed_at timestamptz,
  missed_at timestamptz,
  created_at timestamptz not null default now(),
  renewed_at timestamptz,
  stopped_at timestamptz,
  updated_at timestamptz not null default now()
);

create unique index if not exists calendar_channels_one_live_key
  on public.calendar_channels (connection_id, calendar_id)
  where calendar_private.channel_is_live(sync_stage);
create unique index if not exists calendar_channels_provider_channel_key
  on public.calendar_channels (provider, provider_channel_id);
create index if not exists calendar_channels_tenant_id_idx on public.calendar_channels (tenant_id);
create index if not exists calendar_channels_staff_id_idx on public.calendar_channels (staff_id);
create index if not exists calendar_channels_expires_at_idx on public.calendar_channels (expires_at)
  where calendar_private.channel_is_live(sync_stage);

comment on table public.calendar_channels is
  'Provider push channels (Google events.watch channels, Graph subscriptions) with their sync cursors and stage; secrets kept as SHA-256 only; written by the functions only.';
comment on column public.calendar_channels.secret_hash is
  'SHA-256 of the channel''s secret (Google X-Goog-Channel-Token, Graph clientState); compared in constant time.';
comment on column public.calendar_channels.last_message_number is
  'Highest Google X-Goog-Message-Number recorded; a notification with a number at or below it is a replay and writes nothing.';
comment on column public.calendar_channels.sync_requested_at is
  'Last time a notification asked for a sync (coalesced into the channel''s one pending sync job).';

drop trigger if exists calendar_channels_touch on public.calendar_channels;
create trigger calendar_channels_touch before update on public.calendar_channels
  for each row execute function calendar_private.touch_updated_at();
drop trigger if exists calendar_channels_staff_tenant on public.calendar_channels;
create trigger calendar_channels_staff_tenant
  before insert or update of tenant_id, staff_id on public.calendar_channels
  for each row execute function calendar_private.require_staff_tenant();
drop trigger if exists calendar_channels_tenant_references on public.calendar_channels;
create trigger calendar_channels_tenant_references
  before insert or update of tenant_id, staff_id, connection_id, provider on public.calendar_channels
  for each row execute function calendar_private.require_tenant_references();

-- ---------------------------------------------------------------------------------------------
-- 2. The busy cache.
-- ---------------------------------------------------------------------------------------------
create table if not exists public.calendar_busy_blocks (
  tenant_id uuid not null references public.tenants (id) on delete cascade,
  staff_id uuid not null references public.staff (id) on delete cascade,
  connection_id uuid not null references public.staff_calendar_connections (id) on delete cascade,
  -- SHA-256 of the provider's event id (an instance's id for a recurring event's occurrence).
  event_key bytea not null check (octet_length(event_key) = 32),
  starts_at timestamptz not null,
  ends_at timestamptz not null,
  all_day boolean not null default false,
  primary key (connection_id, event_key),
  check (ends_at > starts_at)
);
create index if not exists calendar_busy_blocks_staff_window_idx
  on public.calendar_busy_blocks (staff_id, starts_at, ends_at);
create index if not exists calendar_busy_blocks_tenant_id_idx on public.calendar_busy_blocks (tenant_id);

comment on table public.calendar_busy_blocks is
  'Busy intervals read from staff calendars by inbound sync: times and a digest of the event id only, never titles, descriptions, attendees or places.';

drop trigger if exists calendar_busy_blocks_staff_tenant on public.calendar_busy_blocks;
create trigger calendar_busy_blocks_staff_tenant
  before insert or update of tenant_id, staff_id on public.calendar_busy_blocks
  for each row execute function calendar_private.require_staff_tenant();
drop trigger if exists calendar_busy_blocks_tenant_references on public.calendar_busy_blocks;
create trigger calendar_busy_blocks_tenant_references
  before insert or update of tenant_id, staff_id, connection_id on public.calendar_busy_blocks
  for each row execute function calendar_private.require_tenant_references();

-- ---------------------------------------------------------------------------------------------
-- 3. Conflicts.
-- ---------------------------------------------------------------------------------------------
create table if not exists public.calendar_conflicts (
  id uuid primary key default gen_random_uuid(),
  tenant_id uuid not null references public.tenants (id) on delete cascade,
  staff_id uuid not null references public.staff (id) on delete cascade,
  appointment_id uuid not null references public.appointments (id) on delete cascade,
  kind text not null check (kind in (
    'external_edit_restored', 'external_edit_reported',
    'external_delete_restored', 'external_delete_reported',
    'overlap'
  )),
  -- Provider, changed fields, the busy block's times: never a title, a description or a person.
  details jsonb not null default '{}'::jsonb
    check (jsonb_typeof(details) = 'object' and octet_length(details::text) <= 2048),
  detected_at timestamptz not null default now(),
  resolved_at timestamptz,
  check (resolved_at is null or resolved_at >= detected_at)
);
-- One open conflict of a kind per appointment: detection updates it, resolution closes it.
create unique index if not exists calendar_conflicts_one_open_key
  on public.calendar_conflicts (appointment_id, kind) where resolved_at is null;
create index if not exists calendar_conflicts_tenant_detected_idx
  on public.calendar_conflicts (tenant_id, detected_at desc);
create index if not exists calendar_conflicts_staff_id_idx on public.calendar_conflicts (staff_id);

comment on table public.calendar_conflicts is
  'Inbound sync findings: our event changed or deleted outside the product (restored or reported), outside busy time overlapping an appointment. No PHI.';

drop trigger if exists calendar_conflicts_staff_tenant on public.calendar_conflicts;
create trigger calendar_conflicts_staff_tenant
  before insert or update of tenant_id, staff_id on public.calendar_conflicts
  for each row execute function calendar_private.require_staff_tenant();
drop trigger if exists calendar_conflicts_tenant_references on public.calendar_conflicts;
create trigger calendar_conflicts_tenant_references
  before insert or update of tenant_id, staff_id, appointment_id on public.calendar_conflicts
  for each row execute function calendar_private.require_tenant_references();

-- The app can warn live (Supabase Realtime applies the table's RLS to each subscriber). Plain
-- PostgreSQL has no such publication.
do $$
begin
  if exists (select 1 from pg_publication where pubname = 'supabase_realtime')
    and not exists (
      select 1 from pg_publication_tables
      where pubname = 'supabase_realtime' and schemaname = 'public' and tablename = 'calendar_conflicts'
    ) then
    alter publication supabase_realtime add table public.calendar_conflicts;
  end if;
end
$$;

-- ---------------------------------------------------------------------------------------------
-- 4. Channel jobs (decision 17). Life cycle, as calendar_sync_log's rows:
--   request (webhook, sweep)  -> status 'pending'; a job already pending keeps its next_attempt_at
--                                (a storm never undoes a backoff), queue_version + 1,
--                                request_count + the requests coalesced
--   claim (next step)         -> lease_owner / lease_expires_at, on a workable connection only
--   success                   -> 'done' unless queue_version moved meanwhile (then pending again)
--   retryable failure         -> pending, retry_count + 1, next_attempt_at = now() + backoff
--   permanent / out of budget -> 'failed' (dead letter); the next request revives it
-- ---------------------------------------------------------------------------------------------
create table if not exists public.calendar_channel_jobs (
  id uuid primary key default gen_random_uuid(),
  tenant_id uuid not null references public.tenants (id) on delete cascade,
  staff_id uuid not null references public.staff (id) on delete cascade,
  channel_id uuid not null references public.calendar_channels (id) on delete cascade,
  kind text not null check (kind in ('create', 'renew', 'stop', 'sync')),
  status text not null default 'pending' check (status in ('pending', 'done', 'failed')),
  next_attempt_at timestamptz,
  pending_since timestamptz,
  lease_owner text,
  lease_expires_at timestamptz,
  retry_count integer not null default 0 check (retry_count >= 0),
  first_failure_at timestamptz,
  queue_version bigint not null default 0,
  request_count bigint not null default 0 check (request_count >= 0),
  last_error_code text,
  error_message text,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint calendar_channel_jobs_channel_kind_key unique (channel_id, kind)
);
-- At most one pending job of a kind per channel (the unique key above makes it at most one row);
-- the claim of the next step reads pending rows in this order, like calendar_sync_log's.
create index if not exists calendar_channel_jobs_claim_order_idx
  on public.calendar_channel_jobs (next_attempt_at, id) where status = 'pending';
create index if not exists calendar_channel_jobs_tenant_id_idx on public.calendar_channel_jobs (tenant_id);
create index if not exists calendar_channel_jobs_staff_id_idx on public.calendar_channel_jobs (staff_id);

comment on table public.calendar_channel_jobs is
  'Channel work (create, renew, stop, sync) queued with the outbox''s leases, backoff and dead letters; one row per (channel, kind), so requests coalesce.';

drop trigger if exists calendar_channel_jobs_touch on public.calendar_channel_jobs;
create trigger calendar_channel_jobs_touch before update on public.calendar_channel_jobs
  for each row execute function calendar_private.touch_updated_at();
drop trigger if exists calendar_channel_jobs_staff_tenant on public.calendar_channel_jobs;
create trigger calendar_channel_jobs_staff_tenant
  before insert or update of tenant_id, staff_id on public.calendar_channel_jobs
  for each row execute function calendar_private.require_staff_tenant();
drop trigger if exists calendar_channel_jobs_tenant_references on public.calendar_channel_jobs;
create trigger calendar_channel_jobs_tenant_references
  before insert or update of tenant_id, staff_id, channel_id on public.calendar_channel_jobs
  for each row execute function calendar_private.require_tenant_references();

-- Request a job of p_kind for a channel, coalescing with the one already pending. p_requests: how
-- many requests (notifications) this call stands for.
create or replace function calendar_private.request_channel_job(
  p_channel_id uuid,
  p_kind text,
  p_requests integer default 1
)
returns void
language sql
security definer
set search_path = ''
as $$
  insert into public.calendar_channel_jobs as j (
    tenant_id, staff_id, channel_id, kind, status, next_attempt_at, pending_since, queue_version, request_count
  )
  select ch.tenant_id, ch.staff_id, ch.id, p_kind, 'pending', now(), now(), 1, p_requests
  from public.calendar_channels ch
  where ch.id = p_channel_id
  on conflict (channel_id, kind) do update set
    status = 'pending',
    next_attempt_at = case when j.status = 'pending' then j.next_attempt_at else now() end,
    pending_since = case when j.status = 'pending' then j.pending_since else now() end,
    retry_count = case when j.status = 'pending' then j.retry_count else 0 end,
    first_failure_at = case when j.status = 'pending' then j.first_failure_at end,
    request_count = case when j.status = 'pending' then j.request_count else 0 end + excluded.request_count,
    queue_version = j.queue_version + 1
$$;

comment on function calendar_private.request_channel_job(uuid, text, integer) is
  'Mark the channel''s job of this kind pending (one row per channel and kind: requests coalesce; a pending job keeps its next_attempt_at).';

-- ---------------------------------------------------------------------------------------------
-- 5. The webhook's statements. A channel answers only while it is live and its connection is the
-- staff member's active one (calendar_private.active_connection): notifications of a stopped
-- channel or a disconnected connection are unknown. A connection waiting for a reconnect still
-- records the request; its job waits unclaimed like its outbox rows.
-- ---------------------------------------------------------------------------------------------

-- The live channel of an active connection with this provider id, or no row.
create or replace function calendar_private.notified_channel(p_provider text, p_provider_channel_id text)
returns setof public.calendar_channels
language sql
stable
rows 1
set search_path = ''
as $$
  select ch.* from public.calendar_channels ch
  where ch.provider = p_provider and ch.provider_channel_id = p_provider_channel_id
    and calendar_private.channel_is_live(ch.sync_stage)
    and exists (
      select 1 from calendar_private.active_connection(ch.tenant_id, ch.staff_id) c where c.id = ch.connection_id
    )
$$;

-- One Google push notification (headers X-Goog-*). Returns the outcome:
--   unknown        no live channel of an active connection has this id (nothing written)
--   forged         the token's digest or the resource id does not match (nothing written)
--   acknowledged   resource state `sync`: the channel's first message (nothing written)
--   replayed       a message number at or below the highest recorded (nothing written)
--   sync_requested the number recorded, the channel's sync job pending
-- p_resource_id must equal the stored resourceId once the watch answer stored it (a `sync` may
-- arrive before that answer; the token alone authenticates it then).
create or replace function calendar_private.record_google_notification(
  p_channel_id text,
  p_token_hash bytea,
  p_resource_id text,
  p_resource_state text,
  p_message_number bigint
)
returns text
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_channel public.calendar_channels;
begin
  select * into v_channel from calendar_private.notified_channel('google', p_channel_id);
  if v_channel.id is null then
    return 'unknown';
  end if;
  if not calendar_private.digests_equal(v_channel.secret_hash, p_token_hash)
    or (v_channel.resource_id is not null and v_channel.resource_id is distinct from p_resource_id) then
    return 'forged';
  end if;
  if p_resource_state = 'sync' then
    return 'acknowledged';
  end if;
  -- The condition is checked again under the row lock, so of two concurrent messages the older
  -- one never overwrites the newer one's number.
  update public.calendar_channels ch set
    last_message_number = p_message_number,
    last_notified_at = now(),
    sync_requested_at = now()
  where ch.id = v_channel.id
    and (ch.last_message_number is null or ch.last_message_number < p_message_number);
  if not found then
    return 'replayed';
  end if;
  perform calendar_private.request_channel_job(v_channel.id, 'sync');
  return 'sync_requested';
end
$$;

-- A batch of Graph notifications (change or lifecycle), entry i being (p_subscription_ids[i],
-- p_client_state_hashes[i], p_lifecycle_events[i]; null for a change notification). Returns each
-- entry's outcome: unknown, forged (clientState digest differs), accepted. Accepted entries mark
-- their channel notified (and lifecycleEvent's column), and request one sync job per channel for
-- all of them; unknown and forged entries write nothing.
create or replace function calendar_private.record_microsoft_notifications(
  p_subscription_ids text[],
  p_client_state_hashes bytea[],
  p_lifecycle_events text[]
)
returns table (ordinal integer, outcome text)
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_outcomes text[];
  v_channel_ids uuid[];
  v_channel record;
begin
  select
    array_agg(
      case when ch.id is null then 'unknown'
        when not calendar_private.digests_equal(ch.secret_hash, e.state_hash) then 'forged'
        else 'accepted' end
      order by e.ord),
    array_agg(ch.id order by e.ord)
  into v_outcomes, v_channel_ids
  from unnest(p_subscription_ids, p_client_state_hashes) with ordinality as e(subscription_id, state_hash, ord)
  left join lateral calendar_private.notified_channel('microsoft', e.subscription_id) ch on true;

  for v_channel in
    select v_channel_ids[i] as channel_id, count(*)::integer as requests,
      bool_or(p_lifecycle_events[i] = 'reauthorizationRequired') as reauthorize,
      bool_or(p_lifecycle_events[i] = 'subscriptionRemoved') as removed,
      bool_or(p_lifecycle_events[i] = 'missed') as missed
    from generate_subscripts(v_outcomes, 1) as i
    where v_outcomes[i] = 'accepted'
    group by v_channel_ids[i]
    order by v_channel_ids[i]
  loop
    update public.calendar_channels ch set
      last_notified_at = now(),
      sync_requested_at = now(),
      reauthorization_required_at = case when v_channel.reauthorize then now() else ch.reauthorization_required_at end,
      subscription_removed_at = case when v_channel.removed then now() else ch.subscription_removed_at end,
      missed_at = case when v_channel.missed then now() else ch.missed_at end
    where ch.id = v_channel.channel_id;
    perform calendar_private.request_channel_job(v_channel.channel_id, 'sync', v_channel.requests);
  end loop;

  return query select o.ord::integer, o.outcome from unnest(v_outcomes) with ordinality as o(outcome, ord);
end
$$;

-- ---------------------------------------------------------------------------------------------
-- Row level security and grants. Channels and jobs: the functions only. Busy blocks and
-- conflicts: the staff member and the tenant's admins read them; nobody writes them through the
-- API. No TRUNCATE, REFERENCES or TRIGGER for any API role, nothing for anon.
-- ---------------------------------------------------------------------------------------------
alter table public.calendar_channels enable row level security;
alter table public.calendar_busy_blocks enable row level security;
alter table public.calendar_conflicts enable row level security;
alter table public.calendar_channel_jobs enable row level security;

revoke all on public.calendar_channels, public.calendar_busy_blocks, public.calendar_conflicts,
  public.calendar_channel_jobs from anon, authenticated, service_role;
grant select, insert, update, delete on public.calendar_channels, public.calendar_busy_blocks,
  public.calendar_conflicts, public.calendar_channel_jobs to service_role;
grant select on public.calendar_busy_blocks, public.calendar_conflicts to authenticated;

drop policy if exists "staff and admins read busy blocks" on public.calendar_busy_blocks;
create policy "staff and admins read busy blocks" on public.calendar_busy_blocks
  for select to authenticated
  using (
    staff_id in (select calendar_private.current_staff_ids())
    or (select calendar_private.is_tenant_admin(tenant_id))
  );

drop policy if exists "staff and admins read conflicts" on public.calendar_conflicts;
create policy "staff and admins read conflicts" on public.calendar_conflicts
  for select to authenticated
  using (
    staff_id in (select calendar_private.current_staff_ids())
    or (select calendar_private.is_tenant_admin(tenant_id))
  );

-- channel_is_live is an index predicate, evaluated for whoever writes the table, and says nothing
-- about any row: executable by all, like connection_is_active. The rest is for the functions.
revoke all on function calendar_private.channel_is_live(text) from public;
revoke all on function calendar_private.digests_equal(bytea, bytea) from public;
revoke all on function calendar_private.require_tenant_references() from public;
revoke all on function calendar_private.request_channel_job(uuid, text, integer) from public;
revoke all on function calendar_private.notified_channel(text, text) from public;
revoke all on function calendar_private.record_google_notification(text, bytea, text, text, bigint) from public;
revoke all on function calendar_private.record_microsoft_notifications(text[], bytea[], text[]) from public;
grant execute on function calendar_private.channel_is_live(text) to public;
grant execute on function calendar_private.digests_equal(bytea, bytea) to service_role;
grant execute on function calendar_private.request_channel_job(uuid, text, integer) to service_role;
grant execute on function calendar_private.notified_channel(text, text) to service_role;
grant execute on function calendar_private.record_google_notification(text, bytea, text, text, bigint)
  to service_role;
grant execute on function calendar_private.record_microsoft_notifications(text[], bytea[], text[])
  to service_role;
