/**
 * The database that Supabase's own pg_net serves, for tests of the path hosted Supabase takes
 * (appointment change -> trigger -> `net.http_post` with URL and secret from Vault -> gateway ->
 * worker). pg_net's background worker serves one database per cluster (`pg_net.database_name`);
 * `.ci/run` builds pg_net and supabase_vault and points pg_net at `calendar_sync_net`, a database
 * that exists only for these tests: each test run recreates it (bootstrap, migrations, Vault), holds
 * a server-wide advisory lock meanwhile so two runs never share it, and leaves it empty afterwards.
 *
 * Where the extensions are absent (a user's machine), {@link probePgNet} says why, and the tests are
 * ignored with that message, except under CI=true, where they must run ({@link PG_NET_REQUIRED}).
 */
import postgres from "postgres";
import { DEFAULT_SERVER_URL, prepareDatabase } from "../../dev/stack/database.ts";
import { waitFor } from "./poll.ts";

/** The one database pg_net serves on a cluster configured by .ci/run. */
export const NET_DATABASE = "calendar_sync_net";

/** The server the tests run on (as createScratchDatabase chooses it). */
export const TEST_SERVER = Deno.env.get("TEST_DATABASE_URL") || Deno.env.get("DATABASE_URL") ||
  DEFAULT_SERVER_URL;

/**
 * Whether the tests must run (never ignored): under CI=true, unless .ci/run found no vendored
 * sources to build the extensions from and said so with CALENDAR_TEST_PG_NET=optional.
 */
export const PG_NET_REQUIRED = Deno.env.get("CI") === "true" &&
  Deno.env.get("CALENDAR_TEST_PG_NET") !== "optional";

/** Arbitrary, fixed: the advisory lock key that serialises runs using {@link NET_DATABASE}. */
const LOCK_KEY = 7_320_014_551;

/** What {@link probePgNet} found. `why` is set when the tests cannot run here. */
export interface PgNetProbe {
  ready: boolean;
  why: string | null;
}

function withDatabase(server: string, name: string): string {
  const u = new URL(server);
  u.pathname = `/${name}`;
  return u.toString();
}

/**
 * Check the test server: pg_net and supabase_vault available and preloaded, and pg_net serving
 * {@link NET_DATABASE}. Never throws (an unreachable server is a reason too).
 */
export async function probePgNet(server = TEST_SERVER): Promise<PgNetProbe> {
  const sql = postgres(server, { max: 1, connect_timeout: 10, onnotice: () => {} });
  try {
    const [row] = await sql<{ preload: string; net_db: string | null; available: string[] }[]>`
      select current_setting('shared_preload_libraries') as preload,
             current_setting('pg_net.database_name', true) as net_db,
             array(select name from pg_available_extensions
                   where name in ('pg_net', 'supabase_vault') order by name)::text[] as available`;
    const libs = row.preload.split(",").map((s) => s.trim().replace(/^"|"$/g, ""));
    const missing = ["pg_net", "supabase_vault"].filter((n) => !row.available.includes(n));
    if (missing.length) {
      return { ready: false, why: `the extension(s) ${missing.join(", ")} are not installed` };
    }
    const unloaded = ["pg_net", "supabase_vault"].filter((n) => !libs.includes(n));
    if (unloaded.length) {
      return { ready: false, why: `${unloaded.join(", ")} not in shared_preload_libraries` };
    }
    if (row.net_db !== NET_DATABASE) {
      return {
        ready: false,
        why: `pg_net.database_name is '${row.net_db ?? "postgres"}', not the dedicated '${NET_DATABASE}' ` +
          "these tests may recreate",
      };
    }
    return { ready: true, why: null };
  } catch (error) {
    return { ready: false, why: `the server is unreachable (${(error as Error).message})` };
  } finally {
    await sql.end({ timeout: 1 });
  }
}

/** {@link NET_DATABASE}, freshly prepared and locked for this process. */
export interface NetDatabase {
  url: string;
  name: string;
  /** Empty the database again (drop and create) and release the lock. Idempotent. */
  drop(): Promise<void>;
}

async function recreate(admin: postgres.Sql): Promise<void> {
  // pg_net's worker is connected to it: FORCE ends that connection (the worker restarts by itself).
  await admin.unsafe(`drop database if exists ${NET_DATABASE} with (force)`);
  for (let attempt = 1;; attempt++) {
    try {
      await admin.unsafe(`create database ${NET_DATABASE}`);
      return;
    } catch (err) {
      // 55006: template1 is briefly in use by a concurrent CREATE DATABASE.
      if (attempt < 10 && (err as { code?: string }).code === "55006") {
        await new Promise((r) => setTimeout(r, 100 * attempt));
        continue;
      }
      throw err;
    }
  }
}

/**
 * Take the server-wide lock, recreate {@link NET_DATABASE} with the bootstrap and migrations (which
 * enable pg_net), enable Vault as hosted Supabase has it, and wait until pg_net's worker is
 * connected to it again.
 * @throws when the server refuses any step, or the worker does not come back within the poll deadline.
 */
export async function openNetDatabase(server = TEST_SERVER): Promise<NetDatabase> {
  const admin = postgres(server, { max: 1, onnotice: () => {}, idle_timeout: 0 });
  let released = false;
  const release = async () => {
    if (released) return;
    released = true;
    await admin`select pg_advisory_unlock(${LOCK_KEY})`.catch(() => {});
    await admin.end({ timeout: 5 });
  };
  try {
    await admin`select pg_advisory_lock(${LOCK_KEY})`;
    await recreate(admin);
    const url = withDatabase(server, NET_DATABASE);
    await prepareDatabase(url);
    const sql = postgres(url, { max: 1, onnotice: () => {} });
    try {
      await sql`create extension if not exists supabase_vault cascade`;
      const [ext] = await sql`select count(*)::int as n from pg_extension where extname = 'pg_net'`;
      if (ext.n !== 1) throw new Error("the migrations did not enable pg_net in the pg_net database");
    } finally {
      await sql.end({ timeout: 5 });
    }
    await waitFor(
      `pg_net's worker connected to ${NET_DATABASE}`,
      async () =>
        (await admin<{ n: number }[]>`
          select count(*)::int as n from pg_stat_activity
          where datname = ${NET_DATABASE} and backend_type like 'pg_net%'`)[0].n,
      (n) => n > 0,
    );
    let dropped = false;
    return {
      url,
      name: NET_DATABASE,
      async drop() {
        if (dropped) return;
        dropped = true;
        try {
          await recreate(admin);
        } finally {
          await release();
        }
      },
    };
  } catch (err) {
    await release();
    throw err;
  }
}
