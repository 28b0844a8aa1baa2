/**
 * The kick as hosted Supabase carries it, with Supabase's own pg_net and Vault (built by .ci/run):
 * appointment INSERT -> trigger -> calendar_private.kick_worker -> `net.http_post` with the URL and
 * secret read from Vault -> the gateway -> calendar-sync-worker -> the sandbox calendar, with no
 * dispatcher and no pg_cron sweep anywhere. Also: what net._http_response records (202, no
 * timeout), the worker's 202 with the drain finished in the background, a backlog larger than one
 * run's row bound draining through the worker's own follow-up kicks, no follow-up when only rows due
 * later remain, and a kick whose Vault secret is a Supabase secret API key (`sb_secret_...`).
 *
 * Needs pg_net and supabase_vault preloaded with pg_net serving `calendar_sync_net`
 * (tests/support/pg-net.ts). Without them the test is ignored with the reason, except when CI=true,
 * where it fails: CI must prove the hosted path (unless .ci/run had no vendored sources to build
 * them from and set CALENDAR_TEST_PG_NET=optional).
 */
import assert from "node:assert/strict";
import { createScratchDatabase } from "../../dev/stack/database.ts";
import { detectPgNetPath } from "../../dev/stack/kick-path.ts";
import { eventIdFor } from "../../supabase/functions/_shared/providers/google/event-id.ts";
import { openNetDatabase, PG_NET_REQUIRED, probePgNet } from "../support/pg-net.ts";
import { waitFor } from "../support/poll.ts";
import { startTestStack, type TestStack } from "../support/stack.ts";

const HOUR = 3_600_000;
/** Rows per worker run in this stack, so a small backlog already needs several runs. */
const RUN_ROWS = 4;
const SECRET_API_KEY = `sb_secret_${crypto.randomUUID().replaceAll("-", "")}`;

const probe = await probePgNet();
if (!probe.ready && !PG_NET_REQUIRED) {
  console.log(
    `pg-net-kick.test.ts: ${probe.why}; the pg_net + Vault kick tests are ignored here (CI=true makes ` +
      "them fail). `bash .ci/run` builds pg_net and supabase_vault from the team's vendored sources " +
      "and configures this machine's cluster.",
  );
}

let slotHour = 40;
function slot(): { startsAt: string; endsAt: string } {
  const start = Math.ceil(Date.now() / HOUR) * HOUR + slotHour++ * HOUR;
  return { startsAt: new Date(start).toISOString(), endsAt: new Date(start + 50 * 60_000).toISOString() };
}

/** A port nothing listens on (bound, then released). */
function closedPort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr as Deno.NetAddr;
  listener.close();
  return port;
}

interface LogLine {
  event?: string;
  function?: string;
  status?: number;
  claimed?: number;
  remaining?: number;
  background?: boolean;
  follow_up?: boolean;
}

function logLines(stack: TestStack): LogLine[] {
  return stack.gatewayLogs().flatMap((line) => {
    try {
      return [JSON.parse(line) as LogLine];
    } catch {
      return [];
    }
  });
}

const workerRequests = (stack: TestStack) =>
  logLines(stack).filter((l) => l.event === "gateway_request" && l.function === "calendar-sync-worker");
const backgroundRuns = (stack: TestStack) =>
  logLines(stack).filter((l) => l.event === "sync_worker_run" && l.background === true);

/** The request kick_worker queues for pg_net, read back inside its transaction. */
interface QueuedKick {
  url: string;
  method: string;
  headers: Record<string, string>;
  timeout_milliseconds: number;
}

/**
 * Run kick_worker in a transaction, read what it queued for pg_net, and roll back, so nothing is
 * sent: net.http_post queues in the caller's transaction.
 */
async function peekKick(sql: TestStack["sql"]): Promise<QueuedKick | undefined> {
  class Peeked extends Error {
    constructor(readonly rows: QueuedKick[]) {
      super("rolled back on purpose");
    }
  }
  try {
    await sql.begin(async (tx) => {
      // A request still queued would make kick_worker skip its own (it coalesces kicks).
      await tx`delete from net.http_request_queue`;
      await tx`select calendar_private.kick_worker('test')`;
      throw new Peeked(
        await tx<QueuedKick[]>`select url, method, headers, timeout_milliseconds from net.http_request_queue`,
      );
    });
  } catch (err) {
    if (err instanceof Peeked) return err.rows[0];
    throw err;
  }
  return undefined;
}

interface HttpResponseRow {
  id: number;
  status_code: number | null;
  timed_out: boolean | null;
  error_msg: string | null;
}

Deno.test({
  name: "pg_net + Vault: trigger -> net.http_post -> gateway -> worker -> calendar, with no dispatcher",
  ignore: !probe.ready && !PG_NET_REQUIRED,
  async fn(t) {
    assert.ok(probe.ready, `CI=true requires pg_net and Vault: ${probe.why}`);
    const database = await openNetDatabase();
    let stack: TestStack;
    try {
      stack = await startTestStack({
        database,
        env: {
          CALENDAR_SYNC_MAX_RUN_ROWS: String(RUN_ROWS),
          // The kicks counted here are the outbox's: inbound sync (on by default) would add channel
          // jobs' kicks (a connect's channel, its notifications) to pg_net's record.
          CALENDAR_INBOUND_SYNC: "off",
          SUPABASE_SECRET_KEYS: JSON.stringify({ default: SECRET_API_KEY }),
        },
      });
    } catch (err) {
      await database.drop();
      throw err;
    }
    const { sql } = stack;
    const workerUrl = `${stack.functionsUrl}/calendar-sync-worker`;
    const configureKick = (url: string, secret: string) =>
      sql`select calendar_private.configure_worker_kick(${url}, ${secret})`;
    const responses = () =>
      sql<HttpResponseRow[]>`
        select id, status_code, timed_out, error_msg from net._http_response order by id`;
    try {
      await configureKick(workerUrl, stack.secrets.workerSecret);
      const staff = await stack.createStaff({});
      const { location } = await stack.connect(staff);
      assert.match(location, /calendar_status=connected/);
      const onCalendar = async (ids: string[]) => {
        const events = new Set((await stack.sandbox.events(staff.email)).map((e) => e.id));
        return ids.filter((id) => events.has(eventIdFor(id))).length;
      };
      const statuses = async (ids: string[]) =>
        (await sql<{ sync_status: string }[]>`
          select sync_status from public.calendar_sync_log
          where appointment_key = any(${ids}::uuid[]) and staff_id = ${staff.id}`).map((r) => r.sync_status);
      const insertAppointments = async (n: number) => {
        const rows = Array.from({ length: n }, () => {
          const { startsAt, endsAt } = slot();
          return { tenant_id: staff.tenantId, staff_id: staff.id, starts_at: startsAt, ends_at: endsAt };
        });
        // One statement: the statement-level trigger queues every row and kicks once.
        const inserted = await sql<{ id: string }[]>`insert into public.appointments ${
          sql(rows)
        } returning id`;
        return inserted.map((r) => r.id);
      };

      await t.step("npm start would choose pg_net + Vault for this database (no pg_cron here)", async () => {
        assert.deepEqual(await detectPgNetPath(stack.dbUrl), { usable: true, pgCron: false });
      });

      await t.step("nothing stands in for pg_net here: no dispatcher LISTENs, no pg_cron", async () => {
        const [row] = await sql<{ listeners: number; cron: number }[]>`
          select (select count(*)::int from pg_stat_activity
                  where datname = current_database() and query ilike 'listen%') as listeners,
                 (select count(*)::int from pg_extension where extname = 'pg_cron') as cron`;
        assert.deepEqual(row, { listeners: 0, cron: 0 });
      });

      await t.step(
        "the kick pg_net sends: Vault's URL, Bearer secret, Prefer: respond-async, 150 s",
        async () => {
          const queued = await peekKick(sql);
          assert.ok(queued, "kick_worker queued a pg_net request");
          assert.equal(queued.url, workerUrl);
          assert.equal(queued.method, "POST");
          assert.equal(queued.timeout_milliseconds, 150_000);
          assert.equal(queued.headers.Authorization, `Bearer ${stack.secrets.workerSecret}`);
          assert.equal(queued.headers.Prefer, "respond-async");
          assert.equal(queued.headers.apikey, undefined, "the project's own worker secret is not an API key");
        },
      );

      await t.step("an appointment INSERT reaches the calendar; net._http_response shows 202", async () => {
        const before = (await responses()).length;
        const [id] = await insertAppointments(1);
        await waitFor("the appointment on the sandbox calendar", () => onCalendar([id]), (n) => n === 1);
        await waitFor("its row synced", () => statuses([id]), (s) => s.join() === "synced");
        const rows = await waitFor("pg_net's record of the kick", responses, (r) => r.length > before);
        for (const row of rows) {
          assert.deepEqual(
            { status: row.status_code, timed_out: row.timed_out, error: row.error_msg },
            { status: 202, timed_out: false, error: null },
          );
        }
        assert.ok(workerRequests(stack).every((l) => l.status === 202), "every worker call answered 202");
      });

      await t.step("the worker answers 202 before its drain, which finishes in the background", async () => {
        // Kicks go nowhere meanwhile, so these rows wait for the direct call below.
        await configureKick(
          `http://127.0.0.1:${closedPort()}/functions/v1/calendar-sync-worker`,
          "x".repeat(40),
        );
        const ids = await insertAppointments(3);
        await stack.sandbox.latency(400);
        try {
          const runsBefore = backgroundRuns(stack).length;
          const res = await stack.invoke("calendar-sync-worker", {
            jwt: stack.secrets.workerSecret,
            body: {},
            headers: { prefer: "respond-async" },
          });
          assert.equal(res.status, 202);
          assert.equal(res.headers.get("preference-applied"), "respond-async");
          assert.deepEqual(await res.json(), { status: "accepted" });
          // Each provider call takes 400 ms: the answer came before any row could be written.
          assert.ok(
            (await statuses(ids)).every((s) => s === "pending"),
            "the rows are still pending at the 202",
          );
          await waitFor("the three events on the sandbox calendar", () => onCalendar(ids), (n) => n === 3);
          const runs = await waitFor(
            "the background run's log line",
            () => Promise.resolve(backgroundRuns(stack).slice(runsBefore)),
            (r) => r.some((l) => (l.claimed ?? 0) > 0),
          );
          assert.equal(runs.find((l) => (l.claimed ?? 0) > 0)?.claimed, 3);
        } finally {
          await stack.sandbox.latency(0);
          await configureKick(workerUrl, stack.secrets.workerSecret);
        }
      });

      await t.step(
        `a backlog of ${
          RUN_ROWS * 4 + 1
        } rows (${RUN_ROWS} per run) drains by the worker's own follow-up kicks`,
        async () => {
          const runsBefore = backgroundRuns(stack).length;
          const responsesBefore = (await responses()).length;
          const ids = await insertAppointments(RUN_ROWS * 4 + 1);
          await waitFor(
            "the whole backlog on the sandbox calendar",
            () => onCalendar(ids),
            (n) => n === ids.length,
            {
              timeoutMs: 60_000,
            },
          );
          await waitFor("every row synced", () => statuses(ids), (s) => s.every((x) => x === "synced"));
          const runs = await waitFor(
            "the last run's log line",
            () => Promise.resolve(backgroundRuns(stack).slice(runsBefore)),
            (r) => r.reduce((n, l) => n + (l.claimed ?? 0), 0) >= ids.length && r.at(-1)?.follow_up === false,
          );
          assert.ok(runs.every((l) => (l.claimed ?? 0) <= RUN_ROWS), "no run claimed more than its bound");
          assert.ok(runs.length >= 5, `${ids.length} rows at ${RUN_ROWS} a run take at least 5 runs`);
          assert.ok(runs.filter((l) => l.follow_up).length >= 4, "the runs kicked their successors");
          const rows = (await responses()).slice(responsesBefore);
          assert.ok(rows.length >= 5, "each run was a pg_net request");
          assert.ok(
            rows.every((r) => r.status_code === 202 && r.timed_out === false && r.error_msg === null),
          );
        },
      );

      await t.step("rows due only later make no follow-up: the chain stops, nothing loops", async () => {
        await configureKick(
          `http://127.0.0.1:${closedPort()}/functions/v1/calendar-sync-worker`,
          "x".repeat(40),
        );
        const later = await insertAppointments(RUN_ROWS + 2);
        await sql`update public.calendar_sync_log set next_attempt_at = now() + interval '1 hour'
          where appointment_key = any(${later}::uuid[])`;
        await configureKick(workerUrl, stack.secrets.workerSecret);
        const runsBefore = backgroundRuns(stack).length;
        const [due] = await insertAppointments(1); // its kick starts the one run
        await waitFor("the due row on the sandbox calendar", () => onCalendar([due]), (n) => n === 1);
        const runs = await waitFor(
          "the run's log line",
          () => Promise.resolve(backgroundRuns(stack).slice(runsBefore)),
          (r) => r.some((l) => (l.claimed ?? 0) > 0),
        );
        const run = runs.find((l) => (l.claimed ?? 0) > 0)!;
        assert.deepEqual({ claimed: run.claimed, remaining: run.remaining, follow_up: run.follow_up }, {
          claimed: 1,
          remaining: 0,
          follow_up: false,
        });
        assert.ok((await statuses(later)).every((s) => s === "pending"), "the later rows still wait");
        assert.equal(await onCalendar(later), 0);
      });

      await t.step(
        "a Supabase secret API key in Vault: sent as apikey and Bearer, and accepted",
        async () => {
          await configureKick(workerUrl, SECRET_API_KEY);
          const queued = await peekKick(sql);
          assert.equal(queued?.headers.apikey, SECRET_API_KEY);
          assert.equal(queued?.headers.Authorization, `Bearer ${SECRET_API_KEY}`);

          const before = (await responses()).length;
          const [id] = await insertAppointments(1);
          await waitFor("the appointment on the sandbox calendar", () => onCalendar([id]), (n) => n === 1);
          const rows = await waitFor("pg_net's record", responses, (r) => r.length > before);
          assert.ok(rows.slice(before).every((r) => r.status_code === 202));
        },
      );

      await t.step(
        "attack: a made-up sb_secret_ key in Vault is refused (401) and syncs nothing",
        async () => {
          await configureKick(workerUrl, `sb_secret_${"0".repeat(32)}`);
          const before = (await responses()).length;
          const [id] = await insertAppointments(1);
          const rows = await waitFor(
            "pg_net's record of the refused kick",
            responses,
            (r) => r.length > before,
          );
          assert.deepEqual(
            rows.slice(before).map((r) => r.status_code),
            [401],
          );
          assert.deepEqual(await statuses([id]), ["pending"]);
          assert.equal(await onCalendar([id]), 0);
        },
      );
    } finally {
      await stack.close();
    }
  },
});

Deno.test("npm start keeps the dispatcher where pg_net cannot carry the kick, and says why", async () => {
  const db = await createScratchDatabase("kickpath");
  try {
    const path = await detectPgNetPath(db.url);
    assert.equal(path.usable, false);
    // A scratch database is never the one pg_net's worker serves (or pg_net is not there at all).
    assert.match(
      (path as { reason: string }).reason,
      /pg_net's worker serves database '[^']+', not '|no pg_net extension/,
    );
    const remote = await detectPgNetPath("postgres://u:p@db.example.com:5432/postgres");
    assert.deepEqual(remote, {
      usable: false,
      reason: "the database is on db.example.com, so its pg_net cannot reach this machine's gateway",
    });
  } finally {
    await db.drop();
  }
});
