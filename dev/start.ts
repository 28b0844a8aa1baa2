/**
 * `npm start`: the whole local stack in one process tree, without Docker.
 *
 * 1. local secrets (`.local/secrets.json`, generated once);
 * 2. Postgres: DATABASE_URL as is when set, else an embedded Postgres on 127.0.0.1:54322 with its
 *    data in `.local/pg` (kept across restarts; as root in a private directory, a per-checkout
 *    directory under /var/tmp the `postgres` user can reach, see stack/embedded-cluster.ts);
 * 3. the Supabase bootstrap where missing, and the migrations;
 * 4. the demo seed (tenant "Demo Clinic", a user in auth.users, staff member
 *    clinician@example.com in Europe/London), idempotent through fixed ids;
 * 5. the Google sandbox on 127.0.0.1:54329 (state in `.local/sandbox.json`) with the demo account;
 * 6. the functions gateway on http://127.0.0.1:54321/functions/v1/<name> (a child process);
 * 7. the kick path, said on start: where the database has Supabase's pg_net and Vault (served by
 *    pg_net's worker, on this machine), the worker's URL and secret go into Vault and kicks travel
 *    as on hosted Supabase (pg_cron sweeps, or a one-minute timer where pg_cron does not serve this
 *    database); otherwise the dispatcher (the local pg_net + pg_cron: kicks and the sweep).
 *
 * It writes `.local/demo.json` for `npm run demo`, prints the URLs, a demo JWT and example calls,
 * and stops everything cleanly on Ctrl-C (SIGINT) or SIGTERM.
 */
import postgres from "postgres";
import { startSandbox } from "./sandbox/server.ts";
import { embeddedDataDir, openDatabase, prepareDatabase } from "./stack/database.ts";
import { ClusterSetupError } from "./stack/embedded-cluster.ts";
import { type Dispatcher, startDispatcher } from "./stack/dispatcher.ts";
import { detectPgNetPath, startSweeper, storeKickInVault } from "./stack/kick-path.ts";
import { functionEnv, sandboxMicrosoftClient, sandboxOAuthClient } from "./stack/function-env.ts";
import { startGatewayProcess } from "./stack/gateway.ts";
import { mintJwt } from "./stack/jwt.ts";
import { loadOrCreateSecrets, type LocalSecrets } from "./stack/secrets.ts";
import {
  DEMO_EMAIL,
  DEMO_FILE,
  DEMO_MS_EMAIL,
  DEMO_MS_STAFF_ID,
  DEMO_MS_USER_ID,
  DEMO_STAFF_ID,
  DEMO_TENANT_ID,
  DEMO_USER_ID,
  type DemoInfo,
} from "./demo-ids.ts";

const HOST = "127.0.0.1";
const PORTS = { gateway: 54321, database: 54322, sandbox: 54329 } as const;
const LOCAL_DIR = ".local";
const TEN_YEARS_S = 10 * 365 * 24 * 3600;

/** A startup failure with a message meant for the developer (no stack trace needed). */
class StartError extends Error {}

/**
 * Fail early, naming the port, when something already listens on it. Probes by connecting rather
 * than binding: a bind test also fails on sockets in TIME_WAIT left by the previous run, which the
 * servers themselves (SO_REUSEADDR) do not mind.
 */
async function assertPortFree(port: number, what: string): Promise<void> {
  let conn: Deno.TcpConn | undefined;
  try {
    conn = await Deno.connect({ hostname: HOST, port });
  } catch {
    return; // refused: nobody listens
  }
  conn.close();
  throw new StartError(
    `port ${port} (${what}) is already in use on ${HOST}. Is another \`npm start\` running? ` +
      `Stop it (Ctrl-C) or free the port (e.g. \`lsof -i :${port}\`), then try again.`,
  );
}

/**
 * Successful worker calls (several a minute, mostly idle) and runs that found nothing to do only
 * drown the interesting lines. With the dispatcher, every run's summary is dropped: the dispatcher
 * prints its own line for runs that did something.
 */
function isRoutineWorkerLine(line: string, dispatcher: boolean): boolean {
  if (line.includes('"event":"sync_worker_run"')) return dispatcher || line.includes('"claimed":0,');
  return line.includes('"event":"gateway_request"') && line.includes('"function":"calendar-sync-worker"') &&
    (line.includes('"status":200') || line.includes('"status":202'));
}

/** Tenant, auth user and staff member of the demo; safe to run on every start. */
async function seedDemo(databaseUrl: string): Promise<void> {
  const sql = postgres(databaseUrl, { max: 1, prepare: false, onnotice: () => {} });
  try {
    await sql.begin(async (tx) => {
      await tx`insert into public.tenants (id, name) values (${DEMO_TENANT_ID}, 'Demo Clinic')
        on conflict (id) do nothing`;
      await tx`insert into auth.users (id, email) values (${DEMO_USER_ID}, ${DEMO_EMAIL})
        on conflict (id) do nothing`;
      await tx`insert into public.staff (id, tenant_id, profile_id, email, time_zone)
        values (${DEMO_STAFF_ID}, ${DEMO_TENANT_ID}, ${DEMO_USER_ID}, ${DEMO_EMAIL}, 'Europe/London')
        on conflict (id) do update set tenant_id = excluded.tenant_id, profile_id = excluded.profile_id,
          email = excluded.email, time_zone = excluded.time_zone`;
      // A second staff member for Microsoft: one active connection per staff member.
      await tx`insert into auth.users (id, email) values (${DEMO_MS_USER_ID}, ${DEMO_MS_EMAIL})
        on conflict (id) do nothing`;
      await tx`insert into public.staff (id, tenant_id, profile_id, email, time_zone)
        values (${DEMO_MS_STAFF_ID}, ${DEMO_TENANT_ID}, ${DEMO_MS_USER_ID}, ${DEMO_MS_EMAIL}, 'Europe/London')
        on conflict (id) do update set tenant_id = excluded.tenant_id, profile_id = excluded.profile_id,
          email = excluded.email, time_zone = excluded.time_zone`;
    });
  } finally {
    await sql.end({ timeout: 2 });
  }
}

/** Make sure the sandbox has the demo staff member's Google account (kept in the state file). */
async function ensureSandboxAccount(sandboxUrl: string): Promise<void> {
  const res = await fetch(`${sandboxUrl}/_admin/accounts`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ email: DEMO_EMAIL }),
  });
  await res.body?.cancel();
  if (!res.ok) throw new StartError(`the sandbox refused to create the demo account (HTTP ${res.status})`);
  // The same person's Microsoft mailbox, for connecting with provider "microsoft", and the second
  // staff member's, which `npm run demo -- --provider microsoft` connects.
  for (const email of [DEMO_EMAIL, DEMO_MS_EMAIL]) {
    const ms = await fetch(`${sandboxUrl}/_admin/microsoft/accounts`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ email }),
    });
    await ms.body?.cancel();
    if (!ms.ok) {
      throw new StartError(`the sandbox refused to create the demo Microsoft account (HTTP ${ms.status})`);
    }
  }
}

/** `embeddedDataDir`: where the embedded cluster keeps its data, or null when DATABASE_URL is used. */
function banner(info: DemoInfo, embeddedDataDir: string | null): string {
  const fn = info.functionsUrl;
  const now = new Date();
  const weekLater = new Date(now.getTime() + 7 * 24 * 3600 * 1000);
  const lines = [
    "",
    "==============================================================================",
    " Calendar sync local stack is running",
    "==============================================================================",
    ` Functions   ${fn}/<name>`,
    ` Sandbox     ${info.sandboxUrl}  (Google + Microsoft emulators; consent pages + /_admin API)`,
    `             Google ${info.sandboxUrl}/google  Microsoft ${info.sandboxUrl}/microsoft/common/oauth2/v2.0 + ${info.sandboxUrl}/microsoft/graph/v1.0`,
    ` Database    ${
      embeddedDataDir ? `embedded Postgres on ${HOST}:${PORTS.database} (${embeddedDataDir})` : "DATABASE_URL"
    }`,
    ` Demo staff  ${info.email}  staff_id=${info.staffId}  tenant_id=${info.tenantId}`,
    ` (Microsoft) ${info.microsoft.email}  staff_id=${info.microsoft.staffId}`,
    ` Written     ${DEMO_FILE} (URLs, JWTs, ids)`,
    "",
    " Demo user JWT (local secrets only, valid 10 years):",
    `   export JWT=${info.jwt}`,
    "",
    " Try:",
    `   curl -s -X POST ${fn}/calendar-auth-start -H "Authorization: Bearer $JWT" \\`,
    `     -H 'content-type: application/json' -d '{"return_to":"http://127.0.0.1:3000/settings"}'`,
    `   curl -s ${fn}/calendar-list-calendars -H "Authorization: Bearer $JWT"`,
    `   curl -s -X POST ${fn}/calendar-get-availability -H "Authorization: Bearer $JWT" \\`,
    `     -H 'content-type: application/json' \\`,
    `     -d '{"staff_id":"${info.staffId}","time_min":"${now.toISOString()}","time_max":"${weekLater.toISOString()}"}'`,
    "",
    " (open the auth-start `url` in a browser to see the sandbox consent page; the redirect back carries",
    "  calendar_pending=<id>: attach the grant as the same user with the flow_id auth-start returned)",
    `   curl -s -X POST ${fn}/calendar-auth-confirm -H "Authorization: Bearer $JWT" \\`,
    `     -H 'content-type: application/json' -d '{"pending_id":"<calendar_pending>","flow_id":"<flow_id>"}'`,
    "",
    " In another terminal:  npm run demo",
    " Stop with Ctrl-C (data is kept for the next start).",
    "==============================================================================",
    "",
  ];
  return lines.join("\n");
}

/** Things to stop on shutdown, in reverse order of starting. */
type Stopper = { name: string; stop: () => Promise<void> };

async function stopAll(stoppers: Stopper[]): Promise<boolean> {
  let clean = true;
  // Pop one at a time: something started while stopping is still stopped by a later call.
  for (let s = stoppers.pop(); s; s = stoppers.pop()) {
    try {
      await s.stop();
      console.log(`[start] stopped ${s.name}`);
    } catch (err) {
      clean = false;
      console.error(`[start] could not stop ${s.name}: ${(err as Error)?.message ?? err}`);
    }
  }
  return clean;
}

async function main(): Promise<number> {
  const stoppers: Stopper[] = [];
  let shuttingDown: Promise<number> | null = null;
  let shutdownAt = 0;
  const shutdown = (signal: string): Promise<number> => {
    if (shuttingDown) {
      // A terminal's Ctrl-C reaches npm, its shell and us at once, and npm may forward it again:
      // only a later, deliberate second signal skips the clean shutdown.
      if (Date.now() - shutdownAt > 2000) {
        console.error(`[start] ${signal} again: exiting without waiting (children may be left running)`);
        Deno.exit(130);
      }
      return shuttingDown;
    }
    shutdownAt = Date.now();
    console.log(`\n[start] ${signal}: stopping...`);
    shuttingDown = stopAll(stoppers).then((clean) => {
      clearInterval(keepAlive);
      return clean ? 0 : 1;
    });
    return shuttingDown;
  };
  // A signal during startup: let the shutdown finish, then stop what started meanwhile.
  const interrupted = async (): Promise<number> => {
    const code = await shuttingDown!;
    await stopAll(stoppers);
    return code;
  };
  let resolveSignal!: (code: number) => void;
  const signalled = new Promise<number>((resolve) => (resolveSignal = resolve));
  const onSignal = (signal: string) => () => void shutdown(signal).then(resolveSignal);
  Deno.addSignalListener("SIGINT", onSignal("SIGINT"));
  Deno.addSignalListener("SIGTERM", onSignal("SIGTERM"));
  Deno.addSignalListener("SIGHUP", onSignal("SIGHUP"));
  // Keeps Deno alive (signal listeners do not) and notices when the parent (npm's shell) is gone
  // without passing a signal on, e.g. `kill <npm pid>`: then stop as if signalled.
  const parentPid = Deno.ppid;
  const keepAlive = setInterval(() => {
    if (!shuttingDown && Deno.ppid !== parentPid) onSignal("parent process exited")();
  }, 1000);

  try {
    const databaseFromEnv = Boolean(Deno.env.get("DATABASE_URL"));
    await assertPortFree(PORTS.gateway, "functions gateway");
    await assertPortFree(PORTS.sandbox, "Google sandbox");
    await Deno.mkdir(LOCAL_DIR, { recursive: true });
    // Usually .local/pg; elsewhere when running as root in a private directory (see database.ts).
    const dataDir = databaseFromEnv ? "" : await embeddedDataDir(`${LOCAL_DIR}/pg`);
    const shownDataDir = dataDir.endsWith(`/${LOCAL_DIR}/pg`) ? `${LOCAL_DIR}/pg` : dataDir;
    // A cluster left running on it by a killed run is reused by openDatabase, not an error.
    const leftRunning = !databaseFromEnv &&
      await Deno.stat(`${dataDir}/postmaster.pid`).then(() => true, () => false);
    if (!databaseFromEnv && !leftRunning) await assertPortFree(PORTS.database, "embedded Postgres");

    const secrets: LocalSecrets = await loadOrCreateSecrets(LOCAL_DIR);
    console.log("[start] secrets: .local/secrets.json");

    console.log(
      databaseFromEnv
        ? "[start] database: DATABASE_URL"
        : `[start] database: embedded Postgres on ${HOST}:${PORTS.database} (${shownDataDir}; the first start initialises it)`,
    );
    if (shownDataDir !== `${LOCAL_DIR}/pg`) {
      console.log(
        `[start] running as root in a directory the 'postgres' user cannot reach: its data lives in ${dataDir}`,
      );
    }
    const db = await openDatabase({ dataDir: `${LOCAL_DIR}/pg`, port: PORTS.database });
    stoppers.push({
      name: "database",
      stop: async () => {
        let timer: ReturnType<typeof setTimeout> | undefined;
        const timedOut = await Promise.race([
          db.stop().then(() => false),
          new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(true), 15_000))),
        ]);
        clearTimeout(timer);
        if (timedOut) {
          throw new Error(`embedded Postgres did not confirm stopping within 15 s (see ${shownDataDir})`);
        }
        // openDatabase reuses, and leaves running, a cluster it did not start (a killed run's, or
        // one `npm test` started on .local/pg): say so rather than stop what another process may use.
        if (!databaseFromEnv && await Deno.stat(`${dataDir}/postmaster.pid`).then(() => true, () => false)) {
          console.log(
            `[start] the embedded Postgres on ${shownDataDir} was already running before this start and is ` +
              `left running; stop it with: kill -INT $(head -1 ${shownDataDir}/postmaster.pid)`,
          );
        }
      },
    });
    if (shuttingDown) return await interrupted();

    try {
      await prepareDatabase(db.url);
    } catch (err) {
      // The URL may carry a password: name the source, not the value.
      throw new StartError(
        `could not prepare the database (${databaseFromEnv ? "DATABASE_URL" : "embedded Postgres"}): ${
          (err as Error)?.message ?? err
        }`,
      );
    }
    console.log("[start] database: bootstrap and migrations applied");
    await seedDemo(db.url);
    console.log("[start] demo tenant, user and staff member ready");

    const supabaseUrl = `http://${HOST}:${PORTS.gateway}`;
    const sandbox = await startSandbox({
      port: PORTS.sandbox,
      hostname: HOST,
      stateFile: `${LOCAL_DIR}/sandbox.json`,
      clients: [sandboxOAuthClient(supabaseUrl, secrets)],
      microsoftClients: [sandboxMicrosoftClient(supabaseUrl, secrets)],
    });
    stoppers.push({ name: "sandbox (state saved to .local/sandbox.json)", stop: () => sandbox.close() });
    await ensureSandboxAccount(sandbox.url);
    console.log(`[start] sandbox: ${sandbox.url}`);
    if (shuttingDown) return await interrupted();

    const pgNet = await detectPgNetPath(db.url);
    const env = functionEnv({ supabaseUrl, databaseUrl: db.url, sandboxUrl: sandbox.url, secrets });
    const gateway = await startGatewayProcess({
      env,
      port: PORTS.gateway,
      onLog: (line) => {
        if (!isRoutineWorkerLine(line, !pgNet.usable)) console.log(`[functions] ${line}`);
      },
    });
    stoppers.push({ name: "functions gateway", stop: () => gateway.close() });
    const functionsUrl = `${gateway.url}/functions/v1`;
    console.log(`[start] functions: ${functionsUrl}/<name>`);
    if (shuttingDown) return await interrupted();

    const workerUrl = `${functionsUrl}/calendar-sync-worker`;
    if (pgNet.usable) {
      await storeKickInVault(db.url, workerUrl, secrets.workerSecret);
      if (pgNet.pgCron) {
        console.log(
          "[start] kicks: pg_net + Vault, as on hosted Supabase (worker URL and secret in Vault); " +
            "sweep: pg_cron every minute; no dispatcher",
        );
      } else {
        const sweeper = startSweeper({ databaseUrl: db.url });
        stoppers.push({ name: "sweeper", stop: () => sweeper.close() });
        console.log(
          "[start] kicks: pg_net + Vault, as on hosted Supabase (worker URL and secret in Vault); " +
            "sweep: a one-minute timer (pg_cron does not serve this database); no dispatcher",
        );
      }
    } else {
      const dispatcher: Dispatcher = await startDispatcher({
        databaseUrl: db.url,
        workerUrl,
        workerSecret: secrets.workerSecret,
      });
      stoppers.push({ name: "dispatcher", stop: () => dispatcher.close() });
      console.log(
        `[start] kicks: the local dispatcher (LISTEN calendar_sync_kick + one-minute sweep), ` +
          `because ${pgNet.reason}`,
      );
    }

    const info: DemoInfo = {
      functionsUrl,
      sandboxUrl: sandbox.url,
      jwt: await mintJwt(secrets.jwtSecret, {
        role: "authenticated",
        sub: DEMO_USER_ID,
        email: DEMO_EMAIL,
        expiresInSeconds: TEN_YEARS_S,
        issuer: `${supabaseUrl}/auth/v1`,
      }),
      serviceRoleJwt: await mintJwt(secrets.jwtSecret, {
        role: "service_role",
        expiresInSeconds: TEN_YEARS_S,
      }),
      staffId: DEMO_STAFF_ID,
      tenantId: DEMO_TENANT_ID,
      userId: DEMO_USER_ID,
      email: DEMO_EMAIL,
      microsoft: {
        jwt: await mintJwt(secrets.jwtSecret, {
          role: "authenticated",
          sub: DEMO_MS_USER_ID,
          email: DEMO_MS_EMAIL,
          expiresInSeconds: TEN_YEARS_S,
          issuer: `${supabaseUrl}/auth/v1`,
        }),
        staffId: DEMO_MS_STAFF_ID,
        userId: DEMO_MS_USER_ID,
        email: DEMO_MS_EMAIL,
      },
      databaseUrl: db.url,
      pid: Deno.pid,
      startedAt: new Date().toISOString(),
    };
    await Deno.writeTextFile(DEMO_FILE, JSON.stringify(info, null, 2) + "\n", { mode: 0o600 });
    stoppers.push({ name: DEMO_FILE, stop: () => Deno.remove(DEMO_FILE).catch(() => {}) });
    if (shuttingDown) return await interrupted();
    console.log(banner(info, databaseFromEnv ? null : shownDataDir));
  } catch (err) {
    // Set-ups the embedded cluster cannot work in explain themselves; a stack trace would bury that.
    const expected = err instanceof StartError || err instanceof ClusterSetupError;
    const message = expected ? err.message : (err as Error)?.stack ?? String(err);
    console.error(`\n[start] failed: ${message}`);
    if (!shuttingDown) await stopAll(stoppers);
    clearInterval(keepAlive);
    return 1;
  }
  return await signalled;
}

if (import.meta.main) {
  Deno.exit(await main());
}
