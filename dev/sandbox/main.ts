/**
 * CLI for the Google provider sandbox: `deno run -A dev/sandbox/main.ts`.
 *
 * Environment: SANDBOX_PORT (default 54329), SANDBOX_HOST (default 127.0.0.1), SANDBOX_STATE_FILE
 * (optional JSON state file), GOOGLE_CLIENT_ID / GOOGLE_CLIENT_SECRET (the registered client; default
 * the sandbox client of CONTRACT.md), MICROSOFT_CLIENT_ID / MICROSOFT_CLIENT_SECRET (the registered
 * Microsoft app; default CONTRACT.md's), SANDBOX_REDIRECT_URIS (comma list, both providers; default the
 * two local callback URLs), SANDBOX_SEED (fault RNG seed). Logs one line with its URL; stops on SIGINT/SIGTERM.
 */
import { DEFAULT_CLIENT } from "./clients.ts";
import { DEFAULT_MS_CLIENT } from "./ms-oauth.ts";
import { startSandbox } from "./server.ts";

/** Parse the CLI environment into sandbox options. @throws Error for a malformed port or seed. */
export function optionsFromEnv(env: (name: string) => string | undefined) {
  const port = Number(env("SANDBOX_PORT") ?? "54329");
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new Error("SANDBOX_PORT must be a port number");
  }
  const seed = Number(env("SANDBOX_SEED") ?? "1");
  if (!Number.isInteger(seed)) throw new Error("SANDBOX_SEED must be an integer");
  const redirectUris = (env("SANDBOX_REDIRECT_URIS") ?? "").split(",").map((s) => s.trim()).filter(Boolean);
  return {
    port,
    hostname: env("SANDBOX_HOST") ?? "127.0.0.1",
    ...(env("SANDBOX_STATE_FILE") ? { stateFile: env("SANDBOX_STATE_FILE") } : {}),
    seed,
    clients: [{
      clientId: env("GOOGLE_CLIENT_ID") ?? DEFAULT_CLIENT.clientId,
      clientSecret: env("GOOGLE_CLIENT_SECRET") ?? DEFAULT_CLIENT.clientSecret,
      redirectUris: redirectUris.length ? redirectUris : DEFAULT_CLIENT.redirectUris,
    }],
    microsoftClients: [{
      clientId: env("MICROSOFT_CLIENT_ID") ?? DEFAULT_MS_CLIENT.clientId,
      clientSecret: env("MICROSOFT_CLIENT_SECRET") ?? DEFAULT_MS_CLIENT.clientSecret,
      redirectUris: redirectUris.length ? redirectUris : DEFAULT_MS_CLIENT.redirectUris,
    }],
  };
}

if (import.meta.main) {
  const opts = optionsFromEnv((name) => Deno.env.get(name));
  const sandbox = await startSandbox(opts);
  console.log(
    `google + microsoft sandbox listening on ${sandbox.url} (clients ${opts.clients[0].clientId}, ` +
      `${opts.microsoftClients[0].clientId}` +
      `${opts.stateFile ? `, state ${opts.stateFile}` : ""})`,
  );
  const stop = async () => {
    await sandbox.close();
    Deno.exit(0);
  };
  Deno.addSignalListener("SIGINT", stop);
  Deno.addSignalListener("SIGTERM", stop);
}
