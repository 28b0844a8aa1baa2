/**
 * Channel life cycle (docs/architecture.md "Inbound sync"): opening, renewing and stopping the
 * provider push channels of calendar_channels through `provider.inbound`, as the channel jobs
 * (inbound/jobs.ts) run them.
 *
 * - create: the row exists first (`pending`, calendar_private.open_channel). The job chooses a random
 *   secret (kept as its SHA-256 only) and a channel id, stores both, then watches the calendar with
 *   address `${CALENDAR_WEBHOOK_URL}/{provider}` (Graph's lifecycle URL is that plus `/lifecycle`),
 *   so a notification racing the watch answer is already recognised. The answer's ids and expiry are
 *   stored, the stage becomes `full_sync` and a `sync` job is requested.
 * - renew, renewal `patch` (Graph): PATCH the subscription; `gone` (expired or removed) opens a new
 *   channel, which syncs in full. Renewal `replace` (Google, whose channels cannot be extended): a
 *   `standby` row is watched, then in one transaction the old channel is stopped and the new one
 *   takes over its stage and cursors (one live channel per calendar is a unique index); the old
 *   channel's provider stop is a `stop` job.
 * - stop: the provider stop (404 = done) of a channel already marked stopped.
 * - sync: Graph lifecycle flags first (subscriptionRemoved: open a new channel; reauthorizationRequired:
 *   renew; missed: the cursors are dropped, so the sync below is a full resync), then inbound/sync.ts
 *   syncChannel.
 * With inbound sync off (CALENDAR_INBOUND_SYNC) a create, renew or sync job retires its channel instead.
 */
import type { Config } from "../config.ts";
import { type ConnectionRow, withAccessToken } from "../connections.ts";
import { connectionTokenBinding, decryptToken } from "../crypto.ts";
import type { Sql, TransactionSql } from "../db/client.ts";
import type { Row } from "../db/rows.ts";
import { base64url } from "../encoding.ts";
import { configuredProviders, providerFor } from "../providers/registry.ts";
import {
  type CalendarProvider,
  type InboundCalendarApi,
  ProviderError,
  type ProviderId,
} from "../providers/types.ts";
import { channelSecretDigest } from "../webhook/secret.ts";
import type { ClaimedJob, JobDeps } from "./jobs.ts";
import { syncChannel } from "./sync.ts";

/** Live channels expiring within this margin are renewed (both providers' channels last at most 7 days). */
export const RENEWAL_MARGIN_HOURS = 24;
/** Pages one `sync` job reads before it yields its slot (the job runs again when pages remain). */
export const SYNC_PAGES_PER_RUN = 20;
/** A channel whose creation gave up is opened again by the sweep after this long. */
const FAILED_CHANNEL_COOLDOWN = "1 hour";

type ChannelRow = Row<"calendar_channels">;

/**
 * The provider's inbound API when inbound sync is on for this deployment (config.inboundSync) and the
 * provider has one; null otherwise.
 */
export function inboundApiFor(config: Config, provider: CalendarProvider): InboundCalendarApi | null {
  return config.inboundSync && provider.inbound ? provider.inbound : null;
}

/** Providers configured on this deployment whose channels may be opened now. */
export function inboundProviders(config: Config): ProviderId[] {
  if (!config.inboundSync) return [];
  return configuredProviders(config).filter((id) => providerFor(id, config).inbound !== undefined);
}

/** Where the provider POSTs notifications: `${webhookUrl}/google`, `${webhookUrl}/microsoft`. */
export function webhookAddress(config: Config, provider: ProviderId): string {
  return `${config.webhookUrl}/${provider}`;
}

/** A fresh channel secret (256 random bits, base64url: 43 characters) and its SHA-256 as hex. */
export async function newChannelSecret(): Promise<{ secret: string; digestHex: string }> {
  const secret = base64url(crypto.getRandomValues(new Uint8Array(32)));
  return { secret, digestHex: (await channelSecretDigest(secret))! };
}

/**
 * Open a channel on the connection's selected calendar when inbound sync is on for its provider
 * (calendar_private.open_channel: a `pending` row and its `create` job; the connection's live channels
 * on another calendar, or all of them with `replace`, retired and stopped by `stop` jobs). Runs in the
 * caller's transaction when given one; the worker is kicked when it commits.
 * @returns the new channel's id, or null when none was opened (inbound off, connection not workable,
 *   a live channel already there).
 */
export async function requestChannel(
  sql: Sql | TransactionSql,
  config: Config,
  target: { connectionId: string; provider: ProviderId; replace: boolean },
): Promise<string | null> {
  if (!inboundProviders(config).includes(target.provider)) return null;
  const [row] = await sql<{ id: string | null }[]>`
    select calendar_private.open_channel(${target.connectionId}::uuid, ${target.replace}) as id`;
  return row?.id ?? null;
}

/**
 * The periodic sweep's channel part (self-healing): open a channel for every workable connection of
 * an inbound provider whose selected calendar has no live channel (and none that failed within the
 * last hour), plan renewals (calendar_private.plan_channel_renewals), and request a `sync` of every
 * incremental channel whose last sync is older than {@link periodicSyncSeconds}: a notification can be
 * lost without a trace (Graph's `missed` is the only one that is announced), and the busy cache answers
 * only while the last sync is younger than CALENDAR_BUSY_CACHE_MAX_AGE_SECONDS. At most `limit`
 * channels are opened, and `limit` syncs requested, per call. With inbound sync off it retires live
 * channels instead.
 * @returns channels opened, retired, renewals and periodic syncs requested.
 */
export async function sweepChannels(
  sql: Sql,
  config: Config,
  limit = 50,
): Promise<{ opened: number; retired: number; renewals: number; syncs: number }> {
  const providers = inboundProviders(config);
  const [row] = await sql<{ opened: number; retired: number; renewals: number; syncs: number }[]>`
    with missing as (
      select c.id from public.staff_calendar_connections c
      where calendar_private.connection_is_workable(c) and c.selected_calendar_id is not null
        and c.provider = any(${providers}::text[])
        and not exists (
          select 1 from public.calendar_channels ch
          where ch.connection_id = c.id and ch.calendar_id = c.selected_calendar_id
            and (calendar_private.channel_is_live(ch.sync_stage)
              or (ch.sync_stage = 'failed' and ch.updated_at > now() - ${FAILED_CHANNEL_COOLDOWN}::interval))
        )
      limit ${limit}
    ),
    opened as (select calendar_private.open_channel(m.id, false) as id from missing m),
    off as (
      select calendar_private.retire_channel(ch.id) from public.calendar_channels ch
      where calendar_private.channel_is_live(ch.sync_stage) and ch.provider <> all(${providers}::text[])
    ),
    stale as (
      select calendar_private.request_channel_job(ch.id, 'sync') from public.calendar_channels ch
      where ch.sync_stage = 'incremental' and ch.provider = any(${providers}::text[])
        and (ch.last_synced_at is null
          or ch.last_synced_at <= now() - ${periodicSyncSeconds(config)}::int * interval '1 second')
        and exists (select 1 from calendar_private.workable_connection(ch.tenant_id, ch.staff_id, ch.provider) c
          where c.id = ch.connection_id)
        and not exists (select 1 from public.calendar_channel_jobs j
          where j.channel_id = ch.id and j.kind = 'sync' and j.status = 'pending')
      order by ch.last_synced_at nulls first
      limit ${limit}
    )
    select (select count(*) from opened where id is not null)::int as opened,
      (select count(*) from off)::int as retired,
      (select count(*) from stale)::int as syncs,
      calendar_private.plan_channel_renewals(${RENEWAL_MARGIN_HOURS}::int * interval '1 hour') as renewals`;
  return row;
}

/**
 * How old a channel's last sync may grow before the sweep requests one: half of
 * CALENDAR_BUSY_CACHE_MAX_AGE_SECONDS, so a quiet calendar's cache stays usable between sweeps (at
 * least a minute; 30 minutes when the cache is off). Seconds.
 */
export function periodicSyncSeconds(config: Config): number {
  const maxAge = config.busyCache.maxAgeSeconds;
  return maxAge > 0 ? Math.max(60, Math.floor(maxAge / 2)) : 1800;
}

/** The channel row as it is now, or null. */
async function loadChannel(sql: Sql, id: string): Promise<ChannelRow | null> {
  const [row] = await sql<ChannelRow[]>`select * from public.calendar_channels where id = ${id}`;
  return row ?? null;
}

const isLive = (stage: string) => stage === "pending" || stage === "full_sync" || stage === "incremental";

/**
 * Run one claimed job's operation on the channel (see the module doc). Jobs of a channel that is no
 * longer live do nothing (except `stop`). Provider failures throw ProviderError; the caller records them.
 */
export async function runChannelJob(deps: JobDeps, job: ClaimedJob, conn: ConnectionRow): Promise<void> {
  const { sql, config } = deps;
  const channel = await loadChannel(sql, job.channel_id);
  if (!channel) return;
  const provider = deps.provider(job.provider);
  if (job.kind === "stop") return await stopChannel(deps, provider, channel, conn);
  if (!isLive(channel.sync_stage)) return;
  const api = inboundApiFor(config, provider);
  if (!api) {
    // Inbound sync was turned off (or the provider lost it): the channel goes.
    await sql`select calendar_private.retire_channel(${channel.id}::uuid)`;
    return;
  }
  const ctx = { sql, config, provider };
  switch (job.kind) {
    case "create":
      return await createChannel(ctx, api, channel, conn);
    case "renew":
      return await renewChannel(ctx, api, channel, conn);
    case "sync": {
      if (await applyLifecycle(ctx, api, channel, conn)) return;
      const result = await syncChannel(deps, channel.id, {
        maxPages: SYNC_PAGES_PER_RUN,
        deadline: deps.deadline,
      });
      // Pages remain: ask again, so recording this run leaves the job pending (queue_version moved).
      if (!result.complete) {
        await sql`select calendar_private.request_channel_job(${channel.id}::uuid, 'sync')`;
      }
      return;
    }
  }
}

interface OpDeps {
  sql: Sql;
  config: Config;
  provider: CalendarProvider;
}

/** create: secret and id stored first, then the watch, then the provider's answer and a full sync. */
async function createChannel(
  deps: OpDeps,
  api: InboundCalendarApi,
  channel: ChannelRow,
  conn: ConnectionRow,
) {
  const { sql } = deps;
  if (channel.sync_stage !== "pending") return;
  const { secret, digestHex } = await newChannelSecret();
  const channelId = crypto.randomUUID();
  const prepared = await sql`
    update public.calendar_channels set secret_hash = decode(${digestHex}, 'hex'), provider_channel_id = ${channelId}
    where id = ${channel.id} and sync_stage = 'pending'`;
  if (prepared.count === 0) return;
  const watched = await withAccessToken(deps, conn, (token) =>
    api.watch(token, {
      calendarId: channel.calendar_id,
      address: webhookAddress(deps.config, deps.provider.id),
      secret,
      channelId,
    }));
  await sql.begin(async (tx) => {
    const [row] = await tx<{ sync_stage: string }[]>`
      update public.calendar_channels set provider_channel_id = ${watched.channelId},
        resource_id = ${watched.resourceId}, expires_at = ${watched.expiresAt}::timestamptz,
        sync_stage = case when sync_stage = 'pending' then 'full_sync' else sync_stage end,
        sync_cursor = null, page_cursor = null, error_count = 0, last_error_code = null
      where id = ${channel.id}
      returning sync_stage`;
    // Retired while the watch ran: the channel just made at the provider is stopped at once.
    const next = row?.sync_stage === "full_sync" ? "sync" : "stop";
    await tx`select calendar_private.request_channel_job(${channel.id}::uuid, ${next})`;
  });
}

/** renew: PATCH (Graph), or replace (Google); see the module doc. */
async function renewChannel(deps: OpDeps, api: InboundCalendarApi, channel: ChannelRow, conn: ConnectionRow) {
  const { sql } = deps;
  if (!channel.provider_channel_id) return; // not created yet: its create job sets the expiry
  if (api.renewal === "patch") {
    let expiresAt: string;
    try {
      expiresAt = await withAccessToken(
        deps,
        conn,
        (token) => api.renew(token, { channelId: channel.provider_channel_id! }),
      );
    } catch (err) {
      if (!(err instanceof ProviderError && err.code === "gone")) throw err;
      // Expired or removed at the provider: a new channel, synced in full.
      await sql`select calendar_private.open_channel(${channel.connection_id}::uuid, true)`;
      return;
    }
    await sql`
      update public.calendar_channels set expires_at = ${expiresAt}::timestamptz, renewed_at = now(),
        reauthorization_required_at = null
      where id = ${channel.id}`;
    return;
  }
  const { secret, digestHex } = await newChannelSecret();
  const standbyId = crypto.randomUUID();
  const [standby] = await sql<{ id: string }[]>`
    insert into public.calendar_channels (tenant_id, staff_id, connection_id, provider, calendar_id,
      provider_channel_id, secret_hash, sync_stage)
    values (${channel.tenant_id}, ${channel.staff_id}, ${channel.connection_id}, ${channel.provider},
      ${channel.calendar_id}, ${standbyId}, decode(${digestHex}, 'hex'), 'standby')
    returning id`;
  let watched;
  try {
    watched = await withAccessToken(deps, conn, (token) =>
      api.watch(token, {
        calendarId: channel.calendar_id,
        address: webhookAddress(deps.config, deps.provider.id),
        secret,
        channelId: standbyId,
      }));
  } catch (err) {
    await sql`update public.calendar_channels set sync_stage = 'stopped', stopped_at = now() where id = ${standby.id}`;
    throw err;
  }
  await sql.begin(async (tx) => {
    const [old] = await tx<
      ChannelRow[]
    >`select * from public.calendar_channels where id = ${channel.id} for update`;
    if (!old || !isLive(old.sync_stage)) {
      // Retired meanwhile (another calendar chosen, a disconnect): the replacement goes too.
      await tx`update public.calendar_channels set sync_stage = 'stopped', stopped_at = now(),
          resource_id = ${watched.resourceId}, expires_at = ${watched.expiresAt}::timestamptz
        where id = ${standby.id}`;
      await tx`select calendar_private.request_channel_job(${standby.id}::uuid, 'stop')`;
      return;
    }
    await tx`update public.calendar_channels set sync_stage = 'stopped', stopped_at = now() where id = ${old.id}`;
    await tx`
      update public.calendar_channels set sync_stage = ${old.sync_stage}, resource_id = ${watched.resourceId},
        resource_uri = ${old.resource_uri}, expires_at = ${watched.expiresAt}::timestamptz,
        sync_cursor = ${old.sync_cursor}, page_cursor = ${old.page_cursor},
        cache_window_start = ${old.cache_window_start}, cache_window_end = ${old.cache_window_end},
        last_synced_at = ${old.last_synced_at}, renewed_at = now()
      where id = ${standby.id}`;
    await tx`select calendar_private.request_channel_job(${old.id}::uuid, 'stop')`;
    // Changes the old channel announced and nobody synced yet: the new channel syncs them.
    await tx`
      select calendar_private.request_channel_job(${standby.id}::uuid, 'sync')
      where exists (select 1 from public.calendar_channel_jobs j
        where j.channel_id = ${old.id} and j.kind = 'sync' and j.status = 'pending')`;
  });
}

/** stop: the provider's stop (already gone = done); the row is stopped when it is not yet. */
async function stopChannel(
  deps: JobDeps,
  provider: CalendarProvider,
  channel: ChannelRow,
  conn: ConnectionRow,
) {
  const { sql, config } = deps;
  if (isLive(channel.sync_stage) || channel.sync_stage === "standby") {
    await sql`update public.calendar_channels set sync_stage = 'stopped', stopped_at = now()
      where id = ${channel.id} and sync_stage = ${channel.sync_stage}`;
  }
  if (!channel.provider_channel_id || !provider.inbound) return;
  const api = provider.inbound;
  await withAccessToken(
    { sql, config, provider },
    conn,
    (token) => api.stop(token, { channelId: channel.provider_channel_id!, resourceId: channel.resource_id }),
  );
}

/**
 * Graph lifecycle events recorded on the channel by the webhook. subscriptionRemoved: a new channel
 * (full sync) replaces this one, and true is returned (nothing more to do here); reauthorizationRequired:
 * renewed now; missed: the cursors are dropped, so the sync that follows is a full resync (Graph's
 * advice for dropped notifications).
 */
async function applyLifecycle(
  deps: OpDeps,
  api: InboundCalendarApi,
  channel: ChannelRow,
  conn: ConnectionRow,
): Promise<boolean> {
  const { sql } = deps;
  if (channel.subscription_removed_at) {
    await sql`select calendar_private.open_channel(${channel.connection_id}::uuid, true)`;
    return true;
  }
  if (channel.reauthorization_required_at && api.renewal === "patch") {
    await renewChannel(deps, api, channel, conn);
    // renewChannel replaced the channel when Graph said it is gone.
    const [row] = await sql<{ live: boolean }[]>`
      select calendar_private.channel_is_live(sync_stage) as live from public.calendar_channels
      where id = ${channel.id}`;
    if (!row?.live) return true;
  }
  if (channel.missed_at) {
    // Graph dropped notifications (its throttling): a full delta resync, as Graph asks. The cursors
    // go, so syncChannel starts a full sync over a fresh window whose sweep also removes the blocks of
    // events deleted meanwhile. One statement reads and clears the flag (a missed event arriving after
    // it sets the flag again and the next sync resyncs again); the database compares the time, which
    // a JS Date would truncate to milliseconds.
    await sql`update public.calendar_channels set missed_at = null, sync_stage = 'full_sync',
        sync_cursor = null, page_cursor = null, full_sync_started_at = null
      where id = ${channel.id} and missed_at is not null and calendar_private.channel_is_live(sync_stage)`;
  }
  return false;
}

/**
 * calendar-disconnect's part, in its transaction holding the connection's row lock, BEFORE the tokens
 * are forgotten: stop at the provider every channel of the connection that may exist there (live,
 * standby, or retired with its stop still pending), best effort, with the stored access token or one
 * refreshed for the purpose (not stored: the connection is going); then mark them stopped and close
 * their pending jobs, so no live channel row and no unclaimable job outlives the connection. A stop
 * that fails leaves the provider channel to expire by itself (at most 7 days); its notifications are
 * answered 404 and write nothing meanwhile.
 * @returns how many channels were stopped at the provider, and how many could not be.
 */
export async function stopChannelsOnDisconnect(
  tx: TransactionSql,
  config: Config,
  conn: Pick<ConnectionRow, "id" | "tenant_id" | "staff_id" | "provider" | "access_token_encrypted"> & {
    refresh_token_encrypted: string | null;
    token_expires_at: Date | null;
  },
  log: (event: string, fields: Record<string, unknown>) => void,
): Promise<{ stopped: number; failed: number }> {
  const channels = await tx<Pick<ChannelRow, "id" | "provider_channel_id" | "resource_id">[]>`
    select ch.id, ch.provider_channel_id, ch.resource_id from public.calendar_channels ch
    where ch.connection_id = ${conn.id} and ch.provider_channel_id is not null
      and (calendar_private.channel_is_live(ch.sync_stage) or ch.sync_stage = 'standby'
        or exists (select 1 from public.calendar_channel_jobs j
          where j.channel_id = ch.id and j.kind = 'stop' and j.status = 'pending'))`;
  let stopped = 0;
  let failed = 0;
  const provider = providerFor(conn.provider, config);
  if (channels.length > 0 && provider.inbound) {
    const token = await disconnectToken(config, provider, conn).catch(() => null);
    for (const ch of channels) {
      try {
        if (!token) throw new ProviderError("auth", "no usable access token");
        await provider.inbound.stop(token, {
          channelId: ch.provider_channel_id!,
          resourceId: ch.resource_id,
        });
        stopped++;
      } catch (err) {
        failed++;
        log("channel_stop_failed", {
          channel_id: ch.id,
          kind: err instanceof ProviderError ? err.kind : "unknown",
        });
      }
    }
  }
  await tx`
    update public.calendar_channels set sync_stage = 'stopped', stopped_at = now()
    where connection_id = ${conn.id} and (calendar_private.channel_is_live(sync_stage) or sync_stage = 'standby')`;
  await tx`
    update public.calendar_channel_jobs j set status = 'done', next_attempt_at = null, pending_since = null,
      lease_owner = null, lease_expires_at = null
    from public.calendar_channels ch
    where ch.id = j.channel_id and ch.connection_id = ${conn.id} and j.status = 'pending'`;
  return { stopped, failed };
}

/** An access token for the disconnect's stops: the stored one while valid, else a refresh (not stored). */
async function disconnectToken(
  config: Config,
  provider: CalendarProvider,
  conn: Parameters<typeof stopChannelsOnDisconnect>[2],
): Promise<string> {
  const valid = conn.token_expires_at && conn.token_expires_at.getTime() - Date.now() > 60_000;
  if (valid && conn.access_token_encrypted) {
    return await decryptToken(
      conn.access_token_encrypted,
      connectionTokenBinding(conn, "access_token"),
      config.encryption,
    );
  }
  if (!conn.refresh_token_encrypted) throw new Error("no refresh token");
  const refresh = await decryptToken(
    conn.refresh_token_encrypted,
    connectionTokenBinding(conn, "refresh_token"),
    config.encryption,
  );
  return (await provider.refresh(refresh)).accessToken;
}
