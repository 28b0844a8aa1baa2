/**
 * `npm run bench`: outbox worker throughput against a sequential baseline, measured side by side in
 * one run, with 50 ms of sandbox latency on every provider call (a realistic provider round trip).
 *
 * Every run queues 1,000 appointment changes on a scratch database (the appointments trigger, as
 * the app would) and lets worker processes (tests/support/worker-process.ts, the same drain() as
 * calendar-sync-worker) take them to the in-process provider sandbox:
 *   - baseline: one worker with CALENDAR_SYNC_CONCURRENCY=1, i.e. one provider call at a time;
 *   - the worker as deployed: one process, default concurrency; then two processes at once;
 *   - coalescing: 200 appointments edited 5 times each (1,000 changes) before the worker runs.
 * Elapsed time is measured in the database: from the insert to the last `last_synced_at`.
 * Changes are spread over 50 staff calendars on both providers: 25 Google accounts and 25 Microsoft
 * mailboxes, where the sandbox refuses a 5th concurrent request per mailbox (429 MailboxConcurrency,
 * counted per run), so the figures include the worker's per-mailbox pacing (sync/pacing.ts).
 * Prints a table of the runs (with the MailboxConcurrency 429s), the provider calls per appointment
 * change, and then the goals side by side with the figures: the 1-process throughput ratio (>= 8x),
 * its slot utilisation (>= 0.9), database round trips per row (<= 3) and the claim time at a 100k
 * backlog queued by one statement (<= 5 ms). Before the worker runs, the inbound side at the same
 * latency (bench/inbound.ts): calendar-get-availability answered from the busy cache vs live (median and
 * p95, the ratio >= 10x, and the cached median within 10 ms of a bare database read of the same blocks),
 * and calendar-webhook's acknowledgement of a Google notification (median, < 100 ms: "tens of
 * milliseconds"). Not a test: nothing is asserted, so the numbers can be compared across machines.
 * Runtime about 2 minutes (dominated by the baseline: 1,000 x 50 ms).
 * Needs PostgreSQL like the tests (TEST_DATABASE_URL, DATABASE_URL or
 * postgres://postgres@127.0.0.1:5432/postgres).
 */
import { type InboundFigures, measureInbound, POSTS, REQUESTS } from "./inbound.ts";
import { MAX_CALLS_PER_CONNECTION } from "../supabase/functions/_shared/providers/registry.ts";
import { DEFAULT_WORKER_OPTIONS } from "../supabase/functions/_shared/sync/options.ts";
import { createSql } from "../supabase/functions/_shared/db/client.ts";
import { claimRows } from "../supabase/functions/_shared/sync/outbox.ts";
import { claimProbe } from "../tests/support/claim-plan.ts";
import { startTestStack, type TestStack, type TestStaff } from "../tests/support/stack.ts";
import { spawnWorkers } from "../tests/support/workers.ts";

const CHANGES = 1_000;
const LATENCY_MS = 50;
const STAFF = 50;
/** The claim-time measurement: a backlog queued by one statement, claims of one worker batch. */
const BACKLOG = 100_000;
const CLAIMS = 25;
const CLAIM_GOAL_MS = 5;
/** 1 worker process vs the sequential baseline, at least; and its slot utilisation, at least. */
const RATIO_GOAL = 8;
const UTILISATION_GOAL = 0.9;
/** Database round trips per processed row, at most (claim share, connection, record). */
const ROUND_TRIP_GOAL = 3;
/** Cached availability vs live, at least (median); cached minus a bare database read, at most (ms). */
const CACHE_RATIO_GOAL = 10;
const CACHE_OVERHEAD_GOAL_MS = 10;
/** Webhook acknowledgement, median, below (ms): "tens of milliseconds". */
const WEBHOOK_GOAL_MS = 100;

/** One measured run. */
interface RunResult {
  label: string;
  changes: number;
  seconds: number;
  eventCalls: number;
  /** Graph requests the sandbox refused with 429 MailboxConcurrency (5th in flight per mailbox). */
  mailboxThrottled: number;
  /** Rows the workers claimed, and the database round trips of the drains that claimed them. */
  rows: number;
  roundTrips: number;
  /** Slot accounting of the drains, ms (sync/worker.ts SlotStats). */
  slotBusyMs: number;
  slotCapacityMs: number;
}

/** Event calls of both providers (Google `events.*`, Microsoft `microsoft.events.*`). */
const eventCallCount = (byEndpoint: Record<string, number>) =>
  Object.entries(byEndpoint).filter(([k]) => /^(microsoft\.)?events\./.test(k)).reduce(
    (n, [, v]) => n + v,
    0,
  );

/** MailboxConcurrency refusals since the last reset of the sandbox's mailbox report. */
async function mailboxThrottled(stack: TestStack): Promise<number> {
  const report = await stack.sandbox.admin<{ mailboxes: { throttled: number }[] }>(
    "GET",
    "/_admin/microsoft/concurrency",
  );
  return report.mailboxes.reduce((n, m) => n + m.throttled, 0);
}

/**
 * Queue `changes` through `queue` (returns the ids of the appointments touched), run `processes`
 * workers until every row of those appointments is synced, and measure it.
 */
async function measure(
  stack: TestStack,
  label: string,
  o: { processes: number; concurrency: number; changes: number; queue: () => Promise<string[]> },
): Promise<RunResult> {
  const workers = await spawnWorkers(o.processes, {
    env: stack.env,
    prefix: "bench",
    extra: {
      CALENDAR_SYNC_CONCURRENCY: String(o.concurrency),
      WORKER_IDLE_MS: "10",
      WORKER_COUNT_ROUND_TRIPS: "1",
    },
  });
  let result: Omit<RunResult, "rows" | "roundTrips" | "slotBusyMs" | "slotCapacityMs">;
  try {
    await stack.sandbox.resetCalls();
    await stack.sandbox.admin("POST", "/_admin/microsoft/concurrency/reset");
    const [{ t0 }] = await stack.sql<{ t0: Date }[]>`select clock_timestamp() as t0`;
    const ids = await o.queue();
    const deadline = Date.now() + 10 * 60_000;
    for (;;) {
      const [r] = await stack.sql<{ pending: number }[]>`
        select count(*) filter (where sync_status <> 'synced')::int as pending
        from public.calendar_sync_log where appointment_key = any(${ids}::uuid[])`;
      if (r.pending === 0) break;
      if (Date.now() > deadline) {
        throw new Error(`${label}: ${r.pending} rows still pending after 10 minutes`);
      }
      await new Promise((res) => setTimeout(res, 100));
    }
    const [{ t1 }] = await stack.sql<{ t1: Date }[]>`
      select max(last_synced_at) as t1 from public.calendar_sync_log where appointment_key = any(${ids}::uuid[])`;
    const calls = await stack.sandbox.calls();
    result = {
      label,
      changes: o.changes,
      seconds: (t1.getTime() - t0.getTime()) / 1000,
      eventCalls: eventCallCount(calls.byEndpoint),
      mailboxThrottled: await mailboxThrottled(stack),
    };
  } finally {
    await Promise.all(workers.map((w) => w.stop()));
  }
  // After the stop: every drain line is in.
  const drains = workers.flatMap((w) => w.drains);
  return {
    ...result,
    rows: drains.reduce((n, d) => n + d.claimed, 0),
    roundTrips: drains.reduce((n, d) => n + (d.round_trips ?? 0), 0),
    slotBusyMs: drains.reduce((n, d) => n + (d.slot_busy_ms ?? 0), 0),
    slotCapacityMs: drains.reduce((n, d) => n + (d.slot_capacity_ms ?? 0), 0),
  };
}

/** Insert `n` appointments in one statement, spread over the staff; @returns their ids. */
async function insertAppointments(stack: TestStack, staff: TestStaff[], n: number, dayOffset: number) {
  const ids = staff.map((s) => s.id);
  const rows = await stack.sql<{ id: string }[]>`
    insert into public.appointments (tenant_id, staff_id, starts_at, ends_at)
    select ${staff[0].tenantId}, (${ids}::uuid[])[1 + (g % ${ids.length})],
      date_trunc('hour', now()) + make_interval(days => ${dayOffset} + g / 8, hours => g % 8),
      date_trunc('hour', now()) + make_interval(days => ${dayOffset} + g / 8, hours => g % 8, mins => 50)
    from generate_series(0, ${n - 1}) g
    returning id`;
  return rows.map((r) => r.id);
}

/**
 * Queue {@link BACKLOG} rows with one statement (they share next_attempt_at) and time
 * {@link CLAIMS} claims of `limit` rows each on a client like the worker's (db/client.ts options), right
 * after the enqueue (the table not analysed yet, as after a bulk import), as the client sees them
 * (round trip); then as many again on a probe client whose auto_explain notices give the statement's
 * time in the server (the probe's plan notices would slow the round trips it timed, so it times none).
 * @returns median and worst round trip, median server time, ms.
 */
async function measureClaim(stack: TestStack, staff: TestStaff[], limit: number) {
  await insertAppointments(stack, staff, BACKLOG, 1_000);
  const claim = (i: number) => ({
    owner: `bench-claim:${i}`,
    limit,
    leaseMs: 600_000,
    perStaff: MAX_CALLS_PER_CONNECTION,
  });
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  const total: number[] = [];
  const worker = createSql(stack.dbUrl, { max: 1 });
  try {
    for (let i = 0; i < CLAIMS; i++) {
      const t0 = performance.now();
      const rows = await claimRows(worker, claim(i));
      total.push(performance.now() - t0);
      if (rows.length !== limit) throw new Error(`claim ${i} took ${rows.length} rows, not ${limit}`);
    }
  } finally {
    await worker.end({ timeout: 5 });
  }
  const server: number[] = [];
  const probe = await claimProbe(stack.dbUrl);
  try {
    for (let i = CLAIMS; i < 2 * CLAIMS; i++) {
      const { rows, plans } = await probe.claim(claim(i));
      if (rows.length !== limit) throw new Error(`claim ${i} took ${rows.length} rows, not ${limit}`);
      const top = plans.find((p) => /with due as/.test(p.query));
      if (top) server.push(top.durationMs);
    }
  } finally {
    await probe.end();
  }
  return { median: median(total), worst: Math.max(...total), server: median(server) };
}

async function main(): Promise<void> {
  const started = Date.now();
  // The outbox engine is measured alone: with inbound sync on, every connect opens a push channel and
  // every event write comes back as a notification and a sync run, work the engine's goals do not
  // count. The inbound side (bench/inbound.ts) is measured on channels it sets up itself.
  const stack = await startTestStack({ env: { CALENDAR_INBOUND_SYNC: "off" } });
  try {
    const tenantId = await stack.createTenant("Bench clinic");
    const staff: TestStaff[] = [];
    for (let i = 0; i < STAFF; i++) {
      const s = await stack.createStaff({ tenantId, email: `bench-staff${i}@example.com` });
      // Half Google, half Microsoft, interleaved so every run's changes go to both.
      const { location } = await stack.connect(s, { provider: i % 2 === 0 ? "google" : "microsoft" });
      if (!/calendar_status=connected/.test(location)) {
        throw new Error(`staff ${i} did not connect: ${location}`);
      }
      staff.push(s);
    }
    await stack.sandbox.latency(LATENCY_MS);
    const concurrency = DEFAULT_WORKER_OPTIONS.concurrency;
    const results: RunResult[] = [];

    console.log(
      `calendar sync benchmark: ${CHANGES} appointment changes per run, ${LATENCY_MS} ms sandbox latency ` +
        `per provider call, ${STAFF} staff calendars (${STAFF / 2} Google, ${STAFF / 2} Microsoft)`,
    );
    // Inbound first: no appointment has reached the calendars yet, and no worker runs meanwhile.
    const inbound = await measureInbound(stack, [staff[0], staff[2], staff[4]], staff[1]);
    printInbound(inbound);
    results.push(
      await measure(stack, "baseline: 1 worker, 1 call at a time", {
        processes: 1,
        concurrency: 1,
        changes: CHANGES,
        queue: () => insertAppointments(stack, staff, CHANGES, 1),
      }),
    );
    console.log(`  ${results.at(-1)!.label}: ${results.at(-1)!.seconds.toFixed(1)} s`);
    results.push(
      await measure(stack, `worker: 1 process, concurrency ${concurrency}`, {
        processes: 1,
        concurrency,
        changes: CHANGES,
        queue: () => insertAppointments(stack, staff, CHANGES, 200),
      }),
    );
    console.log(`  ${results.at(-1)!.label}: ${results.at(-1)!.seconds.toFixed(1)} s`);
    results.push(
      await measure(stack, `worker: 2 processes, concurrency ${concurrency}`, {
        processes: 2,
        concurrency,
        changes: CHANGES,
        queue: () => insertAppointments(stack, staff, CHANGES, 400),
      }),
    );
    console.log(`  ${results.at(-1)!.label}: ${results.at(-1)!.seconds.toFixed(1)} s`);
    // Coalescing: 200 new appointments, each moved 4 times before any worker runs: 1,000 changes.
    const coalesced = CHANGES / 5;
    results.push(
      await measure(stack, `coalescing: ${coalesced} appts x 5 edits, 1 process`, {
        processes: 1,
        concurrency,
        changes: CHANGES,
        // One transaction, so all five changes of each appointment are queued before any worker
        // can see the first (a busy or backlogged worker sees the same from separate transactions).
        queue: () =>
          stack.sql.begin(async (tx) => {
            const rows = await tx<{ id: string }[]>`
              insert into public.appointments (tenant_id, staff_id, starts_at, ends_at)
              select ${tenantId}, (${staff.map((s) => s.id)}::uuid[])[1 + (g % ${STAFF})],
                date_trunc('hour', now()) + make_interval(days => 600 + g / 8, hours => g % 8),
                date_trunc('hour', now()) + make_interval(days => 600 + g / 8, hours => g % 8, mins => 50)
              from generate_series(0, ${coalesced - 1}) g
              returning id`;
            const ids = rows.map((r) => r.id);
            for (let edit = 1; edit <= 4; edit++) {
              for (const id of ids) {
                await tx`update public.appointments
                  set starts_at = starts_at + interval '15 minutes', ends_at = ends_at + interval '15 minutes'
                  where id = ${id}`;
              }
            }
            return ids;
          }),
      }),
    );

    const pad = (s: string, n: number) => s.padEnd(n);
    const num = (v: number, n: number, digits = 1) => v.toFixed(digits).padStart(n);
    console.log("");
    console.log(
      `${pad("run", 44)}${"changes".padStart(8)}${"seconds".padStart(9)}${"changes/s".padStart(11)}` +
        `${"calls/change".padStart(14)}${"429 mailbox".padStart(13)}`,
    );
    for (const r of results) {
      console.log(
        `${pad(r.label, 44)}${String(r.changes).padStart(8)}${num(r.seconds, 9)}` +
          `${num(r.changes / r.seconds, 11)}${num(r.eventCalls / r.changes, 14, 2)}` +
          `${String(r.mailboxThrottled).padStart(13)}`,
      );
    }
    const rate = (r: RunResult) => r.changes / r.seconds;
    const [base, one, two, coalescing] = results;
    console.log("");
    console.log(`throughput ratio vs baseline, 2 processes: ${(rate(two) / rate(base)).toFixed(1)}x`);
    console.log(
      `provider calls per appointment change: ${(one.eventCalls / one.changes).toFixed(2)} ` +
        `(one change per appointment), ${(coalescing.eventCalls / coalescing.changes).toFixed(2)} ` +
        `(5 edits per appointment before the drain: ${coalescing.eventCalls} calls for ${coalescing.changes} changes)`,
    );
    console.log(
      `database round trips (1 process, counted in the worker's client; a statement with parameters ` +
        `is 2 under prepare: false): ${one.roundTrips} for ${one.rows} rows`,
    );
    // Last: the backlog stays behind (leased rows of a 100k queue would slow the runs above).
    const claim = await measureClaim(stack, staff, concurrency);
    console.log(
      `claim time with a ${BACKLOG.toLocaleString("en")} row backlog queued by one statement ` +
        `(${concurrency} rows per claim, at most ${MAX_CALLS_PER_CONNECTION} per staff member, median of ` +
        `${CLAIMS}): worst ${claim.worst.toFixed(2)} ms, in the server ${
          claim.server.toFixed(2)
        } ms (median)`,
    );

    // The goals side by side with the figures.
    const goals: [string, string, string, boolean][] = [
      [
        `throughput, 1 process (concurrency ${concurrency}) vs baseline`,
        `${(rate(one) / rate(base)).toFixed(1)}x`,
        `>= ${RATIO_GOAL}x`,
        rate(one) / rate(base) >= RATIO_GOAL,
      ],
      [
        "slot utilisation, 1 process (busy / slots x time)",
        (one.slotBusyMs / one.slotCapacityMs).toFixed(2),
        `>= ${UTILISATION_GOAL}`,
        one.slotBusyMs / one.slotCapacityMs >= UTILISATION_GOAL,
      ],
      [
        "database round trips per row, 1 process",
        (one.roundTrips / one.rows).toFixed(2),
        `<= ${ROUND_TRIP_GOAL}`,
        one.roundTrips / one.rows <= ROUND_TRIP_GOAL,
      ],
      [
        `claim time at a ${BACKLOG.toLocaleString("en")} row backlog (median)`,
        `${claim.median.toFixed(2)} ms`,
        `<= ${CLAIM_GOAL_MS} ms`,
        claim.median <= CLAIM_GOAL_MS,
      ],
      [
        "availability: live / cached, median",
        `${(inbound.live.median / inbound.cached.median).toFixed(1)}x`,
        `>= ${CACHE_RATIO_GOAL}x`,
        inbound.live.median / inbound.cached.median >= CACHE_RATIO_GOAL,
      ],
      [
        "availability: cached minus a bare read, median",
        `${(inbound.cached.median - inbound.bareRead.median).toFixed(2)} ms`,
        `<= ${CACHE_OVERHEAD_GOAL_MS} ms`,
        inbound.cached.median - inbound.bareRead.median <= CACHE_OVERHEAD_GOAL_MS,
      ],
      [
        "webhook acknowledgement (Google), median",
        `${inbound.webhook.median.toFixed(2)} ms`,
        `< ${WEBHOOK_GOAL_MS} ms`,
        inbound.webhook.median < WEBHOOK_GOAL_MS,
      ],
    ];
    console.log("");
    console.log(`${pad("goal", 52)}${"measured".padStart(10)}${"goal".padStart(10)}${"met".padStart(5)}`);
    for (const [name, measured, goal, met] of goals) {
      console.log(
        `${pad(name, 52)}${measured.padStart(10)}${goal.padStart(10)}${(met ? "yes" : "NO").padStart(5)}`,
      );
    }
    console.log(`bench finished in ${((Date.now() - started) / 1000).toFixed(0)} s`);
  } finally {
    await stack.close();
  }
}

/** The inbound figures side by side: cached vs live availability, the bare read, the webhook. */
function printInbound(f: InboundFigures): void {
  const ms = (v: number) => `${v.toFixed(2)} ms`.padStart(11);
  console.log(
    `calendar-get-availability, one week with ${f.intervals} busy intervals, ${LATENCY_MS} ms provider latency, ` +
      `${REQUESTS} sequential requests per source through the gateway:`,
  );
  console.log(`  ${"".padEnd(44)}${"median".padStart(11)}${"p95".padStart(11)}`);
  console.log(`  ${"cache (source: cache)".padEnd(44)}${ms(f.cached.median)}${ms(f.cached.p95)}`);
  console.log(`  ${"provider (source: live)".padEnd(44)}${ms(f.live.median)}${ms(f.live.p95)}`);
  console.log(
    `  ${"bare database read of the same blocks".padEnd(44)}${ms(f.bareRead.median)}${ms(f.bareRead.p95)}`,
  );
  console.log(
    `calendar-webhook/google acknowledgement, ${POSTS} sequential notifications: median ` +
      `${f.webhook.median.toFixed(2)} ms, p95 ${f.webhook.p95.toFixed(2)} ms`,
  );
  console.log("");
}

if (import.meta.main) await main();
