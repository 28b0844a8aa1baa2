/**
 * Start the Google provider sandbox (CONTRACT.md): an HTTP server emulating Google's OAuth and
 * Calendar v3 endpoints under `/google`, plus the admin API under `/_admin`. Used in-process by tests
 * (port 0) and by `dev/sandbox/main.ts` for `npm start`.
 */
import { ClientRegistry, DEFAULT_CLIENT, type SandboxClientConfig } from "./clients.ts";
import { CallLog, ConcurrencyTracker, FaultBoard } from "./faults.ts";
import { DEFAULT_MS_CLIENT } from "./ms-oauth.ts";
import { MailboxGate } from "./ms-routes.ts";
import { loadStateFile, StateFileWriter } from "./persist.ts";
import { inbound } from "./inbound.ts";
import { createHandler } from "./router.ts";
import type { SandboxRuntime } from "./runtime.ts";
import { SandboxState } from "./state.ts";

/** A registered OAuth client (re-exported for callers of startSandbox). */
export type { SandboxClientConfig } from "./clients.ts";

/** Options of {@link startSandbox}. */
export interface SandboxOptions {
  /** TCP port; 0 (default) picks a free one. The CLI uses 54329. */
  port?: number;
  /** Interface to listen on; default `127.0.0.1`. */
  hostname?: string;
  /** JSON state file: loaded at start when present, saved (debounced, atomically) after changes. */
  stateFile?: string;
  /** Registered OAuth clients; default {@link DEFAULT_CLIENT}. */
  clients?: SandboxClientConfig[];
  /** Registered Microsoft app registrations; default {@link DEFAULT_MS_CLIENT}. */
  microsoftClients?: SandboxClientConfig[];
  /** Seed of the RNG behind probabilistic faults and latency jitter; default 1. */
  seed?: number;
}

/** A running sandbox. */
export interface RunningSandbox {
  /** Base URL, e.g. `http://127.0.0.1:40123` (no trailing slash). */
  url: string;
  /** The live world (accounts, grants, events), for in-process assertions. */
  state: SandboxState;
  /** Stop listening, end held requests, and write the state file if one is used. Idempotent. */
  close(): Promise<void>;
}

/**
 * Start a sandbox and resolve once it listens.
 * @throws Error when the state file exists but is not sandbox state, or the port is taken.
 */
export async function startSandbox(opts: SandboxOptions = {}): Promise<RunningSandbox> {
  const data = opts.stateFile ? await loadStateFile(opts.stateFile) : undefined;
  const state = new SandboxState(data);
  const writer = opts.stateFile ? new StateFileWriter(opts.stateFile, state) : undefined;
  if (writer) state.onChange = () => writer.schedule();
  const closing = new AbortController();
  const sb: SandboxRuntime = {
    state,
    clients: new ClientRegistry(opts.clients ?? [DEFAULT_CLIENT]),
    msClients: new ClientRegistry(opts.microsoftClients ?? [DEFAULT_MS_CLIENT]),
    faults: new FaultBoard(opts.seed ?? 1),
    calls: new CallLog(),
    concurrency: new ConcurrencyTracker(),
    mailboxes: new MailboxGate(),
    closing: closing.signal,
    ...inbound(state, closing.signal),
  };
  const hostname = opts.hostname ?? "127.0.0.1";
  const { promise: listening, resolve } = Promise.withResolvers<Deno.NetAddr>();
  const server = Deno.serve({
    port: opts.port ?? 0,
    hostname,
    onListen: (addr) => resolve(addr as Deno.NetAddr),
    onError: (err) => {
      console.error(`sandbox: ${(err as Error)?.stack ?? err}`);
      return new Response("Internal Server Error", { status: 500 });
    },
  }, createHandler(sb));
  const addr = await listening;
  const host = addr.hostname.includes(":") ? `[${addr.hostname}]` : addr.hostname;
  let closed: Promise<void> | undefined;
  return {
    url: `http://${host}:${addr.port}`,
    state,
    close: () =>
      closed ??= (async () => {
        closing.abort();
        await sb.push.flush();
        await server.shutdown();
        await writer?.flush();
      })(),
  };
}
