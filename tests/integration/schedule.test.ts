/**
 * The pg_cron safety net (supabase/migrations/*_schedule.sql, docs/architecture.md "write" flow): in the
 * database pg_cron serves (cron.database_name, `calendar_sync_cron` as .ci/run configures it), the
 * migrations schedule exactly one job `calendar-sync-worker`, every minute, running
 * `select calendar_private.sweep_outbox()`; re-applying the schedule migration keeps one job; and
 * pg_cron really runs it there (a succeeded run in cron.job_run_details, waited for up to 75 s).
 * On a database without pg_cron (any scratch database) the same migrations apply with a notice.
 *
 * Needs pg_cron in shared_preload_libraries. Without it the pg_cron test is ignored with a message,
 * except when CI=true, where it fails: CI must prove the schedule.
 */
import assert from "node:assert/strict";
import postgres from "postgres";
import {
  createScratchDatabase,
  DEFAULT_SERVER_URL,
  migrationFiles,
  prepareDatabase,
} from "../../dev/stack/database.ts";

/** The database .ci/run points pg_cron at; the test never migrates another one. */
const CRON_DATABASE = "calendar_sync_cron";
const JOB_NAME = "calendar-sync-worker";
const JOB_SCHEDULE = "* * * * *";
const JOB_COMMAND = "select calendar_private.sweep_outbox()";

const SERVER = Deno.env.get("TEST_DATABASE_URL") || Deno.env.get("DATABASE_URL") || DEFAULT_SERVER_URL;
const IS_CI = Deno.env.get("CI") === "true";

interface CronProbe {
  preloaded: boolean;
  cronDatabase: string | null;
  error: string | null;
}

async function probeServer(): Promise<CronProbe> {
  const sql = postgres(SERVER, { max: 1, connect_timeout: 10, onnotice: () => {} });
  try {
    const [row] = await sql<{ preload: string; cron_db: string | null }[]>`
      select current_setting('shared_preload_libraries') as preload,
             current_setting('cron.database_name', true) as cron_db`;
    const libs = row.preload.split(",").map((s) => s.trim().replace(/^"|"$/g, ""));
    return { preloaded: libs.includes("pg_cron"), cronDatabase: row.cron_db, error: null };
  } catch (error) {
    return { preloaded: false, cronDatabase: null, error: (error as Error).message };
  } finally {
    await sql.end({ timeout: 1 });
  }
}

function withDatabase(server: string, name: string): string {
  const u = new URL(server);
  u.pathname = `/${name}`;
  return u.toString();
}

async function scheduleMigration(): Promise<{ name: string; text: string }> {
  const files = (await migrationFiles()).filter((f) => /schedule/.test(f.name));
  assert.equal(files.length, 1, "exactly one supabase/migrations/*_schedule.sql");
  return { name: `${files[0].version}_${files[0].name}.sql`, text: await Deno.readTextFile(files[0].path) };
}

const probe = await probeServer();
const cronReady = probe.preloaded && probe.cronDatabase === CRON_DATABASE;
const why = probe.error
  ? `the server is unreachable (${probe.error})`
  : !probe.preloaded
  ? "pg_cron is not in shared_preload_libraries"
  : `cron.database_name is '${probe.cronDatabase}', not '${CRON_DATABASE}'`;
if (!cronReady && !IS_CI) {
  console.log(
    `schedule.test.ts: ${why}; the pg_cron schedule test is ignored here (CI=true makes it fail). ` +
      "`bash .ci/run` configures pg_cron on this machine's cluster.",
  );
}

Deno.test({
  name:
    `pg_cron runs '${JOB_COMMAND}' every minute as one job '${JOB_NAME}', also after the schedule migration is re-applied`,
  ignore: !cronReady && !IS_CI,
  async fn() {
    assert.ok(cronReady, `CI must prove the pg_cron schedule, but ${why} (see .ci/run)`);

    const admin = postgres(SERVER, { max: 1, onnotice: () => {} });
    try {
      const [found] = await admin`select 1 as one from pg_database where datname = ${CRON_DATABASE}`;
      if (!found) {
        await admin.unsafe(`create database "${CRON_DATABASE}"`).catch((error) => {
          if ((error as { code?: string }).code !== "42P04") throw error; // created concurrently
        });
      }
    } finally {
      await admin.end({ timeout: 1 });
    }

    const url = withDatabase(SERVER, CRON_DATABASE);
    await prepareDatabase(url);
    const sql = postgres(url, { max: 1, onnotice: () => {} });
    try {
      const jobs = () =>
        sql<{ jobid: string; schedule: string; command: string; database: string; active: boolean }[]>`
          select jobid::text, schedule, command, database, active from cron.job where jobname = ${JOB_NAME}`;

      const before = await jobs();
      assert.equal(before.length, 1, `one cron.job named ${JOB_NAME}`);
      assert.equal(before[0].schedule, JOB_SCHEDULE);
      assert.equal(before[0].command, JOB_COMMAND);
      assert.equal(before[0].database, CRON_DATABASE, "the job runs in the database that holds the outbox");
      assert.equal(before[0].active, true);

      // What pg_cron will run each minute is valid here: the sweep counts due rows (an integer).
      const [swept] = await sql.unsafe(before[0].command);
      assert.equal(typeof swept.sweep_outbox, "number");

      const migration = await scheduleMigration();
      await sql.unsafe(migration.text);
      await sql.unsafe(migration.text);
      const after = await jobs();
      assert.equal(after.length, 1, `re-applying ${migration.name} keeps exactly one ${JOB_NAME} job`);
      assert.equal(after[0].jobid, before[0].jobid, "the same job, updated in place");
      assert.equal(after[0].schedule, JOB_SCHEDULE);
      assert.equal(after[0].command, JOB_COMMAND);
    } finally {
      await sql.end({ timeout: 1 });
    }
  },
});

Deno.test({
  name: `pg_cron executes '${JOB_NAME}': a run of the job succeeds within a minute and a bit`,
  ignore: !cronReady && !IS_CI,
  async fn() {
    assert.ok(cronReady, `CI must prove the pg_cron schedule, but ${why} (see .ci/run)`);
    const sql = postgres(withDatabase(SERVER, CRON_DATABASE), { max: 1, onnotice: () => {} });
    try {
      // The job fires at the start of each minute: poll for a finished run (a recent one counts).
      const deadline = Date.now() + 75_000;
      for (;;) {
        const [run] = await sql<{ status: string; return_message: string | null }[]>`
          select d.status, d.return_message
          from cron.job_run_details d join cron.job j using (jobid)
          where j.jobname = ${JOB_NAME} and d.start_time > now() - interval '2 minutes'
            and d.status in ('succeeded', 'failed')
          order by d.runid desc limit 1`;
        if (run) {
          assert.equal(run.status, "succeeded", `the last run failed: ${run.return_message}`);
          return;
        }
        assert.ok(Date.now() < deadline, "pg_cron ran the job no time in 75 s (is its launcher running?)");
        await new Promise((r) => setTimeout(r, 1000));
      }
    } finally {
      await sql.end({ timeout: 1 });
    }
  },
});

Deno.test("on a database without pg_cron the migrations apply and the schedule migration only notices", async () => {
  const scratch = await createScratchDatabase("runner_nocron");
  const notices: string[] = [];
  const sql = postgres(scratch.url, { max: 1, onnotice: (n) => notices.push(String(n.message)) });
  try {
    const [state] = await sql<{ has_cron: boolean; has_sweep: boolean; versions: number }[]>`
      select exists (select 1 from pg_extension where extname = 'pg_cron') as has_cron,
             to_regprocedure('calendar_private.sweep_outbox()') is not null as has_sweep,
             (select count(*)::int from supabase_migrations.schema_migrations) as versions`;
    assert.equal(state.has_cron, false, "a scratch database is not cron.database_name: no pg_cron there");
    assert.equal(state.has_sweep, true, "the schedule migration still created the sweep");
    assert.equal(state.versions, (await migrationFiles()).length, "every migration is recorded");

    const migration = await scheduleMigration();
    await sql.unsafe(migration.text);
    assert.ok(
      notices.some((n) => /pg_cron/.test(n)),
      `a notice names pg_cron; got: ${JSON.stringify(notices)}`,
    );
    const [job] = await sql`select to_regclass('cron.job') as job`;
    assert.equal(job.job, null, "no cron schema was created");
  } finally {
    await sql.end({ timeout: 1 });
    await scratch.drop();
  }
});
