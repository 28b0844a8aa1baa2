/**
 * Issue 8: the worker's claim stays index-driven for a bulk backlog whatever the planner's
 * statistics say. 20,000 rows queued by one statement share `next_attempt_at`; the claim's plan
 * (the body of calendar_private.claim_due_rows, as auto_explain saw it run) must read
 * calendar_sync_log_claim_order_idx in (next_attempt_at, id) order and stop after the
 * batch, never sort the due rows: checked before the table was analysed (statistics of an empty
 * table) and after (statistics of the backlog), and the claim then takes the oldest rows.
 */
import assert from "node:assert/strict";
import { claimProbe, type ExecutedPlan, type PlanNode, planNodes } from "../support/claim-plan.ts";
import { startTestStack } from "../support/stack.ts";

const BACKLOG = 20_000;

/** The plan of the statement that picks the due rows (claim_due_rows' body). */
function duePlan(plans: ExecutedPlan[]): PlanNode {
  const found = plans.find((p) =>
    /from public\.calendar_sync_log l/.test(p.query) && /skip locked/.test(p.query)
  );
  assert.ok(
    found,
    `the due-row statement was planned (saw: ${plans.map((p) => p.query.slice(0, 60)).join(" | ")})`,
  );
  return found.plan;
}

function assertIndexDriven(plan: PlanNode, when: string): void {
  const nodes = planNodes(plan);
  const types = nodes.map((n) => n["Node Type"]);
  assert.ok(
    nodes.some((n) => n["Index Name"] === "calendar_sync_log_claim_order_idx"),
    `${when}: the claim reads calendar_sync_log_claim_order_idx (plan: ${types.join(" > ")})`,
  );
  assert.ok(
    !types.some((t) => /Sort/.test(t)),
    `${when}: the claim never sorts the due rows (plan: ${types.join(" > ")})`,
  );
  assert.ok(
    !nodes.some((n) => n["Relation Name"] === "calendar_sync_log" && n["Node Type"] === "Seq Scan"),
    `${when}: the claim never scans the whole outbox (plan: ${types.join(" > ")})`,
  );
}

Deno.test("the claim reads the claim index in order for a backlog queued by one statement, analysed or not", async () => {
  const stack = await startTestStack();
  const probe = await claimProbe(stack.dbUrl);
  try {
    const tenantId = await stack.createTenant("Backlog clinic");
    const staff = [];
    for (let i = 0; i < 2; i++) {
      const s = await stack.createStaff({ tenantId, email: `backlog${i}@example.com` });
      await stack.connect(s);
      staff.push(s);
    }
    const ids = staff.map((s) => s.id);
    await stack.sql`
      insert into public.appointments (tenant_id, staff_id, starts_at, ends_at)
      select ${tenantId}, (${ids}::uuid[])[1 + (g % 2)],
        date_trunc('hour', now()) + make_interval(days => 1 + g / 8, hours => g % 8),
        date_trunc('hour', now()) + make_interval(days => 1 + g / 8, hours => g % 8, mins => 50)
      from generate_series(0, ${BACKLOG - 1}) g`;
    const [{ n, times }] = await stack.sql<{ n: number; times: number }[]>`
      select count(*)::int as n, count(distinct next_attempt_at)::int as times
      from public.calendar_sync_log where sync_status = 'pending'`;
    assert.equal(n, BACKLOG);
    assert.equal(times, 1, "rows queued by one statement share next_attempt_at");

    const req = { owner: "plan-test", limit: 8, leaseMs: 60_000 };
    const first = await probe.claim(req);
    assert.equal(first.rows.length, 8);
    assertIndexDriven(duePlan(first.plans), "before analyse");

    await stack.sql`analyze public.calendar_sync_log`;
    await stack.sql`analyze public.staff_calendar_connections`;
    const second = await probe.claim(req);
    assertIndexDriven(duePlan(second.plans), "after analyse");

    // Oldest first: the two claims took the 16 lowest ids of the shared timestamp, in order.
    const lowest = await stack.sql<{ id: string }[]>`
      select id from public.calendar_sync_log where sync_status = 'pending'
      order by next_attempt_at, id limit 16`;
    assert.deepEqual(
      [...first.rows, ...second.rows].map((r) => r.id).sort(),
      lowest.map((r) => r.id).sort(),
    );
  } finally {
    await probe.end();
    await stack.close();
  }
});
