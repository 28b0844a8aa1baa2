/**
 * calendar-get-availability over real HTTP (the gateway process) against a scratch Postgres and the
 * provider sandbox: busy intervals only, merged and sorted; chunked provider calls for long ranges;
 * provider failures mapped to errors (never "free"); tenancy and input checks.
 */
import assert from "node:assert/strict";
import { assertEnvelope } from "../support/assertions.ts";
import { startTestStack, type TestStack, type TestStaff } from "../support/stack.ts";

const FN = "calendar-get-availability";
const HOUR = 3_600_000;
const DAY = 24 * HOUR;

/** Midnight UTC a week from now: every window below lies inside the allowed bounds. */
const DAY0 = Math.floor(Date.now() / DAY) * DAY + 7 * DAY;

/** ISO 8601 UTC without a fraction, as the function answers. */
function iso(ms: number): string {
  return new Date(ms).toISOString().replace(".000Z", "Z");
}

/** The same instant written with a +02:00 offset. */
function isoPlus2(ms: number): string {
  return new Date(ms + 2 * HOUR).toISOString().replace(".000Z", "+02:00");
}

async function addEvent(
  stack: TestStack,
  email: string,
  event: { start: number; end: number; summary?: string; transparency?: "opaque" | "transparent" },
  calendarId = email,
): Promise<void> {
  await stack.sandbox.admin(
    "POST",
    `/_admin/accounts/${encodeURIComponent(email)}/calendars/${encodeURIComponent(calendarId)}/events`,
    {
      start: iso(event.start),
      end: iso(event.end),
      summary: event.summary ?? "busy",
      ...(event.transparency ? { transparency: event.transparency } : {}),
    },
  );
}

function availability(
  stack: TestStack,
  body: unknown,
  jwt: string | null,
): Promise<Response> {
  return stack.invoke(FN, { body, jwt });
}

Deno.test("calendar-get-availability: busy intervals only, chunked, tenant-checked, provider failures are errors", async (t) => {
  const stack = await startTestStack({ env: { CALENDAR_PROVIDER_TIMEOUT_MS: "1500" } });
  try {
    const clinicA = await stack.createTenant("Clinic A");
    const clinicB = await stack.createTenant("Clinic B");
    const alice: TestStaff = await stack.createStaff({ tenantId: clinicA });
    const carol = await stack.createStaff({ tenantId: clinicA });
    const nora = await stack.createStaff({ tenantId: clinicA }); // never connects
    const dave = await stack.createStaff({ tenantId: clinicA }); // grant gets revoked
    const bob = await stack.createStaff({ tenantId: clinicB });
    for (const staff of [alice, dave, bob]) {
      const { location } = await stack.connect(staff);
      assert.doesNotMatch(location, /error/i, `connect ${staff.email}: ${location}`);
    }

    // A day with two overlapping appointments, one separate one, and a transparent (free) event.
    const at = (h: number, m = 0) => DAY0 + h * HOUR + m * 60_000;
    await addEvent(stack, alice.email, { start: at(10), end: at(11), summary: "Therapy: Jane Doe" });
    await addEvent(stack, alice.email, { start: at(10, 30), end: at(12), summary: "Intake: John Roe" });
    await addEvent(stack, alice.email, { start: at(14), end: at(15), summary: "Supervision" });
    await addEvent(stack, alice.email, {
      start: at(16),
      end: at(17),
      summary: "Lunch reminder",
      transparency: "transparent",
    });

    await t.step(
      "answers {busy:[{start,end}]} merged, sorted, UTC, and nothing about the events",
      async () => {
        const res = await availability(stack, {
          staff_id: alice.id,
          time_min: isoPlus2(DAY0), // offsets other than Z are accepted
          time_max: isoPlus2(DAY0 + DAY),
        }, alice.jwt);
        const text = await res.text();
        assert.equal(res.status, 200, text);
        const body = JSON.parse(text);
        // The seed's {busy}, plus where the answer came from: no channel here, so the provider, now.
        assert.deepEqual(Object.keys(body).sort(), ["as_of", "busy", "source"]);
        assert.equal(body.source, "live");
        assert.match(body.as_of, /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{3})?Z$/);
        assert.deepEqual(body.busy, [
          { start: iso(at(10)), end: iso(at(12)) },
          { start: iso(at(14)), end: iso(at(15)) },
        ]);
        for (const interval of body.busy) assert.deepEqual(Object.keys(interval).sort(), ["end", "start"]);
        for (const secret of ["Jane", "John", "Therapy", "Supervision", "summary", 'id"']) {
          assert.ok(!text.includes(secret), `the answer must not mention ${secret}`);
        }
      },
    );

    await t.step("a transparent event is free time, and intervals are clipped to the window", async () => {
      const res = await availability(stack, {
        staff_id: alice.id,
        time_min: iso(at(10, 15)),
        time_max: iso(at(18)),
      }, alice.jwt);
      assert.equal(res.status, 200);
      assert.deepEqual((await res.json()).busy, [
        { start: iso(at(10, 15)), end: iso(at(12)) },
        { start: iso(at(14)), end: iso(at(15)) },
      ]);
    });

    await t.step(
      "a range longer than one provider window is queried in chunks and merged across the seam",
      async () => {
        // The provider window is 60 days from time_min; this event straddles that seam.
        const seam = DAY0 + 60 * DAY;
        await addEvent(stack, alice.email, { start: seam - HOUR, end: seam + HOUR });
        await addEvent(stack, alice.email, { start: seam + HOUR, end: seam + 2 * HOUR }); // touches: merged
        await addEvent(stack, alice.email, { start: DAY0 + 61 * DAY, end: DAY0 + 61 * DAY + HOUR });
        await stack.sandbox.resetCalls();
        const res = await availability(stack, {
          staff_id: alice.id,
          time_min: iso(DAY0),
          time_max: iso(DAY0 + 62 * DAY),
        }, stack.serviceRoleJwt);
        const body = await res.json();
        assert.equal(res.status, 200, JSON.stringify(body));
        const calls = await stack.sandbox.calls();
        assert.ok(
          (calls.byEndpoint["freeBusy.query"] ?? 0) > 1,
          `expected several freeBusy.query calls, got ${JSON.stringify(calls.byEndpoint)}`,
        );
        assert.deepEqual(body.busy, [
          { start: iso(at(10)), end: iso(at(12)) },
          { start: iso(at(14)), end: iso(at(15)) },
          { start: iso(seam - HOUR), end: iso(seam + 2 * HOUR) },
          { start: iso(DAY0 + 61 * DAY), end: iso(DAY0 + 61 * DAY + HOUR) },
        ]);
      },
    );

    await t.step(
      "another staff member of the same clinic and the service role may read busy times",
      async () => {
        const window = { staff_id: alice.id, time_min: iso(DAY0), time_max: iso(DAY0 + DAY) };
        for (const jwt of [carol.jwt, stack.serviceRoleJwt]) {
          const res = await availability(stack, window, jwt);
          assert.equal(res.status, 200);
          assert.equal((await res.json()).busy.length, 2);
        }
      },
    );

    await t.step(
      "a user of another tenant gets 403, a user who is no staff 403, the anon key 403",
      async () => {
        const window = { staff_id: alice.id, time_min: iso(DAY0), time_max: iso(DAY0 + DAY) };
        await assertEnvelope(await availability(stack, window, bob.jwt), 403, "forbidden_tenant");
        const stranger = await stack.userJwt(crypto.randomUUID());
        await assertEnvelope(await availability(stack, window, stranger), 403, "not_staff");
        await assertEnvelope(await availability(stack, window, stack.anonJwt), 403);
      },
    );

    await t.step("no JWT is 401, a forged one 401", async () => {
      const window = { staff_id: alice.id, time_min: iso(DAY0), time_max: iso(DAY0 + DAY) };
      await assertEnvelope(await availability(stack, window, null), 401);
      const [h, p] = alice.jwt.split(".");
      await assertEnvelope(await availability(stack, window, `${h}.${p}.AAAAforgedsignatureAAAA`), 401);
    });

    await t.step("bad ranges are 400 and never reach the provider", async () => {
      await stack.sandbox.resetCalls();
      const cases: [Record<string, unknown>, string][] = [
        [{ time_min: iso(DAY0 + DAY), time_max: iso(DAY0) }, "invalid_range"],
        [{ time_min: iso(DAY0), time_max: iso(DAY0) }, "invalid_range"],
        [{ time_min: "2026-12-01T09:00:00", time_max: iso(DAY0 + DAY) }, "invalid_request"],
        [{ time_min: iso(DAY0), time_max: iso(DAY0 + 63 * DAY) }, "range_too_long"],
        [{ time_min: iso(DAY0 - 400 * DAY), time_max: iso(DAY0 - 399 * DAY) }, "range_out_of_bounds"],
        [{ time_min: iso(DAY0 + 800 * DAY), time_max: iso(DAY0 + 801 * DAY) }, "range_out_of_bounds"],
        [{ time_min: iso(DAY0), time_max: iso(DAY0 + DAY), extra: 1 }, "invalid_request"],
        [{ time_min: iso(DAY0) }, "invalid_request"],
      ];
      for (const [fields, code] of cases) {
        await assertEnvelope(
          await availability(stack, { staff_id: alice.id, ...fields }, alice.jwt),
          400,
          code,
        );
      }
      await assertEnvelope(
        await availability(
          stack,
          { staff_id: "nope", time_min: iso(DAY0), time_max: iso(DAY0 + DAY) },
          alice.jwt,
        ),
        400,
        "invalid_request",
      );
      const calls = await stack.sandbox.calls();
      assert.equal(calls.byEndpoint["freeBusy.query"] ?? 0, 0);
    });

    await t.step(
      "an unknown staff id is 404; a staff member who never connected is 409 not_connected",
      async () => {
        const window = { time_min: iso(DAY0), time_max: iso(DAY0 + DAY) };
        await assertEnvelope(
          await availability(stack, { staff_id: crypto.randomUUID(), ...window }, stack.serviceRoleJwt),
          404,
          "staff_not_found",
        );
        await assertEnvelope(
          await availability(stack, { staff_id: nora.id, ...window }, alice.jwt),
          409,
          "not_connected",
        );
      },
    );

    await t.step("a 5xx from the provider is a 503 with Retry-After, never an empty answer", async () => {
      const window = { staff_id: alice.id, time_min: iso(DAY0), time_max: iso(DAY0 + DAY) };
      for (const status of [500, 503]) {
        await stack.sandbox.fault({
          match: { endpoint: "freeBusy.query", email: alice.email },
          response: { status },
          times: 1,
        });
        const res = await availability(stack, window, alice.jwt);
        const body = await assertEnvelope(res, 503, "provider_unavailable");
        assert.equal(body.busy, undefined);
        assert.match(res.headers.get("retry-after") ?? "", /^\d+$/);
      }
      await stack.sandbox.fault({
        match: { endpoint: "freeBusy.query", email: alice.email },
        response: { timeout: true, hangMs: 4000 },
        times: 1,
      });
      await assertEnvelope(await availability(stack, window, alice.jwt), 503, "provider_unavailable");
      await stack.sandbox.clearFaults();
    });

    await t.step(
      "a 429 with Retry-After is a 429 with the same Retry-After; a 403 rateLimitExceeded is a 429 too",
      async () => {
        await stack.sandbox.fault({
          match: { endpoint: "freeBusy.query", email: alice.email },
          response: { status: 429, retryAfterSeconds: 17 },
          times: 1,
        });
        const res = await availability(stack, {
          staff_id: alice.id,
          time_min: iso(DAY0),
          time_max: iso(DAY0 + DAY),
        }, alice.jwt);
        await assertEnvelope(res, 429, "rate_limited");
        assert.equal(res.headers.get("retry-after"), "17");
        // Google also rate limits with 403 rateLimitExceeded (A2.1), without Retry-After.
        await stack.sandbox.fault({
          match: { endpoint: "freeBusy.query", email: alice.email },
          response: { status: 403, reason: "rateLimitExceeded" },
          times: 1,
        });
        const forbidden = await availability(stack, {
          staff_id: alice.id,
          time_min: iso(DAY0),
          time_max: iso(DAY0 + DAY),
        }, alice.jwt);
        await assertEnvelope(forbidden, 429, "rate_limited");
        assert.match(forbidden.headers.get("retry-after") ?? "", /^[1-9]\d*$/);
        await stack.sandbox.clearFaults();
      },
    );

    await t.step(
      "a selected calendar that no longer exists is an error (409 calendar_not_found), never free",
      async () => {
        const created = await stack.sandbox.admin<{ calendars?: { id: string; summary: string }[] }>(
          "POST",
          "/_admin/accounts",
          { email: alice.email, calendars: [{ summary: "Doomed" }] },
        );
        let doomedId = created?.calendars?.find((c) => c.summary === "Doomed")?.id;
        if (!doomedId) {
          const list = await stack.invoke("calendar-list-calendars", { jwt: alice.jwt, body: {} });
          const calendars = await list.json() as { id: string; summary: string }[];
          doomedId = calendars.find((c) => c.summary === "Doomed")?.id;
        }
        assert.ok(doomedId, "the sandbox created the extra calendar");
        await stack.sql`update public.staff_calendar_connections set selected_calendar_id = ${doomedId}
        where staff_id = ${alice.id}`;
        await addEvent(stack, alice.email, { start: at(9), end: at(10) }, doomedId);
        const window = { staff_id: alice.id, time_min: iso(DAY0), time_max: iso(DAY0 + DAY) };
        const before = await availability(stack, window, alice.jwt);
        assert.equal(before.status, 200);
        assert.deepEqual((await before.json()).busy, [{ start: iso(at(9)), end: iso(at(10)) }]);

        await stack.sandbox.admin(
          "DELETE",
          `/_admin/accounts/${encodeURIComponent(alice.email)}/calendars/${encodeURIComponent(doomedId)}`,
        );
        const body = await assertEnvelope(
          await availability(stack, window, alice.jwt),
          409,
          "calendar_not_found",
        );
        assert.equal(body.busy, undefined);
        await stack.sql`update public.staff_calendar_connections set selected_calendar_id = 'primary'
        where staff_id = ${alice.id}`;
      },
    );

    await t.step(
      "a per-calendar freeBusy error (internalError) is 503 provider_unavailable, never an empty busy list",
      async () => {
        // A day of its own, so the event added here does not touch the other steps' windows.
        const day = DAY0 + 5 * DAY;
        const window = { staff_id: alice.id, time_min: iso(day), time_max: iso(day + DAY) };
        await addEvent(stack, alice.email, { start: day + 9 * HOUR, end: day + 10 * HOUR });
        const calendar = `/_admin/accounts/${encodeURIComponent(alice.email)}/calendars/${
          encodeURIComponent(alice.email)
        }`;
        await stack.sandbox.admin("PATCH", calendar, { freeBusyError: "internalError" });
        try {
          for (const jwt of [alice.jwt, stack.serviceRoleJwt]) {
            const res = await availability(stack, window, jwt);
            const body = await assertEnvelope(res, 503, "provider_unavailable");
            assert.equal(body.busy, undefined, "no busy list at all, so no slot looks free");
            assert.match(res.headers.get("retry-after") ?? "", /^[1-9]\d*$/);
          }
        } finally {
          await stack.sandbox.admin("PATCH", calendar, { freeBusyError: null });
        }
        const healed = await availability(stack, window, alice.jwt);
        assert.equal(healed.status, 200);
        assert.deepEqual((await healed.json()).busy, [{
          start: iso(day + 9 * HOUR),
          end: iso(day + 10 * HOUR),
        }]);
      },
    );

    await t.step(
      "an access token Google stopped accepting is refreshed once for 20 concurrent callers, who all get their answer",
      async () => {
        await stack.sandbox.admin("POST", "/_admin/tokens/expire", { email: alice.email });
        await stack.sandbox.resetCalls();
        const window = { staff_id: alice.id, time_min: iso(DAY0), time_max: iso(DAY0 + DAY) };
        const answers = await Promise.all(
          Array.from({ length: 20 }, async (_, i) => {
            const res = await availability(stack, window, i % 2 ? carol.jwt : alice.jwt);
            return { status: res.status, body: await res.json() };
          }),
        );
        for (const a of answers) {
          assert.equal(a.status, 200, JSON.stringify(a.body));
          assert.equal(a.body.busy.length, 2);
        }
        const calls = await stack.sandbox.calls();
        assert.equal(calls.byEndpoint["oauth.token.refresh_token"], 1, JSON.stringify(calls.byEndpoint));
      },
    );

    await t.step(
      "a revoked grant is 409 needs_reconnect, recorded on the connection, then answered without calling the provider",
      async () => {
        const window = { staff_id: dave.id, time_min: iso(DAY0), time_max: iso(DAY0 + DAY) };
        const ok = await availability(stack, window, dave.jwt);
        assert.equal(ok.status, 200);
        await ok.body?.cancel();
        await stack.sandbox.admin("POST", "/_admin/grants/revoke", { email: dave.email });
        await assertEnvelope(await availability(stack, window, dave.jwt), 409, "needs_reconnect");
        const [conn] = await stack.sql<{ connection_status: string }[]>`
        select connection_status from public.staff_calendar_connections where staff_id = ${dave.id}`;
        assert.equal(conn.connection_status, "needs_reconnect");
        await stack.sandbox.resetCalls();
        await assertEnvelope(await availability(stack, window, carol.jwt), 409, "needs_reconnect");
        assert.equal((await stack.sandbox.calls()).total, 0);
      },
    );
  } finally {
    await stack.close();
  }
});
