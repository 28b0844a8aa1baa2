/**
 * One run of a channel's `sync` job: read the calendar's changes page by page through
 * `provider.inbound.listChanges` and apply each page to the busy cache (./busy-cache.ts), to our own
 * events changed outside the product (./restore.ts) and to overlap conflicts (./conflicts.ts).
 *
 * Every page is applied in one transaction together with the cursor that follows it (`page_cursor`
 * while the round has more pages; on its last page the round's `sync_cursor`, stage `incremental`,
 * `last_synced_at`, and the page cursor cleared), so a run can stop after any page (its deadline, a
 * crash, a provider failure) and the next run resumes from the first page not applied. The
 * transaction locks the channel row and applies the page only if the channel still holds the cursors
 * the page was read with: a concurrent run, a stop or a reset since then makes this run end instead.
 *
 * A channel without cursors starts a full sync: the window [now - CALENDAR_INBOUND_PAST_DAYS, now +
 * CALENDAR_INBOUND_FUTURE_DAYS] is written to `cache_window_start/end` with `full_sync_started_at` and
 * stage `full_sync` first (its own transaction), and its rounds read that window. When the full sync
 * completes, the connection's blocks it did not see are deleted (mark and sweep, correct across runs:
 * the marks are in the table). A cursor the provider no longer accepts (`cursor_expired`: Google 410
 * `fullSyncRequired`, Graph 410 `SyncStateNotFound`) starts a new full sync over a fresh window within
 * the same run (`resynced`). Incremental rounds never move the window; a periodic resync that moves it
 * forward as days pass is not done here (the cache covers the window of the last full sync).
 *
 * Our events whose version changed at the appointment's times come out of a page's judgement as title
 * candidates (./restore.ts): after the page's transaction each one's title is read with one provider
 * call, outside any transaction, and acted on in a short transaction of its own. A failure of that
 * read fails the run with the page applied: the retitle is then seen again only when the event
 * changes again or a full sync reads it.
 */
import type { Config } from "../config.ts";
import { requireConnection, withAccessToken } from "../connections.ts";
import type { Sql, TransactionSql } from "../db/client.ts";
import type { Narrow, Row } from "../db/rows.ts";
import {
  type CalendarProvider,
  type ChangesPage,
  type ChangesRequest,
  type InboundCalendarApi,
  ProviderError,
  type ProviderId,
} from "../providers/types.ts";
import { formatInstant } from "../time-ranges.ts";
import { applyBusyChanges, type CacheWindow, sweepUnseen } from "./busy-cache.ts";
import { reconcileOverlaps } from "./conflicts.ts";
import {
  findOurEvents,
  judgeOurEvents,
  type RestoreOutcome,
  type RestoreScope,
  settleTitleCandidate,
  type TitleCandidate,
} from "./restore.ts";

/** What {@link syncChannel} needs. `now` (default the system clock) places a full sync's window. */
export interface ChannelSyncDeps {
  sql: Sql;
  config: Config;
  provider: (id: ProviderId) => CalendarProvider;
  now?: () => Date;
}

/**
 * What one run did. `pages` applied and the `events` they held; `complete` false when the round has
 * pages left (run the job again); `resynced` when an expired cursor started a new full sync. Busy
 * blocks upserted and deleted (the sweep of a completed full sync included); our events `restored`
 * (re-queued for the worker) and `reported`, retitles included; conflict rows of every kind opened
 * and resolved.
 */
export interface ChannelSyncResult {
  pages: number;
  events: number;
  complete: boolean;
  resynced: boolean;
  busyUpserted: number;
  busyDeleted: number;
  restored: number;
  reported: number;
  conflictsOpened: number;
  conflictsResolved: number;
}

/** The channel as a run reads it, with its staff member's zone (Microsoft places all-day events in it). */
type ChannelState =
  & Narrow<
    Pick<
      Row<"calendar_channels">,
      | "id"
      | "tenant_id"
      | "staff_id"
      | "connection_id"
      | "provider"
      | "calendar_id"
      | "sync_stage"
      | "sync_cursor"
      | "page_cursor"
      | "cache_window_start"
      | "cache_window_end"
      | "full_sync_started_at"
    >,
    { provider: ProviderId }
  >
  & { live: boolean; staff_time_zone: string | null };

const DAY_MS = 86_400_000;

/**
 * Run a channel's sync: at most `maxPages` pages, the first always, each further one only while
 * `Date.now()` is before `deadline` (epoch ms), so every run makes progress and none overruns the
 * runtime's limits by more than one page.
 *
 * A channel that is not live (stopped, failed, gone) or whose connection is no longer the staff
 * member's active one of its provider has nothing to sync: the result is `complete` with no pages.
 * After a page that restored an event the worker is kicked (calendar_private.kick_worker).
 * @throws ProviderError as `listChanges` classifies it (`cursor_expired` only when a fresh full sync's
 *   first page answers it too); DomainError `not_connected` / `needs_reconnect` when the connection
 *   cannot be worked on (the job waits for a reconnect); database errors. Pages applied before a
 *   failure stay applied.
 */
export async function syncChannel(
  deps: ChannelSyncDeps,
  channelId: string,
  opts: { maxPages: number; deadline: number },
): Promise<ChannelSyncResult> {
  const { sql, config } = deps;
  const result: ChannelSyncResult = {
    pages: 0,
    events: 0,
    complete: false,
    resynced: false,
    busyUpserted: 0,
    busyDeleted: 0,
    restored: 0,
    reported: 0,
    conflictsOpened: 0,
    conflictsResolved: 0,
  };
  let channel = await loadChannel(sql, channelId);
  if (!channel?.live) return { ...result, complete: true };
  const provider = deps.provider(channel.provider);
  const inbound = provider.inbound;
  if (!inbound) {
    throw new ProviderError("invalid", `provider ${channel.provider} has no inbound sync`);
  }
  let resets = 0;
  while (result.pages < opts.maxPages && (result.pages === 0 || Date.now() < opts.deadline)) {
    const conn = await requireConnection(
      sql,
      { tenantId: channel.tenant_id, staffId: channel.staff_id },
      channel.provider,
    );
    if (conn.id !== channel.connection_id) return { ...result, complete: true };
    if (!channel.sync_cursor && !channel.page_cursor && !fullSyncStarted(channel)) {
      channel = await startFullSync(sql, channel, fullSyncWindow(deps));
      if (!channel) return result;
    }
    const readAt = await databaseNow(sql);
    let page: ChangesPage;
    try {
      const request = changesRequest(channel);
      page = await withAccessToken(
        { sql, config, provider },
        conn,
        (token) => inbound.listChanges(token, request),
      );
    } catch (err) {
      // The provider forgot the cursor: read the calendar again over a fresh window. Once per run:
      // a fresh window's first page answering cursor_expired is a provider failure like any other.
      if (err instanceof ProviderError && err.kind === "cursor_expired" && resets === 0) {
        resets++;
        result.resynced = true;
        channel = await startFullSync(sql, channel, fullSyncWindow(deps));
        if (!channel) return result;
        continue;
      }
      throw err;
    }
    const applied = await applyPage(deps, channel, inbound, page, readAt);
    if (!applied) return result;
    channel = applied.channel;
    result.pages++;
    result.events += page.events.length;
    result.busyUpserted += applied.busyUpserted;
    result.busyDeleted += applied.busyDeleted;
    let restored = applied.restored;
    const add = (o: RestoreOutcome) => {
      result.restored += o.restored;
      result.reported += o.reported;
      result.conflictsOpened += o.conflictsOpened;
      result.conflictsResolved += o.conflictsResolved;
    };
    add(applied);
    for (const candidate of applied.titleCandidates) {
      const settled = await settleTitleCandidate(
        sql,
        scopeOf(channel),
        candidate,
        () =>
          withAccessToken(
            { sql, config, provider },
            conn,
            (token) =>
              inbound.readOwnEventTitle!(token, {
                calendarId: channel!.calendar_id,
                eventId: candidate.event.id,
              }),
          ),
        { readAt, mode: config.inbound.externalEdits, expectedTitle: config.eventTitle },
      );
      add(settled);
      restored += settled.restored;
    }
    if (restored > 0) {
      // The re-queued rows bypass the appointments trigger, which is what kicks the worker otherwise.
      await sql`select calendar_private.kick_worker(${"inbound"})`.catch(() => {});
    }
    if (page.nextSyncCursor !== null) {
      result.complete = true;
      break;
    }
  }
  return result;
}

const CHANNEL_COLUMNS = `ch.id, ch.tenant_id, ch.staff_id, ch.connection_id, ch.provider, ch.calendar_id,
  ch.sync_stage, ch.sync_cursor, ch.page_cursor, ch.cache_window_start, ch.cache_window_end,
  ch.full_sync_started_at, calendar_private.channel_is_live(ch.sync_stage) as live,
  s.time_zone as staff_time_zone`;

async function loadChannel(
  sql: Sql | TransactionSql,
  channelId: string,
  lock = false,
): Promise<ChannelState | null> {
  const rows = await sql<ChannelState[]>`
    select ${sql.unsafe(CHANNEL_COLUMNS)}
    from public.calendar_channels ch
    left join public.staff s on s.id = ch.staff_id and s.tenant_id = ch.tenant_id
    where ch.id = ${channelId}
    ${lock ? sql`for update of ch` : sql``}`;
  return rows[0] ?? null;
}

/** The database's clock now: when a page was read, comparable with the times the worker records. */
async function databaseNow(sql: Sql): Promise<Date> {
  const [row] = await sql<{ at: Date }[]>`select clock_timestamp() as at where ${true}`;
  return row.at;
}

/** A full sync whose window is set is in progress (its first page may not have been applied yet). */
function fullSyncStarted(channel: ChannelState): boolean {
  return channel.full_sync_started_at !== null && channel.cache_window_start !== null &&
    channel.cache_window_end !== null;
}

/** The window a full sync starting now reads: CALENDAR_INBOUND_PAST_DAYS back, CALENDAR_INBOUND_FUTURE_DAYS ahead. */
function fullSyncWindow(deps: ChannelSyncDeps): CacheWindow {
  const now = (deps.now?.() ?? new Date()).getTime();
  return {
    start: new Date(now - deps.config.inbound.pastDays * DAY_MS),
    end: new Date(now + deps.config.inbound.futureDays * DAY_MS),
  };
}

/**
 * Start a full sync over `window`: both cursors dropped, the window written as the span the cache
 * covers, `full_sync_started_at` now, stage `full_sync`; only if the channel is still live and holds the
 * cursors it was read with.
 * @returns the channel as it is now, or null when it changed meanwhile (the run ends).
 */
async function startFullSync(
  sql: Sql,
  channel: ChannelState,
  window: CacheWindow,
): Promise<ChannelState | null> {
  const rows = await sql<Omit<ChannelState, "staff_time_zone" | "live">[]>`
    update public.calendar_channels ch set
      sync_stage = 'full_sync', sync_cursor = null, page_cursor = null,
      cache_window_start = ${window.start}, cache_window_end = ${window.end}, full_sync_started_at = now()
    where ch.id = ${channel.id} and calendar_private.channel_is_live(ch.sync_stage)
      and ch.connection_id = ${channel.connection_id}
      and ch.sync_cursor is not distinct from ${channel.sync_cursor}
      and ch.page_cursor is not distinct from ${channel.page_cursor}
    returning ch.id, ch.tenant_id, ch.staff_id, ch.connection_id, ch.provider, ch.calendar_id, ch.sync_stage,
      ch.sync_cursor, ch.page_cursor, ch.cache_window_start, ch.cache_window_end, ch.full_sync_started_at`;
  return rows[0] ? { ...rows[0], live: true, staff_time_zone: channel.staff_time_zone } : null;
}

/** The next page's request: the round in progress, else the next incremental round, else the full sync's window. */
function changesRequest(channel: ChannelState): ChangesRequest {
  const request: ChangesRequest = {
    calendarId: channel.calendar_id,
    syncCursor: channel.sync_cursor,
    pageCursor: channel.page_cursor,
    timeZone: channel.staff_time_zone,
  };
  if (
    !channel.sync_cursor && !channel.page_cursor && channel.cache_window_start && channel.cache_window_end
  ) {
    request.window = {
      timeMin: formatInstant(channel.cache_window_start.getTime()),
      timeMax: formatInstant(channel.cache_window_end.getTime()),
    };
  }
  return request;
}

/** The channel's tenant, staff member, connection, provider and calendar, as restore and conflicts need them. */
function scopeOf(channel: ChannelState): RestoreScope {
  return {
    tenant_id: channel.tenant_id,
    staff_id: channel.staff_id,
    connection_id: channel.connection_id,
    provider: channel.provider,
    calendar_id: channel.calendar_id,
  };
}

/** Whether the locked channel still is the one the page was read for. */
function unchanged(now: ChannelState, read: ChannelState): boolean {
  return now.live && now.connection_id === read.connection_id && now.sync_cursor === read.sync_cursor &&
    now.page_cursor === read.page_cursor &&
    now.full_sync_started_at?.getTime() === read.full_sync_started_at?.getTime();
}

interface AppliedPage {
  channel: ChannelState;
  busyUpserted: number;
  busyDeleted: number;
  restored: number;
  reported: number;
  conflictsOpened: number;
  conflictsResolved: number;
  /** Our events whose title must be read to judge them (after the transaction). */
  titleCandidates: TitleCandidate[];
}

/**
 * Apply one page and the cursor after it in one transaction (module doc).
 * @returns what it did and the channel afterwards, or null when the channel changed since the page
 *   was requested (nothing applied).
 */
async function applyPage(
  deps: ChannelSyncDeps,
  read: ChannelState,
  inbound: InboundCalendarApi,
  page: ChangesPage,
  readAt: Date,
): Promise<AppliedPage | null> {
  return await deps.sql.begin(async (tx) => {
    // Locks in the order calendar-disconnect takes them: the connection, then the channel. The page's
    // busy blocks reference the connection, so their foreign-key check takes a key-share lock on it;
    // taken after the channel's lock it would deadlock with a disconnect holding the connection.
    await tx`select 1 from public.staff_calendar_connections where id = ${read.connection_id} for key share`;
    const channel = await loadChannel(tx, read.id, true);
    if (!channel || !unchanged(channel, read)) return null;
    const scope = scopeOf(channel);
    const window = channel.cache_window_start && channel.cache_window_end
      ? { start: channel.cache_window_start, end: channel.cache_window_end }
      : null;
    const ours = await findOurEvents(tx, scope, page.events, inbound);
    const busy = await applyBusyChanges(
      tx,
      channel,
      page.events.map((event) => ({ event, ours: ours.ours.has(event.id) })),
      window,
    );
    const judged = await judgeOurEvents(tx, scope, page.events, ours, {
      readAt,
      mode: deps.config.inbound.externalEdits,
      readsTitles: typeof inbound.readOwnEventTitle === "function",
    });
    let swept = 0;
    let after: ChannelState;
    if (page.nextPageCursor !== null) {
      await tx`update public.calendar_channels set page_cursor = ${page.nextPageCursor} where id = ${channel.id}`;
      after = { ...channel, page_cursor: page.nextPageCursor };
    } else {
      swept = await sweepUnseen(tx, channel);
      await tx`
        update public.calendar_channels set
          sync_cursor = ${page.nextSyncCursor}, page_cursor = null, sync_stage = 'incremental',
          last_synced_at = now(), full_sync_started_at = null
        where id = ${channel.id}`;
      after = {
        ...channel,
        sync_cursor: page.nextSyncCursor,
        page_cursor: null,
        sync_stage: "incremental",
        full_sync_started_at: null,
      };
    }
    const overlaps = await reconcileOverlaps(tx, scope);
    return {
      channel: after,
      busyUpserted: busy.upserted,
      busyDeleted: busy.deleted + swept,
      restored: judged.restored,
      reported: judged.reported,
      conflictsOpened: judged.conflictsOpened + overlaps.opened,
      conflictsResolved: judged.conflictsResolved + overlaps.resolved,
      titleCandidates: judged.titleCandidates,
    };
  });
}
