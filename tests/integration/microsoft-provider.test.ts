/**
 * The Microsoft provider end to end over real HTTP: the gateway's functions, a scratch Postgres and
 * the Microsoft sandbox (dev/sandbox/CONTRACT.md, "Microsoft"). Connect with provider "microsoft",
 * list calendars, availability from getSchedule (default calendar) and calendarView (another calendar,
 * every page), an appointment written through the worker exactly once (a retry after a lost answer
 * finds the first event by transactionId), move, cancel, refresh with rotation, a revoked grant,
 * throttling, and a deployment that configures Microsoft only.
 */
import assert from "node:assert/strict";
import { parseConfig } from "../../supabase/functions/_shared/config.ts";
import { connectionTokenBinding, decryptToken } from "../../supabase/functions/_shared/crypto.ts";
import { waitFor } from "../support/poll.ts";
import { startTestStack, type TestStack, type TestStaff } from "../support/stack.ts";

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const DAY0 = Math.floor(Date.now() / DAY) * DAY + 3 * DAY;
const iso = (ms: number) => new Date(ms).toISOString().replace(".000Z", "Z");

// deno-lint-ignore no-explicit-any
type MsEvent = any;

interface ConnectionRow {
  tenant_id: string;
  staff_id: string;
  provider: string;
  connection_status: string;
  account_email: string | null;
  access_token_encrypted: string | null;
  refresh_token_encrypted: string | null;
}

async function connection(stack: TestStack, staff: TestStaff): Promise<ConnectionRow> {
  const rows = await stack.sql<ConnectionRow[]>`
    select tenant_id, staff_id, provider, connection_status, account_email, access_token_encrypted,
      refresh_token_encrypted
    from public.staff_calendar_connections where staff_id = ${staff.id}`;
  assert.equal(rows.length, 1);
  return rows[0];
}

async function storedRefreshToken(stack: TestStack, staff: TestStaff): Promise<string> {
  const row = await connection(stack, staff);
  assert.ok(row.refresh_token_encrypted);
  return await decryptToken(
    row.refresh_token_encrypted,
    connectionTokenBinding(row, "refresh_token"),
    parseConfig(stack.env).encryption,
  );
}

async function runWorker(stack: TestStack): Promise<void> {
  const res = await stack.invoke("calendar-sync-worker", { jwt: stack.secrets.workerSecret, body: {} });
  const text = await res.text();
  assert.equal(res.status, 200, text);
}

interface LogRow {
  sync_status: string;
  event_id: string | null;
  last_error_code: string | null;
  next_attempt_at: Date | null;
}

async function logRow(stack: TestStack, appointmentId: string): Promise<LogRow> {
  const rows = await stack.sql<LogRow[]>`
    select sync_status, event_id, last_error_code, next_attempt_at
    from public.calendar_sync_log where appointment_key = ${appointmentId}`;
  assert.equal(rows.length, 1);
  return rows[0];
}

/** Make a queued retry due now, as time passing would. */
async function makeDue(stack: TestStack, appointmentId: string): Promise<void> {
  await stack.sql`update public.calendar_sync_log set next_attempt_at = now()
    where appointment_key = ${appointmentId}`;
}

/** Expire the stored access token so the next call refreshes first. */
async function expireStoredToken(stack: TestStack, staff: TestStaff): Promise<void> {
  await stack.sql`update public.staff_calendar_connections
    set token_expires_at = now() - interval '1 minute' where staff_id = ${staff.id}`;
}

async function listCalendars(stack: TestStack, staff: TestStaff) {
  const res = await stack.invoke("calendar-list-calendars", { jwt: staff.jwt, body: {} });
  return { status: res.status, body: await res.json() };
}

Deno.test("Microsoft provider: connect, list, availability, writes through the worker, refresh, revocation, throttling", async (t) => {
  // Availability here is Graph's getSchedule and its failures: the busy cache (which a connect's
  // channel makes usable) is off, so every answer is live.
  const stack = await startTestStack({
    env: { CALENDAR_PROVIDER_TIMEOUT_MS: "1500", CALENDAR_BUSY_CACHE_MAX_AGE_SECONDS: "0" },
  });
  try {
    const tenantId = await stack.createTenant("Outlook clinic");
    const alice = await stack.createStaff({ tenantId, email: "alice@contoso-clinic.com" });
    const ms = stack.sandbox;

    await t.step(
      "connect with provider microsoft: auth-start -> consent -> callback -> confirm",
      async () => {
        const { location, confirmation } = await stack.connect(alice, { provider: "microsoft" });
        assert.match(location, /calendar_status=connected/, location);
        assert.equal(confirmation?.status, 200);
        assert.equal(confirmation?.body.provider, "microsoft");
        const row = await connection(stack, alice);
        assert.equal(row.provider, "microsoft");
        assert.equal(row.connection_status, "connected");
        // No email_verified at Microsoft: the account is the user principal name.
        assert.equal(row.account_email, alice.email);
      },
    );

    await t.step("the consent URL is Microsoft's, with PKCE S256 and the Graph scopes", async () => {
      const other = await stack.createStaff({ tenantId });
      const res = await stack.invoke("calendar-auth-start", {
        jwt: other.jwt,
        body: { provider: "microsoft" },
      });
      const { url } = await res.json();
      const consent = new URL(url);
      assert.equal(
        consent.pathname,
        new URL(`${stack.env.MICROSOFT_AUTHORITY}/common/oauth2/v2.0/authorize`).pathname,
      );
      assert.equal(consent.searchParams.get("code_challenge_method"), "S256");
      assert.deepEqual(
        consent.searchParams.get("scope")?.split(" ").sort(),
        ["Calendars.ReadWrite", "User.Read", "email", "offline_access", "openid", "profile"],
      );
    });

    await t.step(
      "list calendars: the default is primary and writable, read-only ones are readers",
      async () => {
        const { status, body } = await listCalendars(stack, alice);
        assert.equal(status, 200, JSON.stringify(body));
        const calendars = body as { id: string; summary: string; primary: boolean; access_role: string }[];
        const byName = new Map(calendars.map((c) => [c.summary, c]));
        assert.equal(byName.get("Calendar")?.primary, true);
        assert.equal(byName.get("Calendar")?.access_role, "writer");
        assert.equal(byName.get("Birthdays")?.access_role, "reader");
      },
    );

    await t.step("availability: busy and tentative items are busy, free ones are not", async () => {
      const at = (h: number) => DAY0 + h * HOUR;
      const add = (start: number, end: number, showAs: string) =>
        ms.admin("POST", `/_admin/microsoft/accounts/${alice.email}/calendars/default/events`, {
          start: { dateTime: iso(start).slice(0, 19), timeZone: "UTC" },
          end: { dateTime: iso(end).slice(0, 19), timeZone: "UTC" },
          subject: "Therapy: Jane Doe",
          showAs,
        });
      await add(at(9), at(10), "busy");
      await add(at(9) + 30 * 60_000, at(11), "tentative");
      await add(at(13), at(14), "free");
      await add(at(15), at(16), "workingElsewhere");
      const res = await stack.invoke("calendar-get-availability", {
        jwt: alice.jwt,
        body: { staff_id: alice.id, time_min: iso(DAY0), time_max: iso(DAY0 + DAY) },
      });
      const text = await res.text();
      assert.equal(res.status, 200, text);
      assert.deepEqual(JSON.parse(text).busy, [{ start: iso(at(9)), end: iso(at(11)) }]);
      assert.ok(!text.includes("Jane"));
    });

    await t.step(
      "getSchedule refused for the mailbox: the default calendar is read with calendarView; both failing is an error, never free",
      async () => {
        const ask = () =>
          stack.invoke("calendar-get-availability", {
            jwt: alice.jwt,
            body: { staff_id: alice.id, time_min: iso(DAY0), time_max: iso(DAY0 + DAY) },
          });
        // A per-schedule error, as Graph answers for a mailbox getSchedule does not serve (a personal account).
        await ms.admin("PATCH", `/_admin/microsoft/accounts/${alice.email}`, {
          scheduleError: { responseCode: "5016", message: "mailbox unavailable" },
        });
        try {
          await stack.sandbox.resetCalls();
          const res = await ask();
          const text = await res.text();
          assert.equal(res.status, 200, text);
          assert.deepEqual(JSON.parse(text).busy, [{
            start: iso(DAY0 + 9 * HOUR),
            end: iso(DAY0 + 11 * HOUR),
          }]);
          const calls = (await stack.sandbox.calls()).byEndpoint;
          assert.ok((calls["microsoft.calendar.calendarView"] ?? 0) >= 1, JSON.stringify(calls));

          // No Exchange mailbox at all: calendarView is refused too.
          await ms.admin("POST", "/_admin/faults", {
            match: { endpoint: "microsoft.calendar.calendarView" },
            response: { status: 404, reason: "MailboxNotEnabledForRESTAPI", message: "no mailbox" },
            times: -1,
          });
          const failed = await ask();
          const body = await failed.json();
          assert.notEqual(failed.status, 200, JSON.stringify(body));
          assert.ok(body.error?.code);
        } finally {
          await ms.admin("DELETE", "/_admin/faults");
          await ms.admin("PATCH", `/_admin/microsoft/accounts/${alice.email}`, { scheduleError: null });
        }
      },
    );

    let appointmentId = "";
    let eventId = "";
    await t.step(
      "an appointment reaches the Outlook calendar through the worker exactly once, even after a lost answer",
      async () => {
        // The create happens at Graph, but its answer never arrives (the request times out).
        await ms.fault({
          match: { endpoint: "microsoft.events.create", email: alice.email },
          response: { timeout: true, executed: true },
          times: 1,
        });
        appointmentId = await stack.createAppointment({
          tenantId,
          staffId: alice.id,
          startsAt: iso(DAY0 + 20 * HOUR),
          endsAt: iso(DAY0 + 21 * HOUR),
        });
        await runWorker(stack);
        const failed = await logRow(stack, appointmentId);
        assert.notEqual(failed.sync_status, "synced");
        assert.equal(
          (await ms.msEvents(alice.email)).filter((e: MsEvent) => e.subject !== "Therapy: Jane Doe").length,
          1,
        );

        await makeDue(stack, appointmentId);
        await ms.resetCalls();
        await runWorker(stack);
        const row = await logRow(stack, appointmentId);
        assert.equal(row.sync_status, "synced", JSON.stringify(row));
        const calls = (await ms.calls()).byEndpoint;
        assert.equal(calls["microsoft.events.create"], 1);
        assert.equal(
          calls["microsoft.events.update"],
          undefined,
          "the answered event is as written: no PATCH",
        );
        assert.ok(row.event_id);
        eventId = row.event_id;
        const ours = (await ms.msEvents(alice.email, "default", true)).filter((e: MsEvent) =>
          e.id === eventId
        );
        assert.equal(ours.length, 1);
        const all = (await ms.msEvents(alice.email, "default", true)).filter((e: MsEvent) => e.transactionId);
        assert.equal(all.length, 1, `one event for the appointment: ${JSON.stringify(all)}`);
        const event = all[0];
        assert.equal(event.showAs, "busy");
        assert.equal(Date.parse(event.start.dateTime + "Z"), DAY0 + 20 * HOUR);
        assert.match(event.transactionId, /^[0-9a-f-]{36}$/);
      },
    );

    await t.step(
      "a lost create answer, then a move: the retry's create answers the earlier event, which gets the new times",
      async () => {
        await ms.fault({
          match: { endpoint: "microsoft.events.create", email: alice.email },
          response: { timeout: true, executed: true },
          times: 1,
        });
        const id = await stack.createAppointment({
          tenantId,
          staffId: alice.id,
          startsAt: iso(DAY0 + 30 * HOUR),
          endsAt: iso(DAY0 + 31 * HOUR),
        });
        await runWorker(stack);
        assert.notEqual((await logRow(stack, id)).sync_status, "synced");
        // Moved before the retry: Graph answers the retried transactionId with the event as the lost
        // create made it, at the old times.
        await stack.sql`update public.appointments set starts_at = ${iso(DAY0 + 32 * HOUR)},
          ends_at = ${iso(DAY0 + 33 * HOUR)} where id = ${id}`;
        await makeDue(stack, id);
        await ms.resetCalls();
        await runWorker(stack);
        const calls = (await ms.calls()).byEndpoint;
        assert.equal(calls["microsoft.events.create"], 1);
        assert.equal(calls["microsoft.events.update"], 1);
        const row = await logRow(stack, id);
        assert.equal(row.sync_status, "synced", JSON.stringify(row));
        const [event, ...more] = (await ms.msEvents(alice.email)).filter((e: MsEvent) =>
          e.id === row.event_id
        );
        assert.equal(more.length, 0);
        assert.equal(Date.parse(event.start.dateTime + "Z"), DAY0 + 32 * HOUR);
        assert.equal(Date.parse(event.end.dateTime + "Z"), DAY0 + 33 * HOUR);
        // Leave the calendar as the next steps expect it.
        await stack.sql`delete from public.appointments where id = ${id}`;
        await runWorker(stack);
        assert.equal(
          (await ms.msEvents(alice.email)).filter((e: MsEvent) => e.id === row.event_id).length,
          0,
        );
      },
    );

    await t.step("move: the same event gets the new times (PATCH)", async () => {
      await stack.sql`update public.appointments set starts_at = ${iso(DAY0 + 22 * HOUR)},
        ends_at = ${iso(DAY0 + 23 * HOUR)} where id = ${appointmentId}`;
      await runWorker(stack);
      const row = await logRow(stack, appointmentId);
      assert.equal(row.sync_status, "synced");
      assert.equal(row.event_id, eventId);
      const [event] = (await ms.msEvents(alice.email)).filter((e: MsEvent) => e.id === eventId);
      assert.equal(Date.parse(event.start.dateTime + "Z"), DAY0 + 22 * HOUR);
      assert.equal(Date.parse(event.end.dateTime + "Z"), DAY0 + 23 * HOUR);
    });

    await t.step("an event deleted in Outlook is written again on the next change", async () => {
      const token = await decryptToken(
        (await connection(stack, alice)).access_token_encrypted!,
        connectionTokenBinding(await connection(stack, alice), "access_token"),
        parseConfig(stack.env).encryption,
      );
      const del = await fetch(`${stack.env.MICROSOFT_GRAPH_API_BASE}/me/events/${eventId}`, {
        method: "DELETE",
        headers: { authorization: `Bearer ${token}` },
      });
      await del.body?.cancel();
      assert.equal(del.status, 204);
      await stack.sql`update public.appointments set ends_at = ${iso(DAY0 + 23 * HOUR + 30 * 60_000)}
        where id = ${appointmentId}`;
      await runWorker(stack);
      const row = await logRow(stack, appointmentId);
      assert.equal(row.sync_status, "synced", JSON.stringify(row));
      assert.notEqual(row.event_id, eventId);
      const live = (await ms.msEvents(alice.email)).filter((e: MsEvent) => e.transactionId);
      assert.equal(live.length, 1);
      assert.equal(live[0].id, row.event_id);
      eventId = row.event_id!;
    });

    await t.step("cancel: the event is deleted; deleting again is done", async () => {
      await stack.sql`update public.appointments set status = 'cancelled' where id = ${appointmentId}`;
      await runWorker(stack);
      const row = await logRow(stack, appointmentId);
      assert.equal(row.sync_status, "synced", JSON.stringify(row));
      const live = (await ms.msEvents(alice.email)).filter((e: MsEvent) => e.transactionId);
      assert.equal(live.length, 0);
      const gone = (await ms.msEvents(alice.email, "default", true)).find((e: MsEvent) => e.id === eventId);
      assert.ok(gone?.deletedAt);
    });

    await t.step("refresh rotates the refresh token, and the newest one is stored", async () => {
      const before = await storedRefreshToken(stack, alice);
      await expireStoredToken(stack, alice);
      const first = await listCalendars(stack, alice);
      assert.equal(first.status, 200, JSON.stringify(first.body));
      const after = await storedRefreshToken(stack, alice);
      assert.notEqual(after, before);
      // The sandbox refuses a rotated-away token (reuse mode `reject`): only the newest works, so a
      // second refresh succeeding proves the stored one is the newest.
      await expireStoredToken(stack, alice);
      const second = await listCalendars(stack, alice);
      assert.equal(second.status, 200, JSON.stringify(second.body));
      assert.notEqual(await storedRefreshToken(stack, alice), after);
      const { grants } = await ms.admin<{ grants: { refreshCount: number; reuseCount: number }[] }>(
        "GET",
        `/_admin/microsoft/grants?email=${encodeURIComponent(alice.email)}`,
      );
      assert.ok(grants.some((g) => g.refreshCount >= 2 && g.reuseCount === 0), JSON.stringify(grants));
    });

    await t.step("a Graph 401 on a token we hold as valid: one refresh, then it works", async () => {
      const before = await storedRefreshToken(stack, alice);
      await ms.admin("POST", "/_admin/microsoft/tokens/expire", { email: alice.email });
      const { status, body } = await listCalendars(stack, alice);
      assert.equal(status, 200, JSON.stringify(body));
      assert.notEqual(await storedRefreshToken(stack, alice), before);
      assert.equal((await connection(stack, alice)).connection_status, "connected");
    });

    await t.step(
      "429 MailboxConcurrency with Retry-After is rate_limited, retried after the delay",
      async () => {
        await ms.fault({
          match: { endpoint: "microsoft.events.create", email: alice.email },
          response: {
            status: 429,
            reason: "ApplicationThrottled",
            message: "Application is over its MailboxConcurrency limit.",
            retryAfterSeconds: 7,
          },
          times: 1,
        });
        const id = await stack.createAppointment({
          tenantId,
          staffId: alice.id,
          startsAt: iso(DAY0 + DAY + 9 * HOUR),
          endsAt: iso(DAY0 + DAY + 10 * HOUR),
        });
        const started = Date.now();
        await runWorker(stack);
        const row = await logRow(stack, id);
        assert.notEqual(row.sync_status, "synced");
        assert.equal(row.last_error_code, "rate_limited", JSON.stringify(row));
        assert.ok(
          row.next_attempt_at && row.next_attempt_at.getTime() >= started + 6_000,
          JSON.stringify(row),
        );
        await makeDue(stack, id);
        await runWorker(stack);
        assert.equal((await logRow(stack, id)).sync_status, "synced");

        await ms.fault({
          match: { endpoint: "microsoft.calendar.getSchedule", email: alice.email },
          response: { status: 429, reason: "ApplicationThrottled", retryAfterSeconds: 5 },
          times: 1,
        });
        const res = await stack.invoke("calendar-get-availability", {
          jwt: alice.jwt,
          body: { staff_id: alice.id, time_min: iso(DAY0), time_max: iso(DAY0 + DAY) },
        });
        const body = await res.json();
        assert.equal(res.status, 429, JSON.stringify(body));
        assert.equal(body.error.code, "rate_limited");
        assert.equal(res.headers.get("retry-after"), "5");
      },
    );

    await t.step("a revoked grant (password change) -> needs_reconnect", async () => {
      await ms.admin("POST", "/_admin/microsoft/grants/revoke", {
        email: alice.email,
        reason: "password_change",
      });
      await expireStoredToken(stack, alice);
      const { status, body } = await listCalendars(stack, alice);
      assert.notEqual(status, 200);
      assert.ok(body.error?.code, JSON.stringify(body));
      await waitFor(
        "the connection to need reconnecting",
        async () => (await connection(stack, alice)).connection_status,
        (s) => s === "needs_reconnect",
        { timeoutMs: 5_000 },
      );
    });

    await t.step("disconnect works although Microsoft has no revocation endpoint", async () => {
      const bob = await stack.createStaff({ tenantId, email: "bob@contoso-clinic.com" });
      const { location } = await stack.connect(bob, { provider: "microsoft" });
      assert.match(location, /calendar_status=connected/);
      const res = await stack.invoke("calendar-disconnect", { jwt: bob.jwt, body: {} });
      const text = await res.text();
      assert.equal(res.status, 200, text);
      // Nothing was revoked at Microsoft (no per-token revocation): the answer says so.
      assert.deepEqual(JSON.parse(text), { status: "disconnected", revoked: false });
      const rows = await stack.sql`select access_token_encrypted, refresh_token_encrypted, connection_status
        from public.staff_calendar_connections where staff_id = ${bob.id}`;
      for (const r of rows) {
        assert.equal(r.access_token_encrypted, null);
        assert.equal(r.refresh_token_encrypted, null);
      }
    });
  } catch (err) {
    console.error(stack.gatewayLogs().slice(-40).join("\n"));
    throw err;
  } finally {
    await stack.close();
  }
});

Deno.test("Microsoft availability for a selected non-default calendar reads calendarView, every page", async (t) => {
  const stack = await startTestStack({});
  try {
    const tenantId = await stack.createTenant("Room bookings");
    const bob = await stack.createStaff({ tenantId, email: "bob@fabrikam-clinic.com" });
    // India has no daylight saving: an all-day event's day starts at 18:30 UTC the evening before.
    await stack.sql`update public.staff set time_zone = 'Asia/Kolkata' where id = ${bob.id}`;
    const ms = stack.sandbox;
    const account = await ms.admin("POST", "/_admin/microsoft/accounts", {
      email: bob.email,
      calendars: [{ name: "Room 2", canEdit: true }],
    }) as { calendars: { id: string; name: string }[] };
    const room = account.calendars.find((c) => c.name === "Room 2")!.id;
    const H = (h: number) => DAY0 + h * HOUR;
    const day = (ms: number) => iso(ms).slice(0, 10);
    const add = (calendar: string, body: Record<string, unknown>) =>
      ms.admin(
        "POST",
        `/_admin/microsoft/accounts/${bob.email}/calendars/${encodeURIComponent(calendar)}/events`,
        { subject: "Therapy: Jane Doe", ...body },
      );
    const timed = (start: number, end: number, showAs = "busy", extra: Record<string, unknown> = {}) => ({
      start: { dateTime: iso(start).slice(0, 19), timeZone: "UTC" },
      end: { dateTime: iso(end).slice(0, 19), timeZone: "UTC" },
      showAs,
      ...extra,
    });
    const allDay = (from: number, to: number) => ({
      start: { dateTime: `${day(from)}T00:00:00`, timeZone: "UTC" },
      end: { dateTime: `${day(to)}T00:00:00`, timeZone: "UTC" },
      isAllDay: true,
    });
    const availability = async () => {
      const res = await stack.invoke("calendar-get-availability", {
        jwt: bob.jwt,
        body: { staff_id: bob.id, time_min: iso(DAY0), time_max: iso(DAY0 + 4 * DAY) },
      });
      return { status: res.status, text: await res.text() };
    };

    await t.step("connect and select the non-default calendar", async () => {
      const { location } = await stack.connect(bob, { provider: "microsoft" });
      assert.match(location, /calendar_status=connected/, location);
      const res = await stack.invoke("calendar-select-calendar", {
        jwt: bob.jwt,
        body: { calendar_id: room },
      });
      const body = await res.json();
      assert.equal(res.status, 200, JSON.stringify(body));
      assert.equal(body.selected_calendar_id, room);
      assert.equal(body.calendar.primary, false);
    });

    await t.step(
      "busy from that calendar only: statuses, cancelled, multi-day, all-day on the staff member's days",
      async () => {
        await add(room, timed(H(9), H(10)));
        await add(room, timed(H(9.5), H(11), "tentative"));
        await add(room, timed(H(13), H(14), "free"));
        await add(room, timed(H(15), H(16), "workingElsewhere"));
        await add(room, timed(H(17), H(18), "busy", { isCancelled: true }));
        await add(room, allDay(DAY0 + DAY, DAY0 + 2 * DAY));
        await add(room, timed(H(68), H(74), "oof")); // overnight, across two days
        // The day after the window in UTC, but it starts at 18:30 UTC inside the window in Kolkata.
        await add(room, allDay(DAY0 + 4 * DAY, DAY0 + 5 * DAY));
        await add("default", timed(H(12), H(13))); // another calendar: not this selection's business
        // Graph answers at most 2 events a page: the read must follow every nextLink.
        await ms.admin("POST", "/_admin/microsoft/settings", { calendarViewMaxPageSize: 2 });
        await ms.resetCalls();
        const { status, text } = await availability();
        assert.equal(status, 200, text);
        assert.deepEqual(JSON.parse(text).busy, [
          { start: iso(H(9)), end: iso(H(11)) },
          { start: iso(H(18.5)), end: iso(H(42.5)) },
          { start: iso(H(68)), end: iso(H(74)) },
          { start: iso(H(90.5)), end: iso(DAY0 + 4 * DAY) },
        ]);
        assert.ok(!text.includes("Jane"));
        const { byEndpoint } = await ms.calls();
        // Eight events in the widened window, two a page; getSchedule (the default calendar's) never asked.
        assert.equal(byEndpoint["microsoft.calendar.calendarView"], 4);
        assert.equal(byEndpoint["microsoft.calendar.getSchedule"] ?? 0, 0);
      },
    );

    await t.step("Graph failures are errors, never free time", async () => {
      await ms.fault({
        match: { endpoint: "microsoft.calendar.calendarView", email: bob.email },
        response: { status: 503 },
        times: 1,
      });
      const unavailable = await availability();
      assert.equal(unavailable.status, 503, unavailable.text);
      assert.equal(JSON.parse(unavailable.text).error.code, "provider_unavailable");
      // A calendar deleted in Outlook (between the list and the read, or before both).
      await ms.fault({
        match: { endpoint: "microsoft.calendar.calendarView", email: bob.email },
        response: { status: 404 },
        times: 1,
      });
      const vanishing = await availability();
      assert.equal(vanishing.status, 409, vanishing.text);
      assert.equal(JSON.parse(vanishing.text).error.code, "calendar_not_found");
      await ms.admin(
        "DELETE",
        `/_admin/microsoft/accounts/${bob.email}/calendars/${encodeURIComponent(room)}`,
      );
      const gone = await availability();
      assert.equal(gone.status, 409, gone.text);
      assert.equal(JSON.parse(gone.text).error.code, "calendar_not_found");
    });
  } finally {
    await stack.close();
  }
});

Deno.test("a Microsoft-only deployment (no GOOGLE_* variables) starts, connects and lists", async () => {
  const stack = await startTestStack({ providers: ["microsoft"] });
  try {
    assert.ok(!Object.keys(stack.env).some((k) => k.startsWith("GOOGLE_")));
    const staff = await stack.createStaff({});
    // No provider named: the only configured one.
    const { location } = await stack.connect(staff);
    assert.match(location, /calendar_status=connected/, location);
    assert.equal((await connection(stack, staff)).provider, "microsoft");
    const { status, body } = await listCalendars(stack, staff);
    assert.equal(status, 200, JSON.stringify(body));
    assert.ok((body as { primary: boolean }[]).some((c) => c.primary));
    const google = await stack.invoke("calendar-auth-start", {
      jwt: staff.jwt,
      body: { provider: "google" },
    });
    const refused = await google.json();
    assert.equal(google.status, 400);
    assert.equal(refused.error.code, "provider_not_configured");
  } finally {
    await stack.close();
  }
});
