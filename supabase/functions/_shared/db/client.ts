/**
 * The isolate's postgres.js client over SUPABASE_DB_URL (DATABASE_URL locally).
 *
 * `prepare: false` because hosted Supabase routes this URL through Supavisor in transaction mode,
 * where named prepared statements break. One client per isolate; a small pool because an edge
 * isolate serves few concurrent requests.
 */
import postgres from "postgres";
import type { Config } from "../config.ts";

export type Sql = postgres.Sql;
export type TransactionSql = postgres.TransactionSql;

let client: Sql | undefined;
let clientUrl: string | undefined;

/** The shared client for `config.databaseUrl`, created on first use. */
export function getSql(config: Pick<Config, "databaseUrl">): Sql {
  if (!client || clientUrl !== config.databaseUrl) {
    client = createSql(config.databaseUrl);
    clientUrl = config.databaseUrl;
  }
  return client;
}

/** A new client (tests, the local stack and the worker pool use their own). */
export function createSql(url: string, opts: { max?: number } = {}): Sql {
  return postgres(url, {
    prepare: false,
    max: opts.max ?? 5,
    idle_timeout: 20,
    connect_timeout: 10,
    onnotice: () => {},
    connection: { application_name: "calendar-sync" },
  });
}

/** Close the shared client (tests and graceful shutdown). */
export async function closeSql(): Promise<void> {
  const c = client;
  client = undefined;
  clientUrl = undefined;
  await c?.end({ timeout: 5 });
}
