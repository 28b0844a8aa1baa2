/**
 * Issue 3, crash proof: a worker process is killed with SIGKILL in the middle of a batch (sandbox
 * latency keeps its provider calls in flight; no exception, no cleanup, the process just vanishes).
 * Its leased rows stay leased until CALENDAR_SYNC_LEASE_MS passes; then a second worker process takes
 * them over and everything converges: every appointment exactly once on the calendar with its
 * times, whether or not the killed worker's last calls reached the provider.
 */
import assert from "node:assert/strict";
import { compareWithAppointments, formatReport } from "../support/calendar-projection.ts";
import { waitFor } from "../support/poll.ts";
import { startTestStack, type TestStaff } from "../support/stack.ts";
import { spawnWorker, type WorkerProcess } from "../support/workers.ts";

const ROWS = 300;
const LEASE_MS = 2_000;

Deno.test("a worker killed mid-batch: after the lease another worker converges everything, no duplicates", async () => {
  const stack = await startTestStack();
  const workers: WorkerProcess[] = [];
  try {
    const tenantId = await stack.createTenant("Crash clinic");
    const staff: TestStaff[] = [];
    for (let i = 0; i < 3; i++) {
      const s = await stack.createStaff({ tenantId, email: `crash-staff${i}@example.com` });
      await stack.connect(s);
      staff.push(s);
    }
    const ids = staff.map((s) => s.id);
    const extra = { CALENDAR_SYNC_LEASE_MS: String(LEASE_MS), WORKER_IDLE_MS: "20" };
    await stack.sandbox.latency(150, 100);

    await stack.sql`
      insert into public.appointments (tenant_id, staff_id, starts_at, ends_at)
      select ${tenantId}, (${ids}::uuid[])[1 + (g % 3)],
        date_trunc('hour', now()) + make_interval(days => 2 + g / 8, hours => g % 8),
        date_trunc('hour', now()) + make_interval(days => 2 + g / 8, hours => g % 8, mins => 50)
      from generate_series(0, ${ROWS - 1}) g`;

    const victim = await spawnWorker({ env: stack.env, name: "victim", extra });
    workers.push(victim);
    // Kill it once it has finished some rows and holds others with calls in flight.
    const held = await waitFor(
      "the victim to be mid-batch",
      async () => {
        const [r] = await stack.sql<{ synced: number; leased: number }[]>`
          select count(*) filter (where sync_status = 'synced')::int as synced,
            count(*) filter (where sync_status = 'pending' and lease_owner like 'victim:%'
              and lease_expires_at > now())::int as leased
          from public.calendar_sync_log`;
        return r;
      },
      (r) => r.synced >= 20 && r.leased >= 4,
      { timeoutMs: 30_000, intervalMs: 20 },
    );
    victim.kill("SIGKILL");
    assert.notEqual(await victim.exited, 0, "the victim was killed, it did not exit cleanly");
    const orphaned = await stack.sql<{ id: string; lease_expires_at: Date }[]>`
      select id, lease_expires_at from public.calendar_sync_log
      where sync_status = 'pending' and lease_owner like 'victim:%'`;
    console.log(
      `killed the victim with ${held.synced} rows synced and ${orphaned.length} rows leased mid-flight`,
    );
    assert.ok(orphaned.length > 0, "the victim died holding leases");

    const rescuer = await spawnWorker({ env: stack.env, name: "rescuer", extra });
    workers.push(rescuer);
    const orphanIds = orphaned.map((r) => r.id);
    const orphanExpiries = orphaned.map((r) => r.lease_expires_at.toISOString());
    let takenEarly = 0;
    await waitFor(
      `all ${ROWS} rows synced after the victim's leases expired`,
      async () => {
        // Sampled at every poll: a row of the victim held by the rescuer before the victim's
        // lease on it ran out would be a takeover of a live lease.
        const [r] = await stack.sql<{ synced: number; early: number }[]>`
          select
            (select count(*)::int from public.calendar_sync_log where sync_status = 'synced') as synced,
            (select count(*)::int from public.calendar_sync_log l
              join unnest(${orphanIds}::uuid[], ${orphanExpiries}::timestamptz[]) v(id, expires_at)
                on v.id = l.id
              where l.lease_owner like 'rescuer:%' and now() < v.expires_at) as early`;
        takenEarly += r.early;
        return r.synced;
      },
      (n) => n === ROWS,
      { timeoutMs: 60_000, intervalMs: 50 },
    );
    await rescuer.stop();
    assert.equal(takenEarly, 0, "no row of the victim was taken before its lease expired");

    // The victim's rows were finished by the rescuer, never while the victim's lease was live.
    const taken = await stack.sql<{ id: string; sync_status: string; lease_owner: string | null }[]>`
      select id, sync_status, lease_owner from public.calendar_sync_log
      where id = any(${orphaned.map((r) => r.id)}::uuid[])`;
    assert.ok(taken.every((r) => r.sync_status === "synced" && r.lease_owner === null));
    assert.ok(rescuer.drains.reduce((n, d) => n + d.claimed, 0) >= orphaned.length);

    const report = await compareWithAppointments(stack.sql, stack.sandbox, staff);
    console.log(formatReport(report));
    assert.equal(report.expected, ROWS);
    assert.equal(report.actual, ROWS, "no duplicates, nothing missing");
    assert.ok(report.equal);
    const all = (await Promise.all(staff.map((s) => stack.sandbox.events(s.email, s.email, true)))).flat();
    assert.equal(all.length, ROWS, "not even a deleted extra event: writes are keyed by the appointment");
    const concurrency = await stack.sandbox.admin<{ violations: unknown[] }>("GET", "/_admin/concurrency");
    assert.deepEqual(concurrency.violations, [], "no call for one event overlapped another");
  } finally {
    for (const w of workers) await w.stop();
    await stack.close();
  }
});

Deno.test("a live worker whose calls outlast the lease keeps its rows: renewed, never taken over", async () => {
  const stack = await startTestStack();
  const workers: WorkerProcess[] = [];
  try {
    const tenantId = await stack.createTenant("Slow clinic");
    const s = await stack.createStaff({ tenantId, email: "slow-staff@example.com" });
    await stack.connect(s);
    // Every call takes 2.5 s, the lease is 1 s: without renewal the second worker would take every
    // row over mid-call and write the same events again.
    await stack.sandbox.latency(2_500);
    const extra = { CALENDAR_SYNC_LEASE_MS: "1000", WORKER_IDLE_MS: "20" };
    workers.push(await spawnWorker({ env: stack.env, name: "slow-a", extra }));
    workers.push(await spawnWorker({ env: stack.env, name: "slow-b", extra }));
    await stack.sql`
      insert into public.appointments (tenant_id, staff_id, starts_at, ends_at)
      select ${tenantId}, ${s.id}, date_trunc('hour', now()) + make_interval(days => 1, hours => g),
        date_trunc('hour', now()) + make_interval(days => 1, hours => g, mins => 30)
      from generate_series(0, 11) g`;
    await waitFor(
      "all 12 rows synced",
      async () =>
        (await stack.sql<{ n: number }[]>`select count(*)::int as n from public.calendar_sync_log
          where sync_status = 'synced'`)[0].n,
      (n) => n === 12,
      { timeoutMs: 60_000, intervalMs: 100 },
    );
    for (const w of workers) await w.stop();
    const claimed = workers.map((w) => w.drains.reduce((n, d) => n + d.claimed, 0));
    assert.equal(claimed[0] + claimed[1], 12, `each row claimed once (${claimed.join(" + ")})`);
    const calls = await stack.sandbox.calls();
    assert.equal(calls.byEndpoint["events.insert"], 12, "one insert per appointment");
    const concurrency = await stack.sandbox.admin<{ violations: unknown[] }>("GET", "/_admin/concurrency");
    assert.deepEqual(concurrency.violations, []);
  } finally {
    for (const w of workers) await w.stop();
    await stack.close();
  }
});

Deno.test("rows claimed ahead into the buffer keep their leases while they wait for a slot", async () => {
  const stack = await startTestStack();
  const workers: WorkerProcess[] = [];
  try {
    const tenantId = await stack.createTenant("Buffer clinic");
    const s = await stack.createStaff({ tenantId, email: "buffer-staff@example.com" });
    await stack.connect(s);
    // Two slots per worker, so a worker holds up to four rows: two in flight, two buffered. Each call
    // takes 1.5 s and the lease is 1 s: a buffered row waits longer than its first lease, and only
    // its renewal keeps the other worker from taking it and writing its event a second time.
    await stack.sandbox.latency(1_500);
    const extra = { CALENDAR_SYNC_CONCURRENCY: "2", CALENDAR_SYNC_LEASE_MS: "1000", WORKER_IDLE_MS: "20" };
    workers.push(await spawnWorker({ env: stack.env, name: "buffer-a", extra }));
    workers.push(await spawnWorker({ env: stack.env, name: "buffer-b", extra }));
    await stack.sql`
      insert into public.appointments (tenant_id, staff_id, starts_at, ends_at)
      select ${tenantId}, ${s.id}, date_trunc('hour', now()) + make_interval(days => 2, hours => g),
        date_trunc('hour', now()) + make_interval(days => 2, hours => g, mins => 30)
      from generate_series(0, 5) g`;
    await waitFor(
      "all 6 rows synced",
      async () =>
        (await stack.sql<{ n: number }[]>`select count(*)::int as n from public.calendar_sync_log
          where sync_status = 'synced'`)[0].n,
      (n) => n === 6,
      { timeoutMs: 60_000, intervalMs: 100 },
    );
    for (const w of workers) await w.stop();
    const drains = workers.flatMap((w) => w.drains);
    assert.ok(
      drains.some((d) => d.claimed > 2),
      `a worker buffered rows beyond its two slots (${drains.map((d) => d.claimed).join(", ")})`,
    );
    const claimed = drains.reduce((n, d) => n + d.claimed, 0);
    assert.equal(claimed, 6, "each row claimed once: no buffered row was taken over");
    const calls = await stack.sandbox.calls();
    assert.equal(calls.byEndpoint["events.insert"], 6, "one insert per appointment");
  } finally {
    for (const w of workers) await w.stop();
    await stack.close();
  }
});
