-- Seed for the local Supabase stack (`supabase start`, `supabase db reset`): the two Vault entries
-- calendar_private.kick_worker reads, so an appointment change reaches calendar-sync-worker through
-- pg_net exactly as on a hosted project.
--
-- Inside the local stack the database reaches the functions through the API gateway's container
-- (Kong, network alias `kong`, port 8000), not 127.0.0.1:54321, which is the host's port.
-- The secret must equal CALENDAR_WORKER_SECRET in supabase/functions/.env (the placeholder below is
-- the one supabase/functions/.env.example ships: change both together). Re-running it replaces the
-- entries; without Vault it stops with an error that says so.
select calendar_private.configure_worker_kick(
  'http://kong:8000/functions/v1/calendar-sync-worker',
  'change-me-to-a-long-random-secret-xxxxxxxxxxxxxxxx'
);
