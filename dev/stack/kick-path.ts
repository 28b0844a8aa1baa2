/**
 * How the local stack's kicks reach calendar-sync-worker. Where the database has Supabase's own
 * pg_net and Vault (docs/decisions.md decision 9; CI builds them), the kick travels exactly as on hosted
 * Supabase: the trigger's `net.http_post` with the URL and secret stored in Vault, and pg_cron's
 * sweep (or, where pg_cron does not serve this database, a one-minute timer running the same
 * `calendar_private.sweep_outbox()`). Otherwise the dispatcher (dispatcher.ts) stands in for both.
 */
import postgres from "postgres";

/** The outcome of {@link detectPgNetPath}. */
export type PgNetPath =
  | { usable: true; pgCron: boolean }
  | { usable: false; reason: string };

const LOOPBACK = new Set(["127.0.0.1", "localhost", "::1", "[::1]", ""]);

/**
 * Whether kicks can travel through pg_net + Vault in this database: pg_net installed here (the
 * migrations enable it where available) with its background worker serving this very database
 * (`pg_net.database_name`: it serves one per cluster), Vault installed or installable, and the
 * server on this machine (pg_net then reaches the gateway on 127.0.0.1). Installs supabase_vault
 * when it is available but not yet created, as hosted Supabase has it by default.
 * `pgCron` says whether pg_cron runs the sweep in this database (`cron.database_name`).
 * Never throws: a failure is a reason.
 */
export async function detectPgNetPath(databaseUrl: string): Promise<PgNetPath> {
  const host = new URL(databaseUrl).hostname;
  if (!LOOPBACK.has(host)) {
    return {
      usable: false,
      reason: `the database is on ${host}, so its pg_net cannot reach this machine's gateway`,
    };
  }
  const sql = postgres(databaseUrl, { max: 1, prepare: false, onnotice: () => {}, connect_timeout: 10 });
  try {
    const [row] = await sql<
      {
        db: string;
        net: boolean;
        net_db: string | null;
        vault: boolean;
        vault_available: boolean;
        cron: boolean;
      }[]
    >`
      select current_database() as db,
             exists (select 1 from pg_extension where extname = 'pg_net') as net,
             current_setting('pg_net.database_name', true) as net_db,
             exists (select 1 from pg_extension where extname = 'supabase_vault') as vault,
             exists (select 1 from pg_available_extensions where name = 'supabase_vault') as vault_available,
             exists (select 1 from pg_extension where extname = 'pg_cron')
               and current_setting('cron.database_name', true) = current_database() as cron`;
    if (!row.net) return { usable: false, reason: "the database has no pg_net extension" };
    const servedDb = row.net_db || "postgres";
    if (servedDb !== row.db) {
      return {
        usable: false,
        reason: `pg_net's worker serves database '${servedDb}', not '${row.db}' (pg_net.database_name)`,
      };
    }
    if (!row.vault) {
      if (!row.vault_available) {
        return { usable: false, reason: "the database has no supabase_vault extension" };
      }
      try {
        await sql`create extension if not exists supabase_vault cascade`;
      } catch (err) {
        return { usable: false, reason: `supabase_vault could not be enabled (${(err as Error).message})` };
      }
    }
    return { usable: true, pgCron: row.cron };
  } catch (err) {
    return { usable: false, reason: `the database could not be inspected (${(err as Error).message})` };
  } finally {
    await sql.end({ timeout: 2 });
  }
}

/**
 * Store the worker's URL and secret in Vault (calendar_private.configure_worker_kick), so the
 * trigger's kick POSTs there. @throws the database error when Vault refuses.
 */
export async function storeKickInVault(
  databaseUrl: string,
  workerUrl: string,
  secret: string,
): Promise<void> {
  const sql = postgres(databaseUrl, { max: 1, prepare: false, onnotice: () => {} });
  try {
    await sql`select calendar_private.configure_worker_kick(${workerUrl}, ${secret})`;
  } finally {
    await sql.end({ timeout: 2 });
  }
}

/** A running stand-in for pg_cron's one-minute sweep. */
export interface Sweeper {
  close(): Promise<void>;
}

/**
 * Run `calendar_private.sweep_outbox()` every `intervalMs` (default 60 000, as the migrations
 * schedule it with pg_cron); the sweep kicks through pg_net itself. Failures are logged by SQLSTATE
 * and retried at the next tick.
 */
export function startSweeper(
  o: { databaseUrl: string; intervalMs?: number; log?: (line: string) => void },
): Sweeper {
  const log = o.log ?? ((line: string) => console.log(line));
  const sql = postgres(o.databaseUrl, { max: 1, prepare: false, onnotice: () => {}, idle_timeout: 30 });
  let running: Promise<void> | null = null;
  const sweep = () => {
    if (running) return;
    running = (async () => {
      try {
        const [row] = await sql<{ due: number }[]>`select calendar_private.sweep_outbox() as due`;
        if (row.due > 0) log(`[sweeper] sweep due=${row.due}`);
      } catch (err) {
        log(
          `[sweeper] sweep_failed code=${
            (err as { code?: string })?.code ?? (err as Error)?.name ?? "Error"
          }`,
        );
      }
    })().finally(() => (running = null));
  };
  const timer = setInterval(sweep, o.intervalMs ?? 60_000);
  sweep(); // work queued while nothing ran
  return {
    async close() {
      clearInterval(timer);
      await running;
      await sql.end({ timeout: 2 });
    },
  };
}
