/**
 * Busy times of a staff member's selected calendar: range rules, the provider call, and the
 * normalisation of what comes back (clipped to the window, sorted, merged, ISO 8601 UTC).
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
