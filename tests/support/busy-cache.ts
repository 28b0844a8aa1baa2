/**
 * The inbound state a finished sync leaves, written with SQL for tests and the benchmark: a staff
 * member's live channel and their busy blocks (supabase/migrations/20261206100000_calendar_sync_inbound.sql),
 * and a Google push notification for that channel as Google sends it (headers only, empty body).
 */
import type postgres from "postgres";
import type { TestStaff } from "./stack.ts";

/** A channel as {@link healthyChannel} left it; `secret` is the one its digest was made from. */
export interface TestChannel {
  id: string;
  providerChannelId: string;
  resourceId: string;
  secret: string;
  /** last_synced_at, whole milliseconds (what an answer's `as_of` shows). */
  syncedAt: Date;
}

/**
 * Give the staff member's connected connection a usable busy cache, as a finished full sync leaves it:
 * a live `incremental` channel on the selected calendar (a live channel already there is reset in
 * place), expiring in 6 days, synced 5 s ago, covering now - 1 day .. now + 30 days, without lifecycle
 * flags or channel jobs. The channel's secret digest is SHA-256 of a fresh random secret, as the
 * webhook compares it.
 * @throws Error when the staff member has no connected connection.
 */
export async function healthyChannel(sql: postgres.Sql, staff: TestStaff): Promise<TestChannel> {
  const providerChannelId = crypto.randomUUID();
  const resourceId = `res-${crypto.randomUUID().slice(0, 12)}`;
  const secret = crypto.randomUUID() + crypto.randomUUID();
  const rows = await sql<
    { id: string; provider_channel_id: string; resource_id: string; last_synced_at: Date }[]
  >`
    insert into public.calendar_channels as ch (tenant_id, staff_id, connection_id, provider, calendar_id,
      provider_channel_id, resource_id, secret_hash, sync_stage, expires_at, last_synced_at,
      cache_window_start, cache_window_end)
    select c.tenant_id, c.staff_id, c.id, c.provider, c.selected_calendar_id, ${providerChannelId},
      ${resourceId}, sha256(convert_to(${secret}, 'UTF8')), 'incremental', now() + interval '6 days',
      date_trunc('milliseconds', now()) - interval '5 seconds', now() - interval '1 day', now() + interval '30 days'
    from public.staff_calendar_connections c
    where c.tenant_id = ${staff.tenantId} and c.staff_id = ${staff.id} and c.connection_status = 'connected'
    on conflict (connection_id, calendar_id) where calendar_private.channel_is_live(sync_stage) do update set
      provider_channel_id = excluded.provider_channel_id, resource_id = excluded.resource_id,
      secret_hash = excluded.secret_hash, sync_stage = 'incremental', expires_at = excluded.expires_at,
      last_synced_at = excluded.last_synced_at, cache_window_start = excluded.cache_window_start,
      cache_window_end = excluded.cache_window_end, subscription_removed_at = null, missed_at = null,
      last_message_number = null
    returning ch.id, ch.provider_channel_id, ch.resource_id, ch.last_synced_at`;
  if (rows.length === 0) throw new Error(`${staff.email} has no connected calendar connection`);
  const [ch] = rows;
  await sql`delete from public.calendar_channel_jobs where channel_id = ${ch.id}`;
  return {
    id: ch.id,
    providerChannelId: ch.provider_channel_id,
    resourceId: ch.resource_id,
    secret,
    syncedAt: ch.last_synced_at,
  };
}

/**
 * Insert a busy block `[start, end)` (epoch ms) for the staff member, on their connected connection
 * unless `connectionId` names another of theirs. The event key is a random digest.
 */
export async function busyBlock(
  sql: postgres.Sql,
  staff: TestStaff,
  start: number,
  end: number,
  o: { allDay?: boolean; connectionId?: string } = {},
): Promise<void> {
  const inserted = await sql`
    insert into public.calendar_busy_blocks (tenant_id, staff_id, connection_id, event_key, starts_at, ends_at, all_day)
    select ${staff.tenantId}, ${staff.id}, c.id, sha256(convert_to(${crypto.randomUUID()}, 'UTF8')),
      ${new Date(start)}, ${new Date(end)}, ${o.allDay ?? false}
    from public.staff_calendar_connections c
    where c.tenant_id = ${staff.tenantId} and c.staff_id = ${staff.id}
      and ${o.connectionId ? sql`c.id = ${o.connectionId}` : sql`c.connection_status = 'connected'`}`;
  if (inserted.count !== 1) throw new Error(`no connection of ${staff.email} to put a busy block on`);
}

/**
 * The headers of a Google push notification for `channel` (resource state `exists`, message number
 * `number`), as Google sends them; POST them with an empty body to `calendar-webhook/google`.
 */
export function googleNotificationHeaders(channel: TestChannel, number: number): Record<string, string> {
  return {
    "user-agent": "APIs-Google; (+https://developers.google.com/webmasters/APIs-Google.html)",
    "x-goog-channel-id": channel.providerChannelId,
    "x-goog-channel-token": channel.secret,
    "x-goog-channel-expiration": new Date(Date.now() + 86_400_000).toUTCString(),
    "x-goog-resource-id": channel.resourceId,
    "x-goog-resource-uri": "https://www.googleapis.com/calendar/v3/calendars/primary/events?alt=json",
    "x-goog-resource-state": "exists",
    "x-goog-message-number": String(number),
  };
}
