/**
 * The inbound side of `npm run bench` (bench/run.ts calls {@link measureInbound} on its stack, with the
 * sandbox's provider latency already set):
 *   - calendar-get-availability through the gateway for one week, answered from the busy cache (a staff
 *     member whose channel and blocks are written with SQL as a finished sync leaves them) and live (a
 *     staff member without a channel: one freeBusy call at the sandbox's latency), {@link REQUESTS}
 *     sequential requests each, median and p95 as the caller sees them;
 *   - a bare read of the same blocks (`select starts_at, ends_at from calendar_busy_blocks ...`, the
 *     range query the cached answer makes) on a postgres.js client beside the gateway, median;
 *   - calendar-webhook/google acknowledgement: {@link POSTS} sequential valid notifications (increasing
 *     message numbers, so each one is recorded and requests the channel's sync job), median and p95.
 * The cached and live staff members' calendars hold the same busy times ({@link BLOCKS} one-hour blocks
 * in the week), so both answers carry the same intervals.
 */
import postgres from "postgres";
import { busyBlock, googleNotificationHeaders, healthyChannel } from "../tests/support/busy-cache.ts";
import type { TestStack, TestStaff } from "../tests/support/stack.ts";

/** Sequential availability requests per source, and webhook POSTs. */
export const REQUESTS = 50;
export const POSTS = 200;
/** Busy blocks in the week asked about. */
const BLOCKS = 20;
const HOUR = 3_600_000;
const DAY = 24 * HOUR;

/** Median and 95th percentile of a sample, ms. */
export interface Spread {
  median: number;
  p95: number;
}

/** What {@link measureInbound} measured, ms. */
export interface InboundFigures {
  cached: Spread;
  live: Spread;
  bareRead: Spread;
  webhook: Spread;
  /** Intervals in each availability answer (the same for both sources). */
  intervals: number;
}

/** Median and p95 (nearest rank) of `xs`. */
export function spread(xs: number[]): Spread {
  const sorted = [...xs].sort((a, b) => a - b);
  const rank = (q: number) => sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)];
  return { median: rank(0.5), p95: rank(0.95) };
}

/** Time `n` sequential runs of `run` (after 5 unmeasured warm-up runs), ms each. */
async function timed(n: number, run: (i: number) => Promise<void>): Promise<number[]> {
  for (let i = 0; i < 5; i++) await run(-1 - i);
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    await run(i);
    out.push(performance.now() - t0);
  }
  return out;
}

/**
 * Measure cached vs live availability, the bare read and the webhook acknowledgement on `stack`.
 * `google` are three connected Google staff members of one tenant: the cached one, the live one, and
 * the one whose channel receives the notifications (kept apart so its pending sync job never touches
 * the cached answer). `asker` is a colleague in the same tenant whose JWT asks.
 * @throws Error when an answer is not a 200 with the expected source, or a notification not a 2xx.
 */
export async function measureInbound(
  stack: TestStack,
  google: [TestStaff, TestStaff, TestStaff],
  asker: TestStaff,
): Promise<InboundFigures> {
  const [cachedStaff, liveStaff, notified] = google;
  const day0 = Math.floor(Date.now() / DAY) * DAY + 2 * DAY;
  const blocks = Array.from({ length: BLOCKS }, (_, i) => {
    const start = day0 + Math.floor(i / 4) * DAY + (8 + 2 * (i % 4)) * HOUR;
    return { start, end: start + HOUR };
  });
  const channel = await healthyChannel(stack.sql, cachedStaff);
  for (const b of blocks) {
    await busyBlock(stack.sql, cachedStaff, b.start, b.end);
    await stack.sandbox.admin(
      "POST",
      `/_admin/accounts/${encodeURIComponent(liveStaff.email)}/calendars/${
        encodeURIComponent(liveStaff.email)
      }/events`,
      { start: new Date(b.start).toISOString(), end: new Date(b.end).toISOString(), summary: "busy" },
    );
  }
  const timeMin = new Date(day0);
  const timeMax = new Date(day0 + 7 * DAY);
  const ask = async (staff: TestStaff, source: "cache" | "live") => {
    const res = await stack.invoke("calendar-get-availability", {
      jwt: asker.jwt,
      body: { staff_id: staff.id, time_min: timeMin.toISOString(), time_max: timeMax.toISOString() },
    });
    const body = await res.json() as { busy?: unknown[]; source?: string };
    if (res.status !== 200 || body.source !== source || body.busy?.length !== BLOCKS) {
      throw new Error(
        `availability (${source}) answered ${res.status}: ${JSON.stringify(body).slice(0, 300)}`,
      );
    }
  };
  const cached = await timed(REQUESTS, () => ask(cachedStaff, "cache"));
  const live = await timed(REQUESTS, () => ask(liveStaff, "live"));

  // The bare read, on a client configured like the functions' (prepare: false), beside the gateway.
  const client = postgres(stack.dbUrl, { max: 1, prepare: false, onnotice: () => {} });
  let bareRead: number[];
  try {
    const [{ connection_id }] = await client<{ connection_id: string }[]>`
      select connection_id from public.calendar_channels where id = ${channel.id}`;
    bareRead = await timed(REQUESTS, async () => {
      const rows = await client`
        select starts_at, ends_at from public.calendar_busy_blocks
        where connection_id = ${connection_id} and starts_at < ${timeMax} and ends_at > ${timeMin}`;
      if (rows.length !== BLOCKS) throw new Error(`bare read found ${rows.length} blocks`);
    });
  } finally {
    await client.end({ timeout: 5 });
  }

  const hook = await healthyChannel(stack.sql, notified);
  let number = 1;
  const webhook = await timed(POSTS, async () => {
    const res = await fetch(`${stack.functionsUrl}/calendar-webhook/google`, {
      method: "POST",
      headers: googleNotificationHeaders(hook, number++),
      body: "",
    });
    const text = await res.text();
    if (!res.ok) throw new Error(`calendar-webhook/google answered ${res.status}: ${text.slice(0, 300)}`);
  });
  return {
    cached: spread(cached),
    live: spread(live),
    bareRead: spread(bareRead),
    webhook: spread(webhook),
    intervals: BLOCKS,
  };
}
