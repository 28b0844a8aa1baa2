/**
 * The real Supabase CLI (the pinned npm package `supabase`, node_modules/.bin/supabase) run the way a
 * user's deploy runs it, against any PostgreSQL URL and without Docker:
 *
 * - `supabase db push --remote=<url> --yes`: applies supabase/migrations (loading supabase/config.toml,
 *   which the CLI validates) and records each in `supabase_migrations.schema_migrations`;
 * - `supabase migration list --remote=<url>`: local files against that history;
 * - `supabase gen types typescript --remote=<url> --schema public`: the database types.
 *
 * CLI 3 targets the local stack (`supabase start`, port 54322) unless told `--remote`; these helpers
 * always pass `--remote=<url>`. Every run gets DOCKER_HOST pointing at a socket that does not exist, so
 * a command that would need Docker fails here instead of quietly using a daemon; and telemetry off.
 */
import { createScratchDatabase, migrationFiles } from "./stack/database.ts";

const ROOT = new URL("../", import.meta.url).pathname;

/** The npm bin of the `supabase` package (a node shim that starts the platform binary). */
export const CLI_BIN = `${ROOT}node_modules/.bin/supabase`;

/** What one CLI run printed. JSON results (`--output-format json`) arrive on stdout, messages on stderr. */
export interface CliRun {
  code: number;
  stdout: string;
  stderr: string;
}

/** The `supabase` command as run here, for messages ("how to run it yourself"). */
export function cliCommandLine(args: string[]): string {
  return ["npx", "supabase", ...args.map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a}'`))].join(" ");
}

/**
 * Runs `supabase <args> --workdir <repo>` with Docker made unreachable and telemetry off.
 * @throws Error when node_modules/.bin/supabase cannot be started at all (not installed, no node).
 */
export async function runCli(args: string[]): Promise<CliRun> {
  const env: Record<string, string> = {
    // A socket that cannot exist: the commands we run must not need Docker.
    DOCKER_HOST: "unix:///nonexistent/calendar-sync-no-docker.sock",
    SUPABASE_TELEMETRY_DISABLED: "1",
    DO_NOT_TRACK: "1",
    NO_COLOR: "1",
  };
  const out = await new Deno.Command(CLI_BIN, {
    args: [...args, "--workdir", ROOT],
    cwd: ROOT,
    env,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const decoder = new TextDecoder();
  return { code: out.code, stdout: decoder.decode(out.stdout), stderr: decoder.decode(out.stderr) };
}

/**
 * The CLI's version, or why it cannot run on this machine: not installed (`npm ci` not run), or no
 * binary for this platform (the package ships darwin/linux/windows on arm64/x64 only).
 */
export async function cliVersion(): Promise<{ version: string } | { unavailable: string }> {
  try {
    Deno.statSync(CLI_BIN);
  } catch {
    return { unavailable: "node_modules/.bin/supabase is not installed (run `npm ci`)" };
  }
  let run: CliRun;
  try {
    run = await runCli(["--version"]);
  } catch (error) {
    return { unavailable: `node_modules/.bin/supabase did not start: ${(error as Error).message}` };
  }
  const version = run.stdout.trim();
  if (run.code !== 0 || !/^\d+\.\d+\.\d+/.test(version)) {
    // The npm shim throws (node prints the source line, then `Error: ...`) when no platform package fits.
    const lines = run.stderr.trim().split("\n").map((l) => l.trim());
    const why = lines.find((l) => /^\w*Error: /.test(l)) ?? lines.pop() ?? "";
    return { unavailable: `\`supabase --version\` exited ${run.code}: ${why || "no output"}` };
  }
  return { version };
}

/**
 * `url` as the CLI gets it: a loopback server without `sslmode` gets `sslmode=disable` (the CLI
 * otherwise tries TLS first and prints a warning on every run); other URLs are passed unchanged.
 */
export function cliDatabaseUrl(url: string): string {
  if (!URL.canParse(url)) return url; // a placeholder in a printed command
  const u = new URL(url);
  if (!u.searchParams.has("sslmode") && ["127.0.0.1", "localhost", "[::1]"].includes(u.hostname)) {
    u.searchParams.set("sslmode", "disable");
  }
  return u.toString();
}

/**
 * Lines where the CLI says it ignored or could not read part of supabase/config.toml (`WARN: ...
 * config.toml has keys this version ... does not recognize`, `failed to load config`, ...).
 */
export function configComplaints(stderr: string): string[] {
  return stderr.split("\n").map((l) => l.trim()).filter((l) =>
    /config\.toml|failed to load config|failed reading config/i.test(l)
  );
}

/** The result of `supabase db push --output-format json`. */
export interface PushResult {
  upToDate: boolean;
  /** Migration file names applied by this push, in order. */
  migrations: string[];
  /** Config complaints on stderr (see {@link configComplaints}). */
  configComplaints: string[];
}

function parseJson<T>(run: CliRun, what: string): T {
  try {
    return JSON.parse(run.stdout) as T;
  } catch {
    throw new Error(`${what}: no JSON on stdout (exit ${run.code})\n${run.stderr.trim()}`);
  }
}

function failIfExited(run: CliRun, what: string): void {
  if (run.code !== 0) throw new Error(`${what} exited ${run.code}\n${(run.stderr + run.stdout).trim()}`);
}

/**
 * `supabase db push --remote=<url> --yes`: applies the pending migrations to `url` as a deploy does.
 * @throws Error with the CLI's output when it exits non-zero.
 */
export async function pushMigrations(url: string): Promise<PushResult> {
  const args = ["db", "push", `--remote=${cliDatabaseUrl(url)}`, "--yes", "--output-format", "json"];
  const run = await runCli(args);
  failIfExited(run, "supabase db push");
  const result = parseJson<{ upToDate: boolean; migrations: string[] }>(run, "supabase db push");
  return {
    upToDate: result.upToDate,
    migrations: result.migrations,
    configComplaints: configComplaints(run.stderr),
  };
}

/** One line of `supabase migration list`: a version present locally, remotely, or both. */
export interface MigrationListEntry {
  local: string | null;
  remote: string | null;
}

/**
 * `supabase migration list --remote=<url>`.
 * @throws Error with the CLI's output when it exits non-zero.
 */
export async function listMigrations(url: string): Promise<MigrationListEntry[]> {
  const run = await runCli([
    "migration",
    "list",
    `--remote=${cliDatabaseUrl(url)}`,
    "--output-format",
    "json",
  ]);
  failIfExited(run, "supabase migration list");
  const result = parseJson<{ migrations: { local?: string; remote?: string }[] }>(
    run,
    "supabase migration list",
  );
  return result.migrations.map((m) => ({ local: m.local || null, remote: m.remote || null }));
}

/**
 * What is wrong with a migration list after a push: local files the database lacks, and versions the
 * database has that no local file matches. Empty when every local migration is applied.
 */
export function migrationListProblems(list: MigrationListEntry[], localVersions: string[]): string[] {
  const problems: string[] = [];
  const listed = new Set(list.filter((m) => m.local).map((m) => m.local));
  for (const v of localVersions) {
    if (!listed.has(v)) problems.push(`${v}: local file not listed`);
  }
  for (const m of list) {
    if (m.local && !m.remote) problems.push(`${m.local}: not applied on the database`);
    if (!m.local && m.remote) problems.push(`${m.remote}: applied on the database, no local file`);
    if (m.local && m.remote && m.local !== m.remote) problems.push(`${m.local} listed against ${m.remote}`);
  }
  return problems;
}

/** The `gen types` arguments: TypeScript, the public schema (ours and the host tables'). */
export function genTypesArgs(url: string): string[] {
  return ["gen", "types", "typescript", `--remote=${cliDatabaseUrl(url)}`, "--schema", "public"];
}

/**
 * `supabase gen types typescript --remote=<url> --schema public`, as the CLI prints it (unformatted).
 * @throws Error with the CLI's output when it exits non-zero or prints nothing.
 */
export async function generateTypesRaw(url: string): Promise<string> {
  const run = await runCli(genTypesArgs(url));
  failIfExited(run, "supabase gen types");
  if (!run.stdout.includes("export type Database")) {
    throw new Error(`supabase gen types printed no Database type\n${run.stderr.trim()}`);
  }
  return run.stdout;
}

/**
 * A scratch database built as a user's deploy builds one: created empty, given what Supabase
 * provides (dev/sql/supabase-bootstrap.sql), then `supabase db push --remote=<url> --yes`.
 * @returns the database, and what the push reported.
 * @throws Error when the push fails (the database is dropped again).
 */
export async function createPushedDatabase(
  prefix: string,
): Promise<{ url: string; name: string; push: PushResult; drop(): Promise<void> }> {
  // Bootstrap only: the migrations are the CLI's to apply.
  const scratch = await createScratchDatabase(prefix, { migrations: false });
  try {
    const push = await pushMigrations(scratch.url);
    return { ...scratch, push };
  } catch (error) {
    await scratch.drop().catch(() => {});
    throw error;
  }
}

/** Versions of supabase/migrations/*.sql, in order. */
export async function localMigrationVersions(): Promise<string[]> {
  return (await migrationFiles()).map((f) => f.version);
}
