/**
 * The functions behind a transaction pooler, as on hosted Supabase (Supavisor, port 6543): PgBouncer
 * in `pool_mode = transaction` with two server connections and no reset between clients, and the
 * functions and workers pointed at it with CALENDAR_DB_URL while SUPABASE_DB_URL and DATABASE_URL
 * point nowhere. The important flows must pass through it (connect, list calendars, availability,
 * sync an appointment, concurrent workers draining many rows, token refresh under a row lock,
 * disconnect by the staff member and by a tenant admin), and afterwards the very server sessions
 * that served them must carry nothing over: no claims, role, session setting, prepared statement,
 * LISTEN, advisory lock or temporary table.
 *
 * Needs the `pgbouncer` binary (Debian package `pgbouncer`); without it the tests are skipped with
 * a message, except under CI=true (or CALENDAR_TEST_REQUIRE_PGBOUNCER=1), where they fail.
 * The whole integration suite can run behind PgBouncer too: CALENDAR_TEST_POOLER=pgbouncer.
 */
import assert from "node:assert/strict";
import postgres from "postgres";
import { createScratchDatabase } from "../../dev/stack/database.ts";
import { createSql } from "../../supabase/functions/_shared/db/client.ts";
import { kickFollowUp } from "../../supabase/functions/_shared/sync/follow-up.ts";
import { countDue } from "../../supabase/functions/_shared/sync/outbox.ts";
import { compareWithAppointments, formatReport } from "../support/calendar-projection.ts";
import { json } from "../support/assertions.ts";
import {
  leakedState,
  pgbouncerAvailability,
  probeServerSessions,
  type ServerSessionState,
  startPgBouncer,
} from "../support/pgbouncer.ts";
import { waitFor } from "../support/poll.ts";
import { startTestStack, type TestStaff } from "../support/stack.ts";
import { spawnWorkers, type WorkerProcess } from "../support/workers.ts";

const found = pgbouncerAvailability();
const ignore = !found.available && !found.required;
if (ignore && !found.available) {
  console.warn(`\n*** SKIPPED tests/integration/pgbouncer.test.ts: ${found.message}\n`);
}

function requireBinary(): void {
  if (!found.available) assert.fail(found.message);
}

/** Nowhere: a function that ignored CALENDAR_DB_URL would fail to connect instead of bypassing PgBouncer. */
const UNREACHABLE_DB = "postgres://postgres@127.0.0.1:1/not_the_pooler";

const POOL_SIZE = 2;
const ROWS = 120;
const WORKERS = 3;

function describeLeaks(states: ServerSessionState[]): string[] {
  return states.flatMap((s) => leakedState(s).map((l) => `server pid ${s.pid}: ${l}`));
}

Deno.test({
  name:
    "pgbouncer (transaction mode): transaction-local state stays in its transaction; session state would leak",
  ignore,
  fn: async () => {
    requireBinary();
    const db = await createScratchDatabase("pgbouncer_probe");
    const bouncer = await startPgBouncer({ databaseUrl: db.url, poolSize: 1 });
    const one = postgres(bouncer.url, { prepare: false, max: 1, onnotice: () => {} });
    const other = postgres(bouncer.url, { prepare: false, max: 1, onnotice: () => {} });
    try {
      // What the functions do (staff.ts isTenantAdmin): claims set for one transaction only.
      const claims = JSON.stringify({ sub: "00000000-0000-4000-8000-000000000001", role: "authenticated" });
      const [inside] = await one.begin(async (tx) => {
        await tx`select set_config('request.jwt.claims', ${claims}, true)`;
        return await tx<{ pid: number; claims: string }[]>`
          select pg_backend_pid() as pid, current_setting('request.jwt.claims', true) as claims`;
      });
      assert.equal(inside.claims, claims);
      const [next] = await other<{ pid: number; claims: string }[]>`
        select pg_backend_pid() as pid, coalesce(current_setting('request.jwt.claims', true), '') as claims`;
      assert.equal(next.pid, inside.pid, "one server connection serves both clients");
      assert.equal(next.claims, "", "the next client's transaction does not see the claims");
      let [state] = await probeServerSessions(bouncer.url, 1);
      assert.deepEqual(leakedState(state), []);

      // What the functions must never do: each of these survives into the next client's transactions,
      // and the probe used on the functions below reports it.
      await one`select set_config('request.jwt.claims', ${claims}, false)`;
      await one`select set_config('statement_timeout', '12345', false)`;
      await one.unsafe("prepare calendar_leak_probe as select 1");
      await one`select pg_advisory_lock(4242)`;
      await one.unsafe("listen calendar_leak_probe");
      await one.unsafe("create temp table calendar_leak_probe (id int)");
      const [seen] = await other<{ claims: string }[]>`
        select current_setting('request.jwt.claims', true) as claims`;
      assert.equal(seen.claims, claims, "a session setting leaks to the next client");
      [state] = await probeServerSessions(bouncer.url, 1);
      const leaks = leakedState(state);
      for (
        const expected of [
          "request.jwt.claims",
          "statement_timeout",
          "prepared",
          "LISTEN",
          "advisory",
          "temporary",
        ]
      ) {
        assert.ok(
          leaks.some((l) => l.includes(expected)),
          `the probe reports ${expected}: ${leaks.join("; ")}`,
        );
      }
    } finally {
      await one.end({ timeout: 5 });
      await other.end({ timeout: 5 });
      await bouncer.close();
      await db.drop();
    }
  },
});

Deno.test({
  name: "pgbouncer (transaction mode): the functions and workers work through it and leave no session state",
  ignore,
  fn: async (t) => {
    requireBinary();
    const stack = await startTestStack({
      pooler: "pgbouncer",
      poolSize: POOL_SIZE,
      env: { SUPABASE_DB_URL: UNREACHABLE_DB, DATABASE_URL: UNREACHABLE_DB },
    });
    let workers: WorkerProcess[] = [];
    let failed = false;
    const step = async (name: string, fn: () => Promise<void>) => {
      if (!(await t.step(name, fn))) failed = true;
    };
    try {
      const pooler = stack.pooler!;
      assert.equal(stack.env.CALENDAR_DB_URL, pooler.url);
      // Every server connection the functions will use, before any of them ran.
      const before = await probeServerSessions(pooler.url, POOL_SIZE);
      const pids = before.map((s) => s.pid).sort();
      assert.equal(new Set(pids).size, POOL_SIZE, "the probe saw each server connection once");
      assert.deepEqual(describeLeaks(before), []);

      const tenantId = await stack.createTenant("Pooler clinic");
      const admin = await stack.createStaff({ tenantId, role: "admin" });
      const staff: TestStaff[] = [];
      for (let i = 0; i < WORKERS; i++) staff.push(await stack.createStaff({ tenantId }));
      const [alice] = staff;

      await step("connect: auth start and callback store the grant", async () => {
        for (const s of [admin, ...staff]) {
          const { location } = await stack.connect(s);
          assert.match(location, /calendar_status=connected/, location);
        }
        const [{ n }] = await stack.sql`select count(*)::int as n from public.staff_calendar_connections
          where tenant_id = ${tenantId} and connection_status = 'connected'`;
        assert.equal(n, staff.length + 1);
      });

      await step("list calendars", async () => {
        const res = await stack.invoke("calendar-list-calendars", { jwt: alice.jwt });
        const body = await json<{ id: string; primary: boolean }[]>(res);
        assert.equal(res.status, 200, JSON.stringify(body));
        assert.ok(body.some((c) => c.primary && c.id === alice.email));
      });

      await step("availability (of a colleague, same tenant)", async () => {
        const day = new Date(Date.now() + 3 * 86_400_000);
        day.setUTCHours(10, 0, 0, 0);
        const start = day.toISOString().replace(".000Z", "Z");
        const end = new Date(day.getTime() + 3_600_000).toISOString().replace(".000Z", "Z");
        await stack.sandbox.admin(
          "POST",
          `/_admin/accounts/${encodeURIComponent(admin.email)}/calendars/${
            encodeURIComponent(admin.email)
          }/events`,
          { start, end, summary: "busy" },
        );
        const res = await stack.invoke("calendar-get-availability", {
          jwt: alice.jwt,
          body: {
            staff_id: admin.id,
            time_min: new Date(day.getTime() - 3_600_000).toISOString(),
            time_max: new Date(day.getTime() + 4 * 3_600_000).toISOString(),
          },
        });
        const body = await json<{ busy: { start: string; end: string }[] }>(res);
        assert.equal(res.status, 200, JSON.stringify(body));
        assert.deepEqual(body.busy, [{ start, end }]);
      });

      await step("sync one appointment", async () => {
        const day = new Date(Date.now() + 2 * 86_400_000);
        day.setUTCHours(9, 0, 0, 0);
        const eventsBefore = (await stack.sandbox.events(admin.email)).length;
        const id = await stack.createAppointment({
          tenantId,
          staffId: admin.id,
          startsAt: day.toISOString(),
          endsAt: new Date(day.getTime() + 3_600_000).toISOString(),
        });
        const res = await stack.invoke("calendar-sync-appointment", {
          jwt: stack.serviceRoleJwt,
          body: { appointment_id: id },
        });
        const body = await json(res);
        assert.equal(res.status, 200, JSON.stringify(body));
        assert.equal(body.sync_status, "synced");
        assert.equal((await stack.sandbox.events(admin.email)).length, eventsBefore + 1);
      });

      await step("token refresh under the row lock: 12 concurrent callers, one refresh", async () => {
        await stack
          .sql`update public.staff_calendar_connections set token_expires_at = now() - interval '1 minute'
          where staff_id = ${alice.id}`;
        await stack.sandbox.resetCalls();
        const responses = await Promise.all(
          Array.from({ length: 12 }, () => stack.invoke("calendar-list-calendars", { jwt: alice.jwt })),
        );
        const statuses = await Promise.all(responses.map(async (r) => (await r.arrayBuffer(), r.status)));
        assert.deepEqual(statuses, Array(12).fill(200));
        const calls = await stack.sandbox.calls();
        assert.equal(calls.byEndpoint["oauth.token.refresh_token"], 1, JSON.stringify(calls.byEndpoint));
      });

      await step(
        "the worker's queries issued at once on one connection all finish (no pipelining wedge)",
        async () => {
          // postgres.js pipelines queued queries behind a query without parameters; through a
          // transaction pooler the pipelined answers are lost and the client waits forever. The
          // functions' client (pool of 1) runs these concurrently in every drain.
          const sql = createSql(pooler.url);
          try {
            const all = Promise.all([
              countDue(sql),
              kickFollowUp(sql),
              countDue(sql),
              sql`select ${1}::int as one`,
              countDue(sql),
              kickFollowUp(sql),
              countDue(sql),
            ]);
            let timer: ReturnType<typeof setTimeout> | undefined;
            const outcome = await Promise.race([
              all.then(() => "finished"),
              new Promise<string>((resolve) => timer = setTimeout(() => resolve("hung"), 15_000)),
            ]);
            clearTimeout(timer);
            assert.equal(
              outcome,
              "finished",
              "queries queued on one connection behind another never finished",
            );
          } finally {
            await sql.end({ timeout: 1 }).catch(() => {});
          }
        },
      );

      await step(`${WORKERS} worker processes and the worker function drain ${ROWS} rows`, async () => {
        await stack.sandbox.resetCalls();
        // Each worker with one connection, as the worker function has by default.
        workers = await spawnWorkers(WORKERS, {
          env: stack.env,
          prefix: "pooled",
          extra: { WORKER_IDLE_MS: "20", WORKER_MAX_DB: "1" },
        });
        const ids = staff.map((s) => s.id);
        const inserted = await stack.sql`
          insert into public.appointments (tenant_id, staff_id, starts_at, ends_at)
          select ${tenantId}, (${ids}::uuid[])[1 + (g % ${ids.length})],
            date_trunc('hour', now()) + make_interval(days => 5 + g / 8, hours => g % 8),
            date_trunc('hour', now()) + make_interval(days => 5 + g / 8, hours => g % 8, mins => 45)
          from generate_series(0, ${ROWS - 1}) g
          returning id`;
        assert.equal(inserted.length, ROWS);
        // The function drains alongside the processes (a kick arriving mid-run).
        const viaFunction = await Promise.all([1, 2].map(async () => {
          const res = await stack.invoke("calendar-sync-worker", {
            jwt: stack.secrets.workerSecret,
            body: {},
          });
          const body = await json<{ claimed: number }>(res);
          assert.equal(res.status, 200, JSON.stringify(body));
          return body.claimed;
        }));
        await waitFor(
          `all ${ROWS} rows synced`,
          async () => {
            const [r] = await stack.sql<{ synced: number; other: number }[]>`
              select count(*) filter (where sync_status = 'synced')::int as synced,
                count(*) filter (where sync_status <> 'synced')::int as other
              from public.calendar_sync_log where staff_id = any(${ids}::uuid[])`;
            return r;
          },
          (r) => r.synced === ROWS,
          { timeoutMs: 90_000, intervalMs: 100 },
        );
        await Promise.all(workers.map((w) => w.stop()));
        const claimed = workers.map((w) => w.drains.reduce((n, d) => n + d.claimed, 0));
        console.log(
          `  rows claimed per worker process: ${claimed.join(", ")}; by the function: ${viaFunction}`,
        );
        assert.equal(claimed.reduce((a, b) => a + b, 0) + viaFunction[0] + viaFunction[1], ROWS);
        for (const w of workers) {
          assert.ok(!w.logs().some((l) => l.includes("drain_error")), w.logs().join("\n"));
        }
        workers = [];
        const report = await compareWithAppointments(stack.sql, stack.sandbox, staff);
        assert.ok(report.equal, formatReport(report));
        assert.equal(report.actual, ROWS, "exactly one event per appointment");
        const calls = await stack.sandbox.calls();
        assert.equal(calls.byEndpoint["events.insert"], ROWS, JSON.stringify(calls.byEndpoint));
      });

      await step(
        "disconnect: a tenant admin for a colleague (claims in the transaction), then oneself",
        async () => {
          const byAdmin = await stack.invoke("calendar-disconnect", {
            jwt: admin.jwt,
            body: { staff_id: staff[1].id },
          });
          assert.equal(byAdmin.status, 200, await byAdmin.clone().text());
          assert.deepEqual(await byAdmin.json(), { status: "disconnected", revoked: true });
          const own = await stack.invoke("calendar-disconnect", { jwt: alice.jwt, body: {} });
          assert.equal(own.status, 200, await own.clone().text());
          await own.body?.cancel();
          const rows = await stack.sql<{ staff_id: string; connection_status: string }[]>`
          select staff_id, connection_status from public.staff_calendar_connections
          where staff_id = any(${[staff[1].id, alice.id]}::uuid[])`;
          assert.deepEqual(rows.map((r) => r.connection_status), ["disconnected", "disconnected"]);
        },
      );

      await step("the server sessions that served all of it carry nothing over", async () => {
        const after = await probeServerSessions(pooler.url, POOL_SIZE);
        assert.deepEqual(
          after.map((s) => s.pid).sort(),
          pids,
          "the same two server sessions served every transaction of the run",
        );
        assert.deepEqual(describeLeaks(after), []);
        const errors = stack.gatewayLogs().filter((l) => /"level":"error"|"status":5\d\d/.test(l));
        assert.deepEqual(errors, []);
      });
    } catch (err) {
      failed = true;
      throw err;
    } finally {
      if (failed) {
        console.error(`PgBouncer log:\n${stack.pooler?.logs().slice(-30).join("\n")}`);
        console.error(`gateway log:\n${stack.gatewayLogs().slice(-40).join("\n")}`);
      }
      await Promise.all(workers.map((w) => w.stop()));
      await stack.close();
    }
  },
});
