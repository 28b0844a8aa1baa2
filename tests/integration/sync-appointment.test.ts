/**
 * calendar-sync-appointment over real HTTP (the gateway process) against a scratch Postgres and the
 * provider sandbox: one event per appointment whatever the retries (id derived from the appointment
 * id), minimal event bodies, moves, deletes that tolerate "already gone", restore after a delete,
 * provider failures reflected in calendar_sync_log, and tenancy checks.
 */
import assert from "node:assert/strict";
import { parseConfig } from "../../supabase/functions/_shared/config.ts";
import { connectionTokenBinding, decryptToken } from "../../supabase/functions/_shared/crypto.ts";
import type { Row } from "../../supabase/functions/_shared/db/rows.ts";
import { eventIdFor } from "../../supabase/functions/_shared/providers/google/event-id.ts";
import { assertEnvelope } from "../support/assertions.ts";
import { startTestStack, type TestStack, type TestStaff } from "../support/stack.ts";

const FN = "calendar-sync-appointment";
const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const DAY0 = Math.floor(Date.now() / DAY) * DAY + 3 * DAY;

function iso(ms: number): string {
  return new Date(ms).toISOString();
}

type LogRow = Pick<
  Row<"calendar_sync_log">,
  | "sync_status"
  | "event_id"
  | "calendar_id"
  | "last_synced_at"
  | "error_message"
  | "last_error_code"
  | "retry_count"
>;

// deno-lint-ignore no-explicit-any
type SandboxEvent = any;

async function sync(
  stack: TestStack,
  body: Record<string, unknown>,
  jwt: string | null,
): Promise<{ status: number; body: Record<string, unknown> & { error?: { code: string } }; res: Response }> {
  const res = await stack.invoke(FN, { body, jwt });
  return { status: res.status, body: await res.json(), res };
}

async function logRow(stack: TestStack, appointmentId: string): Promise<LogRow> {
  const rows = await stack.sql<LogRow[]>`
    select sync_status, event_id, calendar_id, last_synced_at, error_message,
      last_error_code, retry_count
    from public.calendar_sync_log where appointment_key = ${appointmentId}`;
  assert.equal(rows.length, 1, `one calendar_sync_log row for ${appointmentId}`);
  return rows[0];
}

/** Every stored event (deleted ones too) with this id on the staff member's primary calendar. */
async function eventsWithId(stack: TestStack, email: string, id: string): Promise<SandboxEvent[]> {
  return (await stack.sandbox.events(email, email, true)).filter((e: SandboxEvent) => e.id === id);
}

async function onlyEvent(stack: TestStack, email: string, id: string): Promise<SandboxEvent> {
  const found = await eventsWithId(stack, email, id);
  assert.equal(found.length, 1, `exactly one event ${id}: ${JSON.stringify(found)}`);
  return found[0];
}

function instant(t: { dateTime?: string } | undefined): number {
  assert.ok(t?.dateTime, "timed event");
  return Date.parse(t.dateTime);
}

/** Endpoint and status of the sandbox's recorded calls since the last reset, oldest first. */
async function recentCalls(stack: TestStack): Promise<string[]> {
  const { recent } = await stack.sandbox.admin<{ recent: { endpoint: string; status: number }[] }>(
    "GET",
    "/_admin/calls",
  );
  return recent.map((c) => `${c.endpoint} ${c.status}`);
}

/** The staff member's current access token, to act on their calendar directly "at Google". */
async function accessToken(stack: TestStack, staff: TestStaff): Promise<string> {
  const config = parseConfig(stack.env);
  const [row] = await stack.sql<
    { tenant_id: string; staff_id: string; provider: string; access_token_encrypted: string }[]
  >`select tenant_id, staff_id, provider, access_token_encrypted from public.staff_calendar_connections
    where staff_id = ${staff.id}`;
  return await decryptToken(
    row.access_token_encrypted,
    connectionTokenBinding(row, "access_token"),
    config.encryption,
  );
}

async function google(
  stack: TestStack,
  staff: TestStaff,
  method: string,
  path: string,
  body?: unknown,
): Promise<Response> {
  return await fetch(`${stack.sandbox.url}/google/calendar/v3${path}`, {
    method,
    headers: {
      authorization: `Bearer ${await accessToken(stack, staff)}`,
      ...(body === undefined ? {} : { "content-type": "application/json" }),
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
}

Deno.test("calendar-sync-appointment: one minimal event per appointment through retries, moves, deletes and failures", async (t) => {
  const stack = await startTestStack({ env: { CALENDAR_PROVIDER_TIMEOUT_MS: "1500" } });
  try {
    const title = stack.env.CALENDAR_EVENT_TITLE ?? "ValorWell";
    const clinicA = await stack.createTenant("Clinic A");
    const clinicB = await stack.createTenant("Clinic B");
    const alice = await stack.createStaff({ tenantId: clinicA });
    const carol = await stack.createStaff({ tenantId: clinicA }); // same clinic, not connected
    const dana = await stack.createStaff({ tenantId: clinicA }); // her grant gets revoked
    const bob = await stack.createStaff({ tenantId: clinicB });
    const erin = await stack.createStaff({ tenantId: clinicA }); // takes over an appointment
    for (const staff of [alice, dana, bob, erin]) {
      const { location } = await stack.connect(staff);
      assert.doesNotMatch(location, /error/i, `connect ${staff.email}: ${location}`);
    }
    const calA = encodeURIComponent(alice.email);

    const appt1 = await stack.createAppointment({
      tenantId: clinicA,
      staffId: alice.id,
      startsAt: iso(DAY0 + 9 * HOUR),
      endsAt: iso(DAY0 + 10 * HOUR),
    });
    const id1 = eventIdFor(appt1);

    await t.step(
      "create writes one event with the derived base32hex id, the configured title and times only",
      async () => {
        assert.match(id1, /^[0-9a-v]{26}$/);
        const { status, body } = await sync(stack, { appointment_id: appt1, action: "create" }, alice.jwt);
        assert.equal(status, 200, JSON.stringify(body));
        assert.equal(body.action, "create");
        assert.equal(body.sync_status, "synced");
        assert.equal(body.google_event_id, id1);
        const event = await onlyEvent(stack, alice.email, id1);
        assert.equal(event.status, "confirmed");
        assert.equal(event.summary, title);
        assert.equal(instant(event.start), DAY0 + 9 * HOUR);
        assert.equal(instant(event.end), DAY0 + 10 * HOUR);
        for (
          const field of ["description", "location", "attendees", "extendedProperties", "conferenceData"]
        ) {
          assert.equal(event[field], undefined, `the event carries no ${field}`);
        }
        const row = await logRow(stack, appt1);
        assert.equal(row.sync_status, "synced");
        assert.equal(row.event_id, id1);
        assert.equal(row.calendar_id, body.google_calendar_id);
        assert.ok(row.calendar_id, "the calendar is recorded");
        assert.ok(row.last_synced_at instanceof Date);
        assert.equal(row.error_message, null);
        assert.equal(row.retry_count, 0);
      },
    );

    await t.step("a second create is idempotent: still exactly one event", async () => {
      const { status, body } = await sync(stack, { appointment_id: appt1, action: "create" }, alice.jwt);
      assert.equal(status, 200, JSON.stringify(body));
      assert.equal(body.google_event_id, id1);
      await onlyEvent(stack, alice.email, id1);
      assert.equal((await stack.sandbox.events(alice.email)).length, 1);
    });

    const appt2 = await stack.createAppointment({
      tenantId: clinicA,
      staffId: alice.id,
      startsAt: iso(DAY0 + 11 * HOUR),
      endsAt: iso(DAY0 + 12 * HOUR),
    });
    const id2 = eventIdFor(appt2);

    await t.step(
      "a 5xx on events.insert answers 503 with Retry-After, counts a retry and records the error",
      async () => {
        await stack.sandbox.fault({
          match: { endpoint: "events.insert", email: alice.email },
          response: { status: 503 },
          times: 1,
        });
        const { status, body, res } = await sync(stack, { appointment_id: appt2 }, stack.serviceRoleJwt);
        assert.equal(status, 503, JSON.stringify(body));
        assert.equal(body.error?.code, "provider_unavailable");
        assert.equal(body.sync_status, "pending");
        assert.match(res.headers.get("retry-after") ?? "", /^\d+$/);
        const row = await logRow(stack, appt2);
        assert.equal(row.sync_status, "pending");
        assert.equal(row.retry_count, 1);
        assert.equal(row.last_error_code, "provider_unavailable");
        assert.ok(row.error_message && row.error_message.length > 0);
        assert.equal((await eventsWithId(stack, alice.email, id2)).length, 0);
      },
    );

    await t.step("a 429 with Retry-After on events.insert answers 429 with Retry-After", async () => {
      await stack.sandbox.fault({
        match: { endpoint: "events.insert", email: alice.email },
        response: { status: 429, retryAfterSeconds: 9 },
        times: 1,
      });
      const { status, body, res } = await sync(stack, { appointment_id: appt2 }, stack.serviceRoleJwt);
      assert.equal(status, 429, JSON.stringify(body));
      assert.equal(body.error?.code, "rate_limited");
      const retryAfter = Number(res.headers.get("retry-after"));
      assert.ok(retryAfter >= 9, `Retry-After ${retryAfter} honours the provider's 9 s`);
      const row = await logRow(stack, appt2);
      assert.equal(row.sync_status, "pending");
      assert.equal(row.last_error_code, "rate_limited");
      await stack.sandbox.clearFaults();
    });

    await t.step(
      "an insert whose response was lost (the event exists, the log does not know) is adopted: one event",
      async () => {
        // The insert reached Google but its answer never came back: the event is there already.
        const direct = await google(stack, alice, "POST", `/calendars/${calA}/events`, {
          id: id2,
          summary: title,
          start: { dateTime: iso(DAY0 + 11 * HOUR) },
          end: { dateTime: iso(DAY0 + 12 * HOUR) },
        });
        assert.equal(direct.status, 200, await direct.text());
        assert.equal((await logRow(stack, appt2)).event_id, null);
        await stack.sandbox.resetCalls();
        const { status, body } = await sync(stack, { appointment_id: appt2, action: "create" }, alice.jwt);
        assert.equal(status, 200, JSON.stringify(body));
        assert.equal(body.google_event_id, id2);
        const calls = await recentCalls(stack);
        assert.ok(calls.includes("events.insert 409"), `the retried insert met the existing event: ${calls}`);
        const event = await onlyEvent(stack, alice.email, id2);
        assert.equal(event.status, "confirmed");
        const row = await logRow(stack, appt2);
        assert.equal(row.sync_status, "synced");
        assert.equal(row.event_id, id2);
        assert.equal(row.error_message, null);
        assert.equal(row.retry_count, 0);
      },
    );

    await t.step("moving the appointment moves its event", async () => {
      await stack.sql`update public.appointments
        set starts_at = ${iso(DAY0 + DAY + 13 * HOUR)}, ends_at = ${iso(DAY0 + DAY + 14 * HOUR + 30 * 60_000)}
        where id = ${appt1}`;
      const { status, body } = await sync(stack, { appointment_id: appt1 }, alice.jwt);
      assert.equal(status, 200, JSON.stringify(body));
      assert.equal(body.action, "update");
      const event = await onlyEvent(stack, alice.email, id1);
      assert.equal(instant(event.start), DAY0 + DAY + 13 * HOUR);
      assert.equal(instant(event.end), DAY0 + DAY + 14 * HOUR + 30 * 60_000);
      assert.equal(event.summary, title);
    });

    await t.step(
      "an event deleted at Google (id tombstoned) is restored by the next sync: confirmed, one event",
      async () => {
        const del = await google(stack, alice, "DELETE", `/calendars/${calA}/events/${id1}`);
        assert.equal(del.status, 204);
        assert.equal((await onlyEvent(stack, alice.email, id1)).status, "cancelled");
        await stack.sandbox.resetCalls();
        const { status, body } = await sync(stack, { appointment_id: appt1, action: "update" }, alice.jwt);
        assert.equal(status, 200, JSON.stringify(body));
        const calls = await recentCalls(stack);
        assert.equal(calls.at(-1), "events.patch 200", `revived with a patch: ${calls}`);
        assert.ok(!calls.some((c) => c.startsWith("events.insert")), `no second event inserted: ${calls}`);
        const event = await onlyEvent(stack, alice.email, id1);
        assert.equal(event.status, "confirmed");
        assert.equal(instant(event.start), DAY0 + DAY + 13 * HOUR);
      },
    );

    await t.step(
      "cancelling deletes the event (cancelled at Google) and the log says synced without an event",
      async () => {
        await stack.sql`update public.appointments set status = 'cancelled' where id = ${appt1}`;
        const { status, body } = await sync(stack, { appointment_id: appt1, action: "delete" }, alice.jwt);
        assert.equal(status, 200, JSON.stringify(body));
        assert.equal(body.action, "delete");
        assert.equal(body.sync_status, "synced");
        assert.equal((await onlyEvent(stack, alice.email, id1)).status, "cancelled");
        assert.equal(
          (await stack.sandbox.events(alice.email)).some((e: SandboxEvent) => e.id === id1),
          false,
        );
        const row = await logRow(stack, appt1);
        assert.equal(row.sync_status, "synced");
        assert.equal(row.event_id, null);
        assert.ok(row.last_synced_at instanceof Date);
      },
    );

    await t.step("deleting again (Google answers 410 deleted) is tolerated", async () => {
      await stack.sandbox.resetCalls();
      const { status, body } = await sync(stack, { appointment_id: appt1, action: "delete" }, alice.jwt);
      assert.equal(status, 200, JSON.stringify(body));
      assert.equal(body.sync_status, "synced");
      const calls = await stack.sandbox.admin<{ recent: { endpoint: string; status: number }[] }>(
        "GET",
        "/_admin/calls",
      );
      assert.deepEqual(calls.recent.filter((c) => c.endpoint === "events.delete").map((c) => c.status), [
        410,
      ]);
      assert.equal((await logRow(stack, appt1)).sync_status, "synced");
    });

    await t.step(
      "create after delete: rescheduling revives the tombstoned id (409 duplicate) instead of failing",
      async () => {
        await stack.sql`update public.appointments set status = 'scheduled' where id = ${appt1}`;
        await stack.sandbox.resetCalls();
        const { status, body } = await sync(stack, { appointment_id: appt1, action: "create" }, alice.jwt);
        assert.equal(status, 200, JSON.stringify(body));
        const calls = await recentCalls(stack);
        assert.equal(calls[0], "events.insert 409", `the tombstone refused the insert: ${calls}`);
        assert.deepEqual(calls, ["events.insert 409", "events.get 200", "events.patch 200"]);
        assert.equal(body.google_event_id, id1);
        const event = await onlyEvent(stack, alice.email, id1);
        assert.equal(event.status, "confirmed");
        assert.equal(event.summary, title);
        assert.equal((await logRow(stack, appt1)).event_id, id1);
      },
    );

    await t.step("an event already gone at Google (404) is tolerated on delete", async () => {
      const appt3 = await stack.createAppointment({
        tenantId: clinicA,
        staffId: alice.id,
        startsAt: iso(DAY0 + 15 * HOUR),
        endsAt: iso(DAY0 + 16 * HOUR),
      });
      assert.equal((await sync(stack, { appointment_id: appt3 }, alice.jwt)).status, 200);
      // The log points at an event Google does not know (never existed there).
      await stack.sql`update public.calendar_sync_log set event_id = 'unknownevent0000'
        where appointment_key = ${appt3}`;
      await stack.sql`delete from public.appointments where id = ${appt3}`;
      await stack.sandbox.resetCalls();
      const { status, body } = await sync(stack, { appointment_id: appt3, action: "delete" }, alice.jwt);
      assert.equal(status, 200, JSON.stringify(body));
      assert.equal(body.sync_status, "synced");
      const calls = await stack.sandbox.admin<{ recent: { endpoint: string; status: number }[] }>(
        "GET",
        "/_admin/calls",
      );
      assert.deepEqual(calls.recent.filter((c) => c.endpoint === "events.delete").map((c) => c.status), [
        404,
      ]);
      const row = await logRow(stack, appt3);
      assert.equal(row.sync_status, "synced");
      assert.equal(row.event_id, null);
    });

    await t.step(
      "a revoked grant marks the connection needs_reconnect, parks the row and answers 409",
      async () => {
        const appt4 = await stack.createAppointment({
          tenantId: clinicA,
          staffId: dana.id,
          startsAt: iso(DAY0 + 9 * HOUR),
          endsAt: iso(DAY0 + 10 * HOUR),
        });
        await stack.sandbox.admin("POST", "/_admin/grants/revoke", { email: dana.email });
        const { status, body } = await sync(stack, { appointment_id: appt4 }, dana.jwt);
        assert.equal(status, 409, JSON.stringify(body));
        assert.equal(body.error?.code, "needs_reconnect");
        assert.equal(body.sync_status, "pending");
        const [conn] = await stack.sql<{ connection_status: string }[]>`
        select connection_status from public.staff_calendar_connections where staff_id = ${dana.id}`;
        assert.equal(conn.connection_status, "needs_reconnect");
        const row = await logRow(stack, appt4);
        assert.equal(row.sync_status, "pending", "parked: waits for the reconnect");
        assert.equal(row.last_error_code, "needs_reconnect");
        assert.ok(row.error_message);
        assert.equal(row.retry_count, 0, "parking uses no attempt");
        assert.equal((await stack.sandbox.events(dana.email)).length, 0);

        const again = await sync(stack, { appointment_id: appt4 }, dana.jwt);
        assert.equal(again.status, 409);
        assert.equal(again.body.error?.code, "needs_reconnect");
      },
    );

    await t.step(
      "a user of another tenant cannot sync this tenant's appointment; the service role can",
      async () => {
        const before = await stack.sandbox.calls();
        const denied = await stack.invoke(FN, { body: { appointment_id: appt2 }, jwt: bob.jwt });
        await assertEnvelope(denied, 403, "forbidden_tenant");
        assert.equal(
          (await stack.sandbox.calls()).total,
          before.total,
          "no provider call for a refused caller",
        );
        const stranger = await stack.userJwt(crypto.randomUUID());
        await assertEnvelope(await stack.invoke(FN, { body: { appointment_id: appt2 }, jwt: stranger }), 403);
        const { status, body } = await sync(stack, { appointment_id: appt2 }, stack.serviceRoleJwt);
        assert.equal(status, 200, JSON.stringify(body));
        assert.equal(body.google_event_id, id2);
        await onlyEvent(stack, alice.email, id2);
      },
    );

    await t.step(
      "reassigning deletes the event from the old staff member's calendar and creates it on the new one's",
      async () => {
        await stack.sql`update public.appointments set staff_id = ${erin.id} where id = ${appt2}`;
        const { status, body } = await sync(stack, { appointment_id: appt2 }, stack.serviceRoleJwt);
        assert.equal(status, 200, JSON.stringify(body));
        assert.equal(body.google_event_id, id2);
        assert.equal((await onlyEvent(stack, alice.email, id2)).status, "cancelled");
        const moved = await onlyEvent(stack, erin.email, id2);
        assert.equal(moved.status, "confirmed");
        assert.equal(instant(moved.start), DAY0 + 11 * HOUR);
        const rows = await stack.sql<
          { staff_id: string; sync_status: string; event_id: string | null }[]
        >`
        select staff_id, sync_status, event_id from public.calendar_sync_log
        where appointment_key = ${appt2}`;
        const byStaff = new Map(rows.map((r) => [r.staff_id, r]));
        assert.deepEqual(byStaff.get(alice.id), {
          staff_id: alice.id,
          sync_status: "synced",
          event_id: null,
        });
        assert.deepEqual(byStaff.get(erin.id), {
          staff_id: erin.id,
          sync_status: "synced",
          event_id: id2,
        });
      },
    );

    await t.step(
      "an action that contradicts the appointment's state is 409 and changes nothing",
      async () => {
        const before = await stack.sandbox.calls();
        await assertEnvelope(
          await stack.invoke(FN, { body: { appointment_id: appt2, action: "delete" }, jwt: alice.jwt }),
          409,
          "action_conflicts_with_state",
        );
        await stack.sql`update public.appointments set status = 'cancelled' where id = ${appt1}`;
        await assertEnvelope(
          await stack.invoke(FN, { body: { appointment_id: appt1, action: "create" }, jwt: alice.jwt }),
          409,
          "action_conflicts_with_state",
        );
        assert.equal((await stack.sandbox.calls()).total, before.total);
        assert.equal((await onlyEvent(stack, erin.email, id2)).status, "confirmed");
        assert.equal((await onlyEvent(stack, alice.email, id1)).status, "confirmed");
      },
    );

    await t.step(
      "the event carries the staff member's IANA zone for display; an unusable zone is left out, not fatal",
      async () => {
        await stack.sql`update public.staff set time_zone = 'America/New_York' where id = ${erin.id}`;
        const ny = await stack.createAppointment({
          tenantId: clinicA,
          staffId: erin.id,
          startsAt: iso(DAY0 + 15 * HOUR),
          endsAt: iso(DAY0 + 16 * HOUR),
        });
        assert.equal((await sync(stack, { appointment_id: ny }, erin.jwt)).status, 200);
        const nyEvent = await onlyEvent(stack, erin.email, eventIdFor(ny));
        assert.equal(nyEvent.start.timeZone, "America/New_York");
        assert.equal(instant(nyEvent.start), DAY0 + 15 * HOUR);

        // Host apps store what they store: a zone Google would refuse must not block the sync.
        await stack.sql`update public.staff set time_zone = 'Clinic/Local Time' where id = ${erin.id}`;
        const odd = await stack.createAppointment({
          tenantId: clinicA,
          staffId: erin.id,
          startsAt: iso(DAY0 + 17 * HOUR),
          endsAt: iso(DAY0 + 18 * HOUR),
        });
        const { status, body } = await sync(stack, { appointment_id: odd }, erin.jwt);
        assert.equal(status, 200, JSON.stringify(body));
        const oddEvent = await onlyEvent(stack, erin.email, eventIdFor(odd));
        assert.equal(instant(oddEvent.start), DAY0 + 17 * HOUR);
        assert.equal(instant(oddEvent.end), DAY0 + 18 * HOUR);
      },
    );

    await t.step("an unknown appointment is 404; bad input 400; no JWT 401; anon key 403", async () => {
      await assertEnvelope(
        await stack.invoke(FN, { body: { appointment_id: crypto.randomUUID() }, jwt: alice.jwt }),
        404,
        "appointment_not_found",
      );
      await assertEnvelope(await stack.invoke(FN, { body: { appointment_id: "x" }, jwt: alice.jwt }), 400);
      await assertEnvelope(
        await stack.invoke(FN, { body: { appointment_id: appt2, action: "move" }, jwt: alice.jwt }),
        400,
      );
      // verify_jwt is off (secret API keys must reach it): the function's own 401 envelope.
      await assertEnvelope(
        await stack.invoke(FN, { body: { appointment_id: appt2 }, jwt: null }),
        401,
        "missing_authorization",
      );
      // The anon key passes the gateway (it is a valid JWT) and is refused by the function itself.
      await assertEnvelope(
        await stack.invoke(FN, { body: { appointment_id: appt2 }, jwt: stack.anonJwt }),
        403,
      );
    });

    await t.step(
      "an appointment whose staff member has no connected calendar is 409 not_connected",
      async () => {
        const appt5 = await stack.createAppointment({
          tenantId: clinicA,
          staffId: carol.id,
          startsAt: iso(DAY0 + 9 * HOUR),
          endsAt: iso(DAY0 + 10 * HOUR),
        });
        await assertEnvelope(
          await stack.invoke(FN, { body: { appointment_id: appt5 }, jwt: carol.jwt }),
          409,
          "not_connected",
        );
      },
    );
  } finally {
    await stack.close();
  }
});
