/**
 * The isolate's postgres.js client over CALENDAR_DB_URL ?? SUPABASE_DB_URL (DATABASE_URL locally).
 *
 * Built for a transaction pooler (Supavisor on port 6543, PgBouncer `pool_mode = transaction`),
 * where consecutive transactions of one client may run on different server connections:
 * - `prepare: false`: named prepared statements live in one server session and break there;
 *   postgres.js then sends unnamed statements, which a transaction pooler passes through.
 * - one client per isolate with a pool of CALENDAR_DB_POOL_MAX connections, default 1: an edge
 *   isolate serves few requests at once, and every extra connection is one more pooler client
 *   multiplied by every warm isolate. With one connection, queries of concurrent requests queue.
 * - nothing depends on session state: settings are `set_config(..., true)` (transaction-local),
 *   locks are row locks or `pg_advisory_xact_lock`, and no LISTEN, temporary table or session
 *   `SET` is used (tests/unit/db-session-state.test.ts checks the sources).
 *
 * - every query binds at least one parameter: postgres.js writes the next queued query onto the
 *   connection while a query without parameters is still running (pipelining); a transaction pooler
 *   hands the server connection to another client at the first query's end, the pipelined query's
 *   answer is lost and every query queued on the client waits forever. A query with parameters is
 *   described first, which keeps the connection busy until it ends. Inside `sql.begin` pipelining is
 *   harmless (the pooler keeps the transaction's server connection), but the same rule applies for
 *   simplicity. tests/unit/db-session-state.test.ts checks the sources.
 *
 * With a pool of 1, code inside `sql.begin(async (tx) => ...)` must use `tx` only: a query on the
 * outer `sql` waits for the connection the transaction holds, and both wait forever.
 */
import postgres from "postgres";
import type { Config } from "../config.ts";

export type Sql = postgres.Sql;
export type TransactionSql = postgres.TransactionSql;

/** Connections of a client created without an explicit `max` (CALENDAR_DB_POOL_MAX's default). */
export const DEFAULT_POOL_MAX = 1;

/** What {@link createSql} passes to postgres.js besides the URL (exported for the configuration test). */
export function clientOptions(opts: { max?: number } = {}): postgres.Options<Record<string, never>> {
  return {
    prepare: false,
    max: opts.max ?? DEFAULT_POOL_MAX,
    // Seconds: give an idle connection back to the pooler soon; an isolate may idle for minutes.
    idle_timeout: 20,
    connect_timeout: 10,
    onnotice: () => {},
    connection: { application_name: "calendar-sync" },
  };
}

let client: Sql | undefined;
let clientKey: string | undefined;

/**
 * The isolate's shared client for `config.databaseUrl` with `config.databasePoolMax` connections,
 * created on first use (and again if either changes, which only tests do).
 */
export function getSql(config: Pick<Config, "databaseUrl" | "databasePoolMax">): Sql {
  const key = `${config.databasePoolMax} ${config.databaseUrl}`;
  if (!client || clientKey !== key) {
    client = createSql(config.databaseUrl, { max: config.databasePoolMax });
    clientKey = key;
  }
  return client;
}

/**
 * A new client with {@link clientOptions}: `max` connections, default {@link DEFAULT_POOL_MAX}
 * (the worker processes of tests and benchmarks pass their own).
 */
export function createSql(url: string, opts: { max?: number } = {}): Sql {
  return postgres(url, clientOptions(opts));
}

/** Close the shared client (tests and graceful shutdown). */
export async function closeSql(): Promise<void> {
  const c = client;
  client = undefined;
  clientKey = undefined;
  await c?.end({ timeout: 5 });
}
