/**
 * Two-way sync end to end, for Google and Microsoft, through the real chain: a change made on the
 * sandbox calendar "as the user" (admin API) -> the sandbox's push notification -> the stack's
 * calendar-webhook -> the channel's coalesced `sync` job -> calendar-sync-worker (run through the
 * gateway, as the dispatcher or pg_net would) -> syncChannel -> busy cache, restore, conflicts ->
 * calendar-get-availability. Nothing is inserted by hand except where a step says so; the worker is
 * run until nothing is due instead of waiting, and answers are polled, never timed.
 */
import assert from "node:assert/strict";
import { parseConfig } from "../../supabase/functions/_shared/config.ts";
import { createSql } from "../../supabase/functions/_shared/db/client.ts";
import { sweepChannels } from "../../supabase/functions/_shared/inbound/channels.ts";
import type { DrainSummary } from "../../supabase/functions/_shared/sync/worker.ts";
import { googleFixture, microsoftFixture, type ProviderFixture } from "../contract/fixtures.ts";
import { startTestStack, type TestStack, type TestStaff } from "../support/stack.ts";

const DAY = 86_400_000;
/** Midnight UTC three days from now: inside the default cache window [now - 1 d, now + 180 d]. */
const BASE = Math.floor(Date.now() / DAY) * DAY + 3 * DAY;
const at = (day: number, hour: number, minute = 0) => BASE + day * DAY + (hour * 60 + minute) * 60_000;
const iso = (ms: number) => new Date(ms).toISOString().replace(".000Z", "Z");
const STORM = 200;

interface Answer {
  busy: { start: string; end: string }[];
  source: "cache" | "live";
  as_of: string;
}

/** Busy intervals as [start, end] epoch ms, whatever the answer's time format. */
const spans = (a: Answer) => a.busy.map((b) => [Date.parse(b.start), Date.parse(b.end)]);

/** Successful provider event writes (creates, patches, updates, deletes) since the last reset. */
async function eventWrites(stack: TestStack): Promise<string[]> {
  const { recent } = await stack.sandbox.admin<
    { recent: { endpoint: string; method: string; status: number }[] }
  >(
    "GET",
    "/_admin/calls",
  );
  return recent.filter((c) => c.method !== "GET" && c.status >= 200 && c.status < 300).map((c) => c.endpoint)
    .filter((e) => /events\.(insert|patch|update|create|delete)$/.test(e));
}

/** Change reads (Google events.list, Graph calendarView/delta) since the last reset. */
async function changeReads(stack: TestStack): Promise<number> {
  const { byEndpoint } = await stack.sandbox.calls();
  return (byEndpoint["events.list"] ?? 0) + (byEndpoint["microsoft.calendarView.delta"] ?? 0);
}

Deno.test("two-way sync end to end: sandbox push -> webhook -> channel job -> worker -> cache, restore, conflicts", async (t) => {
  const stack = await startTestStack();
  const config = parseConfig(stack.env);
  const sql = createSql(config.databaseUrl, { max: 2 });

  /** One worker run through the gateway, after the sandbox delivered every notification made so far. */
  const worker = async (): Promise<DrainSummary> => {
    await stack.sandbox.admin("POST", "/_admin/push/flush");
    const res = await stack.invoke("calendar-sync-worker", { jwt: stack.serviceRoleJwt, body: {} });
    const body = await res.json();
    assert.equal(res.status, 200, JSON.stringify(body));
    return body as DrainSummary;
  };
  /**
   * Run the worker until a run finds nothing to do (outbox rows and channel jobs), the notifications
   * of each run's own writes delivered before the next. @returns the runs' summaries.
   */
  const settle = async (): Promise<DrainSummary[]> => {
    const runs: DrainSummary[] = [];
    for (let i = 0; i < 20; i++) {
      const run = await worker();
      runs.push(run);
      if (run.claimed === 0 && run.channel_jobs.claimed === 0) {
        await stack.sandbox.admin("POST", "/_admin/push/flush");
        const [due] = await stack.sql<{ n: number }[]>`
          select ((select count(*) from public.calendar_channel_jobs where status = 'pending')
            + (select count(*) from public.calendar_sync_log where sync_status = 'pending'
               and next_attempt_at <= now()))::int as n`;
        if (due.n === 0) return runs;
      }
    }
    const pending = await stack.sql`
      select j.kind, j.next_attempt_at, j.lease_owner, j.last_error_code, ch.sync_stage
      from public.calendar_channel_jobs j join public.calendar_channels ch on ch.id = j.channel_id
      where j.status = 'pending'`;
    assert.fail(
      `work still due after 20 worker runs: ${JSON.stringify(pending)} ${JSON.stringify(runs.at(-1))}`,
    );
  };

  try {
    for (const fixture of [googleFixture, microsoftFixture] as ProviderFixture[]) {
      const p = fixture.id;
      await t.step(p, async (t) => {
        const tenantId = await stack.createTenant(`${p} two-way clinic`);
        const staff: TestStaff = await stack.createStaff({ tenantId, email: fixture.email(`twoway-${p}`) });
        const second = p === "google" ? "second@group.calendar.google.com" : "second";
        if (p === "google") {
          await stack.sandbox.admin("POST", "/_admin/accounts", {
            email: staff.email,
            calendars: [{ id: second, summary: "Second", accessRole: "owner" }],
          });
        } else {
          await stack.sandbox.admin("POST", "/_admin/microsoft/accounts", {
            email: staff.email,
            calendars: [{ id: second, name: "Second", canEdit: true }],
          });
        }
        assert.match((await stack.connect(staff, { provider: p })).location, /calendar_status=connected/);
        const day = { staff_id: staff.id, time_min: iso(at(0, 0)), time_max: iso(at(1, 0)) };
        const ask = async (): Promise<Answer> => {
          const res = await stack.invoke("calendar-get-availability", { jwt: staff.jwt, body: day });
          const answer = await res.json();
          assert.equal(res.status, 200, JSON.stringify(answer));
          return answer as Answer;
        };
        /** Run the worker and ask again until `ok` holds (at most 10 rounds). */
        const pollAnswer = async (why: string, ok: (a: Answer) => boolean): Promise<Answer> => {
          let answer = await ask();
          for (let i = 0; i < 10 && !ok(answer); i++) {
            await settle();
            answer = await ask();
          }
          assert.ok(ok(answer), `${why}: ${JSON.stringify(answer)}`);
          return answer;
        };
        const channel = async () =>
          (await stack.sql<
            { id: string; provider_channel_id: string; resource_id: string | null; sync_stage: string }[]
          >`
            select id, provider_channel_id, resource_id, sync_stage from public.calendar_channels
            where staff_id = ${staff.id} and calendar_private.channel_is_live(sync_stage)`)[0];
        const syncJob = async (channelId: string) =>
          (await stack.sql<{ status: string; queue_version: string }[]>`
            select status, queue_version::text from public.calendar_channel_jobs
            where channel_id = ${channelId} and kind = 'sync'`)[0];
        const calendar = async () => (await fixture.events(stack.sandbox, staff.email)).filter((e) => e.live);

        await t.step("connecting opens a channel whose full sync makes the cache answer", async () => {
          await settle();
          assert.equal((await channel())?.sync_stage, "incremental");
          const answer = await ask();
          assert.deepEqual({ busy: answer.busy, source: answer.source }, { busy: [], source: "cache" });
        });

        await t.step("a block the user adds on the calendar appears in the cached answer", async () => {
          await fixture.addBusy(stack.sandbox, staff.email, { start: iso(at(0, 9)), end: iso(at(0, 10)) });
          const answer = await pollAnswer(
            "the block through the cache",
            (a) => a.source === "cache" && a.busy.length === 1,
          );
          assert.deepEqual(spans(answer), [[at(0, 9), at(0, 10)]]);
          await stack.sandbox.resetCalls();
          assert.equal((await ask()).source, "cache");
          assert.equal((await stack.sandbox.calls()).total, 0, "answered without a provider call");
        });

        let appointmentId = "";
        let eventId = "";
        await t.step(
          "our event moved by the user is put back with one write, and nothing loops",
          async () => {
            appointmentId = await stack.createAppointment({
              tenantId,
              staffId: staff.id,
              startsAt: iso(at(0, 14)),
              endsAt: iso(at(0, 15)),
            });
            await settle();
            [{ event_id: eventId }] = await stack.sql<{ event_id: string }[]>`
            select event_id from public.calendar_sync_log where appointment_key = ${appointmentId}`;
            assert.ok((await calendar()).some((e) => e.id === eventId && e.start === at(0, 14)));
            await fixture.editEvent(stack.sandbox, staff.email, eventId, iso(at(0, 16)), iso(at(0, 17)));
            await stack.sandbox.resetCalls();
            await settle();
            const writes = await eventWrites(stack);
            assert.equal(writes.length, 1, `exactly one provider write: ${writes.join(", ")}`);
            const ours = (await calendar()).find((e) => e.id === eventId);
            assert.deepEqual(
              [ours?.start, ours?.end],
              [at(0, 14), at(0, 15)],
              "back at the appointment's time",
            );
            // The restore's own notification was read (the echo) and changed nothing: no further write.
            await stack.sandbox.resetCalls();
            await settle();
            assert.deepEqual(await eventWrites(stack), [], "the echo writes nothing");
          },
        );

        await t.step("a forged notification is refused and writes nothing", async () => {
          const ch = await channel();
          const before = await syncJob(ch.id);
          const res = p === "google"
            ? await stack.invoke("calendar-webhook/google", {
              jwt: null,
              headers: {
                "x-goog-channel-id": ch.provider_channel_id,
                "x-goog-channel-token": "not-the-secret",
                "x-goog-channel-expiration": new Date(Date.now() + DAY).toUTCString(),
                "x-goog-resource-id": ch.resource_id ?? "unknown",
                "x-goog-resource-uri":
                  "https://www.googleapis.com/calendar/v3/calendars/primary/events?alt=json",
                "x-goog-resource-state": "exists",
                "x-goog-message-number": "999999999",
              },
            })
            : await stack.invoke("calendar-webhook/microsoft", {
              jwt: null,
              body: {
                value: [{
                  subscriptionId: ch.provider_channel_id,
                  clientState: "not-the-secret",
                  changeType: "updated",
                  resource: "Users/x/Events/y",
                  subscriptionExpirationDateTime: new Date(Date.now() + DAY).toISOString(),
                  tenantId: crypto.randomUUID(),
                  resourceData: { "@odata.type": "#Microsoft.Graph.Event", id: "y" },
                }],
              },
            });
          assert.equal(res.status, 403, await res.text());
          assert.deepEqual(await syncJob(ch.id), before, "no sync requested");
          await stack.sandbox.resetCalls();
          const run = await worker();
          assert.equal(run.channel_jobs.claimed, 0, "nothing for the worker");
          assert.equal((await stack.sandbox.calls()).total, 0, "no provider call");
        });

        await t.step(`a storm of ${STORM} notifications makes a handful of sync runs`, async () => {
          const ch = await channel();
          const { targets } = await stack.sandbox.admin<{ targets: Record<string, { delivered: number }> }>(
            "GET",
            "/_admin/push/deliveries",
          );
          const deliveredBefore = targets[ch.provider_channel_id]?.delivered ?? 0;
          // The user imports a day of 5-minute blocks: one notification per event.
          for (let i = 0; i < STORM; i += 20) {
            await Promise.all(
              Array.from({ length: 20 }, (_, k) => i + k).map((n) =>
                fixture.addBusy(stack.sandbox, staff.email, {
                  start: iso(at(5, 0, n * 5)),
                  end: iso(at(5, 0, n * 5 + 5)),
                })
              ),
            );
          }
          await stack.sandbox.admin("POST", "/_admin/push/flush");
          const after = await stack.sandbox.admin<{ targets: Record<string, { delivered: number }> }>(
            "GET",
            "/_admin/push/deliveries",
          );
          assert.ok(
            after.targets[ch.provider_channel_id].delivered - deliveredBefore >= STORM,
            "every notification reached the webhook",
          );
          await stack.sandbox.resetCalls();
          const runs = await settle();
          const syncRuns = runs.reduce((n, r) => n + r.channel_jobs.claimed, 0);
          const reads = await changeReads(stack);
          assert.ok(syncRuns >= 1 && syncRuns <= 3, `sync runs: ${syncRuns}`);
          assert.ok(reads >= 1 && reads <= 6, `change reads: ${reads}`);
          const [n] = await stack.sql<{ n: number }[]>`
            select count(*)::int as n from public.calendar_busy_blocks b
            join public.calendar_channels ch on ch.connection_id = b.connection_id
            where ch.id = ${ch.id} and b.starts_at >= ${new Date(at(5, 0))} and b.starts_at < ${new Date(
            at(6, 0),
          )}`;
          assert.equal(n.n, STORM, "every imported block is cached");
        });

        await t.step("a dropped notification is caught up by the periodic sync", async () => {
          await settle();
          const ch = await channel();
          await stack.sandbox.admin("POST", "/_admin/push/plan", { provider: p, drop: 1 });
          await fixture.addBusy(stack.sandbox, staff.email, { start: iso(at(0, 11)), end: iso(at(0, 12)) });
          await stack.sandbox.admin("POST", "/_admin/push/flush");
          assert.notEqual((await syncJob(ch.id))?.status, "pending", "the notification was lost");
          await settle();
          assert.deepEqual(
            spans(await ask()),
            [[at(0, 9), at(0, 10)], [at(0, 14), at(0, 15)]],
            "not seen yet",
          );
          // Time passes: the last sync is older than the periodic sync's interval. The sweep the worker
          // runs (once a minute) requests the sync.
          await stack.sql`update public.calendar_channels set last_synced_at = now() - interval '31 minutes'
            where id = ${ch.id}`;
          const swept = await sweepChannels(sql, config);
          assert.ok(swept.syncs >= 1, JSON.stringify(swept));
          const answer = await pollAnswer("the dropped change through the cache", (a) => a.busy.length === 3);
          assert.equal(answer.source, "cache");
          assert.deepEqual(spans(answer), [[at(0, 9), at(0, 10)], [at(0, 11), at(0, 12)], [
            at(0, 14),
            at(0, 15),
          ]]);
        });

        await t.step("an overlap opens a conflict, and removing the block resolves it", async () => {
          await fixture.addBusy(stack.sandbox, staff.email, {
            start: iso(at(0, 14, 30)),
            end: iso(at(0, 15, 30)),
          });
          const open = async () =>
            await stack.sql<{ kind: string }[]>`
              select kind from public.calendar_conflicts
              where appointment_id = ${appointmentId} and resolved_at is null`;
          for (let i = 0; i < 5 && (await open()).length === 0; i++) await settle();
          assert.deepEqual((await open()).map((c) => c.kind), ["overlap"]);
          const block = (await calendar()).find((e) => e.start === at(0, 14, 30));
          assert.ok(block, "the overlapping block on the calendar");
          await fixture.deleteEvent(stack.sandbox, staff.email, block.id);
          for (let i = 0; i < 5 && (await open()).length > 0; i++) await settle();
          assert.deepEqual((await open()).map((c) => c.kind), [], "resolved");
          const [resolved] = await stack.sql<{ n: number }[]>`
            select count(*)::int as n from public.calendar_conflicts
            where appointment_id = ${appointmentId} and kind = 'overlap' and resolved_at is not null`;
          assert.equal(resolved.n, 1);
        });

        await t.step(
          "after choosing another calendar the old calendar's blocks are never served",
          async () => {
            await settle();
            const res = await stack.invoke("calendar-select-calendar", {
              jwt: staff.jwt,
              body: { calendar_id: second },
            });
            assert.equal(res.status, 200, await res.text());
            // The new calendar's channel has not synced yet: the answer is live, not the old blocks.
            const meanwhile = await ask();
            assert.equal(meanwhile.source, "live");
            const answer = await pollAnswer(
              "the new calendar through the cache",
              (a) => a.source === "cache",
            );
            // Only our appointment's event, which the outbox moved to the new calendar.
            assert.deepEqual(spans(answer), [[at(0, 14), at(0, 15)]]);
          },
        );
      });
    }
  } finally {
    await sql.end({ timeout: 5 });
    await stack.close();
  }
});
