-- The worker kick's configuration (20261129000100_calendar_sync_kick.sql): configure_worker_kick
-- refuses unusable values before touching Vault, says clearly when Vault is missing, and neither it
-- nor kick_worker is callable by the API roles. The pg_net + Vault path itself is exercised end to
-- end by tests/integration/pg-net-kick.test.ts. Runs with `supabase test db` and pg_prove.
-- One transaction, rolled back.
begin;
create extension if not exists pgtap with schema extensions;
set local search_path = public, extensions;

select plan(9);

select throws_ok(
  $$select calendar_private.configure_worker_kick('kong:8000/functions/v1/calendar-sync-worker', 'a-secret')$$,
  '22023', null, 'a URL without http(s):// is refused');
select throws_ok(
  $$select calendar_private.configure_worker_kick('javascript:alert(1)', 'a-secret')$$,
  '22023', null, 'a non-http scheme is refused');
select throws_ok(
  $$select calendar_private.configure_worker_kick('https://ref.supabase.co/functions/v1/calendar-sync-worker', '')$$,
  '22023', null, 'an empty secret is refused');
select throws_ok(
  $$select calendar_private.configure_worker_kick(null, null)$$,
  '22023', null, 'nulls are refused');
select case when to_regprocedure('vault.create_secret(text,text,text,uuid)') is null then
  throws_ok(
    $$select calendar_private.configure_worker_kick('https://ref.supabase.co/functions/v1/calendar-sync-worker', 's')$$,
    '55000', 'calendar sync: Supabase Vault (extension supabase_vault) is not installed in this database',
    'without Vault the error says what is missing')
else
  lives_ok(
    $$select calendar_private.configure_worker_kick('https://ref.supabase.co/functions/v1/calendar-sync-worker', 's')$$,
    'with Vault the entries are stored')
end;

select lives_ok($$select calendar_private.kick_worker('test')$$,
  'a kick never fails its caller, whatever is installed');

select ok(not has_function_privilege('anon', 'calendar_private.configure_worker_kick(text, text)', 'execute'),
  'anon cannot configure the kick');
select ok(not has_function_privilege('authenticated', 'calendar_private.configure_worker_kick(text, text)', 'execute'),
  'authenticated cannot configure the kick');
select ok(not has_function_privilege('authenticated', 'calendar_private.kick_worker(text)', 'execute'),
  'authenticated cannot kick the worker directly');

select * from finish();
rollback;
