-- What inbound sync (supabase/functions/_shared/inbound/sync.ts) keeps beside a busy block and a channel
-- so that a run can stop anywhere and the cache stays exact. Idempotent.
--
-- 1. calendar_busy_blocks.seen_at: when a sync last read the block's event. A full sync records when it
--    started (calendar_channels.full_sync_started_at) and, on its last page, deletes the connection's
--    blocks it did not see (mark and sweep); the full sync may span several runs, so what it saw has to
--    be in the table, not in the memory of one run. Each page is applied in its own transaction, after
--    the transaction that started the full sync, so its now() is never earlier than the start.
-- 2. calendar_busy_blocks.ours: the event is one the product wrote (an appointment's event). It still
--    counts as busy (live availability counts it too); overlap conflicts ignore it, since an
--    appointment always overlaps its own event. Our own fact, not the provider's: the block still
--    holds nothing of the event but its times and the digest of its id (decision 13).
-- 3. calendar_channels.full_sync_started_at: set when a full sync starts, cleared when it completes.

alter table public.calendar_busy_blocks
  add column if not exists seen_at timestamptz not null default now(),
  add column if not exists ours boolean not null default false;

comment on column public.calendar_busy_blocks.seen_at is
  'When inbound sync last read this event; a completed full sync deletes the connection''s blocks seen before it started.';
comment on column public.calendar_busy_blocks.ours is
  'The event is an appointment''s event the product wrote: busy, but never an overlap conflict.';

alter table public.calendar_channels
  add column if not exists full_sync_started_at timestamptz;

comment on column public.calendar_channels.full_sync_started_at is
  'When the full sync in progress started (its window is cache_window_start/end); null once it completed.';
