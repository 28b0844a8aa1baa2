/**
 * Inbound sync of one channel (supabase/functions/_shared/inbound/sync.ts) against the sandbox, for
 * Google and Microsoft: the channel is the one the connect opened, its jobs closed (syncChannel needs
 * no live push subscription), syncChannel is called directly, and the outbox worker runs in this process (drain).
 * Users' changes are made through the sandbox's admin API (tests/contract/fixtures.ts), as a clinician
 * would in the provider's own app. Pages are two events long so the full sync spans several runs.
 *
 * Recurring series are covered where they are expanded, in tests/contract/recurrence.test.ts (both
 * sandboxes expand them; each occurrence reaches the busy cache like any other event).
 */
import assert from "node:assert/strict";
import { type Config, parseConfig } from "../../supabase/functions/_shared/config.ts";
import { createSql, type Sql } from "../../supabase/functions/_shared/db/client.ts";
import { type ChannelSyncResult, syncChannel } from "../../supabase/functions/_shared/inbound/sync.ts";
import type { CalendarProvider, ProviderId } from "../../supabase/functions/_shared/providers/types.ts";
import { DEFAULT_WORKER_OPTIONS } from "../../supabase/functions/_shared/sync/options.ts";
import { cachedProviders, drain } from "../../supabase/functions/_shared/sync/worker.ts";
import { googleFixture, microsoftFixture, type ProviderFixture } from "../contract/fixtures.ts";
import { startTestStack, type TestStack, type TestStaff } from "../support/stack.ts";

const DAY = 86_400_000;
/** Midnight UTC two days from now: every time below is inside the default window [now - 1 d, now + 180 d]. */
const BASE = Math.floor(Date.now() / DAY) * DAY + 2 * DAY;
const at = (day: number, hour: number, minute = 0) =>
  new Date(BASE + day * DAY + (hour * 60 + minute) * 60_000);
const iso = (d: Date) => d.toISOString().replace(".000Z", "Z");
const date = (day: number) => iso(at(day, 0)).slice(0, 10);

/** The provider with every listChanges page asked for `pageLimit` events (the real provider otherwise). */
function paged(provider: CalendarProvider, pageLimit: number): CalendarProvider {
  const inbound = provider.inbound!;
  // Providers are frozen: the views delegate to them rather than wrap them.
  const view = <T extends object>(target: T, own: Record<string | symbol, unknown>): T =>
    new Proxy({} as T, {
      get: (_, key) => {
        if (key in own) return own[key];
        const value = Reflect.get(target, key);
        return typeof value === "function" ? value.bind(target) : value;
      },
      has: (_, key) => key in own || key in target,
    });
  const pagedInbound = view(inbound, {
    listChanges: (token: string, request: Parameters<typeof inbound.listChanges>[1]) =>
      inbound.listChanges(token, { ...request, pageLimit }),
  });
  return view(provider, { inbound: pagedInbound });
}

/** Provider write calls the sandbox answered with success since the last reset (creates, patches, deletes). */
async function successfulWrites(stack: TestStack): Promise<string[]> {
  const { recent } = await stack.sandbox.admin<
    { recent: { endpoint: string; method: string; status: number }[] }
  >(
    "GET",
    "/_admin/calls",
  );
  return recent.filter((c) => c.method !== "GET" && c.status >= 200 && c.status < 300).map((c) => c.endpoint)
    .filter((e) => /events\.(insert|patch|update|create|delete)$/.test(e));
}

interface Block {
  starts_at: Date;
  ends_at: Date;
  all_day: boolean;
  ours: boolean;
  key: string;
}

async function blocks(sql: Sql, connectionId: string): Promise<Block[]> {
  return await sql<Block[]>`
    select starts_at, ends_at, all_day, ours, encode(event_key, 'hex') as key from public.calendar_busy_blocks
    where connection_id = ${connectionId} order by starts_at, ends_at`;
}

interface Conflict {
  appointment_id: string;
  kind: string;
  open: boolean;
  tenant_id: string;
  details: Record<string, unknown>;
}

async function conflicts(sql: Sql, staffId: string): Promise<Conflict[]> {
  return await sql<Conflict[]>`
    select appointment_id, kind, resolved_at is null as open, tenant_id, details from public.calendar_conflicts
    where staff_id = ${staffId} order by detected_at, kind`;
}

const openOf = (list: Conflict[]) =>
  list.filter((c) => c.open).map((c) => `${c.kind}:${c.appointment_id}`).sort();

Deno.test("inbound sync of a channel: paged full sync, busy cache, restore or report, overlaps, 410, tenants", async (t) => {
  const stack = await startTestStack();
  const config = parseConfig(stack.env);
  const reportConfig: Config = parseConfig({ ...stack.env, CALENDAR_INBOUND_EXTERNAL_EDITS: "report" });
  const sql = createSql(config.databaseUrl, { max: 4 });
  const real = cachedProviders(config);
  const provider = (id: ProviderId) => paged(real(id), 2);
  const run = (channelId: string, maxPages = 50, cfg = config) =>
    syncChannel({ sql, config: cfg, provider }, channelId, { maxPages, deadline: Date.now() + 60_000 });
  const work = () =>
    drain({ sql, config, options: { ...DEFAULT_WORKER_OPTIONS, maxRunMs: 30_000 }, provider: real });
  try {
    for (const fixture of [googleFixture, microsoftFixture] as ProviderFixture[]) {
      const p = fixture.id;
      await t.step(`${p}`, async (t) => {
        const tenantA = await stack.createTenant(`${p} clinic A`);
        const tenantB = await stack.createTenant(`${p} clinic B`);
        const domain = p === "google" ? "example.com" : "contoso-clinic.com";
        const staff = await stack.createStaff({ tenantId: tenantA, email: `inbound-a-${p}@${domain}` });
        const other = await stack.createStaff({ tenantId: tenantB, email: `inbound-b-${p}@${domain}` });
        for (const s of [staff, other]) {
          assert.match((await stack.connect(s, { provider: p })).location, /calendar_status=connected/);
        }
        const connectionOf = async (s: TestStaff) =>
          (await sql<{ id: string }[]>`
            select id from calendar_private.active_connection(${s.tenantId}::uuid, ${s.id}::uuid)`)[0].id;
        // The channel the connect opened (calendar_private.open_channel, stage pending, on 'primary').
        // This test drives syncChannel itself, so the channel's queued jobs are closed: the drain below
        // then runs only the outbox, and no watch is made (no notification can request a job).
        const channelFor = async (s: TestStaff) => {
          const [row] = await sql<{ id: string }[]>`
            select id from public.calendar_channels
            where connection_id = ${await connectionOf(s)} and calendar_private.channel_is_live(sync_stage)`;
          assert.ok(row, `the connect opened a channel for ${s.email}`);
          await sql`update public.calendar_channel_jobs set status = 'done', next_attempt_at = null,
              pending_since = null
            where channel_id = ${row.id}`;
          return row.id;
        };
        const connA = await connectionOf(staff);
        const channel = await channelFor(staff);
        const channelB = await channelFor(other);
        const keyOf = async (eventId: string) =>
          (await sql<{ key: string }[]>`select encode(sha256(convert_to(${eventId}, 'UTF8')), 'hex') as key`)[
            0
          ].key;
        const eventOf = async (appointmentId: string) =>
          (await sql<{ event_id: string }[]>`
            select event_id from public.calendar_sync_log where appointment_key = ${appointmentId}`)[0]
            .event_id;
        const calendar = async (email: string) =>
          (await fixture.events(stack.sandbox, email)).filter((e) => e.live);

        // Two appointments written by the worker; outside events as the clinician adds them.
        const appt1 = await stack.createAppointment({
          tenantId: tenantA,
          staffId: staff.id,
          startsAt: iso(at(1, 10)),
          endsAt: iso(at(1, 11)),
        });
        const appt2 = await stack.createAppointment({
          tenantId: tenantA,
          staffId: staff.id,
          startsAt: iso(at(2, 10)),
          endsAt: iso(at(2, 11)),
        });
        const apptB = await stack.createAppointment({
          tenantId: tenantB,
          staffId: other.id,
          startsAt: iso(at(1, 10)),
          endsAt: iso(at(1, 11)),
        });
        assert.equal((await work()).synced, 3);
        await fixture.addBusy(stack.sandbox, staff.email, {
          start: iso(at(1, 10, 30)),
          end: iso(at(1, 11, 30)),
        });
        await fixture.addBusy(stack.sandbox, staff.email, { start: iso(at(3, 9)), end: iso(at(3, 10)) });
        await fixture.addBusy(stack.sandbox, staff.email, {
          start: iso(at(4, 9)),
          end: iso(at(4, 10)),
          free: true,
        });
        await fixture.addBusy(stack.sandbox, staff.email, { allDay: { from: date(5), to: date(6) } });
        await fixture.addBusy(stack.sandbox, staff.email, { start: iso(at(400, 9)), end: iso(at(400, 10)) });
        await fixture.addBusy(stack.sandbox, other.email, { start: iso(at(1, 9)), end: iso(at(1, 12)) });
        const external = (await calendar(staff.email)).filter((e) => e.start === at(1, 10, 30).getTime())[0];
        assert.ok(external, "the overlapping outside event");

        const externalKey = await keyOf(external.id);
        const staleKey = await keyOf("stale");
        // A block left from before (an event deleted while no cursor could say so): the full sync sweeps it.
        await sql`
          insert into public.calendar_busy_blocks (tenant_id, staff_id, connection_id, event_key, starts_at, ends_at)
          values (${tenantA}, ${staff.id}, ${connA}, sha256(convert_to('stale', 'UTF8')), ${at(6, 9)}, ${
          at(6, 10)
        })`;

        await t.step(
          "a full sync paged over several runs resumes where it stopped, then sweeps",
          async () => {
            const runs: ChannelSyncResult[] = [];
            for (;;) {
              const r = await run(channel, 1);
              runs.push(r);
              assert.equal(r.pages, 1, "one page per run");
              assert.equal(r.resynced, false);
              if (r.complete) break;
              assert.ok(runs.length < 20, "the full sync ends");
              const [ch] = await sql<
                { sync_stage: string; page_cursor: string | null; sync_cursor: string | null }[]
              >`
              select sync_stage, page_cursor, sync_cursor from public.calendar_channels where id = ${channel}`;
              assert.deepEqual(
                { stage: ch.sync_stage, paged: ch.page_cursor !== null, cursor: ch.sync_cursor },
                { stage: "full_sync", paged: true, cursor: null },
                "between runs: the page cursor persisted, no sync cursor yet",
              );
              if (runs.length === 1) {
                const keys = (await blocks(sql, connA)).map((b) => b.key);
                assert.ok(keys.length >= 2, "the first page's blocks are applied");
                assert.ok(keys.includes(staleKey), "the stale block waits for the end of the full sync");
              }
            }
            assert.ok(runs.length >= 3, `${runs.length} runs of one page`);
            assert.equal(runs.reduce((n, r) => n + r.events, 0) >= 6, true);
            const [ch] = await sql<
              {
                sync_stage: string;
                page_cursor: string | null;
                sync_cursor: string | null;
                start: Date;
                end: Date;
                full: Date | null;
                synced: Date | null;
              }[]
            >`
            select sync_stage, page_cursor, sync_cursor, cache_window_start as start, cache_window_end as end,
              full_sync_started_at as full, last_synced_at as synced
            from public.calendar_channels where id = ${channel}`;
            assert.equal(ch.sync_stage, "incremental");
            assert.equal(ch.page_cursor, null);
            assert.ok(ch.sync_cursor);
            assert.equal(ch.full, null);
            assert.ok(ch.synced);
            assert.ok(
              Math.abs(ch.start.getTime() - (Date.now() - DAY)) < 120_000,
              "window starts a day back",
            );
            assert.ok(
              Math.abs(ch.end.getTime() - (Date.now() + 180 * DAY)) < 120_000,
              "and ends 180 days ahead",
            );
            assert.ok(
              !(await blocks(sql, connA)).some((b) => b.key === staleKey),
              "the block no page saw is swept",
            );
          },
        );

        await t.step(
          "the busy cache: busy events of the window, ours marked, times and digests only",
          async () => {
            const list = await blocks(sql, connA);
            const summary = list.map((b) => [iso(b.starts_at), iso(b.ends_at), b.all_day, b.ours]);
            assert.deepEqual(summary, [
              [iso(at(1, 10)), iso(at(1, 11)), false, true],
              [iso(at(1, 10, 30)), iso(at(1, 11, 30)), false, false],
              [iso(at(2, 10)), iso(at(2, 11)), false, true],
              [iso(at(3, 9)), iso(at(3, 10)), false, false],
              // All-day: the Google calendar's zone, the Microsoft staff member's (both UTC here).
              [iso(at(5, 0)), iso(at(6, 0)), true, false],
            ], "free time and the event outside the window are not cached");
            assert.equal(
              list.find((b) => b.ours && +b.starts_at === +at(1, 10))!.key,
              await keyOf(await eventOf(appt1)),
            );
            assert.ok(
              list.some((b) => b.key === externalKey && !b.ours),
              "keyed by the SHA-256 of the event id",
            );
            const columns = await sql<{ column_name: string }[]>`
            select column_name from information_schema.columns
            where table_schema = 'public' and table_name = 'calendar_busy_blocks' order by column_name`;
            assert.deepEqual(
              columns.map((c) => c.column_name),
              [
                "all_day",
                "connection_id",
                "ends_at",
                "event_key",
                "ours",
                "seen_at",
                "staff_id",
                "starts_at",
                "tenant_id",
              ],
              "nothing of an event but its times and the digest of its id",
            );
          },
        );

        await t.step(
          "an outside block overlapping an appointment opens one overlap conflict; ours never do",
          async () => {
            assert.deepEqual(openOf(await conflicts(sql, staff.id)), [`overlap:${appt1}`]);
            const [c] = await conflicts(sql, staff.id);
            assert.equal(c.tenant_id, tenantA);
            assert.deepEqual(Object.keys(c.details).sort(), ["blocks", "busy_end", "busy_start", "provider"]);
          },
        );

        await t.step("tenant isolation: the other tenant's channel writes its own rows only", async () => {
          const before = await blocks(sql, connA);
          const beforeConflicts = await conflicts(sql, staff.id);
          const r = await run(channelB);
          assert.equal(r.complete, true);
          assert.deepEqual(await blocks(sql, connA), before, "A's cache untouched");
          assert.deepEqual(await conflicts(sql, staff.id), beforeConflicts, "A's conflicts untouched");
          const rowsB = await sql<{ tenant_id: string; staff_id: string }[]>`
            select tenant_id, staff_id from public.calendar_busy_blocks where connection_id = ${await connectionOf(
            other,
          )}`;
          assert.equal(rowsB.length, 2, "B's appointment event and B's outside block");
          assert.ok(rowsB.every((r) => r.tenant_id === tenantB && r.staff_id === other.id));
          assert.deepEqual(openOf(await conflicts(sql, other.id)), [`overlap:${apptB}`]);
          assert.ok((await conflicts(sql, other.id)).every((c) => c.tenant_id === tenantB));
          const crossed = await sql`
            select 1 from public.calendar_conflicts c join public.appointments a on a.id = c.appointment_id
            where a.tenant_id <> c.tenant_id or a.staff_id <> c.staff_id`;
          assert.equal(
            crossed.length,
            0,
            "every conflict names an appointment of its own tenant and staff member",
          );
        });

        await t.step(
          "incremental: a deleted outside block leaves the cache and resolves its overlap",
          async () => {
            await fixture.deleteEvent(stack.sandbox, staff.email, external.id);
            const r = await run(channel);
            assert.equal(r.complete, true);
            assert.equal(r.resynced, false);
            assert.ok(r.events >= 1 && r.events <= 2, `only the change is read (${r.events} events)`);
            assert.equal(r.busyDeleted, 1);
            assert.equal(r.conflictsResolved, 1);
            const list = await blocks(sql, connA);
            assert.equal(list.some((b) => b.key === externalKey), false);
            assert.equal(list.length, 4);
            assert.deepEqual(openOf(await conflicts(sql, staff.id)), []);
          },
        );

        await t.step(
          "an appointment moved off an outside block resolves its overlap at the next sync",
          async () => {
            await fixture.addBusy(stack.sandbox, staff.email, {
              start: iso(at(2, 10)),
              end: iso(at(2, 10, 30)),
            });
            let r = await run(channel);
            assert.equal(r.busyUpserted, 1);
            assert.equal(r.conflictsOpened, 1);
            assert.deepEqual(openOf(await conflicts(sql, staff.id)), [`overlap:${appt2}`]);
            await sql`update public.appointments set starts_at = ${at(2, 14)}, ends_at = ${
              at(2, 15)
            } where id = ${appt2}`;
            await stack.sandbox.resetCalls();
            assert.equal((await work()).synced, 1);
            r = await run(channel);
            assert.deepEqual(
              { restored: r.restored, reported: r.reported },
              { restored: 0, reported: 0 },
              "our echo",
            );
            assert.equal(r.conflictsResolved, 1);
            assert.deepEqual(openOf(await conflicts(sql, staff.id)), []);
            assert.equal((await successfulWrites(stack)).length, 1, "the move's one write, nothing more");
          },
        );

        await t.step(
          "our event moved by the user is restored with one write, and its echo does nothing",
          async () => {
            const eventId = await eventOf(appt1);
            await fixture.editEvent(stack.sandbox, staff.email, eventId, iso(at(1, 15)), iso(at(1, 16)));
            await stack.sandbox.resetCalls();
            let r = await run(channel);
            assert.equal(r.restored, 1);
            assert.equal(r.reported, 0);
            assert.deepEqual(openOf(await conflicts(sql, staff.id)), [`external_edit_restored:${appt1}`]);
            const [row] = await sql<{ sync_status: string }[]>`
            select sync_status from public.calendar_sync_log where appointment_key = ${appt1}`;
            assert.equal(row.sync_status, "pending", "the appointment's row is queued again");
            assert.equal((await work()).synced, 1);
            assert.deepEqual(openOf(await conflicts(sql, staff.id)), [], "the restoring write resolves it");
            assert.deepEqual(await successfulWrites(stack), [
              p === "google" ? "events.patch" : "microsoft.events.update",
            ]);
            const back = (await calendar(staff.email)).find((e) => e.id === eventId)!;
            assert.deepEqual(
              [back.start, back.end],
              [+at(1, 10), +at(1, 11)],
              "back at the appointment's times",
            );

            r = await run(channel);
            assert.deepEqual(
              { restored: r.restored, reported: r.reported },
              { restored: 0, reported: 0 },
              "no loop",
            );
            // The restoring write resolved the conflict when the worker recorded it; the echo finds
            // nothing left to resolve.
            assert.equal(r.conflictsResolved, 0, "the restoring write already resolved the conflict");
            assert.deepEqual(openOf(await conflicts(sql, staff.id)), []);
            assert.equal((await work()).claimed, 0, "nothing queued");
            assert.equal((await successfulWrites(stack)).length, 1, "exactly one write in all");
            assert.ok(
              (await blocks(sql, connA)).some((b) => b.ours && +b.starts_at === +at(1, 10)),
              "the cache follows the event back",
            );
          },
        );

        await t.step("our event deleted by the user is written again once", async () => {
          const eventId = await eventOf(appt1);
          await fixture.deleteEvent(stack.sandbox, staff.email, eventId);
          await stack.sandbox.resetCalls();
          let r = await run(channel);
          assert.equal(r.restored, 1);
          assert.deepEqual(openOf(await conflicts(sql, staff.id)), [`external_delete_restored:${appt1}`]);
          assert.equal((await work()).synced, 1);
          assert.deepEqual(openOf(await conflicts(sql, staff.id)), [], "the restoring write resolves it");
          const live = (await calendar(staff.email)).filter((e) =>
            e.start === +at(1, 10) && e.end === +at(1, 11)
          );
          assert.equal(live.length, 1, "the appointment's event exists again, once");
          const writes = await successfulWrites(stack);
          assert.equal(writes.length, 1, `one successful write: ${writes}`);
          r = await run(channel);
          assert.deepEqual(
            { restored: r.restored, reported: r.reported },
            { restored: 0, reported: 0 },
            "no loop",
          );
          assert.deepEqual(openOf(await conflicts(sql, staff.id)), []);
          assert.equal((await work()).claimed, 0);
        });

        await t.step("report mode: the edit is recorded, nothing is written", async () => {
          const eventId = await eventOf(appt1);
          await fixture.editEvent(stack.sandbox, staff.email, eventId, iso(at(1, 17)), iso(at(1, 18)));
          await stack.sandbox.resetCalls();
          let r = await run(channel, 50, reportConfig);
          assert.deepEqual({ restored: r.restored, reported: r.reported }, { restored: 0, reported: 1 });
          assert.deepEqual(openOf(await conflicts(sql, staff.id)), [`external_edit_reported:${appt1}`]);
          const [row] = await sql<{ sync_status: string }[]>`
            select sync_status from public.calendar_sync_log where appointment_key = ${appt1}`;
          assert.equal(row.sync_status, "synced", "nothing queued");
          assert.equal((await work()).claimed, 0);
          r = await run(channel, 50, reportConfig);
          assert.equal(r.reported, 0, "nothing new, nothing reported again");
          // The user puts it back: the event agrees with the appointment again.
          await fixture.editEvent(stack.sandbox, staff.email, eventId, iso(at(1, 10)), iso(at(1, 11)));
          r = await run(channel, 50, reportConfig);
          assert.equal(r.reported, 0);
          assert.equal(r.conflictsResolved, 1);
          assert.deepEqual(openOf(await conflicts(sql, staff.id)), []);
          assert.deepEqual(await successfulWrites(stack), [], "report mode never writes");
        });

        await t.step("an expired cursor starts a windowed full sync again in the same run", async () => {
          const before = (await blocks(sql, connA)).map((b) => [b.key, +b.starts_at, +b.ends_at, b.ours]);
          const [old] = await sql<{ start: Date }[]>`
            select cache_window_start as start from public.calendar_channels where id = ${channel}`;
          await fixture.expireCursors(stack.sandbox, staff.email);
          const r = await run(channel);
          assert.equal(r.resynced, true);
          assert.equal(r.complete, true);
          assert.ok(r.pages >= 3, `the full sync paged again (${r.pages} pages)`);
          assert.deepEqual(
            (await blocks(sql, connA)).map((b) => [b.key, +b.starts_at, +b.ends_at, b.ours]),
            before,
            "the same cache",
          );
          const [now] = await sql<{ start: Date; stage: string }[]>`
            select cache_window_start as start, sync_stage as stage from public.calendar_channels where id = ${channel}`;
          assert.ok(now.start.getTime() > old.start.getTime(), "the window moved forward");
          assert.equal(now.stage, "incremental");
          assert.equal((await run(channel)).resynced, false, "the new cursor works");
        });

        await t.step("a stopped channel reads nothing", async () => {
          await sql`update public.calendar_channels set sync_stage = 'stopped' where id = ${channel}`;
          await fixture.addBusy(stack.sandbox, staff.email, { start: iso(at(7, 9)), end: iso(at(7, 10)) });
          await stack.sandbox.resetCalls();
          const before = await blocks(sql, connA);
          const r = await run(channel);
          assert.deepEqual({ pages: r.pages, complete: r.complete }, { pages: 0, complete: true });
          assert.equal((await stack.sandbox.calls()).total, 0, "no provider call");
          assert.deepEqual(await blocks(sql, connA), before);
        });
      });
    }
  } finally {
    await sql.end({ timeout: 5 });
    await stack.close();
  }
});
