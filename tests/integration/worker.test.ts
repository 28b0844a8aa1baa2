/**
 * Issue 3, concurrency proof: two, then four outbox workers, each its own OS process
 * (tests/support/worker-process.ts), drain the same 500 queued rows at once against the provider
 * sandbox. Every appointment must end up exactly once on its staff member's calendar, every row
 * must be claimed by exactly one worker, and no provider call for one event may ever run while
 * another call for the same event is in flight (the sandbox's per-event concurrency tracker).
 */
import assert from "node:assert/strict";
import { compareWithAppointments, formatReport } from "../support/calendar-projection.ts";
import { waitFor } from "../support/poll.ts";
import { startTestStack, type TestStaff } from "../support/stack.ts";
import { spawnWorkers } from "../support/workers.ts";

const ROWS = 500;
const STAFF = 5;

Deno.test("parallel worker processes drain the same outbox rows: each appointment once, no concurrent calls per event", async (t) => {
  const stack = await startTestStack();
  try {
    const tenantId = await stack.createTenant("Concurrency clinic");
    // A little latency keeps calls in flight long enough for the workers to overlap.
    await stack.sandbox.latency(5, 10);

    for (const workers of [2, 4]) {
      await t.step(`${workers} workers drain ${ROWS} rows at once`, async () => {
        const staff: TestStaff[] = [];
        for (let i = 0; i < STAFF; i++) {
          const s = await stack.createStaff({ tenantId, email: `w${workers}-staff${i}@example.com` });
          const { location } = await stack.connect(s);
          assert.match(location, /calendar_status=connected/);
          staff.push(s);
        }
        await stack.sandbox.resetCalls();
        await stack.sandbox.admin("POST", "/_admin/concurrency/reset");
        // The workers start first and idle, so all of them see the rows the moment they are queued.
        const pool = await spawnWorkers(workers, {
          env: stack.env,
          prefix: `w${workers}`,
          extra: { WORKER_IDLE_MS: "20" },
        });
        try {
          const ids = staff.map((s) => s.id);
          const inserted = await stack.sql`
            insert into public.appointments (tenant_id, staff_id, starts_at, ends_at)
            select ${tenantId}, (${ids}::uuid[])[1 + (g % ${STAFF})],
              date_trunc('hour', now()) + make_interval(days => 1 + g / 8, hours => g % 8),
              date_trunc('hour', now()) + make_interval(days => 1 + g / 8, hours => g % 8, mins => 45)
            from generate_series(0, ${ROWS - 1}) g
            returning id`;
          assert.equal(inserted.length, ROWS);

          const done = await waitFor(
            `all ${ROWS} rows synced by ${workers} workers`,
            async () => {
              const [r] = await stack.sql<{ synced: number; other: number }[]>`
                select count(*) filter (where l.sync_status = 'synced')::int as synced,
                  count(*) filter (where l.sync_status <> 'synced')::int as other
                from public.calendar_sync_log l where l.staff_id = any(${ids}::uuid[])`;
              return r;
            },
            (r) => r.synced === ROWS,
            { timeoutMs: 60_000, intervalMs: 100 },
          );
          assert.equal(done.other, 0);
        } finally {
          await Promise.all(pool.map((w) => w.stop()));
        }

        const report = await compareWithAppointments(stack.sql, stack.sandbox, staff);
        console.log(`${workers} workers:\n${formatReport(report)}`);
        assert.equal(report.expected, ROWS);
        assert.equal(report.actual, ROWS, "exactly one event per appointment");
        assert.ok(report.equal, "every calendar equals its appointments");

        const claimedBy = pool.map((w) => w.drains.reduce((n, d) => n + d.claimed, 0));
        console.log(`  rows claimed per worker: ${claimedBy.join(", ")}`);
        assert.equal(claimedBy.reduce((a, b) => a + b, 0), ROWS, "each row claimed exactly once overall");
        assert.ok(claimedBy.every((n) => n > 0), "every worker took part");

        const calls = await stack.sandbox.calls();
        console.log(`  provider calls: ${JSON.stringify(calls.byEndpoint)}`);
        assert.equal(calls.byEndpoint["events.insert"], ROWS, "one insert per appointment, none repeated");
        const concurrency = await stack.sandbox.admin<{ maxInFlightPerEvent: number; violations: unknown[] }>(
          "GET",
          "/_admin/concurrency",
        );
        assert.deepEqual(concurrency.violations, [], "no two calls for one event in flight at once");
        assert.equal(concurrency.maxInFlightPerEvent, 1);
      });
    }
  } finally {
    await stack.close();
  }
});
