/**
 * `npm test` (= `deno run -A dev/test.ts [deno test args...]`): the whole test suite in one command.
 *
 * 1. Type-checks supabase/functions, dev, tests and bench (those that exist) so a type error fails fast.
 * 2. Finds PostgreSQL: TEST_DATABASE_URL ?? DATABASE_URL ?? postgres://postgres@127.0.0.1:5432/postgres.
 *    When none is set and that default server is unreachable outside CI, starts the embedded PostgreSQL
 *    of the local stack (.local/pg); in CI, or when a URL was given explicitly, an unreachable server fails.
 * 3. Supabase CLI (dev/supabase-cli-checks.ts): `supabase db push --remote=<url> --yes` on a fresh
 *    scratch database as a user's deploy runs it, `supabase migration list`, and the committed generated
 *    database types compared with `supabase gen types typescript` (5 checks, each counted as a test).
 *    Without a CLI binary for this machine it prints a loud SKIPPED notice; that counts as a failure when
 *    CI=true or CALENDAR_TEST_REQUIRE_SUPABASE_CLI=1.
 * 4. pgTAP: a scratch database (bootstrap + migrations), `create extension pgtap`, `pg_prove` over
 *    supabase/tests/database/*.test.sql, each TAP line counted. Without pgTAP or pg_prove it prints a loud
 *    SKIPPED notice; that counts as a failure when CI=true or CALENDAR_TEST_REQUIRE_PGTAP=1.
 * 5. `deno test -A --no-check=remote tests/` with TEST_DATABASE_URL set, output streamed live. Extra CLI
 *    args pass through (`npm test -- tests/unit`, `npm test -- --filter refresh`); when none of them is an
 *    existing path, `tests/` is appended.
 * 6. Prints one plain closing line `N passed, N failed[, N skipped]` (CLI checks, pgTAP tests and deno
 *    tests; skipped = ignored deno tests, pgTAP skips, pgTAP files and CLI checks not run) and exits 1
 *    when anything failed or no test ran.
 *
 * Environment: CI, TEST_DATABASE_URL, DATABASE_URL, CALENDAR_TEST_REQUIRE_PGTAP=1,
 * CALENDAR_TEST_REQUIRE_SUPABASE_CLI=1,
 * CALENDAR_TEST_TIMEOUT_MINUTES (deno test wall-clock limit, default 45; its process group is killed
 * after it, so CI never hangs on a stuck test).
 * PgBouncer (tests/support/pgbouncer.ts): tests/integration/pgbouncer.test.ts runs the functions
 * behind PgBouncer in transaction mode; without the `pgbouncer` binary (PATH, /usr/sbin or
 * PGBOUNCER_BIN) it is skipped with a message, and fails when CI=true or
 * CALENDAR_TEST_REQUIRE_PGBOUNCER=1. CALENDAR_TEST_POOLER=pgbouncer runs every integration test's
 * functions behind their own PgBouncer (`CALENDAR_TEST_POOLER=pgbouncer npm test -- tests/integration`).
 */
import postgres from "postgres";
import { createScratchDatabase, DEFAULT_SERVER_URL, openDatabase } from "./stack/database.ts";
import { CLI_CHECKS, runCliChecks } from "./supabase-cli-checks.ts";

/** Debian packages that provide the pgTAP extension and pg_prove for PostgreSQL 15. */
export const PGTAP_PACKAGES = ["postgresql-15-pgtap", "libtap-parser-sourcehandler-pgtap-perl"];

/** Test counts of one step or of the whole run. */
export interface Counts {
  passed: number;
  failed: number;
  skipped: number;
}

/** Deno's closing summary (`ok | 129 passed | 0 failed | 2 ignored (1s)`), top-level tests only. */
export interface DenoSummary {
  ok: boolean;
  passed: number;
  failed: number;
  ignored: number;
  filteredOut: number;
}

/** What a TAP stream (pg_prove --verbose) reported, summed over its files. */
export interface TapCounts {
  /** Files seen (one plan each). */
  files: number;
  /** Tests announced by the plans (`1..N`). */
  planned: number;
  /** `ok N` lines, and `not ok N # TODO` (an expected failure passes, as TAP defines it). */
  passed: number;
  /** `not ok N` lines without a TODO directive. */
  failed: number;
  /** `ok N # SKIP` lines, plus every test of a `1..0 # SKIP` plan. */
  skipped: number;
  /** Planned tests that never ran (a script died part way), counted as failures by the runner. */
  missing: number;
  /** Files whose TAP had no plan at all (a script died before `plan()`), counted as failures. */
  noPlan: number;
}

// deno-lint-ignore no-control-regex
const ANSI = /\x1b\[[0-9;?]*[A-Za-z]/g;

/** Removes ANSI colour and cursor sequences (deno prints them even into pipes). */
export function stripAnsi(text: string): string {
  return text.replace(ANSI, "");
}

/**
 * Parses the last `ok | … passed | … failed …` or `FAILED | …` summary line of `deno test` output
 * (ANSI colours allowed). Step counts in parentheses are not added: a failing step fails its test.
 * Returns null when the output has no summary (deno died before the end, or found no test module).
 */
export function parseDenoSummary(output: string): DenoSummary | null {
  const lines = stripAnsi(output).split(/\r?\n/);
  for (let i = lines.length - 1; i >= 0; i--) {
    const m = /^(ok|FAILED) \| (.*)$/.exec(lines[i].trim());
    if (!m) continue;
    const count = (label: string) => {
      const found = new RegExp(`(\\d+) ${label}`).exec(m[2]);
      return found ? Number(found[1]) : 0;
    };
    if (!/\d+ passed/.test(m[2]) || !/\d+ failed/.test(m[2])) continue;
    return {
      ok: m[1] === "ok",
      passed: count("passed"),
      failed: count("failed"),
      ignored: count("ignored"),
      filteredOut: count("filtered out"),
    };
  }
  return null;
}

/**
 * Counts the top-level TAP lines of `pg_prove --verbose` output (or of plain TAP). Files are separated
 * by pg_prove's `path .. ` headers; without headers the whole text is one file. Indented lines (pgTAP
 * subtests) and `#` diagnostics are not counted.
 */
export function parseTap(output: string): TapCounts {
  const totals: TapCounts = {
    files: 0,
    planned: 0,
    passed: 0,
    failed: 0,
    skipped: 0,
    missing: 0,
    noPlan: 0,
  };
  let file: { plan: number | null; ran: number; seen: boolean } | null = null;
  const close = () => {
    if (!file || !file.seen) return;
    totals.files++;
    if (file.plan === null) totals.noPlan++;
    else totals.missing += Math.max(0, file.plan - file.ran);
  };
  for (const raw of stripAnsi(output).split(/\r?\n/)) {
    const line = raw.replace(/\s+$/, "");
    if (/^\S+\.sql \.\.+( |$)/.test(line)) {
      close();
      file = { plan: null, ran: 0, seen: true };
      continue;
    }
    file ??= { plan: null, ran: 0, seen: false };
    const plan = /^1\.\.(\d+)(.*)$/.exec(line);
    if (plan) {
      file.seen = true;
      file.plan = Number(plan[1]);
      totals.planned += file.plan;
      if (file.plan === 0 && /#\s*skip/i.test(plan[2])) totals.skipped++;
      continue;
    }
    const test = /^(not )?ok \d+\b(.*)$/.exec(line);
    if (!test) continue;
    file.seen = true;
    file.ran++;
    const directive = /#\s*(skip|todo)\b/i.exec(test[2])?.[1].toLowerCase();
    if (directive === "skip") totals.skipped++;
    else if (!test[1] || directive === "todo") totals.passed++;
    else totals.failed++;
  }
  close();
  return totals;
}

/** The plain closing line CI reads: `N passed, N failed` with `, N skipped` when any were skipped. */
export function formatClosingLine(c: Counts): string {
  return `${c.passed} passed, ${c.failed} failed` + (c.skipped > 0 ? `, ${c.skipped} skipped` : "");
}

/**
 * The arguments for `deno test`: `-A --no-check=remote`, then the caller's args, then `tests/` unless
 * one of the caller's args names an existing file or directory (a file list or folder to run instead).
 */
export function denoTestArgs(extra: string[], exists: (path: string) => boolean): string[] {
  const hasPath = extra.some((a) => !a.startsWith("-") && exists(a));
  return ["test", "-A", "--no-check=remote", ...extra, ...(hasPath ? [] : ["tests/"])];
}

const ROOT = new URL("../", import.meta.url).pathname;
const T0 = performance.now();

function log(message: string): void {
  const elapsed = ((performance.now() - T0) / 1000).toFixed(1);
  console.log(`[test +${elapsed}s] ${message}`);
}

function pathExists(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}

function banner(lines: string[]): void {
  const bar = "!".repeat(78);
  console.log(`\n${bar}\n${lines.map((l) => `!! ${l}`).join("\n")}\n${bar}\n`);
}

async function reachable(url: string): Promise<string | null> {
  const sql = postgres(url, { max: 1, connect_timeout: 5, onnotice: () => {} });
  try {
    await sql`select 1`;
    return null;
  } catch (error) {
    return error instanceof Error ? error.message : String(error);
  } finally {
    await sql.end({ timeout: 1 }).catch(() => {});
  }
}

let setsidAvailable: boolean | undefined;

/**
 * A process whose stdout is streamed to ours and kept for parsing. Under `setsid` (Linux) it leads its
 * own process group, so a timeout or Ctrl-C also ends what it spawned (gateway processes, workers).
 */
async function runStreaming(
  cmd: string,
  args: string[],
  o: { env?: Record<string, string>; timeoutMs?: number } = {},
): Promise<{ code: number; output: string; timedOut: boolean }> {
  setsidAvailable ??= await commandExists("setsid");
  const child = new Deno.Command(setsidAvailable ? "setsid" : cmd, {
    args: setsidAvailable ? [cmd, ...args] : args,
    cwd: ROOT,
    env: o.env,
    stdin: "null",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const name = cmd.split("/").pop();
  const forward = (signal: Deno.Signal) => () => {
    try {
      Deno.kill(setsidAvailable ? -child.pid : child.pid, signal);
    } catch { /* already gone */ }
  };
  const onInt = forward("SIGINT");
  const onTerm = forward("SIGTERM");
  Deno.addSignalListener("SIGINT", onInt);
  Deno.addSignalListener("SIGTERM", onTerm);
  let timedOut = false;
  const timer = o.timeoutMs
    ? setTimeout(() => {
      timedOut = true;
      console.log(`\n[test] ${name} ran longer than ${o.timeoutMs! / 60000} min: killing it`);
      forward("SIGTERM")();
      setTimeout(forward("SIGKILL"), 5000);
    }, o.timeoutMs)
    : undefined;
  const decoder = new TextDecoder();
  let output = "";
  const reader = child.stdout.getReader();
  const reading = (async () => {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      await Deno.stdout.write(value);
      output += decoder.decode(value, { stream: true });
      // Summaries come last; keep the tail only so a chatty suite cannot exhaust memory.
      if (output.length > 4_000_000) output = output.slice(-1_000_000);
    }
  })();
  const status = await child.status;
  clearTimeout(timer);
  if (setsidAvailable) {
    // Whatever the run left behind (a gateway a test never closed) would outlive us and hold CI's
    // stderr open: end the group.
    try {
      Deno.kill(-child.pid, "SIGKILL");
      console.log(`[test] ${name} left processes running; killed them (a test does not clean up)`);
    } catch { /* none left: the usual case */ }
  }
  // Stragglers may have held the pipe open: stop reading shortly after the child has gone.
  await Promise.race([reading.catch(() => {}), new Promise((r) => setTimeout(r, 2000))]);
  await reader.cancel().catch(() => {});
  Deno.removeSignalListener("SIGINT", onInt);
  Deno.removeSignalListener("SIGTERM", onTerm);
  return { code: status.code, output: output + decoder.decode(), timedOut };
}

async function typeCheck(): Promise<boolean> {
  const dirs = ["supabase/functions", "dev", "tests", "bench"].filter((d) => pathExists(`${ROOT}${d}`));
  log(`type check: deno check ${dirs.join(" ")}`);
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["check", "--quiet", ...dirs],
    cwd: ROOT,
    stdout: "inherit",
    stderr: "inherit",
  }).output();
  return out.success;
}

async function commandExists(cmd: string): Promise<boolean> {
  try {
    await new Deno.Command(cmd, { args: ["--version"], stdout: "null", stderr: "null" }).output();
    return true;
  } catch {
    return false;
  }
}

function pgEnv(url: string): Record<string, string> {
  const u = new URL(url);
  const env: Record<string, string> = {
    PGHOST: decodeURIComponent(u.hostname) || "127.0.0.1",
    PGPORT: u.port || "5432",
    PGUSER: decodeURIComponent(u.username) || "postgres",
    PGDATABASE: decodeURIComponent(u.pathname.slice(1)) || "postgres",
  };
  if (u.password) env.PGPASSWORD = decodeURIComponent(u.password);
  const sslmode = u.searchParams.get("sslmode");
  if (sslmode) env.PGSSLMODE = sslmode;
  return env;
}

async function runPgTap(serverUrl: string, requirePgTap: boolean): Promise<Counts> {
  const dir = `${ROOT}supabase/tests/database`;
  const files = pathExists(dir)
    ? [...Deno.readDirSync(dir)].filter((e) => e.isFile && e.name.endsWith(".test.sql")).map((e) =>
      `supabase/tests/database/${e.name}`
    ).sort()
    : [];
  if (files.length === 0) {
    log("pgTAP: no supabase/tests/database/*.test.sql files");
    return { passed: 0, failed: 0, skipped: 0 };
  }
  const admin = postgres(serverUrl, { max: 1, onnotice: () => {} });
  let available = false;
  try {
    available = (await admin`select 1 from pg_available_extensions where name = 'pgtap'`).length > 0;
  } finally {
    await admin.end({ timeout: 1 });
  }
  const hasProve = await commandExists("pg_prove");
  if (!available || !hasProve) {
    const what = [!available ? "the pgtap extension (server)" : "", !hasProve ? "pg_prove" : ""].filter(
      Boolean,
    ).join(" and ");
    banner([
      `pgTAP SKIPPED: ${what} not installed; ${files.length} database test file(s) did not run.`,
      `Install: apt-get install -y ${PGTAP_PACKAGES.join(" ")}`,
      requirePgTap
        ? "CI=true or CALENDAR_TEST_REQUIRE_PGTAP=1: this counts as a FAILURE."
        : "Counted as skipped (CI=true or CALENDAR_TEST_REQUIRE_PGTAP=1 makes it a failure).",
    ]);
    return requirePgTap
      ? { passed: 0, failed: 1, skipped: 0 }
      : { passed: 0, failed: 0, skipped: files.length };
  }
  log("pgTAP: scratch database (bootstrap + migrations)");
  const scratch = await createScratchDatabase("runner_pgtap");
  try {
    const db = postgres(scratch.url, { max: 1, onnotice: () => {} });
    try {
      await db`create extension if not exists pgtap with schema extensions`;
    } finally {
      await db.end({ timeout: 1 });
    }
    log(`pgTAP: pg_prove ${files.join(" ")}`);
    const env = { ...Deno.env.toObject(), ...pgEnv(scratch.url) };
    const run = await runStreaming("pg_prove", ["--verbose", ...files], { env, timeoutMs: 10 * 60_000 });
    console.log("");
    const tap = parseTap(run.output);
    let failed = tap.failed + tap.missing + tap.noPlan;
    if (tap.missing > 0) log(`pgTAP: ${tap.missing} planned test(s) never ran: counted as failed`);
    if (tap.noPlan > 0) log(`pgTAP: ${tap.noPlan} file(s) printed no plan: counted as failed`);
    if (run.code !== 0 && failed === 0) {
      log(`pgTAP: pg_prove exited ${run.code} without a failing test line: counted as 1 failure`);
      failed = 1;
    }
    if (tap.files < files.length && failed === 0) {
      log(`pgTAP: TAP from ${tap.files} of ${files.length} files: counted as 1 failure`);
      failed = 1;
    }
    log(`pgTAP: ${tap.passed} passed, ${failed} failed, ${tap.skipped} skipped (${tap.files} files)`);
    return { passed: tap.passed, failed, skipped: tap.skipped };
  } finally {
    await scratch.drop().catch((e) => log(`pgTAP: could not drop the scratch database: ${e}`));
  }
}

async function runSupabaseCli(requireCli: boolean): Promise<Counts> {
  const outcome = await runCliChecks(log);
  if ("unavailable" in outcome) {
    banner([
      `Supabase CLI SKIPPED: ${outcome.unavailable}.`,
      `${CLI_CHECKS.length} checks did not run (db push, migration list, generated types drift).`,
      "The npm package `supabase` (devDependency) ships binaries for darwin, linux and windows on",
      "arm64 and x64: run `npm ci` on one of those.",
      requireCli
        ? "CI=true or CALENDAR_TEST_REQUIRE_SUPABASE_CLI=1: this counts as a FAILURE."
        : "Counted as skipped (CI=true or CALENDAR_TEST_REQUIRE_SUPABASE_CLI=1 makes it a failure).",
    ]);
    return requireCli
      ? { passed: 0, failed: 1, skipped: 0 }
      : { passed: 0, failed: 0, skipped: CLI_CHECKS.length };
  }
  const passed = outcome.results.filter((r) => r.ok).length;
  const failed = outcome.results.length - passed;
  log(`supabase CLI: ${passed} passed, ${failed} failed`);
  return { passed, failed, skipped: 0 };
}

async function runDenoTests(serverUrl: string, extra: string[]): Promise<Counts> {
  const args = denoTestArgs(extra, (p) => pathExists(p.startsWith("/") ? p : `${ROOT}${p}`));
  const minutes = Number(Deno.env.get("CALENDAR_TEST_TIMEOUT_MINUTES") ?? "45");
  log(`deno ${args.join(" ")}`);
  const env = { ...Deno.env.toObject(), TEST_DATABASE_URL: serverUrl };
  const run = await runStreaming(Deno.execPath(), args, { env, timeoutMs: minutes * 60_000 });
  const summary = parseDenoSummary(run.output);
  if (run.timedOut) {
    log(`deno test: killed after ${minutes} min (CALENDAR_TEST_TIMEOUT_MINUTES): counted as 1 failure`);
    return { passed: summary?.passed ?? 0, failed: (summary?.failed ?? 0) + 1, skipped: 0 };
  }
  if (!summary) {
    log(`deno test: exited ${run.code} without a summary (see the error above): counted as 1 failure`);
    return { passed: 0, failed: 1, skipped: 0 };
  }
  let failed = summary.failed;
  if (run.code !== 0 && failed === 0) {
    log(`deno test: exited ${run.code} although its summary says ok: counted as 1 failure`);
    failed = 1;
  }
  log(`deno test: ${summary.passed} passed, ${failed} failed, ${summary.ignored} ignored`);
  return { passed: summary.passed, failed, skipped: summary.ignored };
}

async function findDatabase(isCi: boolean): Promise<{ url: string; stop(): Promise<void> }> {
  const explicit = Deno.env.get("TEST_DATABASE_URL") ?? Deno.env.get("DATABASE_URL");
  const url = explicit ?? DEFAULT_SERVER_URL;
  const safe = url.replace(/\/\/([^:@/]+):[^@/]*@/, "//$1:***@");
  const problem = await reachable(url);
  if (!problem) {
    log(`PostgreSQL: ${safe}`);
    return { url, stop: async () => {} };
  }
  if (isCi || explicit) {
    throw new Error(
      `PostgreSQL at ${safe} is unreachable (${problem}). ` +
        (isCi
          ? "CI runs against the machine's server: start it (pg_ctlcluster ... main start) or set TEST_DATABASE_URL."
          : "Start that server or unset TEST_DATABASE_URL/DATABASE_URL to use the embedded PostgreSQL."),
    );
  }
  log(`PostgreSQL: ${safe} is unreachable (${problem}); starting the embedded PostgreSQL (.local/pg)`);
  const embedded = await openDatabase({ dataDir: `${ROOT}.local/pg` });
  if (embedded.relocated) {
    log(
      `embedded PostgreSQL: running as root and the 'postgres' user cannot reach this checkout, so its data is in ${embedded.dataDir}`,
    );
  }
  return embedded;
}

function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** Runs the steps into `total`; every failure to run a step is counted as one failed test. */
async function runAll(total: Counts): Promise<void> {
  const isCi = Deno.env.get("CI") === "true";
  const requirePgTap = isCi || Deno.env.get("CALENDAR_TEST_REQUIRE_PGTAP") === "1";
  const requireCli = isCi || Deno.env.get("CALENDAR_TEST_REQUIRE_SUPABASE_CLI") === "1";
  const add = (c: Counts) => {
    total.passed += c.passed;
    total.failed += c.failed;
    total.skipped += c.skipped;
  };

  if (!(await typeCheck())) {
    log("type check failed: no tests run");
    add({ passed: 0, failed: 1, skipped: 0 });
    return;
  }

  let db: { url: string; stop(): Promise<void> };
  try {
    db = await findDatabase(isCi);
  } catch (error) {
    log(message(error));
    add({ passed: 0, failed: 1, skipped: 0 });
    return;
  }
  // createScratchDatabase and the integration tests read the server from here.
  Deno.env.set("TEST_DATABASE_URL", db.url);
  try {
    try {
      add(await runSupabaseCli(requireCli));
    } catch (error) {
      log(`supabase CLI: ${message(error)}: counted as 1 failure`);
      add({ passed: 0, failed: 1, skipped: 0 });
    }
    try {
      add(await runPgTap(db.url, requirePgTap));
    } catch (error) {
      log(`pgTAP: ${message(error)}: counted as 1 failure`);
      add({ passed: 0, failed: 1, skipped: 0 });
    }
    try {
      add(await runDenoTests(db.url, Deno.args));
    } catch (error) {
      log(`deno test: ${message(error)}: counted as 1 failure`);
      add({ passed: 0, failed: 1, skipped: 0 });
    }
  } finally {
    await db.stop().catch((e) => log(`could not stop PostgreSQL: ${message(e)}`));
  }
}

async function main(): Promise<number> {
  Deno.chdir(ROOT);
  const total: Counts = { passed: 0, failed: 0, skipped: 0 };
  try {
    await runAll(total);
  } catch (error) {
    log(`runner error: ${message(error)}: counted as 1 failure`);
    total.failed++;
  }
  log(`finished in ${((performance.now() - T0) / 1000).toFixed(1)}s`);
  if (total.passed + total.failed === 0) {
    log("no test ran: that is a failure");
    console.log(formatClosingLine(total));
    return 1;
  }
  // The closing line, alone and last: CI judges the run by it.
  console.log(formatClosingLine(total));
  return total.failed > 0 ? 1 : 0;
}

if (import.meta.main) {
  Deno.exit(await main());
}
