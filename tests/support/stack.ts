/**
 * One complete local stack per test file: a scratch database (bootstrap + migrations), the provider
 * sandbox (in this process, dev/sandbox/server.ts), and the gateway hosting every function as a
 * separate OS process, wired together with fresh secrets. Tests talk to it over real HTTP.
 *
 * ```ts
 * const stack = await startTestStack();
 * const staff = await stack.createStaff({});
 * const { location } = await stack.connect(staff);           // the whole OAuth redirect flow
 * const res = await stack.invoke("calendar-list-calendars", { jwt: staff.jwt });
 * await stack.close();
 * ```
 */
import postgres from "postgres";
import { startSandbox } from "../../dev/sandbox/server.ts";
import { createScratchDatabase } from "../../dev/stack/database.ts";
import {
  functionEnv,
  type LocalProvider,
  sandboxMicrosoftClient,
  sandboxOAuthClient,
} from "../../dev/stack/function-env.ts";
import { type GatewayProcess, startGatewayProcess } from "../../dev/stack/gateway.ts";
import { mintJwt } from "../../dev/stack/jwt.ts";
import { generateSecrets, type LocalSecrets } from "../../dev/stack/secrets.ts";
import { type PgBouncer, startPgBouncer } from "./pgbouncer.ts";

/** A staff member: auth.users row, staff row, sandbox account with the same email, and a session JWT. */
export interface TestStaff {
  /** staff.id */
  id: string;
  tenantId: string;
  /** auth.users.id = staff.profile_id = the JWT's sub */
  profileId: string;
  email: string;
  /** A user access token (role authenticated, 1 h). */
  jwt: string;
}

/** The provider sandbox's admin API (dev/sandbox/CONTRACT.md, "Admin API"). */
export interface SandboxClient {
  /** Base URL, http://127.0.0.1:PORT; Google endpoints under /google. */
  url: string;
  /** Call any admin endpoint; JSON in and out. @throws Error with status and body on a non-2xx answer. */
  admin<T = unknown>(method: string, path: string, body?: unknown): Promise<T>;
  /** Events as stored in the sandbox; `calendarId` defaults to the primary calendar (the email). */
  // deno-lint-ignore no-explicit-any
  events(email: string, calendarId?: string, includeDeleted?: boolean): Promise<any[]>;
  /** Provider call counters since the last reset (endpoint names per CONTRACT.md). */
  /**
   * Events of a Microsoft sandbox mailbox as Graph shows them (UTC); `calendarId` defaults to the
   * default calendar.
   */
  // deno-lint-ignore no-explicit-any
  msEvents(email: string, calendarId?: string, includeDeleted?: boolean): Promise<any[]>;
  calls(): Promise<{ total: number; byEndpoint: Record<string, number> }>;
  resetCalls(): Promise<void>;
  /** Inject a fault (CONTRACT.md `POST /_admin/faults`); @returns its id. */
  fault(spec: unknown): Promise<string>;
  clearFaults(): Promise<void>;
  /** Added latency on every /google/** call, ms. */
  latency(ms: number, jitterMs?: number): Promise<void>;
}

/** Options of {@link TestStack.invoke}. */
export interface InvokeOptions {
  /** Default POST (like supabase-js functions.invoke). */
  method?: string;
  /** Sent as JSON (content-type application/json). */
  body?: unknown;
  /** Sent verbatim (content-type application/json unless `headers` says otherwise). */
  rawBody?: string;
  /** Bearer token. Default (undefined): the anon key, as supabase-js sends without a session;
   * null: no Authorization header at all. */
  jwt?: string | null;
  /** Extra headers (override the defaults). */
  headers?: Record<string, string>;
  /** Query parameters. */
  query?: Record<string, string>;
  /** How long to wait for the answer before failing the test (default 120 s): a function that never
   * answers fails its test with its name instead of holding the whole run until its time limit. */
  timeoutMs?: number;
}

/** A running stack; see the module doc. */
export interface TestStack {
  /** Scratch database URL (superuser). */
  dbUrl: string;
  /**
   * PgBouncer in transaction mode in front of the scratch database when the stack was started with
   * `pooler: "pgbouncer"` (or CALENDAR_TEST_POOLER=pgbouncer); the functions and the workers spawned
   * with `env` then reach the database through it (CALENDAR_DB_URL). `sql` stays direct.
   */
  pooler?: PgBouncer;
  /** Superuser connection to the scratch DB, for setup and assertions only. */
  sql: postgres.Sql;
  sandbox: SandboxClient;
  /** http://127.0.0.1:PORT/functions/v1 */
  functionsUrl: string;
  /** What the functions run with (secrets, endpoints); never log it. */
  env: Record<string, string>;
  secrets: LocalSecrets;
  /** Service role key (role service_role, no sub). */
  serviceRoleJwt: string;
  /** Anon key (role anon). */
  anonJwt: string;
  /** A user access token for `sub` (auth.users id); `extra` claims are merged last. */
  userJwt(sub: string, extra?: Record<string, unknown>): Promise<string>;
  /** @returns the new tenant's id. */
  createTenant(name?: string): Promise<string>;
  /** Inserts auth.users + staff (profile_id) and creates the sandbox account with that email.
   * Defaults: a new tenant, a unique `staff-<random>@example.com`, role "staff". */
  createStaff(o: { tenantId?: string; email?: string; role?: "staff" | "admin" }): Promise<TestStaff>;
  /** Call a function through the gateway, `redirect: "manual"`. The caller consumes the body. */
  invoke(name: string, o?: InvokeOptions): Promise<Response>;
  /**
   * The whole OAuth redirect flow as a browser and app would do it: POST `<prefix>-auth-start` with
   * the staff JWT (body `{return_to?}`) -> consent URL; the sandbox consent decision
   * (`POST /_admin/authorize` with login = `login`, default the staff email) -> redirect URL; GET
   * that URL (the gateway's auth-callback) without following redirects; and when the callback
   * leaves the grant pending (`calendar_status=pending`), the app's confirmation: POST
   * `calendar-auth-confirm` `{pending_id, flow_id}` (the flow id auth-start returned, or
   * `confirmFlowId`) with `confirmJwt` (default the staff JWT), unless `confirm: false`.
   * @returns `location`: where the app ends up: the callback's `Location` ("" if none), or after a
   *   confirmation that URL with `calendar_status` set to `connected` (200) or `error` plus
   *   `calendar_error=<the confirm error code>`, and `calendar_pending` removed;
   *   `callbackLocation`: the callback's `Location` as sent; `response`: the callback's response
   *   (body buffered); `confirmation`: the confirm call's status and JSON body, when it was made.
   * @throws Error when auth-start does not answer 200 or the sandbox refuses the authorization.
   */
  connect(staff: TestStaff, o?: {
    scopes?: string[];
    decision?: "approve" | "deny";
    returnTo?: string;
    functionPrefix?: "calendar" | "google-calendar";
    /** auth-start's `provider` (absent: not sent, the deployment's first provider). */
    provider?: "google" | "microsoft";
    login?: string;
    confirm?: boolean;
    confirmJwt?: string;
    confirmFlowId?: string;
  }): Promise<{
    location: string;
    callbackLocation: string;
    response: Response;
    confirmation?: { status: number; body: Record<string, unknown> };
  }>;
  /** Insert an appointment (times ISO 8601 with offset); default status "scheduled". @returns its id. */
  createAppointment(
    o: { tenantId: string; staffId: string; startsAt: string; endsAt: string; status?: string },
  ): Promise<string>;
  /** The gateway's recent output lines (request log and function logs), for diagnosing failures. */
  gatewayLogs(): string[];
  /** Stop the gateway process and the sandbox, close `sql`, drop the scratch database. Idempotent. */
  close(): Promise<void>;
}

function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr as Deno.NetAddr;
  listener.close();
  return port;
}

/** The admin client of the sandbox at `url` (what {@link TestStack.sandbox} is), for tests that start one. */
export function sandboxClient(url: string): SandboxClient {
  const admin = async <T>(method: string, path: string, body?: unknown): Promise<T> => {
    const res = await fetch(`${url}${path}`, {
      method,
      headers: body === undefined ? {} : { "content-type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    if (!res.ok) throw new Error(`sandbox ${method} ${path} answered ${res.status}: ${text.slice(0, 500)}`);
    return (text ? JSON.parse(text) : undefined) as T;
  };
  const enc = encodeURIComponent;
  return {
    url,
    admin,
    events: async (email, calendarId = email, includeDeleted = false) =>
      (await admin<{ items: unknown[] }>(
        "GET",
        `/_admin/accounts/${enc(email)}/calendars/${enc(calendarId)}/events${
          includeDeleted ? "?includeDeleted=true" : ""
        }`,
      )).items,
    msEvents: async (email, calendarId = "default", includeDeleted = false) =>
      (await admin<{ items: unknown[] }>(
        "GET",
        `/_admin/microsoft/accounts/${enc(email)}/calendars/${enc(calendarId)}/events${
          includeDeleted ? "?includeDeleted=true" : ""
        }`,
      )).items,
    calls: async () => {
      const { total, byEndpoint } = await admin<{ total: number; byEndpoint: Record<string, number> }>(
        "GET",
        "/_admin/calls",
      );
      return { total, byEndpoint };
    },
    resetCalls: async () => void await admin("POST", "/_admin/calls/reset"),
    fault: async (spec) => (await admin<{ id: string }>("POST", "/_admin/faults", spec)).id,
    clearFaults: async () => void await admin("DELETE", "/_admin/faults"),
    latency: async (ms, jitterMs) => void await admin("POST", "/_admin/latency", { ms, jitterMs }),
  };
}

/** How the functions reach the database: directly, or through PgBouncer in transaction mode. */
export type TestPooler = "direct" | "pgbouncer";

/** The pooler of stacks started without `pooler`: CALENDAR_TEST_POOLER ("direct" when unset). */
export function defaultTestPooler(): TestPooler {
  const value = Deno.env.get("CALENDAR_TEST_POOLER") || "direct";
  if (value !== "direct" && value !== "pgbouncer") {
    throw new Error(`CALENDAR_TEST_POOLER must be "direct" or "pgbouncer", not "${value}"`);
  }
  return value;
}

/**
 * Start a stack: scratch database on TEST_DATABASE_URL's server (see createScratchDatabase; with
 * `beforeMigrations` run between the bootstrap and the migrations; or `database`, e.g.
 * tests/support/pg-net.ts's), the
 * sandbox (random port, `sandboxSeed` default 42) with this stack's OAuth client, and the gateway
 * (random port) with {@link functionEnv} plus `env` overrides.
 * `pooler` (default {@link defaultTestPooler}): "pgbouncer" puts PgBouncer in transaction mode with
 * `poolSize` server connections (default 2) between the functions and the database.
 * @throws when any part fails to start (what did start is stopped again), and for "pgbouncer"
 *   when PgBouncer is not installed.
 */
export async function startTestStack(
  o: {
    env?: Record<string, string>;
    sandboxSeed?: number;
    /** Runs on the scratch database after the bootstrap, before the migrations (an app's own tables). */
    beforeMigrations?: (url: string) => Promise<void>;
    /** A prepared database to use instead of a scratch one (its `drop` runs on close). */
    database?: { url: string; drop(): Promise<void> };
    pooler?: TestPooler;
    poolSize?: number;
    /** Which providers the deployment configures (default both, see dev/stack/function-env.ts). */
    providers?: readonly LocalProvider[];
  } = {},
): Promise<TestStack> {
  const secrets = generateSecrets();
  const cleanups: (() => Promise<unknown>)[] = [];
  const cleanup = async () => {
    for (const fn of cleanups.splice(0).reverse()) await fn().catch(() => {});
  };
  try {
    const db = o.database ?? await createScratchDatabase("stack", { beforeMigrations: o.beforeMigrations });
    cleanups.push(() => db.drop());
    const sql = postgres(db.url, { max: 4, onnotice: () => {} });
    cleanups.push(() => sql.end({ timeout: 5 }));
    let pooler: PgBouncer | undefined;
    if ((o.pooler ?? defaultTestPooler()) === "pgbouncer") {
      pooler = await startPgBouncer({ databaseUrl: db.url, poolSize: o.poolSize });
      cleanups.push(pooler.close);
    }
    const extraEnv = pooler ? { CALENDAR_DB_URL: pooler.url, ...o.env } : o.env;

    // The gateway's URL must be known before it starts (it is the OAuth redirect URI the sandbox
    // registers), so pick a free port first; retry on the rare race for it.
    let gateway: GatewayProcess | undefined;
    let sandbox: Awaited<ReturnType<typeof startSandbox>> | undefined;
    let env: Record<string, string> = {};
    for (let attempt = 1; !gateway; attempt++) {
      const port = freePort();
      const supabaseUrl = `http://127.0.0.1:${port}`;
      sandbox = await startSandbox({
        port: 0,
        hostname: "127.0.0.1",
        clients: [sandboxOAuthClient(supabaseUrl, secrets)],
        microsoftClients: [sandboxMicrosoftClient(supabaseUrl, secrets)],
        seed: o.sandboxSeed ?? 42,
      });
      env = functionEnv({
        supabaseUrl,
        databaseUrl: db.url,
        sandboxUrl: sandbox.url,
        secrets,
        ...(o.providers ? { providers: o.providers } : {}),
        extra: extraEnv,
      });
      try {
        gateway = await startGatewayProcess({ env, port });
      } catch (err) {
        await sandbox.close();
        if (attempt >= 3 || !/AddrInUse|address already in use/i.test(String(err))) throw err;
      }
    }
    const gw = gateway;
    const sb = sandbox!;
    cleanups.push(() => sb.close());
    cleanups.push(() => gw.close());

    const functionsUrl = `${gw.url}/functions/v1`;
    const issuer = `${env.SUPABASE_URL}/auth/v1`;
    const anonJwt = await mintJwt(secrets.jwtSecret, { role: "anon" });
    const serviceRoleJwt = await mintJwt(secrets.jwtSecret, { role: "service_role" });
    const sandboxApi = sandboxClient(sb.url);
    const userJwt = (sub: string, extra?: Record<string, unknown>) =>
      mintJwt(secrets.jwtSecret, {
        role: "authenticated",
        sub,
        email: typeof extra?.email === "string" ? extra.email : undefined,
        issuer,
        extra,
      });

    const createTenant = async (name = "Test clinic") => {
      const [row] = await sql`insert into public.tenants (name) values (${name}) returning id`;
      return row.id as string;
    };

    const invoke = async (name: string, io: InvokeOptions = {}) => {
      const url = new URL(`${functionsUrl}/${name}`);
      for (const [k, v] of Object.entries(io.query ?? {})) url.searchParams.set(k, v);
      const headers: Record<string, string> = { apikey: anonJwt };
      const jwt = io.jwt === undefined ? anonJwt : io.jwt;
      if (jwt !== null) headers.authorization = `Bearer ${jwt}`;
      let body: string | undefined;
      if (io.rawBody !== undefined) body = io.rawBody;
      else if (io.body !== undefined) body = JSON.stringify(io.body);
      if (body !== undefined) headers["content-type"] = "application/json";
      Object.assign(headers, io.headers);
      const timeoutMs = io.timeoutMs ?? 120_000;
      try {
        return await fetch(url, {
          method: io.method ?? "POST",
          headers,
          body,
          redirect: "manual",
          signal: AbortSignal.timeout(timeoutMs),
        });
      } catch (err) {
        if ((err as Error)?.name === "TimeoutError") {
          throw new Error(`${name} did not answer within ${timeoutMs} ms`, { cause: err });
        }
        throw err;
      }
    };

    const stack: TestStack = {
      dbUrl: db.url,
      pooler,
      sql,
      sandbox: sandboxApi,
      functionsUrl,
      env,
      secrets,
      serviceRoleJwt,
      anonJwt,
      userJwt,
      createTenant,
      async createStaff(so) {
        const tenantId = so.tenantId ?? await createTenant();
        const email = so.email ?? `staff-${crypto.randomUUID().slice(0, 8)}@example.com`;
        const [user] = await sql`insert into auth.users (email) values (${email}) returning id`;
        const [staff] = await sql`
          insert into public.staff (tenant_id, profile_id, email, role)
          values (${tenantId}, ${user.id}, ${email}, ${so.role ?? "staff"}) returning id`;
        await sandboxApi.admin("POST", "/_admin/accounts", { email });
        await sandboxApi.admin("POST", "/_admin/microsoft/accounts", { email });
        return { id: staff.id, tenantId, profileId: user.id, email, jwt: await userJwt(user.id, { email }) };
      },
      invoke,
      async connect(staff, co = {}) {
        const prefix = co.functionPrefix ?? "calendar";
        const start = await invoke(`${prefix}-auth-start`, {
          jwt: staff.jwt,
          body: {
            ...(co.returnTo === undefined ? {} : { return_to: co.returnTo }),
            ...(co.provider === undefined ? {} : { provider: co.provider }),
          },
        });
        const startText = await start.text();
        if (start.status !== 200) {
          throw new Error(`${prefix}-auth-start answered ${start.status}: ${startText.slice(0, 500)}`);
        }
        const { url, flow_id: flowId } = JSON.parse(startText) as { url: string; flow_id: string };
        const { redirect } = await sandboxApi.admin<{ redirect: string }>("POST", "/_admin/authorize", {
          authorizationUrl: url,
          login: co.login ?? staff.email,
          scopes: co.scopes,
          decision: co.decision ?? "approve",
        });
        const res = await fetch(redirect, { redirect: "manual" });
        // Buffer the body so callers need not consume it (no leaked streams in Deno's test sanitizer).
        const buffered = new Response(await res.arrayBuffer(), {
          status: res.status,
          statusText: res.statusText,
          headers: res.headers,
        });
        const callbackLocation = res.headers.get("location") ?? "";
        const back = callbackLocation ? new URL(callbackLocation) : null;
        const pendingId = back?.searchParams.get("calendar_status") === "pending"
          ? back.searchParams.get("calendar_pending")
          : null;
        if (!back || !pendingId || co.confirm === false) {
          return { location: callbackLocation, callbackLocation, response: buffered };
        }
        const confirmRes = await invoke("calendar-auth-confirm", {
          jwt: co.confirmJwt ?? staff.jwt,
          body: { pending_id: pendingId, flow_id: co.confirmFlowId ?? flowId },
        });
        const confirmBody = await confirmRes.json() as Record<string, unknown>;
        back.searchParams.delete("calendar_pending");
        if (confirmRes.status === 200) {
          back.searchParams.set("calendar_status", "connected");
        } else {
          back.searchParams.set("calendar_status", "error");
          const error = confirmBody.error as { code?: string } | undefined;
          back.searchParams.set("calendar_error", error?.code ?? String(confirmRes.status));
        }
        return {
          location: back.toString(),
          callbackLocation,
          response: buffered,
          confirmation: { status: confirmRes.status, body: confirmBody },
        };
      },
      async createAppointment(ao) {
        const [row] = await sql`
          insert into public.appointments (tenant_id, staff_id, starts_at, ends_at, status)
          values (${ao.tenantId}, ${ao.staffId}, ${ao.startsAt}, ${ao.endsAt}, ${ao.status ?? "scheduled"})
          returning id`;
        return row.id as string;
      },
      gatewayLogs: () => gw.logs(),
      close: cleanup,
    };
    return stack;
  } catch (err) {
    await cleanup();
    throw err;
  }
}
