/**
 * The busy cache (`calendar_busy_blocks`, decision 13): one row per event of a connection's calendar
 * that blocks time, keyed by the SHA-256 of the provider's event id (an occurrence's own id for a
 * recurring series), holding its start, end and all-day flag and nothing else of the event. The
 * digest is computed by the database (`sha256(convert_to(id, 'UTF8'))`), so SQL can key a block the
 * same way anywhere.
 *
 * Our own events are cached as busy too (live availability counts them; `ours` only keeps them out
 * of overlap conflicts, ./conflicts.ts). A full sync marks what it reads (`seen_at`) and, when it
 * completes, sweeps the connection's blocks it did not see ({@link sweepUnseen}).
 */
import type { TransactionSql } from "../db/client.ts";
import type { ExternalEvent } from "../providers/types.ts";
import { parseInstant } from "../time-ranges.ts";

/** An event of a page with whether it is one of ours. */
export interface CachedEvent {
  event: ExternalEvent;
  ours: boolean;
}

/** The span the cache covers (`calendar_channels.cache_window_start/end`), when known. */
export interface CacheWindow {
  start: Date;
  end: Date;
}

/**
 * Whether the event is a busy block of the cache: it blocks time (`busy`: not free, not cancelled,
 * not declined), has times that make a non-empty interval, and overlaps `window` when one is given.
 * Google's incremental rounds report changes anywhere in time; what falls outside the window is not
 * kept (an event moved out of it is removed), so the cache holds exactly the window.
 */
export function isCachedBusy(event: ExternalEvent, window: CacheWindow | null): boolean {
  if (!event.busy || event.status !== "confirmed" || !event.start || !event.end) return false;
  const start = parseInstant(event.start);
  const end = parseInstant(event.end);
  if (!(end > start)) return false;
  return !window || (start < window.end.getTime() && end > window.start.getTime());
}

/**
 * Apply a page's events to the connection's blocks: upsert each busy one (times, all-day, `ours`,
 * `seen_at` now), delete every other one (free, cancelled, removed, outside the window). The last
 * occurrence of an id in the page wins.
 * @returns rows upserted and rows deleted.
 */
export async function applyBusyChanges(
  tx: TransactionSql,
  owner: { tenant_id: string; staff_id: string; connection_id: string },
  events: CachedEvent[],
  window: CacheWindow | null,
): Promise<{ upserted: number; deleted: number }> {
  const byId = new Map<string, CachedEvent>();
  for (const e of events) byId.set(e.event.id, e);
  const busy = [...byId.values()].filter((e) => isCachedBusy(e.event, window));
  const free = [...byId.values()].filter((e) => !isCachedBusy(e.event, window)).map((e) => e.event.id);
  let upserted = 0;
  let deleted = 0;
  // Arrays go as text[] (flags as 'true'/'false'), and empty ones are never sent: postgres.js
  // serialises an array by the type it looked up, or as '' for [] when it has not (through a
  // transaction pooler), which PostgreSQL refuses.
  if (busy.length > 0) {
    const result = await tx`
      insert into public.calendar_busy_blocks as b
        (tenant_id, staff_id, connection_id, event_key, starts_at, ends_at, all_day, ours, seen_at)
      select ${owner.tenant_id}, ${owner.staff_id}, ${owner.connection_id},
        sha256(convert_to(u.id, 'UTF8')), u.starts_at::timestamptz, u.ends_at::timestamptz, u.all_day::boolean,
        u.ours::boolean, now()
      from unnest(${busy.map((e) => e.event.id)}::text[], ${busy.map((e) => e.event.start!)}::text[],
        ${busy.map((e) => e.event.end!)}::text[], ${busy.map((e) => String(e.event.allDay))}::text[],
        ${busy.map((e) => String(e.ours))}::text[]) as u(id, starts_at, ends_at, all_day, ours)
      on conflict (connection_id, event_key) do update set
        starts_at = excluded.starts_at, ends_at = excluded.ends_at, all_day = excluded.all_day,
        ours = excluded.ours, seen_at = excluded.seen_at`;
    upserted = result.count;
  }
  if (free.length > 0) {
    const result = await tx`
      delete from public.calendar_busy_blocks b
      where b.connection_id = ${owner.connection_id}
        and b.event_key in (select sha256(convert_to(id, 'UTF8')) from unnest(${free}::text[]) id)`;
    deleted = result.count;
  }
  return { upserted, deleted };
}

/**
 * The sweep of a completed full sync: delete the connection's blocks no page of it saw (`seen_at`
 * before the channel's `full_sync_started_at`, compared in the database at full precision). Blocks of
 * events deleted while no cursor could report them (an expired sync token) or of a calendar no
 * longer selected go this way. Run before the channel's `full_sync_started_at` is cleared; nothing is
 * deleted when it is null.
 * @returns rows deleted.
 */
export async function sweepUnseen(
  tx: TransactionSql,
  channel: { id: string; connection_id: string },
): Promise<number> {
  const result = await tx`
    delete from public.calendar_busy_blocks b
    where b.connection_id = ${channel.connection_id}
      and b.seen_at < (select ch.full_sync_started_at from public.calendar_channels ch where ch.id = ${channel.id})`;
  return result.count;
}
