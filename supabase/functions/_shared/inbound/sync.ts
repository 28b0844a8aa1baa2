/**
 * A channel's `sync` job: incremental reads into the busy cache, restores and conflicts. The
 * implementation lands from its own branch; this placeholder keeps the exact signature the job
 * runner (inbound/jobs.ts) calls, and fails every run with a clear error (retried with backoff).
 */
import type { Config } from "../config.ts";
import type { Sql } from "../db/client.ts";
import type { CalendarProvider, ProviderId } from "../providers/types.ts";

/** What a sync run needs. `now` defaults to the clock. */
export interface ChannelSyncDeps {
  sql: Sql;
  config: Config;
  provider: (id: ProviderId) => CalendarProvider;
  now?: () => Date;
}

/** What one run did. `complete` false: pages remain, run the job again. */
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

/**
 * Sync one channel for at most `opts.maxPages` pages or until `opts.deadline` (epoch ms).
 * @throws Error always in this branch: not implemented here.
 */
export function syncChannel(
  _deps: ChannelSyncDeps,
  channelId: string,
  _opts: { maxPages: number; deadline: number },
): Promise<ChannelSyncResult> {
  return Promise.reject(new Error(`inbound sync of channel ${channelId} is not implemented in this branch`));
}
