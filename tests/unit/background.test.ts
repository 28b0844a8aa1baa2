/**
 * Work after the response (supabase/functions/_shared/background.ts), the local gateway's
 * EdgeRuntime stand-in (dev/stack/edge-runtime.ts), the worker's follow-up rule
 * (sync/follow-up.ts), and the Vault seed for `supabase start` (supabase/seed.sql).
 */
import assert from "node:assert/strict";
import { installEdgeRuntime } from "../../dev/stack/edge-runtime.ts";
import { prefersRespondAsync, runtimeWaitUntil } from "../../supabase/functions/_shared/background.ts";
import { needsFollowUp } from "../../supabase/functions/_shared/sync/follow-up.ts";
import type { DrainSummary } from "../../supabase/functions/_shared/sync/worker.ts";

const post = (prefer?: string) =>
  new Request("http://localhost/", { method: "POST", headers: prefer === undefined ? {} : { prefer } });

Deno.test("Prefer: respond-async is recognised alone, in a list, with parameters, in any case", () => {
  assert.equal(prefersRespondAsync(post()), false);
  assert.equal(prefersRespondAsync(post("respond-async")), true);
  assert.equal(prefersRespondAsync(post("wait=10, Respond-Async")), true);
  assert.equal(prefersRespondAsync(post("respond-async; foo=bar")), true);
  assert.equal(prefersRespondAsync(post("return=minimal")), false);
  assert.equal(prefersRespondAsync(post("respond-asynchronously")), false);
});

Deno.test("without an EdgeRuntime global there is no waitUntil; the gateway's stand-in provides one", async () => {
  const g = globalThis as { EdgeRuntime?: unknown; __backgroundWork?: unknown };
  const saved = { runtime: g.EdgeRuntime, work: g.__backgroundWork };
  delete g.EdgeRuntime;
  delete g.__backgroundWork;
  try {
    assert.equal(runtimeWaitUntil(), null);
    const errors: string[] = [];
    const work = installEdgeRuntime((name) => errors.push(name));
    assert.equal(installEdgeRuntime(), work, "installing twice keeps one tracker");
    const waitUntil = runtimeWaitUntil();
    assert.ok(waitUntil);
    let finished = false;
    let release!: () => void;
    waitUntil(new Promise<void>((r) => (release = r)).then(() => void (finished = true)));
    waitUntil(Promise.reject(new TypeError("boom")));
    assert.equal(work.pending(), 2);
    const settling = work.settle(10_000);
    release();
    assert.equal(await settling, true);
    assert.equal(finished, true);
    assert.equal(work.pending(), 0);
    assert.deepEqual(errors, ["TypeError"], "a rejected task is reported by its error name only");
  } finally {
    g.EdgeRuntime = saved.runtime;
    g.__backgroundWork = saved.work;
    if (saved.runtime === undefined) delete g.EdgeRuntime;
    if (saved.work === undefined) delete g.__backgroundWork;
  }
});

Deno.test("settle gives up after its timeout and says so", async () => {
  const g = globalThis as { EdgeRuntime?: unknown; __backgroundWork?: unknown };
  const saved = { runtime: g.EdgeRuntime, work: g.__backgroundWork };
  delete g.__backgroundWork;
  try {
    const work = installEdgeRuntime();
    let release!: () => void;
    runtimeWaitUntil()!(new Promise<void>((r) => (release = r)));
    assert.equal(await work.settle(1), false);
    release();
    assert.equal(await work.settle(10_000), true);
  } finally {
    g.EdgeRuntime = saved.runtime;
    g.__backgroundWork = saved.work;
    if (saved.runtime === undefined) delete g.EdgeRuntime;
    if (saved.work === undefined) delete g.__backgroundWork;
  }
});

Deno.test("a run follows itself only when rows are due now and it made progress", () => {
  const run = (claimed: number, remaining: number, jobs = { claimed: 0, remaining: 0 }): DrainSummary => ({
    claimed,
    synced: claimed,
    retried: 0,
    failed: 0,
    parked: 0,
    remaining,
    channel_jobs: { ...jobs, done: jobs.claimed, retried: 0, failed: 0, parked: 0 },
  });
  assert.equal(needsFollowUp(run(100, 250)), true, "a backlog beyond the row bound");
  assert.equal(needsFollowUp(run(3, 0)), false, "nothing due now (rows due later are not counted)");
  assert.equal(needsFollowUp(run(0, 0)), false);
  assert.equal(needsFollowUp(run(0, 0, { claimed: 4, remaining: 2 })), true, "channel jobs left over");
  assert.equal(
    needsFollowUp(run(0, 0, { claimed: 0, remaining: 2 })),
    false,
    "channel jobs nobody could claim",
  );
  assert.equal(needsFollowUp(run(0, 5)), false, "due rows it could not claim (held or resting): no spin");
});

Deno.test("supabase/seed.sql stores the worker URL inside the local stack and .env.example's secret", async () => {
  const seed = await Deno.readTextFile(new URL("../../supabase/seed.sql", import.meta.url));
  const envExample = await Deno.readTextFile(
    new URL("../../supabase/functions/.env.example", import.meta.url),
  );
  const secret = /^CALENDAR_WORKER_SECRET=(.+)$/m.exec(envExample)?.[1];
  assert.ok(secret, ".env.example sets CALENDAR_WORKER_SECRET");
  const call = /calendar_private\.configure_worker_kick\(\s*'([^']+)',\s*'([^']+)'\s*\)/.exec(seed);
  assert.ok(call, "seed.sql calls calendar_private.configure_worker_kick(url, secret)");
  assert.equal(call[1], "http://kong:8000/functions/v1/calendar-sync-worker");
  assert.equal(call[2], secret, "the seed's secret is .env.example's CALENDAR_WORKER_SECRET placeholder");
});
