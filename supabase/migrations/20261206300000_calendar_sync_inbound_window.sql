-- The span of time a channel's busy cache covers.
--
-- Inbound sync reads a channel's calendar over a bounded window (Google events.list timeMin/timeMax on
-- the first, full sync; Graph calendarView/delta startDateTime/endDateTime), so the busy cache only
-- knows that window: an availability question outside it must be answered live. The sync writes the
-- window when a full sync starts (a new channel, a reselected calendar, an expired cursor) and moves it
-- forward when it resynchronises; availability reads it to decide whether the cache can answer.

alter table public.calendar_channels
  add column if not exists cache_window_start timestamptz,
  add column if not exists cache_window_end timestamptz;

alter table public.calendar_channels
  drop constraint if exists calendar_channels_cache_window_check;
alter table public.calendar_channels
  add constraint calendar_channels_cache_window_check
  check (
    (cache_window_start is null and cache_window_end is null)
    or (cache_window_start is not null and cache_window_end is not null and cache_window_end > cache_window_start)
  );

comment on column public.calendar_channels.cache_window_start is
  'Start of the time span the channel''s busy blocks cover (the full sync''s window); null before the first full sync.';
comment on column public.calendar_channels.cache_window_end is
  'End of the time span the channel''s busy blocks cover; availability outside [start, end) is read live.';
