/**
 * Starts the local gateway (gateway-main.ts) as a separate OS process, the way the functions run
 * apart from the app on Supabase: real HTTP between processes, its own isolate state and env.
 */

import { spawnDenoScript } from "./child-process.ts";

const MAIN = new URL("./gateway-main.ts", import.meta.url);

/** A running gateway process. */
export interface GatewayProcess {
  /** Base URL, `http://127.0.0.1:PORT` (functions at `${url}/functions/v1/<name>`). */
  url: string;
  /** The child's process id. */
  pid: number;
  /** The most recent output lines (stdout and stderr; at most 500), for diagnosing a failed test. */
  logs(): string[];
  /** SIGTERM, wait for exit (SIGKILL after 5 s). Idempotent. */
  close(): Promise<void>;
}

/**
 * Spawn `deno run -A dev/stack/gateway-main.ts` with exactly `env` (plus PORT and PATH/HOME-like
 * tooling variables: nothing else of this process's environment leaks into the functions) and wait
 * for its `{"event":"listening"}` line.
 * - `port`: 0 (default) = a random free port.
 * - `onLog`: receives every later output line (default: kept for `logs()` only). The child's output
 *   is always drained, so a chatty gateway never blocks on a full pipe.
 * - `startTimeoutMs`: deadline for the listening line (default 30 000 ms).
 * @throws Error with the child's stderr when it exits or misses the deadline before listening.
 */
export async function startGatewayProcess(o: {
  env: Record<string, string>;
  port?: number;
  onLog?: (line: string) => void;
  startTimeoutMs?: number;
}): Promise<GatewayProcess> {
  const child = spawnDenoScript(MAIN, {
    ...o.env,
    PORT: String(o.port ?? 0),
    GATEWAY_EXIT_ON_STDIN_EOF: "1",
  });

  const recent: string[] = [];
  const stderrLines: string[] = [];
  let listening: ((url: string) => void) | undefined;
  const urlPromise = new Promise<string>((resolve) => (listening = resolve));
  const remember = (line: string) => {
    recent.push(line);
    if (recent.length > 500) recent.shift();
  };
  const pump = async (stream: ReadableStream<Uint8Array>, isStderr: boolean) => {
    const reader = stream.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        buffer += value;
        let nl: number;
        while ((nl = buffer.indexOf("\n")) >= 0) {
          const line = buffer.slice(0, nl);
          buffer = buffer.slice(nl + 1);
          if (isStderr) {
            stderrLines.push(line);
            if (stderrLines.length > 50) stderrLines.shift();
          }
          if (!isStderr && listening && line.startsWith('{"event":"listening"')) {
            try {
              const url = JSON.parse(line).url as string;
              listening(url);
              listening = undefined;
              continue;
            } catch { /* not our line */ }
          }
          remember(line);
          o.onLog?.(line);
        }
      }
    } catch { /* the child went away */ }
  };
  const pumps = Promise.all([pump(child.stdout, false), pump(child.stderr, true)]);
  const stdin = child.stdin.getWriter();

  let timer: ReturnType<typeof setTimeout> | undefined;
  const deadline = o.startTimeoutMs ?? 30_000;
  const outcome = await Promise.race([
    urlPromise.then((url) => ({ url })),
    child.status.then((s) => ({ exited: s.code })),
    new Promise<{ timeout: true }>((r) => (timer = setTimeout(() => r({ timeout: true }), deadline))),
  ]);
  clearTimeout(timer);

  let closed: Promise<void> | undefined;
  const close = () =>
    closed ??= (async () => {
      try {
        child.kill("SIGTERM");
      } catch { /* already gone */ }
      let killTimer: ReturnType<typeof setTimeout> | undefined;
      const exited = await Promise.race([
        child.status.then(() => true),
        new Promise<boolean>((r) => (killTimer = setTimeout(() => r(false), 5_000))),
      ]);
      clearTimeout(killTimer);
      if (!exited) {
        try {
          child.kill("SIGKILL");
        } catch { /* gone */ }
        await child.status;
      }
      await stdin.close().catch(() => {});
      await pumps;
    })();

  if (!("url" in outcome)) {
    await close();
    const why = "exited" in outcome
      ? `exited with code ${outcome.exited}`
      : `did not report listening within ${deadline} ms`;
    throw new Error(`gateway process ${why}${stderrLines.length ? `:\n${stderrLines.join("\n")}` : ""}`);
  }
  return { url: outcome.url, pid: child.pid, logs: () => [...recent], close };
}
