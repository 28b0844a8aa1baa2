/**
 * calendar-sync-worker's two answers, on any PostgreSQL (no pg_net needed; the pg_net path itself is
 * tests/integration/pg-net-kick.test.ts): without a preference it drains synchronously and answers
 * 200 with the summary the dispatcher relies on, a run claiming at most CALENDAR_SYNC_MAX_RUN_ROWS
 * rows; with `Prefer: respond-async` the gateway's EdgeRuntime.waitUntil stand-in lets it answer 202
 * at once and drain in the background, after which it kicks its own follow-up run
 * (`kick_worker('continue')`: pg_notify here, pg_net too where configured). The dispatcher then
 * drains the rest run by run.
 */
import assert from "node:assert/strict";
import postgres from "postgres";
import { startDispatcher } from "../../dev/stack/dispatcher.ts";
import { eventIdFor } from "../../supabase/functions/_shared/providers/google/event-id.ts";
import { waitFor } from "../support/poll.ts";
import { startTestStack } from "../support/stack.ts";

const HOUR = 3_600_000;
const RUN_ROWS = 3;

Deno.test("worker: 200 with a row-bounded summary, or 202 and a background run that kicks its successor", async (t) => {
  const stack = await startTestStack({ env: { CALENDAR_SYNC_MAX_RUN_ROWS: String(RUN_ROWS) } });
  const listener = postgres(stack.dbUrl, { max: 1, onnotice: () => {} });
  try {
    const staff = await stack.createStaff({});
    const { location } = await stack.connect(staff);
    assert.match(location, /calendar_status=connected/);
    const base = Math.ceil(Date.now() / HOUR) * HOUR + 50 * HOUR;
    const rows = Array.from({ length: RUN_ROWS * 3 + 1 }, (_, i) => ({
      tenant_id: staff.tenantId,
      staff_id: staff.id,
      starts_at: new Date(base + i * HOUR).toISOString(),
      ends_at: new Date(base + i * HOUR + 50 * 60_000).toISOString(),
    }));
    const ids =
      (await stack.sql<{ id: string }[]>`insert into public.appointments ${stack.sql(rows)} returning id`)
        .map((r) => r.id);
    const synced = async () =>
      (await stack.sql<{ n: number }[]>`
        select count(*)::int as n from public.calendar_sync_log
        where appointment_key = any(${ids}::uuid[]) and sync_status = 'synced'`)[0].n;
    const callWorker = (headers: Record<string, string> = {}) =>
      stack.invoke("calendar-sync-worker", { jwt: stack.secrets.workerSecret, body: {}, headers });

    await t.step(
      "no preference: 200, one run claims at most the row bound and reports what remains",
      async () => {
        const res = await callWorker();
        assert.equal(res.status, 200);
        assert.equal(res.headers.get("preference-applied"), null);
        const summary = await res.json();
        assert.equal(summary.claimed, RUN_ROWS);
        assert.equal(summary.synced, RUN_ROWS);
        assert.equal(summary.remaining, ids.length - RUN_ROWS);
        assert.equal(await synced(), RUN_ROWS);
      },
    );

    await t.step(
      "Prefer: respond-async: 202 at once, the run finishes in the background, then kicks",
      async () => {
        const kicks: string[] = [];
        await listener.listen("calendar_sync_kick", (payload) => kicks.push(payload));
        const res = await callWorker({ prefer: "respond-async" });
        assert.equal(res.status, 202);
        assert.equal(res.headers.get("preference-applied"), "respond-async");
        assert.deepEqual(await res.json(), { status: "accepted" });
        await waitFor("the background run's rows synced", synced, (n) => n === 2 * RUN_ROWS);
        await waitFor("its follow-up kick", () => Promise.resolve(kicks), (k) => k.includes("continue"));
        const line = stack.gatewayLogs().find((l) =>
          l.includes('"event":"sync_worker_run"') && l.includes('"background":true')
        );
        assert.ok(line, "the background run logged its summary");
        assert.match(
          line,
          new RegExp(`"claimed":${RUN_ROWS},.*"remaining":${ids.length - 2 * RUN_ROWS},.*"follow_up":true`),
        );
      },
    );

    await t.step("the dispatcher (200 summaries) drains the rest run by run", async () => {
      const dispatcher = await startDispatcher({
        databaseUrl: stack.dbUrl,
        workerUrl: `${stack.functionsUrl}/calendar-sync-worker`,
        workerSecret: stack.secrets.workerSecret,
        sweepIntervalMs: 3_600_000,
        log: () => {},
      });
      try {
        await waitFor("every row synced", synced, (n) => n === ids.length);
      } finally {
        await dispatcher.close();
      }
      const events = new Set((await stack.sandbox.events(staff.email)).map((e) => e.id));
      assert.ok(ids.every((id) => events.has(eventIdFor(id))), "every appointment is on the calendar");
    });
  } finally {
    await listener.end({ timeout: 2 });
    await stack.close();
  }
});
