/**
 * calendar-select-calendar over real HTTP (gateway process) against a scratch Postgres and the
 * provider sandbox: a staff member may choose only a calendar their connected account can write to
 * (owner or writer), checked live with the provider at that moment; anything else is refused with a
 * clear error and changes nothing. Choosing another calendar re-queues the staff member's events,
 * which then move there. The bare column update that used to be the way in is refused to API roles.
 */
import assert from "node:assert/strict";
import { eventIdFor } from "../../supabase/functions/_shared/providers/google/event-id.ts";
import { assertEnvelope, json } from "../support/assertions.ts";
import { startTestStack, type TestStack, type TestStaff } from "../support/stack.ts";

const FN = "calendar-select-calendar";
const HOUR = 3_600_000;
const enc = encodeURIComponent;

interface Selected {
  selected_calendar_id: string;
  changed: boolean;
  calendar: { id: string; summary: string; primary: boolean; access_role: string; time_zone: string | null };
}

async function selectedOf(stack: TestStack, staff: TestStaff): Promise<string> {
  const [row] = await stack.sql`select selected_calendar_id from public.staff_calendar_connections
    where staff_id = ${staff.id}`;
  return row.selected_calendar_id;
}

async function logState(stack: TestStack, appointmentId: string) {
  const [row] = await stack.sql<{ sync_status: string; queue_version: string; calendar_id: string }[]>`
    select sync_status, queue_version::text as queue_version, calendar_id from public.calendar_sync_log
    where appointment_key = ${appointmentId}`;
  return row;
}

Deno.test("calendar-select-calendar: only writable calendars, checked live; the events follow", async (t) => {
  const stack = await startTestStack();
  try {
    const tenantId = await stack.createTenant("Select calendar clinic");
    const alice = await stack.createStaff({ tenantId, email: "alice@select.test" });
    const carol = await stack.createStaff({ tenantId, email: "carol@select.test" }); // never connects
    const mallory = await stack.createStaff({ email: "mallory@other-clinic.test" }); // another tenant
    const OPS = "ops@group.calendar.google.com";
    const PEEK = "peek@group.calendar.google.com";
    await stack.sandbox.admin("POST", "/_admin/accounts", {
      email: alice.email,
      calendars: [
        { id: OPS, summary: "Ops", accessRole: "writer", timeZone: "America/Chicago" },
        { id: PEEK, summary: "Peek", accessRole: "freeBusyReader" },
      ],
    });
    for (const s of [alice, mallory]) {
      assert.match((await stack.connect(s)).location, /calendar_status=connected/);
    }
    const select = (staff: TestStaff, calendarId: unknown) =>
      stack.invoke(FN, { jwt: staff.jwt, body: { calendar_id: calendarId } });
    const sync = async (appointmentId: string) => {
      const res = await stack.invoke("calendar-sync-appointment", {
        jwt: stack.serviceRoleJwt,
        body: { appointment_id: appointmentId },
      });
      const body = await json(res);
      assert.equal(res.status, 200, JSON.stringify(body));
      return body;
    };
    const start = Math.floor(Date.now() / HOUR) * HOUR + 48 * HOUR;
    const a1 = await stack.createAppointment({
      tenantId,
      staffId: alice.id,
      startsAt: new Date(start).toISOString(),
      endsAt: new Date(start + HOUR).toISOString(),
    });
    await sync(a1);
    const liveOn = async (calendarId: string) =>
      (await stack.sandbox.events(alice.email, calendarId)).filter((e) => e.id === eventIdFor(a1)).length;
    assert.equal(await liveOn(alice.email), 1);

    await t.step("a writer calendar is chosen; the events are re-queued and move there", async () => {
      const res = await select(alice, OPS);
      const body = await json<Selected>(res);
      assert.equal(res.status, 200, JSON.stringify(body));
      assert.equal(res.headers.get("cache-control"), "no-store");
      assert.deepEqual(body, {
        selected_calendar_id: OPS,
        changed: true,
        calendar: {
          id: OPS,
          summary: "Ops",
          primary: false,
          access_role: "writer",
          time_zone: "America/Chicago",
        },
      });
      assert.equal(await selectedOf(stack, alice), OPS);
      assert.equal((await logState(stack, a1)).sync_status, "pending", "the connection trigger re-queued it");
      await sync(a1);
      assert.equal(await liveOn(OPS), 1, "the event moved to the chosen calendar");
      assert.equal(await liveOn(alice.email), 0, "and left the old one");
      assert.equal((await logState(stack, a1)).calendar_id, OPS);
    });

    await t.step("choosing the same calendar again changes nothing and queues nothing", async () => {
      const before = await logState(stack, a1);
      const body = await json<Selected>(await select(alice, OPS));
      assert.equal(body.changed, false);
      assert.deepEqual(await logState(stack, a1), before);
    });

    await t.step("read-only calendars are refused with a clear error, and nothing changes", async () => {
      const before = await logState(stack, a1);
      await stack.sandbox.resetCalls();
      for (
        const [calendarId, role] of [
          ["en.usa#holiday@group.v.calendar.google.com", "reader"],
          [PEEK, "freeBusyReader"],
        ]
      ) {
        const refused = await assertEnvelope(await select(alice, calendarId), 403, "calendar_not_writable");
        assert.match(String(refused.error?.message), new RegExp(`'${role}' access`));
        assert.match(String(refused.error?.message), /'owner' or 'writer'/);
      }
      assert.equal(await selectedOf(stack, alice), OPS);
      assert.deepEqual(await logState(stack, a1), before, "no row re-queued");
      const calls = await stack.sandbox.calls();
      assert.equal(calls.byEndpoint["calendarList.get"], 2, "the role was read live, once per attempt");
    });

    await t.step("a share downgraded after the list was fetched is caught at selection time", async () => {
      const list = await json<{ id: string; access_role: string }[]>(
        await stack.invoke("calendar-list-calendars", { jwt: alice.jwt }),
      );
      assert.equal(list.find((c) => c.id === "shared@group.calendar.google.com"), undefined);
      await stack.sandbox.admin("POST", "/_admin/accounts", {
        email: alice.email,
        calendars: [{ id: "shared@group.calendar.google.com", summary: "Shared", accessRole: "writer" }],
      });
      const listed = await json<{ id: string; access_role: string }[]>(
        await stack.invoke("calendar-list-calendars", { jwt: alice.jwt }),
      );
      assert.equal(listed.find((c) => c.id === "shared@group.calendar.google.com")?.access_role, "writer");
      await stack.sandbox.admin(
        "PATCH",
        `/_admin/accounts/${enc(alice.email)}/calendars/${enc("shared@group.calendar.google.com")}`,
        { accessRole: "reader" },
      );
      await assertEnvelope(
        await select(alice, "shared@group.calendar.google.com"),
        403,
        "calendar_not_writable",
      );
      assert.equal(await selectedOf(stack, alice), OPS);
    });

    await t.step("a calendar the account does not have is 404 calendar_not_found", async () => {
      await assertEnvelope(
        await select(alice, "made-up@group.calendar.google.com"),
        404,
        "calendar_not_found",
      );
      await assertEnvelope(await select(alice, mallory.email), 404, "calendar_not_found");
      assert.equal(await selectedOf(stack, alice), OPS);
    });

    await t.step("`primary` is accepted and stored as given", async () => {
      const body = await json<Selected>(await select(alice, "primary"));
      assert.equal(body.selected_calendar_id, "primary");
      assert.equal(body.calendar.id, alice.email);
      assert.equal(body.calendar.primary, true);
      assert.equal(body.calendar.access_role, "owner");
      assert.equal(await selectedOf(stack, alice), "primary");
    });

    await t.step(
      "attacks: no other staff member's calendar, no bare column update, no bad input",
      async () => {
        // Nothing in the request can name another staff member.
        await assertEnvelope(
          await stack.invoke(FN, { jwt: mallory.jwt, body: { calendar_id: OPS, staff_id: alice.id } }),
          400,
          "invalid_request",
        );
        // Mallory's own JWT reaches only Mallory's own connection: Alice's calendar is not in her list.
        await assertEnvelope(await select(mallory, OPS), 404, "calendar_not_found");
        assert.equal(await selectedOf(stack, alice), "primary");
        // The column is no longer writable through the API (PostgREST with the user's JWT).
        for (const who of [alice, mallory]) {
          const code = await stack.sql.begin(async (tx) => {
            await tx`set local role authenticated`;
            await tx`select set_config('request.jwt.claims', ${
              JSON.stringify({ sub: who.profileId, role: "authenticated" })
            }, true)`;
            try {
              await tx`update public.staff_calendar_connections set selected_calendar_id = 'en.usa#holiday@group.v.calendar.google.com'
              where staff_id = ${alice.id}`;
              return "updated";
            } catch (err) {
              return (err as { code?: string }).code;
            }
          }).catch((err) => (err as { code?: string }).code);
          assert.equal(code, "42501", who.email);
        }
        assert.equal(await selectedOf(stack, alice), "primary");
        await assertEnvelope(await select(carol, OPS), 409, "not_connected");
        await assertEnvelope(
          await stack.invoke(FN, { jwt: stack.serviceRoleJwt, body: { calendar_id: OPS } }),
          403,
          "user_required",
        );
        await assertEnvelope(await stack.invoke(FN, { body: { calendar_id: OPS } }), 403);
        const noJwt = await stack.invoke(FN, { jwt: null, body: { calendar_id: OPS } });
        await noJwt.body?.cancel();
        assert.equal(noJwt.status, 401, "the gateway (verify_jwt) refuses a call without a JWT");
        await assertEnvelope(await stack.invoke(FN, { jwt: alice.jwt, method: "GET" }), 405);
        for (const bad of ["", 42, null, "x".repeat(1025), "tab\there"]) {
          await assertEnvelope(await select(alice, bad), 400, "invalid_request");
        }
        await assertEnvelope(await stack.invoke(FN, { jwt: alice.jwt, body: {} }), 400, "invalid_request");
        await assertEnvelope(
          await stack.invoke(FN, { jwt: alice.jwt, rawBody: "{not json" }),
          400,
          "invalid_json",
        );
        assert.equal(await selectedOf(stack, alice), "primary");
      },
    );

    await t.step("a revoked grant is 409 needs_reconnect, and nothing changes", async () => {
      await stack.sandbox.admin("POST", "/_admin/grants/revoke", { email: alice.email });
      await stack.sandbox.admin("POST", "/_admin/tokens/expire", { email: alice.email });
      await assertEnvelope(await select(alice, OPS), 409, "needs_reconnect");
      assert.equal(await selectedOf(stack, alice), "primary");
    });
  } finally {
    await stack.close();
  }
});
