/**
 * Spawning a Deno script of this repository as a separate OS process with exactly the environment
 * given: the gateway (gateway.ts) and the test outbox workers (tests/support/workers.ts) run this
 * way so that nothing of the parent's environment leaks into them beyond tooling variables.
 */

const ROOT = new URL("../../", import.meta.url);

/** Variables passed through from this process besides `env` (tooling only, no secrets). */
const PASS_THROUGH = ["PATH", "HOME", "DENO_DIR", "TMPDIR", "NO_COLOR", "TZ", "LANG"];

/**
 * Start `deno run -A --quiet <main>` from the repository root with `env` plus {@link PASS_THROUGH}
 * (`env` wins), every other variable cleared, and stdin, stdout and stderr piped. The caller must
 * drain stdout and stderr and owns the child's lifetime.
 * @param main a file URL of the script (e.g. `new URL("./gateway-main.ts", import.meta.url)`).
 */
export function spawnDenoScript(main: URL, env: Record<string, string>): Deno.ChildProcess {
  const childEnv: Record<string, string> = {};
  for (const key of PASS_THROUGH) {
    const value = Deno.env.get(key);
    if (value !== undefined) childEnv[key] = value;
  }
  Object.assign(childEnv, env);
  return new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--quiet", main.pathname],
    cwd: ROOT.pathname,
    env: childEnv,
    clearEnv: true,
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
}

/**
 * Read a child's output stream to its end, line by line (without the newline), keeping the last
 * `keep` lines in `recent` for error messages. A child's pipes must be drained for its whole life, or
 * a full pipe blocks it. Resolves when the stream ends; rejects only if reading fails.
 */
export async function pumpLines(
  stream: ReadableStream<Uint8Array>,
  onLine: (line: string) => void,
  recent?: string[],
  keep = 200,
): Promise<void> {
  let buffer = "";
  for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
    buffer += chunk;
    let nl: number;
    while ((nl = buffer.indexOf("\n")) >= 0) {
      const line = buffer.slice(0, nl);
      buffer = buffer.slice(nl + 1);
      if (recent) {
        recent.push(line);
        if (recent.length > keep) recent.shift();
      }
      onLine(line);
    }
  }
}
