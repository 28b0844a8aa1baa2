/**
 * Busy times of a staff member's selected calendar: range rules, the answer from the busy cache when
 * it may give one, else the provider call, and the normalisation of either (clipped to the window,
 * sorted, merged, ISO 8601 UTC).
 *
 * Only busy intervals leave this module; never titles, attendees or any other event detail. A
 * calendar the provider cannot read is an error (ProviderError `not_found` and friends), never an
 * empty "free" answer.
 */
import type { Config } from "./config.ts";
import {
  type ConnectionOwner,
  type ConnectionRow,
  requireConnection,
  withAccessToken,
} from "./connections.ts";
import type { Sql } from "./db/client.ts";
import { HttpError } from "./http.ts";
import { providerFor } from "./providers/registry.ts";
import type { BusyInterval } from "./providers/types.ts";
import { formatInstant, mergeIntervals } from "./time-ranges.ts";

const DAY_MS = 86_400_000;

/**
 * Longest window one request may ask for, in days. Google's freeBusy accepts about 90 days (the
 * provider chunks anyway); Microsoft getSchedule refuses 63 days and more (observed; its
 * documentation says "less than 62 days"), and a provider-neutral API keeps one limit.
 */
export const MAX_RANGE_DAYS = 62;
/** How far back a window may start, in days from now: busy times of the distant past are no one's business. */
export const MAX_PAST_DAYS = 366;
/** How far ahead a window may end, in days from now (two years of scheduling). */
export const MAX_FUTURE_DAYS = 732;

/** A validated window in epoch milliseconds, half-open `[start, end)`. */
export interface Window {
  startMs: number;
  endMs: number;
}

/**
 * Check an availability window. Inputs are ISO 8601 instants with an offset, already validated for
 * shape by the request schema.
 * @param nowMs the current time in epoch ms (injectable for tests).
 * @throws HttpError 400 `invalid_range` (time_max not after time_min), 400 `range_too_long` (over
 *   {@link MAX_RANGE_DAYS} days), 400 `range_out_of_bounds` (starts more than {@link MAX_PAST_DAYS}
 *   days ago or ends more than {@link MAX_FUTURE_DAYS} days ahead).
 */
export function checkWindow(timeMin: string, timeMax: string, nowMs: number = Date.now()): Window {
  const startMs = Date.parse(timeMin);
  const endMs = Date.parse(timeMax);
  if (!Number.isFinite(startMs) || !Number.isFinite(endMs)) {
    throw new HttpError(
      400,
      "invalid_request",
      "time_min and time_max must be ISO 8601 instants with an offset",
    );
  }
  if (endMs <= startMs) throw new HttpError(400, "invalid_range", "time_max must be later than time_min");
  if (endMs - startMs > MAX_RANGE_DAYS * DAY_MS) {
    throw new HttpError(
      400,
      "range_too_long",
      `the window may span at most ${MAX_RANGE_DAYS} days; split longer ranges into several requests`,
    );
  }
  if (startMs < nowMs - MAX_PAST_DAYS * DAY_MS || endMs > nowMs + MAX_FUTURE_DAYS * DAY_MS) {
    throw new HttpError(
      400,
      "range_out_of_bounds",
      `the window must start at most ${MAX_PAST_DAYS} days ago and end at most ${MAX_FUTURE_DAYS} days from now`,
    );
  }
  return { startMs, endMs };
}

/** Epoch ms as ISO 8601 UTC, without a fraction when it is whole seconds (`2026-01-05T09:00:00Z`):
 * {@link formatInstant} of time-ranges.ts, under the name this module's callers know. */
export const formatUtc: (ms: number) => string = formatInstant;

/**
 * Clip intervals to the window, drop empty and unparseable ones, sort by start, and merge those that
 * overlap or touch.
 * @returns disjoint, non-adjacent intervals in ascending order, ISO 8601 UTC.
 */
export function normaliseBusy(intervals: readonly BusyInterval[], window: Window): BusyInterval[] {
  // Clip leniently here (Date.parse; unparseable spans are dropped, not fatal), so that what reaches
  // mergeIntervals is always well-formed UTC and its strict parsing never throws.
  const clipped = intervals
    .map((i) => ({
      start: Math.max(Date.parse(i.start), window.startMs),
      end: Math.min(Date.parse(i.end), window.endMs),
    }))
    .filter((i) => Number.isFinite(i.start) && Number.isFinite(i.end) && i.end > i.start)
    .map((i) => ({ start: formatInstant(i.start), end: formatInstant(i.end) }));
  return mergeIntervals(clipped);
}

/** Where an availability answer came from: the busy cache, or the provider just now. */
export type BusySource = "cache" | "live";

/**
 * An availability answer. `asOf`: ISO 8601 UTC instant the busy times describe (the cache's last
 * sync, or when the live read began); `cacheMiss`: why the cache did not answer (a reason of
 * calendar_private.busy_cache_state, or `disabled`), null when it did.
 */
export interface Availability {
  busy: BusyInterval[];
  source: BusySource;
  asOf: string;
  cacheMiss: string | null;
}

/**
 * The busy cache's answer for the staff member's window, in one statement: the cache's state
 * (calendar_private.busy_cache_state, migration 20261206600000: the one definition of when the cache
 * may answer) and, when usable, the blocks of the connection that overlap the window, normalised like
 * a provider's answer. Blocks hold instants only (all-day blocks were placed in the staff member's
 * zone by the sync), so none needs a time zone here.
 * @returns `{usable: true, busy, asOf}` or `{usable: false, reason}`.
 */
export async function readBusyCache(
  sql: Sql,
  owner: ConnectionOwner,
  window: Window,
  limits: { maxLagSeconds: number; maxAgeSeconds: number },
): Promise<{ usable: true; busy: BusyInterval[]; asOf: string } | { usable: false; reason: string }> {
  const timeMin = new Date(window.startMs);
  const timeMax = new Date(window.endMs);
  const rows = await sql<
    {
      usable: boolean;
      reason: string | null;
      as_of: Date | null;
      starts_at: Date | null;
      ends_at: Date | null;
    }[]
  >`
    select s.usable, s.reason, s.as_of, b.starts_at, b.ends_at
    from calendar_private.busy_cache_state(${owner.tenantId}::uuid, ${owner.staffId}::uuid,
      ${timeMin}::timestamptz, ${timeMax}::timestamptz, ${limits.maxLagSeconds}::int, ${limits.maxAgeSeconds}::int) s
    left join lateral (
      select b.starts_at, b.ends_at from public.calendar_busy_blocks b
      where s.usable and b.connection_id = s.connection_id
        and b.starts_at < ${timeMax}::timestamptz and b.ends_at > ${timeMin}::timestamptz
    ) b on true`;
  const state = rows[0];
  if (!state?.usable || !state.as_of) return { usable: false, reason: state?.reason ?? "not_connected" };
  const blocks = rows.filter((r) => r.starts_at && r.ends_at).map((r) => ({
    start: formatInstant(r.starts_at!.getTime()),
    end: formatInstant(r.ends_at!.getTime()),
  }));
  return { usable: true, busy: normaliseBusy(blocks, window), asOf: formatInstant(state.as_of.getTime()) };
}

/**
 * The staff member's busy times in a window: from the busy cache when it may answer
 * ({@link readBusyCache}), otherwise live from the provider ({@link readBusy}).
 * @throws as {@link readBusy} when the answer is live.
 */
export async function readAvailability(
  deps: { sql: Sql; config: Config },
  owner: ConnectionOwner,
  window: Window,
  timeZone?: string | null,
): Promise<Availability> {
  let cacheMiss = "disabled";
  if (deps.config.busyCache.maxAgeSeconds > 0) {
    const cached = await readBusyCache(deps.sql, owner, window, deps.config.busyCache);
    if (cached.usable) return { busy: cached.busy, source: "cache", asOf: cached.asOf, cacheMiss: null };
    cacheMiss = cached.reason;
  }
  // Taken before the provider call: what it answers is at least this fresh.
  const asOf = formatInstant(Date.now());
  const { busy } = await readBusy(deps, owner, window, timeZone);
  return { busy, source: "live", asOf, cacheMiss };
}

/**
 * The busy intervals of a staff member's selected calendar in a window (their connection in
 * `owner.tenantId`; the caller has checked that the reader may see that tenant's staff).
 * `timeZone` is the staff member's IANA zone: their all-day events block their own days.
 * @throws DomainError `not_connected` / `needs_reconnect` (connection), ProviderError as classified
 *   (errors/http-answers.ts answers 409 `calendar_not_found`, 409 `insufficient_scope`, 429
 *   `rate_limited` with Retry-After, 503 `provider_unavailable`, 502 `provider_error`).
 */
export async function readBusy(
  deps: { sql: Sql; config: Config },
  owner: ConnectionOwner,
  window: Window,
  timeZone?: string | null,
): Promise<{ busy: BusyInterval[]; connection: ConnectionRow }> {
  const connection = await requireConnection(deps.sql, owner);
  const provider = providerFor(connection.provider, deps.config);
  const busy = await withAccessToken(
    { sql: deps.sql, config: deps.config, provider },
    connection,
    (token) =>
      provider.busy(token, {
        calendarIds: [connection.selected_calendar_id],
        timeMin: formatUtc(window.startMs),
        timeMax: formatUtc(window.endMs),
        timeZone,
      }),
  );
  return { busy: normaliseBusy(busy, window), connection };
}
