/**
 * How the outbox worker meets the provider's harder answers, end to end (trigger -> outbox -> a
 * worker process -> the sandbox), issue 7 section 3:
 * - an event the user purged, or moved to another calendar, is written again under a fresh derived
 *   id (the row's event_generation goes up first, so a retried re-create never duplicates); only a
 *   calendar that is itself gone dead-letters with calendar_not_found;
 * - sustained rate limiting (403 rateLimitExceeded, 429) keeps a row retrying through many attempts;
 *   it is dead-lettered only once the retry budget (time since the first failure) is spent. Elapsed
 *   time is simulated by moving the row's first_failure_at back, never by sleeping.
 */
import assert from "node:assert/strict";
import type postgres from "postgres";
import { eventIdFor } from "../../supabase/functions/_shared/providers/google/event-id.ts";
import { waitFor } from "../support/poll.ts";
import { startTestStack, type TestStack, type TestStaff } from "../support/stack.ts";
import { spawnWorker, type WorkerProcess } from "../support/workers.ts";

const HOUR = 3_600_000;

function slot(d: number, h: number, minutes = 50): { startsAt: string; endsAt: string } {
  const base = new Date();
  base.setUTCHours(0, 0, 0, 0);
  const start = base.getTime() + (d + 1) * 24 * HOUR + h * HOUR;
  return {
    startsAt: new Date(start).toISOString(),
    endsAt: new Date(start + minutes * 60_000).toISOString(),
  };
}

interface Row {
  sync_status: string;
  event_id: string | null;
  calendar_id: string | null;
  event_generation: number;
  retry_count: number;
  last_error_code: string | null;
  error_message: string | null;
  first_failure_at: Date | null;
}

async function row(sql: postgres.Sql, appointmentId: string, staffId: string): Promise<Row | undefined> {
  const [r] = await sql<Row[]>`
    select sync_status, event_id, calendar_id, event_generation, retry_count, last_error_code,
      error_message, first_failure_at
    from public.calendar_sync_log where appointment_key = ${appointmentId} and staff_id = ${staffId}`;
  return r;
}

/** Live (not cancelled) events of the appointment, whatever their generation, on a calendar. */
async function liveEvents(
  stack: TestStack,
  staff: TestStaff,
  appointmentId: string,
  calendarId = staff.email,
) {
  const prefix = eventIdFor(appointmentId);
  return (await stack.sandbox.events(staff.email, calendarId)).filter((e) =>
    e.id.startsWith(prefix) && e.status !== "cancelled"
  );
}

const eventPath = (staff: TestStaff, calendarId: string, eventId: string, action: string) =>
  `/_admin/accounts/${encodeURIComponent(staff.email)}/calendars/${
    encodeURIComponent(calendarId)
  }/events/${eventId}/${action}`;

async function move(stack: TestStack, appointmentId: string, times: { startsAt: string; endsAt: string }) {
  await stack.sql`update public.appointments set starts_at = ${times.startsAt}, ends_at = ${times.endsAt}
    where id = ${appointmentId}`;
}

/** Wait until the row is synced (and `extra` holds). */
async function synced(
  stack: TestStack,
  appointmentId: string,
  staff: TestStaff,
  what: string,
  extra: (r: Row) => boolean = () => true,
): Promise<Row> {
  return (await waitFor(
    what,
    () => row(stack.sql, appointmentId, staff.id),
    (r) => !!r && r.sync_status === "synced" && extra(r),
  ))!;
}

Deno.test("the worker against purged, moved and missing calendars, and against sustained rate limits", async (t) => {
  const stack = await startTestStack({
    env: {
      CALENDAR_SYNC_BACKOFF_BASE_MS: "20",
      CALENDAR_SYNC_BACKOFF_CAP_MS: "100",
      CALENDAR_SYNC_RETRY_AFTER_MAX_MS: "100",
      CALENDAR_PROVIDER_TIMEOUT_MS: "1500",
    },
  });
  let worker: WorkerProcess | undefined;
  try {
    const tenantId = await stack.createTenant("Provider behaviour clinic");
    const alice = await stack.createStaff({ tenantId, email: "alice@behaviour.test" });
    const bob = await stack.createStaff({ tenantId, email: "bob@behaviour.test" });
    for (const s of [alice, bob]) {
      assert.match((await stack.connect(s)).location, /calendar_status=connected/);
    }
    worker = await spawnWorker({ env: stack.env, name: "behaviour", extra: { WORKER_IDLE_MS: "20" } });
    const { calendars } = await stack.sandbox.admin<{ calendars: { id: string; summary: string }[] }>(
      "GET",
      `/_admin/accounts/${encodeURIComponent(alice.email)}`,
    );
    const team = calendars.find((c) => c.summary === "Team")!.id;

    let a1 = "";
    await t.step("an event purged by the user is written again under a fresh id, once", async () => {
      a1 = await stack.createAppointment({ tenantId, staffId: alice.id, ...slot(0, 9) });
      const first = await synced(stack, a1, alice, "a1 synced");
      assert.equal(first.event_id, eventIdFor(a1));
      assert.equal(first.event_generation, 0);
      await stack.sandbox.admin("POST", eventPath(alice, alice.email, eventIdFor(a1), "purge"));

      const times = slot(0, 11);
      await move(stack, a1, times);
      const again = await synced(stack, a1, alice, "a1 re-created", (r) => r.event_generation === 1);
      assert.equal(again.event_id, eventIdFor(a1, 1));
      assert.equal(again.last_error_code, null, "not calendar_not_found");
      const live = await liveEvents(stack, alice, a1);
      assert.deepEqual(live.map((e) => e.id), [eventIdFor(a1, 1)]);
      assert.equal(Date.parse(live[0].start.dateTime), Date.parse(times.startsAt));

      // Processing the row again changes nothing: same generation, same single event.
      await stack.sql`select calendar_private.enqueue_appointment(${a1}::uuid)`;
      await move(stack, a1, slot(0, 12));
      await synced(stack, a1, alice, "a1 updated", (r) => r.event_generation === 1);
      await waitFor(
        "a1 moved to 12:00",
        () => liveEvents(stack, alice, a1),
        (l) => l.length === 1 && Date.parse(l[0].start.dateTime) === Date.parse(slot(0, 12).startsAt),
      );
    });

    await t.step(
      "an event the user moved to another calendar is written again on the selected one",
      async () => {
        await stack.sandbox.admin("POST", eventPath(alice, alice.email, eventIdFor(a1, 1), "move"), {
          destination: team,
        });
        await move(stack, a1, slot(0, 14));
        const again = await synced(
          stack,
          a1,
          alice,
          "a1 re-created after the move",
          (r) => r.event_generation === 2,
        );
        assert.equal(again.event_id, eventIdFor(a1, 2));
        assert.equal(again.calendar_id, "primary");
        assert.deepEqual(
          (await liveEvents(stack, alice, a1)).map((e) => e.id),
          [eventIdFor(a1, 2)],
        );
        // The moved copy is the user's now: left alone on the calendar they moved it to.
        assert.deepEqual(
          (await liveEvents(stack, alice, a1, team)).map((e) => e.id),
          [eventIdFor(a1, 1)],
        );
      },
    );

    await t.step("a lost answer to the re-create makes no second event", async () => {
      const a2 = await stack.createAppointment({ tenantId, staffId: alice.id, ...slot(1, 9) });
      await synced(stack, a2, alice, "a2 synced");
      await stack.sandbox.admin("POST", eventPath(alice, alice.email, eventIdFor(a2), "purge"));
      // The insert is carried out, its answer never arrives: the client times out (transient).
      await stack.sandbox.fault({
        match: { endpoint: "events.insert", email: alice.email },
        response: { timeout: true, executed: true, hangMs: 5_000 },
        times: 1,
      });
      await move(stack, a2, slot(1, 10));
      const done = await synced(
        stack,
        a2,
        alice,
        "a2 re-created despite the lost answer",
        (r) => r.event_generation === 1,
      );
      assert.equal(done.event_id, eventIdFor(a2, 1));
      assert.deepEqual((await liveEvents(stack, alice, a2)).map((e) => e.id), [eventIdFor(a2, 1)]);
      const calls = await stack.sandbox.admin<
        { recent: { endpoint: string; status: number; email: string }[] }
      >(
        "GET",
        "/_admin/calls",
      );
      const inserts = calls.recent.filter((c) => c.endpoint === "events.insert" && c.email === alice.email);
      assert.ok(inserts.some((c) => c.status === 409), "the retry found its own event (409) and adopted it");
    });

    await t.step(
      "a fresh id that is itself held by a vanished event is skipped in the same attempt",
      async () => {
        const a4 = await stack.createAppointment({ tenantId, staffId: alice.id, ...slot(1, 15) });
        await synced(stack, a4, alice, "a4 synced");
        // Generation 1's id was used once and purged (a row rebuilt from the ledger starts at 0 again).
        const events = `/_admin/accounts/${encodeURIComponent(alice.email)}/calendars/${
          encodeURIComponent(alice.email)
        }/events`;
        await stack.sandbox.admin("POST", events, {
          id: eventIdFor(a4, 1),
          start: slot(1, 15).startsAt,
          end: slot(1, 15).endsAt,
        });
        await stack.sandbox.admin("POST", eventPath(alice, alice.email, eventIdFor(a4, 1), "purge"));
        await stack.sandbox.admin("POST", eventPath(alice, alice.email, eventIdFor(a4), "purge"));
        await stack.sandbox.resetCalls();
        await move(stack, a4, slot(1, 16));
        const done = await synced(stack, a4, alice, "a4 on generation 2", (r) => r.event_generation === 2);
        assert.equal(done.retry_count, 0, "done within one attempt");
        assert.deepEqual((await liveEvents(stack, alice, a4)).map((e) => e.id), [eventIdFor(a4, 2)]);
      },
    );

    await t.step("only a calendar that is itself gone dead-letters with calendar_not_found", async () => {
      await stack.sql`update public.staff_calendar_connections set selected_calendar_id = ${team}
        where staff_id = ${alice.id}`;
      const a3 = await stack.createAppointment({ tenantId, staffId: alice.id, ...slot(2, 9) });
      await synced(stack, a3, alice, "a3 on the team calendar", (r) => r.calendar_id === team);
      await stack.sandbox.admin(
        "DELETE",
        `/_admin/accounts/${encodeURIComponent(alice.email)}/calendars/${encodeURIComponent(team)}`,
      );
      await move(stack, a3, slot(2, 10));
      const dead = await waitFor(
        "a3 dead-lettered",
        () => row(stack.sql, a3, alice.id),
        (r) => r?.sync_status === "failed",
      );
      assert.equal(dead!.last_error_code, "calendar_not_found");
      assert.equal(dead!.event_generation, 0, "no fresh id for a missing calendar");
      assert.match(dead!.error_message!, /choose another calendar/);
    });

    await t.step("sustained 403 rateLimitExceeded and 429 never dead-letter within minutes", async () => {
      await stack.sandbox.fault({
        match: { email: bob.email, endpoint: "events.insert" },
        response: { status: 403, reason: "rateLimitExceeded" },
        times: -1,
      });
      const b1 = await stack.createAppointment({ tenantId, staffId: bob.id, ...slot(3, 9) });
      const limited = await waitFor(
        "many rate-limited attempts",
        () => row(stack.sql, b1, bob.id),
        (r) => !!r && r.retry_count >= 10,
      );
      assert.equal(limited!.sync_status, "pending", "ten attempts (the old limit was 8) and still retrying");
      assert.equal(limited!.last_error_code, "rate_limited");
      assert.ok(limited!.first_failure_at, "the budget is counted from the first failure");
      const firstFailure = limited!.first_failure_at!.getTime();

      await stack.sandbox.clearFaults();
      await stack.sandbox.fault({
        match: { email: bob.email, endpoint: "events.insert" },
        response: { status: 429, retryAfterSeconds: 0 },
        times: -1,
      });
      // 23 hours of it: still within the day's budget, so the row keeps going.
      await stack.sql`update public.calendar_sync_log set first_failure_at = now() - interval '23 hours'
        where appointment_key = ${b1} and staff_id = ${bob.id}`;
      const before = (await row(stack.sql, b1, bob.id))!.retry_count;
      const still = await waitFor(
        "more attempts after 23 h",
        () => row(stack.sql, b1, bob.id),
        (r) => !!r && r.retry_count >= before + 3,
      );
      assert.equal(still!.sync_status, "pending");
      assert.ok(
        still!.first_failure_at!.getTime() < firstFailure,
        "the budget start is not reset by attempts",
      );

      // 25 hours: the budget is spent, the next failure dead-letters the row with a clear message.
      await stack.sql`update public.calendar_sync_log set first_failure_at = now() - interval '25 hours'
        where appointment_key = ${b1} and staff_id = ${bob.id}`;
      const dead = await waitFor(
        "dead letter after the budget",
        () => row(stack.sql, b1, bob.id),
        (r) => r?.sync_status === "failed",
      );
      assert.equal(dead!.last_error_code, "rate_limited");
      assert.match(dead!.error_message!, /retry budget of 24 h/);
      assert.match(dead!.error_message!, /HTTP 429/);

      // Once the provider is back, a re-queue goes through with a fresh budget.
      await stack.sandbox.clearFaults();
      await stack.sql.begin(async (tx) => {
        await tx`set local role service_role`;
        await tx`select public.calendar_requeue_failed(p_staff_id => ${bob.id}::uuid)`;
      });
      const ok = await synced(stack, b1, bob, "b1 synced after the limit lifted");
      assert.equal(ok.first_failure_at, null);
      assert.equal((await liveEvents(stack, bob, b1)).length, 1);
    });
  } finally {
    await worker?.stop();
    await stack.close();
  }
});
