/**
 * Per-connection pacing (sync/pacing.ts) and fair claims (calendar_private.claim_due_rows'
 * per-staff cap): a burst of 150 rows for one Microsoft staff member (more than one claim reads),
 * queued ahead of 2 rows each for 5 other staff members (Microsoft and Google), drained by one
 * worker with 16 slots against the sandbox, which refuses a 5th concurrent request per mailbox with
 * 429 MailboxConcurrency. No request may be refused, the burst's mailbox never has more than
 * Microsoft's `callsPerConnection` (3) in flight, and the other staff members' rows must not wait for
 * the burst: they are all done before the burst's second round of calls is. Then the claim itself:
 * the per-staff cap and the exclusion.
 */
import assert from "node:assert/strict";
import { parseConfig } from "../../supabase/functions/_shared/config.ts";
import { createSql } from "../../supabase/functions/_shared/db/client.ts";
import { callsPerConnection } from "../../supabase/functions/_shared/providers/registry.ts";
import { claimRows } from "../../supabase/functions/_shared/sync/outbox.ts";
import { DEFAULT_WORKER_OPTIONS } from "../../supabase/functions/_shared/sync/options.ts";
import { cachedProviders, drain } from "../../supabase/functions/_shared/sync/worker.ts";
import { startTestStack, type TestStack, type TestStaff } from "../support/stack.ts";

const BURST = 150;
const OTHERS = 5;
const PER_OTHER = 2;
/** Outlook's concurrent requests per app and mailbox (the sandbox's limit too). */
const MAILBOX_LIMIT = 4;
/** What the worker keeps in flight per Microsoft mailbox (one below the limit). */
const PACE = callsPerConnection("microsoft");

interface MailboxReport {
  limit: number;
  mailboxes: {
    clientId: string;
    mailbox: string;
    inFlight: number;
    maxInFlight: number;
    throttled: number;
  }[];
}

/** Queue `n` appointments for one staff member in one statement, starting `dayOffset` days ahead. */
async function queue(stack: TestStack, staff: TestStaff, n: number, dayOffset: number): Promise<void> {
  await stack.sql`
    insert into public.appointments (tenant_id, staff_id, starts_at, ends_at)
    select ${staff.tenantId}, ${staff.id},
      date_trunc('hour', now()) + make_interval(days => ${dayOffset} + g / 8, hours => g % 8),
      date_trunc('hour', now()) + make_interval(days => ${dayOffset} + g / 8, hours => g % 8, mins => 45)
    from generate_series(0, ${n - 1}) g`;
}

Deno.test("a burst for one Microsoft mailbox stays within its 4 concurrent requests and never starves other staff", async (t) => {
  // The outbox alone: push channels' jobs (inbound sync) would share these mailboxes' slots.
  const stack = await startTestStack({ env: { CALENDAR_INBOUND_SYNC: "off" } });
  const config = parseConfig(stack.env);
  const sql = createSql(config.databaseUrl, { max: 20 });
  try {
    const tenantId = await stack.createTenant("Pacing clinic");
    const burst = await stack.createStaff({ tenantId, email: "burst@contoso-clinic.com" });
    assert.match(
      (await stack.connect(burst, { provider: "microsoft" })).location,
      /calendar_status=connected/,
    );
    const others: TestStaff[] = [];
    for (let i = 0; i < OTHERS; i++) {
      const s = await stack.createStaff({ tenantId, email: `other${i}@contoso-clinic.com` });
      const provider = i % 2 === 0 ? "microsoft" : "google";
      assert.match((await stack.connect(s, { provider })).location, /calendar_status=connected/);
      others.push(s);
    }
    // Calls stay in flight long enough to overlap (an unpaced worker would exceed the limit), and a
    // round of calls is long next to the worker's own work, so rows finish in the order of their rounds.
    await stack.sandbox.latency(100);

    await t.step(
      `${BURST} rows for one mailbox ahead of ${OTHERS} x ${PER_OTHER} rows, 16 slots`,
      async () => {
        // The burst first: its rows are the oldest in the queue, ahead of everyone else's.
        await queue(stack, burst, BURST, 1);
        for (const [i, s] of others.entries()) await queue(stack, s, PER_OTHER, 100 + 10 * i);
        await stack.sandbox.resetCalls();
        await stack.sandbox.admin("POST", "/_admin/microsoft/concurrency/reset");

        const done: string[] = [];
        const outcomes: string[] = [];
        const summary = await drain({
          sql,
          config,
          options: { ...DEFAULT_WORKER_OPTIONS, concurrency: 16, maxRunRows: 1_000, maxRunMs: 120_000 },
          provider: cachedProviders(config),
          onOutcome: (row, outcome) => {
            done.push(row.staff_id);
            if (outcome.status !== "synced") outcomes.push(JSON.stringify(outcome));
          },
        });
        assert.deepEqual(outcomes, [], "every row synced at its first attempt");
        const total = BURST + OTHERS * PER_OTHER;
        assert.equal(summary.synced, total, JSON.stringify(summary));
        assert.equal(summary.retried + summary.failed + summary.parked, 0, JSON.stringify(summary));

        const report = await stack.sandbox.admin<MailboxReport>("GET", "/_admin/microsoft/concurrency");
        assert.equal(report.limit, MAILBOX_LIMIT);
        const burstMailbox = report.mailboxes.find((m) => m.mailbox === burst.email);
        assert.ok(burstMailbox, JSON.stringify(report));
        assert.ok(burstMailbox.maxInFlight <= PACE, `the burst had ${burstMailbox.maxInFlight} in flight`);
        for (const m of report.mailboxes) {
          assert.equal(m.throttled, 0, `no MailboxConcurrency 429 for ${m.mailbox}: ${JSON.stringify(m)}`);
          assert.ok(m.maxInFlight <= MAILBOX_LIMIT, `${m.mailbox} had ${m.maxInFlight} requests in flight`);
        }
        const calls = await stack.sandbox.calls();
        assert.equal(
          calls.byEndpoint["microsoft.events.create"],
          BURST + 3 * PER_OTHER,
          JSON.stringify(calls),
        );
        assert.equal(calls.byEndpoint["events.insert"], 2 * PER_OTHER, JSON.stringify(calls));
        assert.equal((await stack.sandbox.msEvents(burst.email)).length, BURST);

        // Fair: claims take 3 burst rows each (the cap) until its staff member holds 6, then the next
        // one reads past the burst and takes every other row. Those 10 rows fit in the 13 slots the
        // burst may not use, so they run in the first round while the burst does 3 rows a round: all
        // are done before the burst's second round is. Without the claim's cap they would be claimed
        // only once 32 buffered burst rows had drained to half a batch (3 rounds).
        const lastOther = Math.max(...others.map((s) => done.lastIndexOf(s.id)));
        const burstBefore = done.slice(0, lastOther).filter((id) => id === burst.id).length;
        console.log(`  the other staff members' rows were all done after ${burstBefore} burst rows`);
        assert.ok(
          burstBefore < 2 * PACE,
          `the other staff members' rows were done after ${burstBefore} of the burst's ${BURST} rows`,
        );
      },
    );

    await t.step(
      "a claim takes at most perStaff rows of one staff member, and skips excluded staff",
      async () => {
        await queue(stack, burst, 20, 300);
        await queue(stack, others[0], 2, 400);
        await queue(stack, others[1], 2, 410);
        const first = await claimRows(sql, { owner: "fair-1", limit: 10, leaseMs: 60_000, perStaff: 4 });
        const count = (rows: { staff_id: string }[], s: TestStaff) =>
          rows.filter((r) => r.staff_id === s.id).length;
        assert.deepEqual([
          first.length,
          count(first, burst),
          count(first, others[0]),
          count(first, others[1]),
        ], [
          8,
          4,
          2,
          2,
        ]);
        const second = await claimRows(sql, {
          owner: "fair-2",
          limit: 10,
          leaseMs: 60_000,
          perStaff: 4,
          excludeStaffIds: [burst.id],
        });
        assert.equal(second.length, 0, "only the excluded staff member has due rows left");
        const third = await claimRows(sql, { owner: "fair-3", limit: 10, leaseMs: 60_000 });
        assert.deepEqual([third.length, count(third, burst)], [10, 10], "no cap: the oldest rows");
      },
    );
  } finally {
    await sql.end({ timeout: 5 });
    await stack.close();
  }
});
