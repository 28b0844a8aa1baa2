-- The worker kick as hosted Supabase runs it: pg_net POSTs calendar-sync-worker with the URL and
-- secret read from Vault, asking for an asynchronous answer, and pg_notify still wakes the local
-- dispatcher. Replaces calendar_private.kick_worker of 20261123000200_calendar_sync_outbox.sql
-- (same signature, same grants); calendar_private.sweep_outbox and every trigger call it unchanged.
--
-- What changes:
-- * `Prefer: respond-async` (RFC 7240): the worker answers 202 at once and drains in the background
--   (EdgeRuntime.waitUntil), so pg_net's request never waits for a run. net._http_response then
--   shows status_code 202, timed_out false, error_msg null for every kick that reached the worker.
-- * A timeout that covers a whole run anyway (150 s, the edge runtime's wall-clock limit per request
--   on the free plan), for a runtime that ignores the preference and answers 200 after the drain.
--   The previous 5 s made pg_net record a timeout for any run longer than that.
-- * Supabase's API keys: when the Vault secret is one (`sb_secret_...`, or a legacy service-role JWT),
--   it is sent as `apikey` as well as `Authorization: Bearer`, the two places Supabase documents for
--   server-side keys. The project's own worker secret (CALENDAR_WORKER_SECRET) goes in the
--   Authorization header only, so it is never offered to the API gateway as an API key.
--
-- Vault entries (see supabase/seed.sql for the local Supabase stack):
--   select vault.create_secret('https://<project-ref>.supabase.co/functions/v1/calendar-sync-worker',
--     'calendar_sync_worker_url');
--   select vault.create_secret('<CALENDAR_WORKER_SECRET or an sb_secret_... key>',
--     'calendar_sync_worker_secret');
-- Idempotent (create or replace).

create or replace function calendar_private.kick_worker(p_reason text default 'enqueue')
returns void
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_url text;
  v_secret text;
  v_headers jsonb;
  v_waiting boolean := false;
begin
  begin
    -- A constant payload per reason, so a transaction touching many rows sends one notification.
    perform pg_notify('calendar_sync_kick', coalesce(p_reason, 'enqueue'));
  exception when others then
    raise warning 'calendar sync: pg_notify failed (%)', sqlstate;
  end;
  begin
    if to_regproc('net.http_post') is null or to_regclass('vault.decrypted_secrets') is null then
      return;
    end if;
    execute $q$
      select max(decrypted_secret) filter (where name = 'calendar_sync_worker_url'),
             max(decrypted_secret) filter (where name = 'calendar_sync_worker_secret')
      from vault.decrypted_secrets
      where name in ('calendar_sync_worker_url', 'calendar_sync_worker_secret')$q$
      into v_url, v_secret;
    if v_url is null or v_secret is null then
      return;
    end if;
    -- A kick still waiting in pg_net's queue starts a worker that will see these rows too.
    if to_regclass('net.http_request_queue') is not null then
      execute 'select exists (select 1 from net.http_request_queue where url = $1)' into v_waiting using v_url;
    end if;
    if not coalesce(v_waiting, false) then
      v_headers := jsonb_build_object(
        'Content-Type', 'application/json',
        'Authorization', 'Bearer ' || v_secret,
        'Prefer', 'respond-async');
      -- A Supabase API key: sb_secret_..., or a legacy key (a JWT: three base64url parts).
      if v_secret like 'sb\_secret\_%' or v_secret ~ '^eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$' then
        v_headers := v_headers || jsonb_build_object('apikey', v_secret);
      end if;
      execute 'select net.http_post(url := $1, body := $2, headers := $3, timeout_milliseconds := 150000)'
        using v_url, '{}'::jsonb, v_headers;
    end if;
  exception when others then
    raise warning 'calendar sync: pg_net kick failed (%)', sqlstate;
  end;
end
$$;

revoke all on function calendar_private.kick_worker(text) from public;
grant execute on function calendar_private.kick_worker(text) to service_role;

-- ---------------------------------------------------------------------------------------------
-- calendar_private.configure_worker_kick(url, secret): store (or replace) the two Vault entries the
-- kick reads, in one call, for deploy scripts, supabase/seed.sql and the local stack:
--   select calendar_private.configure_worker_kick(
--     'https://<project-ref>.supabase.co/functions/v1/calendar-sync-worker', '<secret>');
-- Errors: 22023 when an argument is empty or the URL is not http(s); 55000 when Vault
-- (supabase_vault) is not installed. A notice when pg_net is missing (the kick then stays pg_notify
-- only until it is enabled).
-- ---------------------------------------------------------------------------------------------
create or replace function calendar_private.configure_worker_kick(p_url text, p_secret text)
returns void
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_entry record;
  v_id uuid;
begin
  if coalesce(p_url, '') !~ '^https?://[^/[:space:]]+' then
    raise exception 'calendar sync: the worker URL must be an http(s) URL, e.g. https://<project-ref>.supabase.co/functions/v1/calendar-sync-worker'
      using errcode = '22023';
  end if;
  if coalesce(p_secret, '') = '' then
    raise exception 'calendar sync: the worker secret is empty (CALENDAR_WORKER_SECRET or an sb_secret_... key)'
      using errcode = '22023';
  end if;
  if to_regprocedure('vault.create_secret(text,text,text,uuid)') is null then
    raise exception 'calendar sync: Supabase Vault (extension supabase_vault) is not installed in this database'
      using errcode = '55000';
  end if;
  for v_entry in
    select * from (values
      ('calendar_sync_worker_url', p_url, 'calendar-sync-worker URL the pg_net kick POSTs to'),
      ('calendar_sync_worker_secret', p_secret, 'bearer secret the pg_net kick presents to calendar-sync-worker')
    ) as e(name, value, description)
  loop
    execute 'select id from vault.secrets where name = $1' into v_id using v_entry.name;
    if v_id is null then
      execute 'select vault.create_secret($1, $2, $3)' using v_entry.value, v_entry.name, v_entry.description;
    else
      execute 'select vault.update_secret($1, $2)' using v_id, v_entry.value;
    end if;
  end loop;
  if to_regproc('net.http_post') is null then
    raise notice 'calendar sync: pg_net is not enabled in this database; the kick stays pg_notify only until it is';
  end if;
end
$$;

revoke all on function calendar_private.configure_worker_kick(text, text) from public;
grant execute on function calendar_private.configure_worker_kick(text, text) to service_role;
