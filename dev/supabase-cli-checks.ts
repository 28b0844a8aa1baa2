/**
 * The Supabase CLI step of `npm test` (dev/test.ts): the migrations applied to a fresh database with the
 * real CLI exactly as a user's deploy applies them, and the committed database types compared with
 * what the CLI generates from that database. Each check below counts as one test in the runner's totals.
 *
 * 1. `supabase --version` is the version package.json pins.
 * 2. `supabase db push --remote=<url> --yes` on a database holding only the bootstrap applies every
 *    file of supabase/migrations in order, and says nothing about supabase/config.toml (the CLI loads
 *    and validates it; unknown keys are warned about and would fail this check).
 * 3. `supabase migration list --remote=<url>` lists every local migration as applied and nothing else,
 *    and `supabase_migrations.schema_migrations` holds each version with its name and statements.
 * 4. A second `db push` finds the database up to date.
 * 5. `npm run gen:types` would change nothing: database.types.ts and database.columns.ts are what the
 *    migrations generate (a diff hint and the command to fix are printed otherwise).
 *
 * All of it without Docker: every CLI run has DOCKER_HOST pointing at a socket that does not exist.
 */
import postgres from "postgres";
import { GEN_TYPES_COMMAND, staleFiles, typeFilesFrom } from "./gen-types.ts";
import {
  CLI_BIN,
  cliCommandLine,
  cliVersion,
  createPushedDatabase,
  genTypesArgs,
  listMigrations,
  localMigrationVersions,
  migrationListProblems,
  pushMigrations,
} from "./supabase-cli.ts";
import { migrationFiles } from "./stack/database.ts";

const ROOT = new URL("../", import.meta.url).pathname;

/** The checks' names, in order (what the runner counts as skipped when the CLI cannot run). */
export const CLI_CHECKS = [
  "supabase --version is the pinned version",
  "supabase db push --remote=<url> --yes applies every migration; config.toml accepted",
  "supabase migration list --remote=<url> shows every migration applied; history recorded",
  "supabase db push again: up to date",
  `generated database types are current (${GEN_TYPES_COMMAND})`,
] as const;

/** One check's outcome. */
export interface CheckResult {
  name: string;
  ok: boolean;
  /** Why it failed (multi-line: CLI output, a diff hint). */
  detail?: string;
}

/** The version package.json pins for the `supabase` dev dependency. */
export function pinnedCliVersion(): string {
  const pkg = JSON.parse(Deno.readTextFileSync(`${ROOT}package.json`)) as {
    devDependencies?: Record<string, string>;
  };
  const version = pkg.devDependencies?.supabase;
  if (!version) throw new Error("package.json has no devDependencies.supabase");
  return version;
}

/**
 * Runs the checks on a scratch database of the server in TEST_DATABASE_URL (created and dropped here).
 * @returns null when the CLI cannot run on this machine (with the reason), else one result per check.
 */
export async function runCliChecks(
  log: (message: string) => void,
): Promise<{ unavailable: string } | { results: CheckResult[] }> {
  const cli = await cliVersion();
  if ("unavailable" in cli) return cli;
  const results: CheckResult[] = [];
  const record = (index: number, ok: boolean, detail?: string) => {
    const name = CLI_CHECKS[index];
    results.push(ok ? { name, ok } : { name, ok, detail });
    log(`supabase CLI: ${ok ? "ok" : "FAILED"} - ${name}${ok || !detail ? "" : `\n${detail}`}`);
  };
  const pinned = pinnedCliVersion();
  record(0, cli.version === pinned, `${CLI_BIN} is ${cli.version}, package.json pins ${pinned}: run npm ci`);

  log(`supabase CLI ${cli.version}: scratch database (bootstrap), then db push`);
  let db: Awaited<ReturnType<typeof createPushedDatabase>>;
  try {
    db = await createPushedDatabase("runner_cli");
  } catch (error) {
    record(1, false, (error as Error).message);
    for (let i = 2; i < CLI_CHECKS.length; i++) record(i, false, "not run: db push failed");
    return { results };
  }
  try {
    const files = (await migrationFiles()).map((f) => `${f.version}_${f.name}.sql`);
    const pushProblems = [
      ...(JSON.stringify(db.push.migrations) === JSON.stringify(files)
        ? []
        : [`applied ${JSON.stringify(db.push.migrations)}, expected ${JSON.stringify(files)}`]),
      ...db.push.configComplaints.map((l) => `config: ${l}`),
    ];
    record(1, pushProblems.length === 0, pushProblems.join("\n"));

    try {
      const versions = await localMigrationVersions();
      const problems = migrationListProblems(await listMigrations(db.url), versions);
      problems.push(...(await historyProblems(db.url)));
      record(2, problems.length === 0, problems.join("\n"));
    } catch (error) {
      record(2, false, (error as Error).message);
    }

    try {
      const again = await pushMigrations(db.url);
      record(
        3,
        again.upToDate && again.migrations.length === 0,
        `second push applied ${JSON.stringify(again.migrations)}`,
      );
    } catch (error) {
      record(3, false, (error as Error).message);
    }

    try {
      const stale = await staleFiles(await typeFilesFrom(db.url, cli.version));
      record(
        4,
        stale.length === 0,
        [
          ...stale.map((s) => `${s.path} differs from what the migrations generate:\n${s.hint}`),
          `Fix: \`${GEN_TYPES_COMMAND}\` and commit the result (it runs ` +
          `\`${cliCommandLine(genTypesArgs("<db-url>"))}\` on a freshly pushed database).`,
        ].join("\n"),
      );
    } catch (error) {
      record(4, false, (error as Error).message);
    }
  } finally {
    await db.drop().catch((e) => log(`supabase CLI: could not drop the scratch database: ${e}`));
  }
  return { results };
}

/** Differences between supabase_migrations.schema_migrations and the local migration files. */
async function historyProblems(url: string): Promise<string[]> {
  const files = await migrationFiles();
  const sql = postgres(url, { max: 1, onnotice: () => {} });
  try {
    const rows = await sql<{ version: string; name: string | null; statements: number }[]>`
      select version, name, coalesce(cardinality(statements), 0)::int as statements
      from supabase_migrations.schema_migrations order by version`;
    const problems: string[] = [];
    const byVersion = new Map(rows.map((r) => [r.version, r]));
    for (const f of files) {
      const row = byVersion.get(f.version);
      if (!row) problems.push(`schema_migrations lacks ${f.version}`);
      else if (row.name !== f.name) {
        problems.push(`schema_migrations ${f.version}: name ${row.name}, file ${f.name}`);
      } else if (row.statements === 0) {
        problems.push(`schema_migrations ${f.version}: no statements recorded`);
      }
    }
    if (rows.length !== files.length) {
      problems.push(`schema_migrations has ${rows.length} rows, ${files.length} files`);
    }
    return problems;
  } finally {
    await sql.end({ timeout: 5 });
  }
}
