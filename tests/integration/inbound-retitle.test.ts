/**
 * A user retitling the clinic's event (supabase/functions/_shared/inbound/restore.ts, title
 * candidates), for Google and Microsoft against the sandbox: syncChannel is called directly on the
 * channel the connect opened (its jobs closed, as in ./inbound-sync.test.ts) and the outbox worker
 * runs in this process (drain). Users' edits are made through the sandbox's admin API.
 *
 * A retitle is restored with one write and a conflict row that never holds the title; a change that
 * keeps title and times (Google colour, Graph location) is read once and does nothing; report mode
 * records only; the title read happens outside the page's transaction, and a row changed meanwhile
 * is left to the worker.
 */
import assert from "node:assert/strict";
import { type Config, parseConfig } from "../../supabase/functions/_shared/config.ts";
import { createSql, type Sql } from "../../supabase/functions/_shared/db/client.ts";
import { syncChannel } from "../../supabase/functions/_shared/inbound/sync.ts";
import type { CalendarProvider, ProviderId } from "../../supabase/functions/_shared/providers/types.ts";
import { DEFAULT_WORKER_OPTIONS } from "../../supabase/functions/_shared/sync/options.ts";
import { cachedProviders, drain } from "../../supabase/functions/_shared/sync/worker.ts";
import { googleFixture, microsoftFixture, type ProviderFixture } from "../contract/fixtures.ts";
import { startTestStack, type TestStack } from "../support/stack.ts";

const DAY = 86_400_000;
/** Midnight UTC two days from now: inside the default cache window. */
const BASE = Math.floor(Date.now() / DAY) * DAY + 2 * DAY;
const at = (day: number, hour: number) => new Date(BASE + day * DAY + hour * 3_600_000);
const iso = (d: Date) => d.toISOString().replace(".000Z", "Z");
/** What a clinician might type: a patient's name, which must never reach our database. */
const USER_TITLE = "Dentist - Jane Roe-Marsh";

/**
 * The provider with `readOwnEventTitle` calling `before` first (the real provider otherwise). Providers
 * are frozen: the views delegate to them rather than wrap them.
 */
function withTitleHook(provider: CalendarProvider, before: () => Promise<void>): CalendarProvider {
  const inbound = provider.inbound!;
  const view = <T extends object>(target: T, own: Record<string | symbol, unknown>): T =>
    new Proxy({} as T, {
      get: (_, key) => {
        if (key in own) return own[key];
        const value = Reflect.get(target, key);
        return typeof value === "function" ? value.bind(target) : value;
      },
      has: (_, key) => key in own || key in target,
    });
  const hooked = view(inbound, {
    readOwnEventTitle: async (token: string, ref: { calendarId: string; eventId: string }) => {
      await before();
      return await inbound.readOwnEventTitle!(token, ref);
    },
  });
  return view(provider, { inbound: hooked });
}

/** Successful provider event writes since the last reset. */
async function eventWrites(stack: TestStack): Promise<string[]> {
  const { recent } = await stack.sandbox.admin<
    { recent: { endpoint: string; method: string; status: number }[] }
  >("GET", "/_admin/calls");
  return recent.filter((c) => c.method !== "GET" && c.status >= 200 && c.status < 300).map((c) => c.endpoint)
    .filter((e) => /events\.(insert|patch|update|create|delete)$/.test(e));
}

/** Event reads by id (the title reads) since the last reset. */
async function eventReads(stack: TestStack): Promise<number> {
  const { byEndpoint } = await stack.sandbox.calls();
  return (byEndpoint["events.get"] ?? 0) + (byEndpoint["microsoft.events.get"] ?? 0);
}

/** Rows of every table of our schemas whose text holds `needle`, as `schema.table` per row. */
async function rowsHolding(sql: Sql, needle: string): Promise<string[]> {
  const tables = await sql<{ name: string }[]>`
    select format('%I.%I', table_schema, table_name) as name from information_schema.tables
    where table_schema in ('public', 'calendar_private') and table_type = 'BASE TABLE'`;
  const found: string[] = [];
  for (const { name } of tables) {
    const rows = await sql.unsafe(`select 1 from ${name} t where strpos(t::text, $1) > 0`, [needle]);
    for (const _ of rows) found.push(name);
  }
  return found;
}

interface Conflict {
  kind: string;
  open: boolean;
  details: Record<string, unknown>;
}

async function conflicts(sql: Sql, appointmentId: string): Promise<Conflict[]> {
  return await sql<Conflict[]>`
    select kind, resolved_at is null as open, details from public.calendar_conflicts
    where appointment_id = ${appointmentId} order by detected_at`;
}

const open = (list: Conflict[]) => list.filter((c) => c.open).map((c) => c.kind);

Deno.test("inbound sync: our event retitled by the user is restored once; other changes do nothing", async (t) => {
  const stack = await startTestStack();
  const config = parseConfig(stack.env);
  const reportConfig: Config = parseConfig({ ...stack.env, CALENDAR_INBOUND_EXTERNAL_EDITS: "report" });
  const sql = createSql(config.databaseUrl, { max: 4 });
  const real = cachedProviders(config);
  let duringTitleRead = async () => {};
  const provider = (id: ProviderId) => withTitleHook(real(id), () => duringTitleRead());
  const run = (channelId: string, cfg = config) =>
    syncChannel({ sql, config: cfg, provider }, channelId, { maxPages: 50, deadline: Date.now() + 60_000 });
  const work = () =>
    drain({ sql, config, options: { ...DEFAULT_WORKER_OPTIONS, maxRunMs: 30_000 }, provider: real });
  try {
    for (const fixture of [googleFixture, microsoftFixture] as ProviderFixture[]) {
      const p = fixture.id;
      await t.step(p, async (t) => {
        const tenant = await stack.createTenant(`${p} retitle clinic`);
        const domain = p === "google" ? "example.com" : "contoso-clinic.com";
        const staff = await stack.createStaff({ tenantId: tenant, email: `retitle-${p}@${domain}` });
        assert.match((await stack.connect(staff, { provider: p })).location, /calendar_status=connected/);
        const [channelRow] = await sql<{ id: string }[]>`
          select ch.id from public.calendar_channels ch
          join calendar_private.active_connection(${tenant}::uuid, ${staff.id}::uuid) c on c.id = ch.connection_id
          where calendar_private.channel_is_live(ch.sync_stage)`;
        assert.ok(channelRow, "the connect opened a channel");
        const channel = channelRow.id;
        // This test drives syncChannel itself: the channel's queued jobs are closed, no watch is made.
        await sql`update public.calendar_channel_jobs set status = 'done', next_attempt_at = null,
            pending_since = null
          where channel_id = ${channel}`;
        const appt = await stack.createAppointment({
          tenantId: tenant,
          staffId: staff.id,
          startsAt: iso(at(1, 10)),
          endsAt: iso(at(1, 11)),
        });
        assert.equal((await work()).synced, 1);
        const [{ event_id: eventId }] = await sql<{ event_id: string }[]>`
          select event_id from public.calendar_sync_log where appointment_key = ${appt}`;
        assert.equal(await fixture.titleOf(stack.sandbox, staff.email, eventId), config.eventTitle);
        assert.equal((await run(channel)).complete, true, "the first full sync");

        await t.step(
          "a retitle is restored with one write; the title is nowhere in the database",
          async () => {
            await fixture.retitleEvent(stack.sandbox, staff.email, eventId, USER_TITLE);
            await stack.sandbox.resetCalls();
            let r = await run(channel);
            assert.deepEqual({ restored: r.restored, reported: r.reported }, { restored: 1, reported: 0 });
            assert.equal(await eventReads(stack), 1, "the one event's title, read once");
            const list = await conflicts(sql, appt);
            assert.deepEqual(open(list), ["external_edit_restored"]);
            assert.deepEqual(
              list[0].details,
              { provider: p, title_changed: true },
              "that it changed, not what to",
            );
            assert.deepEqual(await rowsHolding(sql, "Roe-Marsh"), [], "the user's title is stored nowhere");
            const [row] = await sql<{ sync_status: string }[]>`
            select sync_status from public.calendar_sync_log where appointment_key = ${appt}`;
            assert.equal(row.sync_status, "pending", "the appointment's row is queued again");

            assert.equal((await work()).synced, 1);
            assert.deepEqual(open(await conflicts(sql, appt)), [], "the restoring write resolves it");
            assert.deepEqual(await eventWrites(stack), [
              p === "google" ? "events.patch" : "microsoft.events.update",
            ]);
            assert.equal(await fixture.titleOf(stack.sandbox, staff.email, eventId), config.eventTitle);

            await stack.sandbox.resetCalls();
            r = await run(channel);
            assert.deepEqual(
              { restored: r.restored, reported: r.reported },
              { restored: 0, reported: 0 },
              "echo",
            );
            // The restoring write resolved the conflict when the worker recorded it.
            assert.equal(r.conflictsResolved, 0, "the restoring write already resolved the conflict");
            assert.equal(await eventReads(stack), 0, "an echo is known by its version: no title read");
            assert.deepEqual(open(await conflicts(sql, appt)), []);
            assert.equal((await work()).claimed, 0, "nothing queued");
            assert.deepEqual(await eventWrites(stack), [], "no loop");
          },
        );

        await t.step("a change that keeps title and times writes nothing and opens nothing", async () => {
          const before = (await conflicts(sql, appt)).length;
          await fixture.touchEvent(stack.sandbox, staff.email, eventId);
          await stack.sandbox.resetCalls();
          const r = await run(channel);
          assert.ok(r.events >= 1, "the change is read");
          assert.deepEqual({ restored: r.restored, reported: r.reported }, { restored: 0, reported: 0 });
          assert.equal(await eventReads(stack), 1, "its title is read to tell");
          assert.equal((await conflicts(sql, appt)).length, before, "no conflict row");
          assert.equal((await work()).claimed, 0);
          assert.deepEqual(await eventWrites(stack), []);
        });

        await t.step("report mode: a retitle is recorded, nothing is written", async () => {
          await fixture.retitleEvent(stack.sandbox, staff.email, eventId, USER_TITLE);
          await stack.sandbox.resetCalls();
          let r = await run(channel, reportConfig);
          assert.deepEqual({ restored: r.restored, reported: r.reported }, { restored: 0, reported: 1 });
          const list = await conflicts(sql, appt);
          assert.deepEqual(open(list), ["external_edit_reported"]);
          assert.deepEqual(list.find((c) => c.open)!.details, { provider: p, title_changed: true });
          assert.deepEqual(await rowsHolding(sql, "Roe-Marsh"), []);
          assert.equal((await work()).claimed, 0, "nothing queued");
          assert.equal(await fixture.titleOf(stack.sandbox, staff.email, eventId), USER_TITLE);
          // The user puts the title back: the event agrees again.
          await fixture.retitleEvent(stack.sandbox, staff.email, eventId, config.eventTitle);
          r = await run(channel, reportConfig);
          assert.deepEqual({ restored: r.restored, reported: r.reported }, { restored: 0, reported: 0 });
          assert.equal(r.conflictsResolved, 1);
          assert.deepEqual(open(await conflicts(sql, appt)), []);
          assert.deepEqual(await eventWrites(stack), [], "report mode never writes");
        });

        await t.step(
          "the title is read outside the page's transaction; a row changed meanwhile is the worker's",
          async () => {
            const before = (await conflicts(sql, appt)).length;
            await fixture.retitleEvent(stack.sandbox, staff.email, eventId, USER_TITLE);
            // While the title is read, the appointment moves: the trigger re-queues its sync row. Were
            // the row still locked by the page's transaction, this update would wait for ever.
            duringTitleRead = async () => {
              await sql`update public.appointments set starts_at = ${at(1, 14)}, ends_at = ${at(1, 15)}
                where id = ${appt}`;
            };
            await stack.sandbox.resetCalls();
            const r = await run(channel);
            duringTitleRead = async () => {};
            assert.deepEqual({ restored: r.restored, reported: r.reported }, { restored: 0, reported: 0 });
            assert.equal(
              (await conflicts(sql, appt)).length,
              before,
              "no conflict: the worker writes anyway",
            );
            assert.equal((await work()).synced, 1, "the appointment's own write");
            assert.equal((await eventWrites(stack)).length, 1);
            assert.equal(await fixture.titleOf(stack.sandbox, staff.email, eventId), config.eventTitle);
            const back = (await fixture.events(stack.sandbox, staff.email)).find((e) => e.id === eventId)!;
            assert.deepEqual([back.start, back.end], [+at(1, 14), +at(1, 15)]);
          },
        );
      });
    }
  } finally {
    await sql.end({ timeout: 5 });
    await stack.close();
  }
});
