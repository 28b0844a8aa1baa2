/**
 * The channel job runner (inbound/jobs.ts) against a real database and the sandbox: a job finishes
 * `done` only if it was not requested again meanwhile; a provider failure is retried with the outbox's
 * backoff, and dead-lettered (with its channel failed) once the retry budget is spent; a permanent
 * failure fails at once; an outcome is never written without the lease.
 */
import assert from "node:assert/strict";
import { parseConfig } from "../../supabase/functions/_shared/config.ts";
import { sweepChannels } from "../../supabase/functions/_shared/inbound/channels.ts";
import type { Sql } from "../../supabase/functions/_shared/db/client.ts";
import {
  type ClaimedJob,
  claimJobs,
  processJob,
  recordJobDone,
} from "../../supabase/functions/_shared/inbound/jobs.ts";
import { parseWorkerOptions } from "../../supabase/functions/_shared/sync/options.ts";
import { cachedProviders } from "../../supabase/functions/_shared/sync/worker.ts";
import { startTestStack } from "../support/stack.ts";

Deno.test("channel jobs: done unless requested again, backoff, retry budget, dead letters, leases", async (t) => {
  const stack = await startTestStack();
  const sql = stack.sql as unknown as Sql;
  const config = parseConfig(stack.env);
  const options = { ...parseWorkerOptions({}), backoffBaseMs: 60_000, backoffCapMs: 60_000 };
  const deps = { sql, config, options, provider: cachedProviders(config), deadline: Date.now() + 60_000 };
  const claim = async (owner = "test-worker"): Promise<ClaimedJob> => {
    const jobs = await claimJobs(sql, { owner, limit: 10, leaseMs: 60_000 });
    assert.equal(jobs.length, 1, "one job due");
    return jobs[0];
  };
  const state = async (channelId: string, kind = "create") => {
    const [row] = await stack.sql`
      select j.status, j.retry_count, j.last_error_code, j.error_message, j.next_attempt_at > now() as later,
        ch.sync_stage, ch.error_count
      from public.calendar_channel_jobs j join public.calendar_channels ch on ch.id = j.channel_id
      where j.channel_id = ${channelId} and j.kind = ${kind}`;
    return row;
  };
  try {
    const staff = await stack.createStaff({});
    await stack.connect(staff, { provider: "google" });
    const [channel] = await stack.sql<{ id: string }[]>`
      select id from public.calendar_channels where staff_id = ${staff.id}`;

    await t.step(
      "a transient watch failure is retried later, with the error noted on the channel",
      async () => {
        await stack.sandbox.fault({ match: { endpoint: "events.watch" }, response: { status: 503 } });
        const job = await claim();
        assert.equal(job.kind, "create");
        assert.equal(job.connection?.workable, true);
        const outcome = await processJob(job, { ...deps, random: () => 0.5 });
        assert.equal(outcome.status, "retry");
        const row = await state(channel.id);
        assert.deepEqual(
          { status: row.status, retries: row.retry_count, code: row.last_error_code, later: row.later },
          { status: "pending", retries: 1, code: "provider_unavailable", later: true },
        );
        assert.deepEqual({ stage: row.sync_stage, errors: row.error_count }, { stage: "pending", errors: 1 });
      },
    );

    await t.step(
      "once the retry budget is spent the job is dead-lettered and the channel failed",
      async () => {
        await stack.sql`update public.calendar_channel_jobs set next_attempt_at = now(),
          first_failure_at = now() - interval '25 hours'
        where channel_id = ${channel.id} and kind = 'create'`;
        await stack.sandbox.fault({ match: { endpoint: "events.watch" }, response: { status: 503 } });
        const outcome = await processJob(await claim(), deps);
        assert.equal(outcome.status, "failed");
        const row = await state(channel.id);
        assert.equal(row.status, "failed");
        assert.match(row.error_message, /^gave up after the retry budget of 24 h; last error: /);
        assert.equal(row.sync_stage, "failed");
      },
    );

    await t.step("a job requested again while it ran stays pending; otherwise it is done", async () => {
      // A fresh channel (a reconnect replaces the failed one).
      await stack
        .sql`select calendar_private.open_channel(c.id, true) from public.staff_calendar_connections c
        where c.staff_id = ${staff.id}`;
      const [fresh] = await stack.sql<{ id: string }[]>`
        select id from public.calendar_channels where staff_id = ${staff.id} and sync_stage = 'pending'`;
      const job = await claim();
      assert.equal(job.channel_id, fresh.id);
      await stack.sql`select calendar_private.request_channel_job(${fresh.id}::uuid, 'create')`;
      assert.equal(await recordJobDone(sql, job), "requeued");
      assert.equal((await state(fresh.id)).status, "pending");
      const again = await claim();
      assert.equal((await processJob(again, deps)).status, "done");
      assert.equal((await state(fresh.id)).status, "done");
      assert.equal(
        (await state(fresh.id, "sync")).status,
        "pending",
        "the created channel asks for its full sync",
      );
    });

    await t.step("an outcome is not written once the lease was taken over", async () => {
      const [live] = await stack.sql<{ id: string }[]>`
        select id from public.calendar_channels where staff_id = ${staff.id} and sync_stage = 'full_sync'`;
      // Its full sync is not this test's business (inbound/sync.ts).
      await stack.sql`update public.calendar_channel_jobs set status = 'done' where kind = 'sync'`;
      await stack.sql`select calendar_private.request_channel_job(${live.id}::uuid, 'renew')`;
      const job = await claim("first");
      await stack.sql`update public.calendar_channel_jobs set lease_expires_at = now() where id = ${job.id}`;
      const taken = await claim("second");
      assert.equal(taken.id, job.id);
      assert.equal(await recordJobDone(sql, job), "lost");
      assert.equal((await state(live.id, "renew")).status, "pending");
    });

    await t.step("a permanent provider refusal fails the job at once", async () => {
      const [renew] = await stack.sql<{ channel_id: string }[]>`
        select channel_id from public.calendar_channel_jobs where kind = 'renew' and status = 'pending'`;
      await stack.sql`update public.calendar_channel_jobs set lease_owner = null, lease_expires_at = null
        where kind = 'renew'`;
      await stack.sandbox.fault({
        match: { endpoint: "events.watch" },
        response: { status: 400, reason: "invalid" },
      });
      const outcome = await processJob(await claim(), deps);
      assert.equal(outcome.status, "failed");
      const row = await state(renew.channel_id, "renew");
      assert.deepEqual({ status: row.status, code: row.last_error_code }, {
        status: "failed",
        code: "provider_error",
      });
      assert.equal(row.sync_stage, "full_sync", "a failed renewal leaves the channel live until it expires");
      const standby = await stack.sql`select sync_stage from public.calendar_channels
        where staff_id = ${staff.id} and sync_stage = 'standby'`;
      assert.equal(standby.length, 0, "the replacement that could not be watched is not left standing by");
    });

    await t.step("the sweep opens a channel for a workable connection that lost its own", async () => {
      await stack.sql`update public.calendar_channels set sync_stage = 'stopped' where staff_id = ${staff.id}
        and sync_stage in ('pending', 'full_sync', 'incremental')`;
      assert.deepEqual(
        await sweepChannels(sql, config),
        { opened: 0, retired: 0, renewals: 0, syncs: 0 },
        "not while its calendar's channel failed within the hour",
      );
      await stack.sql`update public.calendar_channels set sync_stage = 'stopped' where staff_id = ${staff.id}
        and sync_stage = 'failed'`;
      assert.deepEqual(await sweepChannels(sql, config), { opened: 1, retired: 0, renewals: 0, syncs: 0 });
      const rows = await stack.sql`select sync_stage from public.calendar_channels
        where staff_id = ${staff.id} and sync_stage = 'pending'`;
      assert.equal(rows.length, 1);
      assert.deepEqual(
        await sweepChannels(sql, config),
        { opened: 0, retired: 0, renewals: 0, syncs: 0 },
        "once",
      );
    });

    await t.step("with inbound sync off the sweep retires live channels and opens none", async () => {
      const off = { ...config, inboundSync: false };
      assert.deepEqual(await sweepChannels(sql, off), { opened: 0, retired: 1, renewals: 0, syncs: 0 });
      const live = await stack.sql`select 1 from public.calendar_channels where staff_id = ${staff.id}
        and calendar_private.channel_is_live(sync_stage)`;
      assert.equal(live.length, 0);
      assert.deepEqual(await sweepChannels(sql, off), { opened: 0, retired: 0, renewals: 0, syncs: 0 });
    });
  } finally {
    await stack.close();
  }
});
