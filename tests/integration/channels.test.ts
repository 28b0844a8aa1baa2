/**
 * Channel life cycle through the gateway and the sandbox, for both providers: a connect opens a push
 * channel at the sandbox (Graph's validation handshake answered by the stack's real calendar-webhook),
 * choosing another calendar moves it, a channel near its expiry is renewed (Google: replaced; Graph:
 * PATCHed), Graph lifecycle events are acted on, a notification kicks the worker and its `sync` job is
 * claimed and runs (the channel's sync completes), and a disconnect stops the channel at the sandbox.
 * The worker runs through calendar-sync-worker. What the `sync` job reads and caches is asserted in
 * inbound-sync.test.ts and two-way-sync.test.ts.
 */
import assert from "node:assert/strict";
import { startTestStack, type TestStack, type TestStaff } from "../support/stack.ts";

type Provider = "google" | "microsoft";

interface ChannelRow {
  id: string;
  calendar_id: string;
  provider_channel_id: string | null;
  sync_stage: string;
  expires_at: Date | null;
  renewed_at: Date | null;
  sync_cursor: string | null;
}

const enc = encodeURIComponent;

async function channels(stack: TestStack, staff: TestStaff): Promise<ChannelRow[]> {
  return await stack.sql<ChannelRow[]>`
    select id, calendar_id, provider_channel_id, sync_stage, expires_at, renewed_at, sync_cursor
    from public.calendar_channels where staff_id = ${staff.id} order by created_at, id`;
}

async function live(stack: TestStack, staff: TestStaff): Promise<ChannelRow[]> {
  return (await channels(stack, staff)).filter((c) =>
    ["pending", "full_sync", "incremental"].includes(c.sync_stage)
  );
}

/** The job of `kind` on the channel: status, retries, last error code; null when there is none. */
async function job(stack: TestStack, channelId: string, kind: string) {
  const [row] = await stack.sql<{ status: string; retry_count: number; last_error_code: string | null }[]>`
    select status, retry_count, last_error_code from public.calendar_channel_jobs
    where channel_id = ${channelId} and kind = ${kind}`;
  return row ?? null;
}

/** What the sandbox holds for the account: Google channels or Graph subscriptions, by provider id. */
async function atSandbox(stack: TestStack, provider: Provider, email: string) {
  if (provider === "google") {
    const { channels } = await stack.sandbox.admin<
      { channels: { id: string; state: string; expiration: string; calendarId: string; address: string }[] }
    >("GET", `/_admin/google/channels?email=${enc(email)}`);
    return new Map(
      channels.map((c) => [c.id, { state: c.state, expires: Number(c.expiration), calendar: c.calendarId }]),
    );
  }
  const { subscriptions } = await stack.sandbox.admin<
    { subscriptions: { id: string; state: string; expirationDateTime: string; calendarId: string }[] }
  >("GET", `/_admin/microsoft/subscriptions?email=${enc(email)}`);
  return new Map(
    subscriptions.map((
      s,
    ) => [s.id, { state: s.state, expires: Date.parse(s.expirationDateTime), calendar: s.calendarId }]),
  );
}

Deno.test("channels: created, moved, renewed, lifecycle, kicked and stopped at the sandbox", async (t) => {
  // Retries are due at once, so a failing `sync` job never hides another job behind its backoff.
  const stack = await startTestStack({
    env: { CALENDAR_SYNC_BACKOFF_BASE_MS: "1", CALENDAR_SYNC_BACKOFF_CAP_MS: "1" },
  });
  const worker = async () => {
    const res = await stack.invoke("calendar-sync-worker", { jwt: stack.serviceRoleJwt, body: {} });
    const body = await res.json();
    assert.equal(res.status, 200, JSON.stringify(body));
    await stack.sandbox.admin("POST", "/_admin/push/flush");
    return body as { channel_jobs: { claimed: number; done: number } };
  };
  /** Run the worker until no channel job but `sync` is pending (each run claims a bounded batch). */
  const settle = async () => {
    for (let i = 0; i < 6; i++) {
      await worker();
      const [row] = await stack.sql<{ n: number }[]>`
        select count(*)::int as n from public.calendar_channel_jobs where status = 'pending' and kind <> 'sync'`;
      if (row.n === 0) return;
    }
    assert.fail("channel jobs still pending after 6 runs");
  };
  /** Run the worker until no channel job at all is pending: every channel's sync has completed. */
  const settleAll = async () => {
    for (let i = 0; i < 10; i++) {
      await worker();
      const [row] = await stack.sql<{ n: number }[]>`
        select count(*)::int as n from public.calendar_channel_jobs where status = 'pending'`;
      if (row.n === 0) return;
    }
    assert.fail("channel jobs still pending after 10 runs");
  };

  try {
    for (const provider of ["google", "microsoft"] as const) {
      const staff = await stack.createStaff({});
      // What the sandbox shows for a channel we stopped: Google keeps it stopped, Graph deleted.
      const stopped = provider === "google" ? "stopped" : "deleted";
      const second = provider === "google" ? "second@group.calendar.google.com" : "second";
      if (provider === "google") {
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

      await t.step(`${provider}: connecting opens a channel at the sandbox`, async () => {
        const { location } = await stack.connect(staff, { provider });
        assert.match(location, /calendar_status=connected/);
        const [pending] = await live(stack, staff);
        assert.equal(pending.sync_stage, "pending");
        assert.equal((await job(stack, pending.id, "create"))?.status, "pending");
        await settle();
        const [ch] = await live(stack, staff);
        assert.equal(ch.id, pending.id);
        // The full sync the create requested may already have run in the same worker run.
        assert.ok(["full_sync", "incremental"].includes(ch.sync_stage), ch.sync_stage);
        assert.ok(ch.expires_at && ch.expires_at.getTime() > Date.now() + 6 * 86_400_000, "about 7 days");
        const remote = (await atSandbox(stack, provider, staff.email)).get(ch.provider_channel_id!);
        assert.equal(remote?.state, "active");
        assert.equal((await job(stack, ch.id, "create"))?.status, "done");
        assert.ok(await job(stack, ch.id, "sync"), "a full sync was requested");
        if (provider === "microsoft") {
          const { deliveries } = await stack.sandbox.admin<
            { deliveries: { kind: string; outcome: string; url: string }[] }
          >(
            "GET",
            "/_admin/push/deliveries",
          );
          const validations = deliveries.filter((d) =>
            d.kind === "validation" && d.url.startsWith(stack.functionsUrl)
          );
          assert.ok(validations.length >= 2, "both URLs validated");
          assert.ok(validations.every((d) => d.outcome === "delivered"), JSON.stringify(validations));
          assert.ok(
            validations.some((d) =>
              new URL(d.url).pathname.endsWith("/calendar-webhook/microsoft/lifecycle")
            ),
          );
        }
      });

      await t.step(`${provider}: a notification kicks the worker and its sync job is claimed`, async () => {
        const [ch] = await live(stack, staff);
        await stack.sql`update public.calendar_channel_jobs set status = 'done', next_attempt_at = null
          where channel_id = ${ch.id} and kind = 'sync'`;
        const kicks: string[] = [];
        const listener = await stack.sql.listen("calendar_sync_kick", (payload) => kicks.push(payload));
        try {
          const path = provider === "google"
            ? `/_admin/accounts/${enc(staff.email)}/calendars/primary/events`
            : `/_admin/microsoft/accounts/${enc(staff.email)}/calendars/default/events`;
          const body = provider === "google"
            ? { start: { dateTime: "2031-03-03T09:00:00Z" }, end: { dateTime: "2031-03-03T10:00:00Z" } }
            : {
              start: { dateTime: "2031-03-03T09:00:00", timeZone: "UTC" },
              end: { dateTime: "2031-03-03T10:00:00", timeZone: "UTC" },
            };
          await stack.sandbox.admin("POST", path, body);
          await stack.sandbox.admin("POST", "/_admin/push/flush");
          assert.equal((await job(stack, ch.id, "sync"))?.status, "pending");
          // The NOTIFY was sent when the webhook's statement committed, before its answer.
          for (let i = 0; i < 50 && !kicks.includes("channel"); i++) {
            await new Promise((r) => setTimeout(r, 20));
          }
          assert.ok(kicks.includes("channel"), `kicked: ${kicks.join(",")}`);
        } finally {
          await listener.unlisten();
        }
        const run = await worker();
        assert.ok(run.channel_jobs.claimed >= 1);
        const sync = await job(stack, ch.id, "sync");
        assert.deepEqual(sync, { status: "done", retry_count: 0, last_error_code: null }, "claimed and ran");
        const [synced] = await stack.sql<{ sync_stage: string; last_synced_at: Date | null }[]>`
          select sync_stage, last_synced_at from public.calendar_channels where id = ${ch.id}`;
        assert.equal(synced.sync_stage, "incremental", "the channel's sync completed");
        assert.ok(synced.last_synced_at);
      });

      await t.step(
        `${provider}: choosing another calendar stops the old channel and opens one there`,
        async () => {
          const [old] = await live(stack, staff);
          const res = await stack.invoke("calendar-select-calendar", {
            jwt: staff.jwt,
            body: { calendar_id: second },
          });
          assert.equal(res.status, 200, await res.text());
          const [now] = await live(stack, staff);
          assert.equal(now.calendar_id, second);
          assert.equal((await channels(stack, staff)).find((c) => c.id === old.id)?.sync_stage, "stopped");
          await settle();
          const remote = await atSandbox(stack, provider, staff.email);
          const [current] = await live(stack, staff);
          assert.equal(remote.get(current.provider_channel_id!)?.state, "active");
          assert.equal(remote.get(old.provider_channel_id!)?.state, stopped, "the old channel was stopped");
          assert.equal((await job(stack, old.id, "stop"))?.status, "done");
        },
      );

      await t.step(`${provider}: a channel within a day of its expiry is renewed`, async () => {
        await settleAll();
        const [ch] = await live(stack, staff);
        assert.equal(ch.sync_stage, "incremental");
        // Six days later: the channel expires in an hour.
        await stack
          .sql`update public.calendar_channels set expires_at = now() + interval '1 hour' where id = ${ch.id}`;
        await stack.sql`select calendar_private.sweep_outbox()`;
        assert.equal((await job(stack, ch.id, "renew"))?.status, "pending");
        await settle();
        const [after] = await live(stack, staff);
        assert.ok(after.expires_at!.getTime() > Date.now() + 6 * 86_400_000, "renewed for about 7 days");
        const remote = await atSandbox(stack, provider, staff.email);
        if (provider === "google") {
          assert.notEqual(after.id, ch.id, "replaced by a new channel");
          assert.equal(after.sync_stage, ch.sync_stage, "the new channel carries the stage on");
          assert.equal(after.sync_cursor, ch.sync_cursor, "and the cursor: no full sync again");
          assert.equal(remote.get(after.provider_channel_id!)?.state, "active");
          assert.equal(remote.get(ch.provider_channel_id!)?.state, "stopped", "the old channel was stopped");
        } else {
          assert.equal(after.id, ch.id, "PATCHed in place");
          assert.ok(after.renewed_at);
          assert.ok(remote.get(after.provider_channel_id!)!.expires > Date.now() + 6 * 86_400_000);
        }
      });

      if (provider === "microsoft") {
        await t.step("microsoft: reauthorizationRequired renews the subscription", async () => {
          const [ch] = await live(stack, staff);
          await stack.sql`update public.calendar_channels set renewed_at = null where id = ${ch.id}`;
          await stack.sandbox.admin(
            "POST",
            `/_admin/microsoft/subscriptions/${enc(ch.provider_channel_id!)}/lifecycle`,
            {
              lifecycleEvent: "reauthorizationRequired",
            },
          );
          await stack.sandbox.admin("POST", "/_admin/push/flush");
          const [flagged] = await stack.sql`select reauthorization_required_at is not null as flagged
            from public.calendar_channels where id = ${ch.id}`;
          assert.equal(flagged.flagged, true);
          await worker();
          const [row] = await stack.sql`select reauthorization_required_at, renewed_at is not null as renewed
            from public.calendar_channels where id = ${ch.id}`;
          assert.deepEqual({ ...row }, { reauthorization_required_at: null, renewed: true });
        });

        await t.step("microsoft: missed resyncs the calendar in full", async () => {
          await settleAll();
          const [ch] = await live(stack, staff);
          assert.equal(ch.sync_stage, "incremental");
          // A block of an event deleted while notifications were dropped: no delta round reports it,
          // only a full resync's sweep removes it.
          await stack.sql`
            insert into public.calendar_busy_blocks (tenant_id, staff_id, connection_id, event_key, starts_at, ends_at)
            select tenant_id, staff_id, connection_id, sha256(convert_to('dropped', 'UTF8')),
              now() + interval '2 days', now() + interval '2 days 1 hour'
            from public.calendar_channels where id = ${ch.id}`;
          await stack.sandbox.admin(
            "POST",
            `/_admin/microsoft/subscriptions/${enc(ch.provider_channel_id!)}/lifecycle`,
            { lifecycleEvent: "missed" },
          );
          await stack.sandbox.admin("POST", "/_admin/push/flush");
          assert.equal(
            (await job(stack, ch.id, "sync"))?.status,
            "pending",
            "the missed event asks for a sync",
          );
          await settleAll();
          const [row] = await stack.sql<{ missed: boolean; sync_stage: string; stale: number }[]>`
            select ch.missed_at is not null as missed, ch.sync_stage,
              (select count(*)::int from public.calendar_busy_blocks b where b.connection_id = ch.connection_id
                and b.event_key = sha256(convert_to('dropped', 'UTF8'))) as stale
            from public.calendar_channels ch where ch.id = ${ch.id}`;
          assert.deepEqual({ ...row }, { missed: false, sync_stage: "incremental", stale: 0 });
        });

        await t.step("microsoft: subscriptionRemoved opens a new subscription", async () => {
          const [ch] = await live(stack, staff);
          await stack.sandbox.admin(
            "POST",
            `/_admin/microsoft/subscriptions/${enc(ch.provider_channel_id!)}/lifecycle`,
            {
              lifecycleEvent: "subscriptionRemoved",
            },
          );
          await stack.sandbox.admin("POST", "/_admin/push/flush");
          await worker();
          const [next] = await live(stack, staff);
          assert.notEqual(next.id, ch.id);
          assert.equal((await channels(stack, staff)).find((c) => c.id === ch.id)?.sync_stage, "stopped");
          await settle();
          const [created] = await live(stack, staff);
          assert.ok(["full_sync", "incremental"].includes(created.sync_stage), "a full sync follows");
          assert.ok(await job(stack, created.id, "sync"), "its sync was requested");
          assert.equal(
            (await atSandbox(stack, provider, staff.email)).get(created.provider_channel_id!)?.state,
            "active",
          );
        });
      }

      await t.step(`${provider}: disconnecting stops the channel at the sandbox`, async () => {
        const [ch] = await live(stack, staff);
        const res = await stack.invoke("calendar-disconnect", { jwt: staff.jwt, body: {} });
        assert.equal(res.status, 200, await res.text());
        assert.deepEqual(await live(stack, staff), [], "no live channel row");
        const [pending] = await stack.sql<{ n: number }[]>`
          select count(*)::int as n from public.calendar_channel_jobs where staff_id = ${staff.id} and status = 'pending'`;
        assert.equal(pending.n, 0, "no job left waiting for a connection that is gone");
        const remote = (await atSandbox(stack, provider, staff.email)).get(ch.provider_channel_id!);
        assert.equal(remote?.state, stopped, "stopped at the sandbox");
      });
    }
  } finally {
    await stack.close();
  }
});
