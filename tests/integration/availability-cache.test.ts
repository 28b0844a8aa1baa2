/**
 * calendar-get-availability from the busy cache, through the gateway, against a scratch Postgres and
 * the provider sandbox. Staff members connect for real (so the live path would reach the sandbox); their
 * channel and busy blocks are written with SQL as inbound sync writes them. The sandbox calendar holds
 * other events than the cache, so every answer shows where it came from, and the sandbox's call counters
 * show whether the provider was asked. The cache answers only while calendar_private.busy_cache_state
 * says it may (supabase/tests/database/busy-cache.test.sql checks each reason); here each kind of stale
 * or foreign cache is shown to send the request live, and tenants never see each other's blocks.
 */
import assert from "node:assert/strict";
import { assertEnvelope, json } from "../support/assertions.ts";
import { busyBlock, healthyChannel } from "../support/busy-cache.ts";
import { startTestStack, type TestStack, type TestStaff } from "../support/stack.ts";

const FN = "calendar-get-availability";
const HOUR = 3_600_000;
const DAY = 24 * HOUR;
/** Midnight UTC three days from now: inside the cached window set below. */
const DAY0 = Math.floor(Date.now() / DAY) * DAY + 3 * DAY;
const at = (h: number, m = 0) => DAY0 + h * HOUR + m * 60_000;

function iso(ms: number): string {
  return new Date(ms).toISOString().replace(".000Z", "Z");
}

interface Answer {
  busy: { start: string; end: string }[];
  source: "cache" | "live";
  as_of: string;
}

/** Make the staff member's cache usable ({@link healthyChannel}); @returns the channel id and its sync time. */
async function healthyCache(
  stack: TestStack,
  staff: TestStaff,
): Promise<{ channelId: string; syncedAt: Date }> {
  const ch = await healthyChannel(stack.sql, staff);
  return { channelId: ch.id, syncedAt: ch.syncedAt };
}

/** A busy block in the staff member's cache ({@link busyBlock}). */
const block = (
  stack: TestStack,
  staff: TestStaff,
  start: number,
  end: number,
  o: { allDay?: boolean; connectionId?: string } = {},
) => busyBlock(stack.sql, staff, start, end, o);

async function sandboxEvent(stack: TestStack, staff: TestStaff, start: number, end: number): Promise<void> {
  await stack.sandbox.admin(
    "POST",
    `/_admin/accounts/${encodeURIComponent(staff.email)}/calendars/${encodeURIComponent(staff.email)}/events`,
    { start: iso(start), end: iso(end), summary: "Dentist" },
  );
}

Deno.test("calendar-get-availability answers from the busy cache only while it is usable", async (t) => {
  const stack = await startTestStack();
  try {
    const clinicA = await stack.createTenant("Clinic A");
    const clinicB = await stack.createTenant("Clinic B");
    const alice = await stack.createStaff({ tenantId: clinicA });
    const carol = await stack.createStaff({ tenantId: clinicA });
    const bob = await stack.createStaff({ tenantId: clinicB });
    for (const staff of [alice, bob]) {
      const { location } = await stack.connect(staff);
      assert.match(location, /calendar_status=connected/, `connect ${staff.email}: ${location}`);
    }
    // The provider's view (what a live read finds) differs from the cache's.
    await sandboxEvent(stack, alice, at(9), at(10));
    const LIVE = [{ start: iso(at(9)), end: iso(at(10)) }];
    let { channelId, syncedAt } = await healthyCache(stack, alice);
    await block(stack, alice, at(13), at(14));
    await healthyCache(stack, bob);
    // Bob (another tenant) is busy over the whole day: none of it may show in alice's answers.
    await block(stack, bob, at(0), at(24));
    const day = { staff_id: alice.id, time_min: iso(DAY0), time_max: iso(DAY0 + DAY) };

    /** Ask about alice's day (or `body`) as carol; @returns the answer and the provider calls it made. */
    const ask = async (body: Record<string, unknown> = day, jwt = carol.jwt) => {
      await stack.sandbox.resetCalls();
      const res = await stack.invoke(FN, { body, jwt });
      const answer = await json<Answer>(res);
      assert.equal(res.status, 200, JSON.stringify(answer));
      return { answer, calls: (await stack.sandbox.calls()).total };
    };
    const expectLive = async (why: string) => {
      const before = Date.now();
      const { answer, calls } = await ask();
      assert.equal(answer.source, "live", why);
      assert.deepEqual(answer.busy, LIVE, why);
      assert.ok(calls > 0, `${why}: the provider was asked`);
      const asOf = Date.parse(answer.as_of);
      assert.ok(
        asOf >= before - 1000 && asOf <= Date.now() + 1000,
        `${why}: as_of is now, got ${answer.as_of}`,
      );
    };
    const expectCache = async (why: string) => {
      const { answer, calls } = await ask();
      assert.equal(answer.source, "cache", why);
      assert.equal(calls, 0, `${why}: no provider call`);
      return answer;
    };

    await t.step("a healthy cache answers: source cache, as_of its last sync, no provider call", async () => {
      const { answer, calls } = await ask();
      assert.deepEqual(answer, {
        busy: [{ start: iso(at(13)), end: iso(at(14)) }],
        source: "cache",
        as_of: iso(syncedAt.getTime()),
      });
      assert.match(answer.as_of, /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{3})?(Z|[+-]\d{2}:\d{2})$/);
      assert.equal(Date.parse(answer.as_of), syncedAt.getTime());
      assert.equal(calls, 0);
    });

    await t.step(
      "blocks are merged (overlapping and touching) and clipped to the window, like live",
      async () => {
        await block(stack, alice, at(13, 30), at(15)); // overlaps 13-14
        await block(stack, alice, at(15), at(15, 30)); // touches
        await block(stack, alice, at(-2), at(0, 30)); // starts before the window
        await block(stack, alice, at(23), at(26)); // ends after it
        await block(stack, alice, at(30), at(31)); // outside: never returned
        const answer = await expectCache("merge and clip");
        assert.deepEqual(answer.busy, [
          { start: iso(at(0)), end: iso(at(0, 30)) },
          { start: iso(at(13)), end: iso(at(15, 30)) },
          { start: iso(at(23)), end: iso(at(24)) },
        ]);
        const narrow = await ask({ ...day, time_min: iso(at(13, 45)), time_max: iso(at(15, 10)) });
        assert.equal(narrow.answer.source, "cache");
        assert.deepEqual(narrow.answer.busy, [{ start: iso(at(13, 45)), end: iso(at(15, 10)) }]);
      },
    );

    await t.step(
      "an all-day block (placed in the staff member's zone by the sync) is busy time",
      async () => {
        // 2 days after DAY0 in Europe/London in winter or summer: the sync stored the instants.
        const start = DAY0 + 2 * DAY - HOUR;
        await block(stack, alice, start, start + DAY, { allDay: true });
        const { answer, calls } = await ask({
          ...day,
          time_min: iso(DAY0 + 2 * DAY),
          time_max: iso(DAY0 + 3 * DAY),
        });
        assert.equal(answer.source, "cache");
        assert.equal(calls, 0);
        assert.deepEqual(answer.busy, [{ start: iso(DAY0 + 2 * DAY), end: iso(start + DAY) }]);
      },
    );

    await t.step(
      "another tenant's blocks never appear, and its staff member's cache is refused",
      async () => {
        const answer = await expectCache("alice's day");
        assert.ok(!answer.busy.some((b) => b.start === iso(at(0)) && b.end === iso(at(24))));
        await assertEnvelope(
          await stack.invoke(FN, { body: { ...day, staff_id: bob.id }, jwt: carol.jwt }),
          403,
          "forbidden_tenant",
        );
        // The service role sees bob's own cache: his block only, none of alice's.
        const bobs = await ask({ ...day, staff_id: bob.id }, stack.serviceRoleJwt);
        assert.equal(bobs.answer.source, "cache");
        assert.deepEqual(bobs.answer.busy, [{ start: iso(at(0)), end: iso(at(24)) }]);
      },
    );

    await t.step("blocks of a former connection of the same staff member never appear", async () => {
      const [old] = await stack.sql<{ id: string }[]>`
        insert into public.staff_calendar_connections (tenant_id, staff_id, provider, connection_status, account_email)
        values (${alice.tenantId}, ${alice.id}, 'microsoft', 'disconnected', ${alice.email})
        returning id`;
      const before = await expectCache("before the former connection's block");
      await block(stack, alice, at(17), at(18), { connectionId: old.id });
      const after = await expectCache("former connection");
      assert.deepEqual(after.busy, before.busy);
    });

    await t.step("a range reaching outside the cached window is answered live", async () => {
      const before = Date.now();
      const far = DAY0 + 40 * DAY;
      const { answer, calls } = await ask({ ...day, time_min: iso(far), time_max: iso(far + DAY) });
      assert.equal(answer.source, "live");
      assert.deepEqual(answer.busy, []);
      assert.ok(calls > 0);
      assert.ok(Date.parse(answer.as_of) >= before - 1000);
      // Straddling the window's start (now - 1 day) too.
      const straddle = await ask({ ...day, time_min: iso(Date.now() - 2 * DAY), time_max: iso(Date.now()) });
      assert.equal(straddle.answer.source, "live");
    });

    const stale: [string, () => Promise<unknown>][] = [
      [
        "a last sync older than CALENDAR_BUSY_CACHE_MAX_AGE_SECONDS (default 3600)",
        () =>
          stack
            .sql`update public.calendar_channels set last_synced_at = now() - interval '2 hours' where id = ${channelId}`,
      ],
      [
        "a sync job pending longer than CALENDAR_BUSY_CACHE_MAX_LAG_SECONDS (default 120)",
        // Not due (next_attempt_at tomorrow), so no worker takes it while the test looks.
        () =>
          stack.sql`
            insert into public.calendar_channel_jobs (tenant_id, staff_id, channel_id, kind, status,
              next_attempt_at, pending_since)
            values (${alice.tenantId}, ${alice.id}, ${channelId}, 'sync', 'pending', now() + interval '1 day',
              now() - interval '5 minutes')`,
      ],
      [
        "an expired channel",
        () =>
          stack
            .sql`update public.calendar_channels set expires_at = now() - interval '1 minute' where id = ${channelId}`,
      ],
      [
        "a Graph missed notification after the last sync",
        () => stack.sql`update public.calendar_channels set missed_at = now() where id = ${channelId}`,
      ],
      [
        "a channel still in its full sync",
        () => stack.sql`update public.calendar_channels set sync_stage = 'full_sync' where id = ${channelId}`,
      ],
      [
        "a channel for another calendar than the selected one",
        () =>
          stack.sql`update public.calendar_channels set calendar_id = 'team@group.calendar.google.com'
            where id = ${channelId}`,
      ],
    ];
    for (const [why, spoil] of stale) {
      await t.step(`${why}: live`, async () => {
        await spoil();
        await expectLive(why);
        // Made healthy again, the cache answers again: the one change above was the reason.
        ({ channelId, syncedAt } = await healthyCache(stack, alice));
        await expectCache(`${why}, repaired`);
      });
    }

    await t.step("the seed's google-calendar-get-availability answers from the cache too", async () => {
      const res = await stack.invoke("google-calendar-get-availability", { body: day, jwt: carol.jwt });
      const answer = await json<Answer>(res);
      assert.equal(res.status, 200);
      assert.equal(answer.source, "cache");
      assert.ok(Array.isArray(answer.busy));
    });

    await t.step("disconnected: never the cache; the live path answers 409 not_connected", async () => {
      await stack.sql`update public.staff_calendar_connections set connection_status = 'disconnected'
        where staff_id = ${alice.id}`;
      await assertEnvelope(await stack.invoke(FN, { body: day, jwt: carol.jwt }), 409, "not_connected");
    });
  } finally {
    await stack.close();
  }
});
