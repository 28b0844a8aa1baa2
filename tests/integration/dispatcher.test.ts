/**
 * The local dispatcher (dev/stack/dispatcher.ts), the stand-in for pg_net and pg_cron in `npm start`,
 * against a real stack: the trigger's `pg_notify('calendar_sync_kick')` reaches it through LISTEN, it
 * runs the real worker through the gateway, a kick during a run makes exactly one follow-up run, an
 * unreachable or refusing worker is logged and survived, and its first sweep picks up work queued
 * while no dispatcher ran.
 */
import assert from "node:assert/strict";
import { type Dispatcher, startDispatcher } from "../../dev/stack/dispatcher.ts";
import { eventIdFor } from "../../supabase/functions/_shared/providers/google/event-id.ts";
import { waitFor } from "../support/poll.ts";
import { startTestStack } from "../support/stack.ts";

const HOUR = 3_600_000;

function slot(hoursAhead: number): { startsAt: string; endsAt: string } {
  const start = Math.ceil(Date.now() / HOUR) * HOUR + hoursAhead * HOUR;
  return { startsAt: new Date(start).toISOString(), endsAt: new Date(start + 50 * 60_000).toISOString() };
}

/** A port nothing listens on (bound, then released). */
function closedPort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr as Deno.NetAddr;
  listener.close();
  return port;
}

Deno.test("dispatcher: LISTEN kicks, single-flight runs, worker failures survived, startup sweep", async (t) => {
  const stack = await startTestStack();
  const dispatchers: Dispatcher[] = [];
  try {
    const staff = await stack.createStaff({});
    const { location } = await stack.connect(staff);
    assert.match(location, /calendar_status=connected/);
    const workerUrl = `${stack.functionsUrl}/calendar-sync-worker`;
    const status = async (appointmentId: string) =>
      (await stack.sql<{ sync_status: string }[]>`
        select sync_status from public.calendar_sync_log
        where appointment_key = ${appointmentId} and staff_id = ${staff.id}`)[0]?.sync_status;
    const onCalendar = async (appointmentId: string) =>
      (await stack.sandbox.events(staff.email)).some((e) => e.id === eventIdFor(appointmentId));
    const workerCalls = () =>
      stack.gatewayLogs().filter((l) =>
        l.includes('"event":"gateway_request"') && l.includes('"function":"calendar-sync-worker"')
      ).length;

    let firstAppointment = "";
    await t.step("an unreachable worker is logged and the appointment stays queued", async () => {
      const lines: string[] = [];
      const down = await startDispatcher({
        databaseUrl: stack.dbUrl,
        workerUrl: `http://127.0.0.1:${closedPort()}/functions/v1/calendar-sync-worker`,
        workerSecret: stack.secrets.workerSecret,
        sweepIntervalMs: 3_600_000,
        log: (line) => lines.push(line),
      });
      dispatchers.push(down);
      firstAppointment = await stack.createAppointment({
        tenantId: staff.tenantId,
        staffId: staff.id,
        ...slot(30),
      });
      await waitFor(
        "a worker_unreachable line after the appointment's kick",
        () => Promise.resolve(lines.filter((l) => l.includes("worker_unreachable")).length),
        (n) => n >= 2, // the startup sweep's run, then the trigger's kick
      );
      assert.equal(await status(firstAppointment), "pending");
      assert.ok(lines.every((l) => !l.includes(stack.secrets.workerSecret)), "the secret is never logged");
      await down.close();
    });

    let live: Dispatcher | undefined;
    const liveLines: string[] = [];
    await t.step("a new dispatcher's first sweep runs the worker for what was queued meanwhile", async () => {
      live = await startDispatcher({
        databaseUrl: stack.dbUrl,
        workerUrl,
        workerSecret: stack.secrets.workerSecret,
        sweepIntervalMs: 3_600_000,
        log: (line) => liveLines.push(line),
      });
      dispatchers.push(live);
      await waitFor(
        "the queued appointment on the sandbox calendar",
        () => onCalendar(firstAppointment),
        Boolean,
      );
      await waitFor("its row synced", () => status(firstAppointment), (s) => s === "synced");
    });

    await t.step(
      "an appointment INSERT reaches the calendar through the trigger's notification",
      async () => {
        const id = await stack.createAppointment({
          tenantId: staff.tenantId,
          staffId: staff.id,
          ...slot(32),
        });
        await waitFor("the new appointment on the sandbox calendar", () => onCalendar(id), Boolean);
        await waitFor("its row synced", () => status(id), (s) => s === "synced");
      },
    );

    await t.step(
      "a killed LISTEN connection comes back, runs the worker once, and kicks arrive again",
      async () => {
        await stack.sql`select pg_terminate_backend(pid) from pg_stat_activity
        where application_name = 'calendar-sync-dispatcher' and datname = current_database()
          and query like 'listen%'`;
        await waitFor(
          "the dispatcher to LISTEN again",
          () => Promise.resolve(liveLines.some((l) => l.includes("relistened"))),
          Boolean,
        );
        const id = await stack.createAppointment({
          tenantId: staff.tenantId,
          staffId: staff.id,
          ...slot(34),
        });
        await waitFor("the appointment on the sandbox calendar", () => onCalendar(id), Boolean);
      },
    );

    await t.step("kicks during a run coalesce into exactly one follow-up run", async () => {
      await live!.kick("settle"); // resolves once no run is in progress
      const before = workerCalls();
      const first = live!.kick("test");
      const second = live!.kick("test");
      const third = live!.kick("test");
      await Promise.all([first, second, third]);
      await waitFor(
        "the gateway to log both worker calls",
        () => Promise.resolve(workerCalls()),
        (n) => n >= before + 2,
      );
      assert.equal(workerCalls(), before + 2, "one run plus one follow-up, not three");
    });

    await t.step(
      "a worker refusing the secret is logged with status and code, and never stops the dispatcher",
      async () => {
        const lines: string[] = [];
        const wrong = await startDispatcher({
          databaseUrl: stack.dbUrl,
          workerUrl,
          workerSecret: "not-the-worker-secret-but-long-enough-0123456789",
          sweepIntervalMs: 3_600_000,
          log: (line) => lines.push(line),
        });
        dispatchers.push(wrong);
        await wrong.kick("test");
        await wrong.kick("test");
        const failures = lines.filter((l) => l.includes("worker_failed"));
        assert.ok(failures.length >= 2, `expected logged failures, got: ${lines.join(" | ")}`);
        assert.match(failures[0], /status=401 code=invalid_token/);
        assert.ok(lines.every((l) => !l.includes("not-the-worker-secret")), "the secret is never logged");
        await wrong.close();
      },
    );
  } finally {
    for (const d of dispatchers) await d.close();
    await stack.close();
  }
});
