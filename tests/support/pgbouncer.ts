/**
 * PgBouncer in transaction mode in front of a test database, the way hosted Supabase puts Supavisor
 * in front of Postgres on port 6543: consecutive transactions of one client may run on different
 * server connections, and each server connection serves many clients in turn. Code that leaves
 * session state behind (a session SET, a session advisory lock, a prepared statement, LISTEN, a
 * temporary table) misbehaves here, and with a small `default_pool_size` it shows quickly.
 *
 * The binary comes from the Debian package `pgbouncer` (.ci/run installs it). Each instance has its
 * own ini and auth file in a temporary directory, listens on a random loopback port, authenticates
 * its one client user with SCRAM (a random password) and reaches the server with the credentials of
 * the given database URL. It is started through a small `sh` watchdog that stops it when this
 * process's end of its stdin closes, so a crashed test run leaves no PgBouncer behind.
 *
 * ```ts
 * const bouncer = await startPgBouncer({ databaseUrl: scratch.url, poolSize: 2 });
 * const sql = postgres(bouncer.url, { prepare: false });
 * await bouncer.close();
 * ```
 */
import postgres from "postgres";
import { pumpLines } from "../../dev/stack/child-process.ts";

/** Default number of server connections per database (PgBouncer's `default_pool_size`). */
export const DEFAULT_POOL_SIZE = 2;

/** The Debian package that provides the binary. */
export const PGBOUNCER_PACKAGE = "pgbouncer";

/** Where the binary was found, or why not. `required` is true under CI=true or CALENDAR_TEST_REQUIRE_PGBOUNCER=1. */
export type PgBouncerAvailability =
  | { available: true; binary: string; required: boolean }
  | { available: false; required: boolean; message: string };

/** A running PgBouncer. */
export interface PgBouncer {
  /** postgres://USER:PASSWORD@127.0.0.1:PORT/DBNAME: the pooled database, for clients. A secret. */
  url: string;
  port: number;
  /** The server connections PgBouncer may open for the database (`default_pool_size`). */
  poolSize: number;
  /** PgBouncer's recent log lines (at most 300), for diagnosing a failure. */
  logs(): string[];
  /** Stop it and remove its directory. Idempotent. */
  close(): Promise<void>;
}

function isExecutable(path: string): boolean {
  try {
    const info = Deno.statSync(path);
    return info.isFile && ((info.mode ?? 0o755) & 0o111) !== 0;
  } catch {
    return false;
  }
}

/**
 * Find PgBouncer: PGBOUNCER_BIN when set, else `pgbouncer` on PATH, else /usr/sbin/pgbouncer (Debian
 * installs it there, which is not on every user's PATH).
 */
export function pgbouncerAvailability(): PgBouncerAvailability {
  const required = Deno.env.get("CI") === "true" || Deno.env.get("CALENDAR_TEST_REQUIRE_PGBOUNCER") === "1";
  const explicit = Deno.env.get("PGBOUNCER_BIN");
  const candidates = explicit ? [explicit] : [
    ...(Deno.env.get("PATH") ?? "").split(":").filter(Boolean).map((d) => `${d}/pgbouncer`),
    "/usr/sbin/pgbouncer",
  ];
  const binary = candidates.find(isExecutable);
  if (binary) return { available: true, binary, required };
  return {
    available: false,
    required,
    message: `PgBouncer not found (${explicit ? `PGBOUNCER_BIN=${explicit}` : "PATH, /usr/sbin"}): the ` +
      `transaction-pooler tests cannot run. Install it: apt-get install -y ${PGBOUNCER_PACKAGE}` +
      (required ? ". CI=true (or CALENDAR_TEST_REQUIRE_PGBOUNCER=1) requires it: this is a failure." : "."),
  };
}

/** A value for PgBouncer's connection-string syntax, refused when it would need quoting. */
function connValue(value: string): string {
  if (/[\s'"\\]/.test(value)) {
    throw new Error("the database URL's user, password or name contains a quote, backslash or space");
  }
  return value;
}

function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr as Deno.NetAddr;
  listener.close();
  return port;
}

function randomToken(bytes: number): string {
  return Array.from(crypto.getRandomValues(new Uint8Array(bytes)), (b) => b.toString(16).padStart(2, "0"))
    .join(
      "",
    );
}

/** PgBouncer refuses to run as root; it then switches to this user (it needs no file after start-up). */
function unprivilegedUser(): string | undefined {
  if (Deno.uid() !== 0) return undefined;
  for (const user of ["postgres", "nobody"]) {
    const out = new Deno.Command("id", { args: ["-u", user], stdout: "null", stderr: "null" }).outputSync();
    if (out.success) return user;
  }
  throw new Error("PgBouncer will not run as root, and neither a 'postgres' nor a 'nobody' user exists");
}

/**
 * Start PgBouncer in transaction mode in front of `databaseUrl`'s database.
 * - `poolSize`: `default_pool_size` (default {@link DEFAULT_POOL_SIZE}); no reserve pool, so at
 *   most this many server connections exist and every client's transactions share them.
 * - `queryWaitTimeoutS`: how long a client may wait for a server connection before PgBouncer
 *   answers an error (default 60), so a pool that is held forever fails a test instead of hanging it.
 * @throws Error when PgBouncer is not installed (see {@link pgbouncerAvailability}) or does not
 *   start; the message holds its output.
 */
export async function startPgBouncer(o: {
  databaseUrl: string;
  poolSize?: number;
  queryWaitTimeoutS?: number;
}): Promise<PgBouncer> {
  const found = pgbouncerAvailability();
  if (!found.available) throw new Error(found.message);
  const server = new URL(o.databaseUrl);
  const dbName = decodeURIComponent(server.pathname.slice(1)) || "postgres";
  const poolSize = o.poolSize ?? DEFAULT_POOL_SIZE;
  const user = "calendar_pooler";
  const password = randomToken(16);
  const backend = [
    `host=${connValue(decodeURIComponent(server.hostname) || "127.0.0.1")}`,
    `port=${server.port || "5432"}`,
    `dbname=${connValue(dbName)}`,
    `user=${connValue(decodeURIComponent(server.username) || "postgres")}`,
    ...(server.password ? [`password=${connValue(decodeURIComponent(server.password))}`] : []),
  ].join(" ");
  const runAs = unprivilegedUser();

  for (let attempt = 1;; attempt++) {
    const dir = await Deno.makeTempDir({ prefix: "calendar-pgbouncer-" });
    const port = freePort();
    await Deno.writeTextFile(`${dir}/userlist.txt`, `"${user}" "${password}"\n`, { mode: 0o600 });
    await Deno.writeTextFile(
      `${dir}/pgbouncer.ini`,
      [
        "[databases]",
        `${dbName} = ${backend}`,
        "",
        "[pgbouncer]",
        "listen_addr = 127.0.0.1",
        `listen_port = ${port}`,
        "unix_socket_dir =",
        "auth_type = scram-sha-256",
        `auth_file = ${dir}/userlist.txt`,
        "pool_mode = transaction",
        `default_pool_size = ${poolSize}`,
        "min_pool_size = 0",
        "reserve_pool_size = 0",
        "max_client_conn = 500",
        // Not reset between clients: leaked session state must stay visible to the next client.
        "server_reset_query =",
        `query_wait_timeout = ${o.queryWaitTimeoutS ?? 60}`,
        "log_connections = 0",
        "log_disconnections = 0",
        "",
      ].join("\n"),
      { mode: 0o600 },
    );
    const args = [...(runAs ? ["-u", runAs] : []), `${dir}/pgbouncer.ini`];
    // The watchdog: PgBouncer runs in the background; when our end of stdin closes (close(), or
    // this process died), `cat` returns and PgBouncer gets SIGTERM; then its directory (password
    // file included) is removed. Exits with PgBouncer's status.
    const child = new Deno.Command("sh", {
      args: [
        "-c",
        'exec 3<&0; "$@" </dev/null & pid=$!; { cat <&3 >/dev/null; kill -TERM "$pid" 2>/dev/null; } & ' +
        'wait "$pid"; code=$?; rm -rf "$PGBOUNCER_DIR"; exit "$code"',
        "pgbouncer-watchdog",
        found.binary,
        ...args,
      ],
      env: { PGBOUNCER_DIR: dir },
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const stdin = child.stdin.getWriter();
    const recent: string[] = [];
    let up: (() => void) | undefined;
    const upPromise = new Promise<void>((resolve) => (up = resolve));
    const pump = (stream: ReadableStream<Uint8Array>) =>
      pumpLines(
        stream,
        (line) => {
          if (/process up/.test(line)) up?.();
        },
        recent,
        300,
      );
    const pumped = Promise.all([pump(child.stdout), pump(child.stderr)]);
    let timer: ReturnType<typeof setTimeout> | undefined;
    const outcome = await Promise.race([
      upPromise.then(() => "up" as const),
      child.status.then(() => "exited" as const),
      new Promise<"timeout">((resolve) => (timer = setTimeout(() => resolve("timeout"), 15_000))),
    ]);
    clearTimeout(timer);

    let closed: Promise<void> | undefined;
    const close = () =>
      closed ??= (async () => {
        await stdin.close().catch(() => {});
        const killer = setTimeout(() => {
          try {
            child.kill("SIGKILL");
          } catch { /* gone */ }
        }, 5_000);
        await child.status;
        clearTimeout(killer);
        await pumped.catch(() => {});
        await Deno.remove(dir, { recursive: true }).catch(() => {});
      })();

    if (outcome === "up") {
      const url = `postgres://${user}:${password}@127.0.0.1:${port}/${encodeURIComponent(dbName)}`;
      return { url, port, poolSize, logs: () => [...recent], close };
    }
    await close();
    const output = recent.slice(-15).join("\n");
    if (attempt < 3 && /Address already in use/i.test(output)) continue;
    throw new Error(`PgBouncer did not start (${outcome}):\n${output}`);
  }
}

/** What one server connection carries over from earlier transactions (all empty/zero when clean). */
export interface ServerSessionState {
  /** The server backend's pid: which server connection answered. */
  pid: number;
  /** `request.jwt.claims` as this transaction sees it ('' when unset). */
  claims: string;
  /** current_user, and session_user: they differ after a leaked SET ROLE. */
  currentUser: string;
  sessionUser: string;
  /** Settings changed at session level (`name=value`), except those PgBouncer itself tracks per client. */
  sessionSettings: string[];
  /** Named prepared statements in the session. */
  preparedStatements: number;
  /** LISTEN channels of the session. */
  listening: number;
  /** Advisory locks the session holds outside any transaction (session locks). */
  advisoryLocks: number;
  /** Tables in the session's temporary schema. */
  tempTables: number;
}

/** Parameters PgBouncer sets on a server connection for each client (its "varcache"). */
const TRACKED_BY_PGBOUNCER = [
  "application_name",
  "client_encoding",
  "datestyle",
  "timezone",
  "standard_conforming_strings",
];

/**
 * Look at every server connection of a PgBouncer pool: `count` clients (set it to the pool size)
 * each open a transaction, read their server session's state and wait until all have read it, so
 * each holds a different server connection. Run it while nothing else uses the pool.
 * @throws Error when the transactions do not all start within `timeoutMs` (default 30 000), e.g.
 *   because another client holds a server connection.
 */
export async function probeServerSessions(
  url: string,
  count: number,
  timeoutMs = 30_000,
): Promise<ServerSessionState[]> {
  const clients = Array.from(
    { length: count },
    () => postgres(url, { prepare: false, max: 1, onnotice: () => {} }),
  );
  const all = Promise.withResolvers<void>();
  all.promise.catch(() => {});
  let arrived = 0;
  const timer = setTimeout(
    () => all.reject(new Error(`only ${arrived} of ${count} probe transactions got a server connection`)),
    timeoutMs,
  );
  try {
    return await Promise.all(clients.map((c) =>
      c.begin(async (tx) => {
        const [row] = await tx<ServerSessionState[]>`
          select pg_backend_pid() as pid,
            coalesce(current_setting('request.jwt.claims', true), '') as claims,
            current_user::text as "currentUser", session_user::text as "sessionUser",
            array(select name || '=' || setting from pg_settings
                  where source = 'session' and lower(name) <> all(${TRACKED_BY_PGBOUNCER}::text[])
                  order by name) as "sessionSettings",
            (select count(*)::int from pg_prepared_statements) as "preparedStatements",
            (select count(*)::int from pg_listening_channels()) as listening,
            (select count(*)::int from pg_locks where locktype = 'advisory' and pid = pg_backend_pid())
              as "advisoryLocks",
            (select count(*)::int from pg_class where relnamespace = pg_my_temp_schema()) as "tempTables"`;
        if (++arrived === count) all.resolve();
        await all.promise;
        return { ...row };
      })
    ));
  } finally {
    clearTimeout(timer);
    await Promise.all(clients.map((c) => c.end({ timeout: 5 })));
  }
}

/** What a server session carries over, in words; empty when it is clean. */
export function leakedState(s: ServerSessionState): string[] {
  const leaks: string[] = [];
  if (s.claims !== "") leaks.push(`request.jwt.claims is set (${s.claims.length} characters)`);
  if (s.currentUser !== s.sessionUser) leaks.push(`role ${s.currentUser} instead of ${s.sessionUser}`);
  for (const setting of s.sessionSettings) leaks.push(`session setting ${setting}`);
  if (s.preparedStatements > 0) leaks.push(`${s.preparedStatements} prepared statement(s)`);
  if (s.listening > 0) leaks.push(`LISTEN on ${s.listening} channel(s)`);
  if (s.advisoryLocks > 0) leaks.push(`${s.advisoryLocks} session advisory lock(s)`);
  if (s.tempTables > 0) leaks.push(`${s.tempTables} temporary table(s)`);
  return leaks;
}
