/**
 * Issue 3 end to end: appointment rows written the way the app writes them (SQL on the appointments
 * table, nothing else) reach the staff member's sandbox calendar by themselves, through the trigger,
 * the outbox and a worker process running in the background (the role pg_cron / the dispatcher play).
 * Covers the life cycle (create, move, cancel / no-show / restore, reassign, hard delete), what must
 * queue nothing, bad rows that fail alone with a clear error while the app's statements succeed, a
 * calendar deleted at the provider, a revoked grant (parked, resumed by a reconnect), dead letters
 * and their re-queue, and the status view as a staff member and as a tenant admin. The trigger's
 * SQL details (coalescing, bulk statements, failure isolation) are in supabase/tests/database/outbox.test.sql.
 */
import assert from "node:assert/strict";
import type postgres from "postgres";
import { eventIdFor } from "../../supabase/functions/_shared/providers/google/event-id.ts";
import { waitFor } from "../support/poll.ts";
import { startTestStack, type TestStack, type TestStaff } from "../support/stack.ts";
import { spawnWorker, type WorkerProcess } from "../support/workers.ts";

const HOUR = 3_600_000;

/** A future slot: day `d` from tomorrow at hour `h` (UTC), lasting `minutes`. */
function slot(d: number, h: number, minutes = 50): { startsAt: string; endsAt: string } {
  const base = new Date();
  base.setUTCHours(0, 0, 0, 0);
  const start = base.getTime() + (d + 1) * 24 * HOUR + h * HOUR;
  return {
    startsAt: new Date(start).toISOString(),
    endsAt: new Date(start + minutes * 60_000).toISOString(),
  };
}

interface LogRow {
  sync_status: string;
  desired_action: string | null;
  event_id: string | null;
  calendar_id: string | null;
  appointment_id: string | null;
  error_message: string | null;
  last_error_code: string | null;
  retry_count: number;
  queue_version: string;
}

async function logRow(
  sql: postgres.Sql,
  appointmentId: string,
  staffId: string,
): Promise<LogRow | undefined> {
  const [row] = await sql<LogRow[]>`
    select sync_status, desired_action, event_id, calendar_id, appointment_id, error_message,
      last_error_code, retry_count, queue_version::text as queue_version
    from public.calendar_sync_log where appointment_key = ${appointmentId} and staff_id = ${staffId}`;
  return row;
}

// deno-lint-ignore no-explicit-any
type SandboxEvent = any;

/** The appointment's live event on a calendar (default: the staff member's primary), if any. */
async function liveEvent(
  stack: TestStack,
  staff: TestStaff,
  appointmentId: string,
  calendarId = staff.email,
): Promise<SandboxEvent | undefined> {
  const id = eventIdFor(appointmentId);
  return (await stack.sandbox.events(staff.email, calendarId)).find((e) =>
    e.id === id && e.status !== "cancelled"
  );
}

const sameInstant = (a: string, b: string) => Date.parse(a) === Date.parse(b);

/** Wait until the appointment's event is on the calendar with these times. */
async function eventWithTimes(
  stack: TestStack,
  staff: TestStaff,
  appointmentId: string,
  times: { startsAt: string; endsAt: string },
  calendarId = staff.email,
): Promise<SandboxEvent> {
  return await waitFor(
    `event of ${appointmentId} on ${calendarId} at ${times.startsAt}`,
    () => liveEvent(stack, staff, appointmentId, calendarId),
    (e) => !!e && sameInstant(e.start.dateTime, times.startsAt) && sameInstant(e.end.dateTime, times.endsAt),
  );
}

async function noEvent(stack: TestStack, staff: TestStaff, appointmentId: string): Promise<void> {
  await waitFor(
    `no live event of ${appointmentId} on ${staff.email}`,
    () => liveEvent(stack, staff, appointmentId),
    (e) => e === undefined,
  );
}

async function settled(stack: TestStack, appointmentId: string, staffId: string): Promise<LogRow> {
  return (await waitFor(
    `row of ${appointmentId} settled`,
    () => logRow(stack.sql, appointmentId, staffId),
    (r) => !!r && r.sync_status !== "pending",
  ))!;
}

/** Read the status view as a signed-in user (RLS applies, as through PostgREST). */
async function statusAs(stack: TestStack, profileId: string) {
  return await stack.sql.begin(async (tx) => {
    await tx`set local role authenticated`;
    await tx`select set_config('request.jwt.claims', ${
      JSON.stringify({ sub: profileId, role: "authenticated" })
    }, true)`;
    return await tx<
      {
        staff_id: string;
        connection_status: string | null;
        pending_count: number;
        failed_count: number;
        last_error: string | null;
        last_error_code: string | null;
        last_synced_at: Date | null;
      }[]
    >`select staff_id, connection_status, pending_count, failed_count, last_error, last_error_code,
        last_synced_at from public.calendar_sync_status order by staff_id`;
  });
}

Deno.test("appointment changes reach the calendar by themselves: trigger, outbox, worker, faults", async (t) => {
  const stack = await startTestStack({
    env: {
      CALENDAR_SYNC_BACKOFF_BASE_MS: "20",
      CALENDAR_SYNC_BACKOFF_CAP_MS: "200",
      CALENDAR_SYNC_RETRY_AFTER_MAX_MS: "500",
      CALENDAR_PROVIDER_TIMEOUT_MS: "3000",
    },
  });
  let worker: WorkerProcess | undefined;
  try {
    const tenantId = await stack.createTenant("Trigger clinic");
    const alice = await stack.createStaff({ tenantId, email: "alice@clinic.test" });
    const bob = await stack.createStaff({ tenantId, email: "bob@clinic.test" });
    const carol = await stack.createStaff({ tenantId, email: "carol@clinic.test" }); // never connects
    const dora = await stack.createStaff({ tenantId, email: "dora@clinic.test" });
    const fay = await stack.createStaff({ tenantId, email: "fay@clinic.test" });
    const admin = await stack.createStaff({ tenantId, email: "admin@clinic.test", role: "admin" });
    for (const s of [alice, bob, dora, fay]) {
      const { location } = await stack.connect(s);
      assert.match(location, /calendar_status=connected/);
    }
    worker = await spawnWorker({ env: stack.env, name: "trigger", extra: { WORKER_IDLE_MS: "20" } });

    let a1 = "";
    let a1Times = slot(0, 9);

    await t.step(
      "a new appointment appears on the staff member's calendar with its times and the title only",
      async () => {
        a1 = await stack.createAppointment({ tenantId, staffId: alice.id, ...a1Times });
        const ev = await eventWithTimes(stack, alice, a1, a1Times);
        assert.equal(ev.summary, "ValorWell");
        assert.equal(ev.description, undefined, "no patient data on the event");
        const row = await settled(stack, a1, alice.id);
        assert.equal(row.sync_status, "synced");
        assert.equal(row.event_id, eventIdFor(a1));
      },
    );

    await t.step("a time change moves the event", async () => {
      a1Times = slot(0, 11, 30);
      await stack
        .sql`update public.appointments set starts_at = ${a1Times.startsAt}, ends_at = ${a1Times.endsAt}
        where id = ${a1}`;
      await eventWithTimes(stack, alice, a1, a1Times);
    });

    await t.step("edits that do not affect the event queue nothing", async () => {
      await settled(stack, a1, alice.id);
      const before = (await logRow(stack.sql, a1, alice.id))!;
      await stack
        .sql`update public.appointments set updated_at = now() + interval '1 minute' where id = ${a1}`;
      await stack.sql`update public.appointments set status = 'confirmed' where id = ${a1}`;
      await stack.sql`update public.appointments set starts_at = starts_at where id = ${a1}`;
      const after = (await logRow(stack.sql, a1, alice.id))!;
      assert.equal(after.sync_status, "synced");
      assert.equal(after.queue_version, before.queue_version, "the row was not queued again");
    });

    await t.step("cancel deletes the event, no-show keeps it deleted, restoring brings it back", async () => {
      await stack.sql`update public.appointments set status = 'cancelled' where id = ${a1}`;
      await noEvent(stack, alice, a1);
      await settled(stack, a1, alice.id);
      await stack.sql`update public.appointments set status = 'no_show' where id = ${a1}`;
      assert.equal((await logRow(stack.sql, a1, alice.id))!.sync_status, "synced", "nothing to do");
      await stack.sql`update public.appointments set status = 'scheduled' where id = ${a1}`;
      const ev = await eventWithTimes(stack, alice, a1, a1Times);
      assert.equal(ev.id, eventIdFor(a1), "the same event is restored, not a second one");
      await settled(stack, a1, alice.id);
      const all = await stack.sandbox.events(alice.email, alice.email, true);
      assert.equal(all.filter((e) => e.id === eventIdFor(a1)).length, 1);
    });

    await t.step("reassignment deletes from the old calendar and creates on the new one", async () => {
      await stack.sql`update public.appointments set staff_id = ${bob.id} where id = ${a1}`;
      await eventWithTimes(stack, bob, a1, a1Times);
      await noEvent(stack, alice, a1);
      assert.equal((await settled(stack, a1, alice.id)).event_id, null);
      assert.equal((await settled(stack, a1, bob.id)).sync_status, "synced");
    });

    await t.step("a hard delete removes the event", async () => {
      await stack.sql`delete from public.appointments where id = ${a1}`;
      await waitFor(
        "event deleted on bob's calendar",
        () => liveEvent(stack, bob, a1),
        (e) => e === undefined,
      );
      const row = await settled(stack, a1, bob.id);
      assert.equal(row.sync_status, "synced");
      assert.equal(row.appointment_id, null);
      assert.equal(row.event_id, null);
    });

    await t.step("a staff member without a connection: the insert succeeds, nothing is queued", async () => {
      const id = await stack.createAppointment({ tenantId, staffId: carol.id, ...slot(1, 9) });
      const [n] = await stack
        .sql`select count(*)::int as n from public.calendar_sync_log where appointment_key = ${id}`;
      assert.equal(n.n, 0);
    });

    await t.step("bad rows fail alone with a clear error; the app's statements never fail", async () => {
      // End before start, in the same statement as a good appointment.
      const good = slot(2, 9);
      const bad = slot(2, 10);
      const [g, b] = await stack.sql<{ id: string }[]>`
        insert into public.appointments (tenant_id, staff_id, starts_at, ends_at) values
          (${tenantId}, ${alice.id}, ${good.startsAt}, ${good.endsAt}),
          (${tenantId}, ${alice.id}, ${bad.endsAt}, ${bad.startsAt})
        returning id`;
      await eventWithTimes(stack, alice, g.id, good);
      const failed = await settled(stack, b.id, alice.id);
      assert.equal(failed.sync_status, "failed");
      assert.equal(failed.last_error_code, "invalid_appointment");
      assert.match(failed.error_message!, new RegExp(`appointment ${b.id} ends before it starts`));
      // Fixing the times is enough: the trigger queues the row again.
      await stack.sql`update public.appointments set starts_at = ${bad.startsAt}, ends_at = ${bad.endsAt}
        where id = ${b.id}`;
      await eventWithTimes(stack, alice, b.id, bad);

      // No staff member: nothing to sync; assigning one later creates the event, unassigning deletes it.
      const floating = slot(2, 12);
      const [{ id: f }] = await stack.sql<{ id: string }[]>`
        insert into public.appointments (tenant_id, staff_id, starts_at, ends_at)
        values (${tenantId}, null, ${floating.startsAt}, ${floating.endsAt}) returning id`;
      const [n] = await stack
        .sql`select count(*)::int as n from public.calendar_sync_log where appointment_key = ${f}`;
      assert.equal(n.n, 0);
      await stack.sql`update public.appointments set staff_id = ${alice.id} where id = ${f}`;
      await eventWithTimes(stack, alice, f, floating);
      await stack.sql`update public.appointments set staff_id = null where id = ${f}`;
      await noEvent(stack, alice, f);

      // A staff row deleted by the app: the delete succeeds (their appointments lose the staff
      // member, their connection and rows go with them) and everyone else keeps syncing.
      const erin = await stack.createStaff({ tenantId, email: "erin@clinic.test" });
      await stack.connect(erin);
      const e1 = await stack.createAppointment({ tenantId, staffId: erin.id, ...slot(3, 9) });
      await settled(stack, e1, erin.id);
      await stack.sql`delete from public.staff where id = ${erin.id}`;
      const [orphan] = await stack.sql`select staff_id from public.appointments where id = ${e1}`;
      assert.equal(orphan.staff_id, null);
      const after = slot(3, 10);
      const a2 = await stack.createAppointment({ tenantId, staffId: alice.id, ...after });
      await eventWithTimes(stack, alice, a2, after);
    });

    await t.step(
      "choosing another calendar moves the events, even one whose first write is in flight at that moment",
      async () => {
        const other = "fay-clinic@group.calendar.google.com";
        await stack.sandbox.admin("POST", "/_admin/accounts", {
          email: fay.email,
          calendars: [{ id: other, summary: "Clinic", accessRole: "owner" }],
        });
        const doneTimes = slot(7, 9);
        const done = await stack.createAppointment({ tenantId, staffId: fay.id, ...doneTimes });
        await eventWithTimes(stack, fay, done, doneTimes);

        // The next insert hangs at the provider long enough to change the calendar meanwhile.
        await stack.sandbox.latency(1_500);
        const flyingTimes = slot(7, 10);
        const flying = await stack.createAppointment({ tenantId, staffId: fay.id, ...flyingTimes });
        await waitFor(
          "the row to be in flight",
          async () =>
            (await stack
              .sql`select lease_owner from public.calendar_sync_log where appointment_key = ${flying}`)[0]
              ?.lease_owner,
          (owner) => typeof owner === "string",
        );
        await stack.sql`update public.staff_calendar_connections set selected_calendar_id = ${other}
          where staff_id = ${fay.id}`;
        await stack.sandbox.latency(0);
        await eventWithTimes(stack, fay, done, doneTimes, other);
        await eventWithTimes(stack, fay, flying, flyingTimes, other);
        await settled(stack, flying, fay.id);
        await settled(stack, done, fay.id);
        for (const id of [done, flying]) {
          assert.equal(await liveEvent(stack, fay, id), undefined, "nothing left on the old calendar");
        }
      },
    );

    await t.step(
      "the selected calendar deleted at the provider: that row fails with a clear error, others go on",
      async () => {
        const calendarId = "bob-clinic@group.calendar.google.com";
        await stack.sandbox.admin("POST", "/_admin/accounts", {
          email: bob.email,
          calendars: [{ id: calendarId, summary: "Clinic", accessRole: "owner" }],
        });
        await stack.sql`update public.staff_calendar_connections set selected_calendar_id = ${calendarId}
        where staff_id = ${bob.id}`;
        const b1Times = slot(4, 9);
        const b1 = await stack.createAppointment({ tenantId, staffId: bob.id, ...b1Times });
        await eventWithTimes(stack, bob, b1, b1Times, calendarId);

        await stack.sandbox.admin(
          "DELETE",
          `/_admin/accounts/${encodeURIComponent(bob.email)}/calendars/${encodeURIComponent(calendarId)}`,
        );
        const b2 = await stack.createAppointment({ tenantId, staffId: bob.id, ...slot(4, 10) });
        const aliceTimes = slot(4, 11);
        const a3 = await stack.createAppointment({ tenantId, staffId: alice.id, ...aliceTimes });
        const failed = await settled(stack, b2, bob.id);
        assert.equal(failed.sync_status, "failed");
        assert.equal(failed.last_error_code, "calendar_not_found");
        assert.match(
          failed.error_message!,
          new RegExp(`calendar '${calendarId}' was not found at the provider`),
        );
        assert.equal(failed.retry_count, 0, "permanent: failed at once, no retries spent");
        await eventWithTimes(stack, alice, a3, aliceTimes);

        // Choosing a calendar that exists is all it takes: the moved event and the dead letter both
        // land on it, without a re-queue.
        await stack.sql`update public.staff_calendar_connections set selected_calendar_id = 'primary'
          where staff_id = ${bob.id}`;
        await eventWithTimes(stack, bob, b1, b1Times);
        await eventWithTimes(stack, bob, b2, slot(4, 10));
        assert.equal((await settled(stack, b2, bob.id)).sync_status, "synced");
      },
    );

    await t.step(
      "after an auth failure rows park and the connection needs a reconnect; a reconnect resumes them",
      async () => {
        await stack.sandbox.admin("POST", "/_admin/grants/revoke", { email: alice.email });
        const p1Times = slot(5, 9);
        const p1 = await stack.createAppointment({ tenantId, staffId: alice.id, ...p1Times });
        await waitFor(
          "alice's connection marked needs_reconnect",
          async () =>
            (await stack.sql`select connection_status from public.staff_calendar_connections
          where staff_id = ${alice.id}`)[0].connection_status,
          (s) => s === "needs_reconnect",
        );
        const p2Times = slot(5, 10);
        const p2 = await stack.createAppointment({ tenantId, staffId: alice.id, ...p2Times });
        const parked = [(await logRow(stack.sql, p1, alice.id))!, (await logRow(stack.sql, p2, alice.id))!];
        for (const row of parked) {
          assert.equal(row.sync_status, "pending", "parked, not failed");
          assert.equal(row.retry_count, 0, "parking spends no attempt");
        }
        // Bob keeps syncing meanwhile.
        const bTimes = slot(5, 11);
        const b3 = await stack.createAppointment({ tenantId, staffId: bob.id, ...bTimes });
        await eventWithTimes(stack, bob, b3, bTimes);

        const [own] = await statusAs(stack, alice.profileId);
        assert.equal(own.staff_id, alice.id);
        assert.equal(own.connection_status, "needs_reconnect");
        assert.equal(own.pending_count, 2);
        assert.match(own.last_error ?? "", /reconnect/);

        const { location } = await stack.connect(alice);
        assert.match(location, /calendar_status=connected/);
        // No re-queue, no explicit call: the running worker picks the parked rows up.
        await eventWithTimes(stack, alice, p1, p1Times);
        await eventWithTimes(stack, alice, p2, p2Times);
      },
    );

    await t.step(
      "a dead letter once the retry budget (time) is spent, visible in the status view, and re-queued",
      async () => {
        await stack.sandbox.fault({
          match: { email: dora.email, pathPrefix: "/google/calendar" },
          response: { status: 503 },
          times: -1,
        });
        const dTimes = slot(6, 9);
        const d1 = await stack.createAppointment({ tenantId, staffId: dora.id, ...dTimes });
        // Many quick attempts (backoff of milliseconds here) never dead-letter by themselves.
        const failing = await waitFor(
          "several failed attempts",
          () => logRow(stack.sql, d1, dora.id),
          (r) => !!r && r.retry_count >= 5,
        );
        assert.equal(failing?.sync_status, "pending");
        // A day of failures, simulated: the row started failing 25 h ago (budget 24 h by default).
        await stack.sql`update public.calendar_sync_log set first_failure_at = now() - interval '25 hours'
          where appointment_key = ${d1} and staff_id = ${dora.id}`;
        const dead = await settled(stack, d1, dora.id);
        assert.equal(dead.sync_status, "failed");
        assert.equal(dead.last_error_code, "provider_unavailable");
        assert.match(dead.error_message!, /retry budget of 24 h/);
        assert.match(dead.error_message!, /HTTP 503/);
        const [{ first_failure_at }] = await stack.sql`select first_failure_at from public.calendar_sync_log
          where appointment_key = ${d1} and staff_id = ${dora.id}`;
        assert.equal(first_failure_at, null, "a re-queue starts a fresh budget");

        // A tenant admin sees every staff member of the tenant; a staff member only their own line.
        const adminView = await statusAs(stack, admin.profileId);
        const doraLine = adminView.find((l) => l.staff_id === dora.id)!;
        assert.equal(doraLine.failed_count, 1);
        assert.equal(doraLine.last_error_code, "provider_unavailable");
        assert.deepEqual(
          new Set(adminView.map((l) => l.staff_id)),
          new Set([alice.id, bob.id, dora.id, fay.id]),
          "the tenant's staff with a connection or rows",
        );
        const aliceLine = adminView.find((l) => l.staff_id === alice.id)!;
        assert.equal(aliceLine.connection_status, "connected");
        assert.equal(aliceLine.pending_count, 0);
        assert.ok(aliceLine.last_synced_at);
        const doraOwn = await statusAs(stack, dora.profileId);
        assert.deepEqual(doraOwn.map((l) => l.staff_id), [dora.id]);
        assert.equal((await statusAs(stack, carol.profileId)).length, 0, "no connection, no rows: no line");

        // Only the service role may re-queue; then the row goes through once the provider is back.
        await assert.rejects(
          stack.sql.begin(async (tx) => {
            await tx`set local role authenticated`;
            await tx`select public.calendar_requeue_failed()`;
          }),
          /permission denied/,
        );
        await stack.sandbox.clearFaults();
        const [{ n }] = await stack.sql.begin(async (tx) => {
          await tx`set local role service_role`;
          return await tx`select public.calendar_requeue_failed(p_staff_id => ${dora.id}::uuid) as n`;
        });
        assert.equal(n, 1);
        await eventWithTimes(stack, dora, d1, dTimes);
        assert.equal((await settled(stack, d1, dora.id)).sync_status, "synced");
      },
    );
  } finally {
    await worker?.stop();
    await stack.close();
  }
});
