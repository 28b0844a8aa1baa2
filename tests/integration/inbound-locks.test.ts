/**
 * Lock orders of inbound sync. Between a channel's sync and calendar-disconnect: A disconnect holds the connection row
 * (FOR UPDATE) and then stops the connection's channels; a sync page locks its channel and inserts busy
 * blocks, whose foreign key takes a key-share lock on the connection. Taken channel-first, the two
 * deadlocked (PostgreSQL aborted one: calendar-disconnect answered 500). The sync now takes the
 * connection before the channel, so it waits for the disconnect instead.
 */
import assert from "node:assert/strict";
import postgres from "postgres";
import { parseConfig } from "../../supabase/functions/_shared/config.ts";
import { createSql } from "../../supabase/functions/_shared/db/client.ts";
import { claimJobs, recordJobRetry } from "../../supabase/functions/_shared/inbound/jobs.ts";
import { syncChannel } from "../../supabase/functions/_shared/inbound/sync.ts";
import { cachedProviders } from "../../supabase/functions/_shared/sync/worker.ts";
import { googleFixture } from "../contract/fixtures.ts";
import { waitFor } from "../support/poll.ts";
import { startTestStack } from "../support/stack.ts";

Deno.test("a channel's sync waits for a disconnect holding the connection instead of deadlocking with it", async () => {
  const stack = await startTestStack();
  const config = parseConfig(stack.env);
  const sql = createSql(config.databaseUrl, { max: 2 });
  const other = postgres(config.databaseUrl, { prepare: false, max: 1, onnotice: () => {} });
  try {
    const tenantId = await stack.createTenant("Lock order clinic");
    const staff = await stack.createStaff({ tenantId });
    assert.match((await stack.connect(staff, { provider: "google" })).location, /calendar_status=connected/);
    const [channel] = await sql<{ id: string; connection_id: string }[]>`
      select id, connection_id from public.calendar_channels
      where staff_id = ${staff.id} and calendar_private.channel_is_live(sync_stage)`;
    assert.ok(channel, "the connect opened a channel");
    // This test drives the sync itself.
    await sql`update public.calendar_channel_jobs set status = 'done', next_attempt_at = null,
        pending_since = null where channel_id = ${channel.id}`;
    const start = new Date(Date.now() + 2 * 86_400_000);
    start.setUTCHours(9, 0, 0, 0);
    await googleFixture.addBusy(stack.sandbox, staff.email, {
      start: start.toISOString(),
      end: new Date(start.getTime() + 3_600_000).toISOString(),
    });

    const failures: string[] = [];
    const [{ pid: holder }] = await other.begin(async (tx) => {
      // What calendar-disconnect does first: the connection row, FOR UPDATE.
      const [row] = await tx<{ pid: number }[]>`
        select pg_backend_pid() as pid from public.staff_calendar_connections
        where id = ${channel.connection_id} for update`;
      const sync = syncChannel({ sql, config, provider: cachedProviders(config) }, channel.id, {
        maxPages: 5,
        deadline: Date.now() + 60_000,
      }).catch((err) => {
        failures.push(`sync: ${err instanceof Error ? err.message : err}`);
      });
      // The sync has read its page and now waits for a lock the disconnect holds.
      await waitFor(
        "the sync to wait for a lock held by the disconnect",
        async () =>
          (await sql<{ n: number }[]>`
            select count(*)::int as n from pg_locks where not granted
              and ${row.pid}::int = any(pg_blocking_pids(pid))`)[0].n,
        (n) => n > 0,
        { timeoutMs: 20_000 },
      );
      // Then the disconnect stops the channel. Before the fix the sync held this row: a deadlock.
      try {
        await tx`update public.calendar_channels set sync_stage = 'stopped', stopped_at = now()
          where id = ${channel.id}`;
      } catch (err) {
        failures.push(`disconnect: ${err instanceof Error ? err.message : err}`);
        throw err;
      }
      // An object, not a promise or an array: postgres.js would wait for those before committing.
      return { row, sync };
    }).then(async ({ row, sync }) => {
      await sync;
      return [row];
    });
    assert.ok(holder > 0);
    assert.deepEqual(failures, [], "neither side was aborted");
    const [after] = await sql<{ sync_stage: string }[]>`
      select sync_stage from public.calendar_channels where id = ${channel.id}`;
    assert.equal(
      after.sync_stage,
      "stopped",
      "the sync, run after the disconnect, did not revive the channel",
    );
  } finally {
    await other.end({ timeout: 5 });
    await sql.end({ timeout: 5 });
    await stack.close();
  }
});

Deno.test("recording a channel job's failure waits for a webhook holding its channel instead of deadlocking with it", async () => {
  // The webhook's recorders update the channel, then request (update) its job; a worker recording a
  // failed attempt updates the job, then notes it on the channel. Taken job-first, the two deadlocked.
  const stack = await startTestStack();
  const config = parseConfig(stack.env);
  const sql = createSql(config.databaseUrl, { max: 2 });
  const other = postgres(config.databaseUrl, { prepare: false, max: 1, onnotice: () => {} });
  try {
    const tenantId = await stack.createTenant("Job lock order clinic");
    const staff = await stack.createStaff({ tenantId });
    assert.match((await stack.connect(staff, { provider: "google" })).location, /calendar_status=connected/);
    const [job] = (await claimJobs(sql, { owner: "lock-test", limit: 10, leaseMs: 60_000 }))
      .filter((j) => j.staff_id === staff.id);
    assert.ok(job, "the connect's channel job was claimed");

    const failures: string[] = [];
    await other.begin(async (tx) => {
      // The webhook: the channel first.
      const [{ pid }] = await tx<{ pid: number }[]>`
        update public.calendar_channels set last_notified_at = now() where id = ${job.channel_id}
        returning pg_backend_pid() as pid`;
      const recorded = recordJobRetry(sql, job, {
        code: "provider_unavailable",
        message: "503",
        delayMs: 1_000,
        budgetMs: 86_400_000,
      }).catch((err) => {
        failures.push(`worker: ${err instanceof Error ? err.message : err}`);
        return "error";
      });
      await waitFor(
        "the worker's record to wait for a lock held by the webhook",
        async () =>
          (await sql<{ n: number }[]>`
            select count(*)::int as n from pg_locks where not granted
              and ${pid}::int = any(pg_blocking_pids(pid))`)[0].n,
        (n) => n > 0,
        { timeoutMs: 20_000 },
      );
      // Then the webhook requests the job. Before the fix the worker held this row: a deadlock.
      try {
        await tx`update public.calendar_channel_jobs set queue_version = queue_version + 1 where id = ${job.id}`;
      } catch (err) {
        failures.push(`webhook: ${err instanceof Error ? err.message : err}`);
        throw err;
      }
      // An object, not the promise: postgres.js would wait for it before committing.
      return { recorded };
    }).then(async ({ recorded }) => {
      assert.equal(await recorded, "pending", "the attempt was recorded, due again");
    });
    assert.deepEqual(failures, [], "neither side was aborted");
  } finally {
    await other.end({ timeout: 5 });
    await sql.end({ timeout: 5 });
    await stack.close();
  }
});
