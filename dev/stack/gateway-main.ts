/**
 * The local gateway process: stands in for Supabase's API gateway plus edge runtime. Hosts every
 * function of supabase/functions/_shared/handlers/registry.ts at `/functions/v1/<name>` (and
 * sub-paths), applying supabase/config.toml's verify_jwt before the handler runs. Start it with
 * startGatewayProcess (gateway.ts); run directly: `deno run -A dev/stack/gateway-main.ts`.
 *
 * Environment: the function environment (function-env.ts) plus PORT (0 = random; default 54321)
 * and GATEWAY_HOSTNAME (default 127.0.0.1).
 * stdout: one `{"event":"listening","url":"http://127.0.0.1:PORT"}` line first; afterwards the
 * functions' own JSON log lines and one `{"event":"gateway_request", method, function, status, ms,
 * request_id}` line per request. Never headers, bodies, tokens or query strings.
 * Exits on SIGTERM / SIGINT (in-flight requests finish first) and when its stdin closes (the
 * parent died), so a crashed test run leaves no gateway behind.
 */
import { toFetchHandler } from "../../supabase/functions/_shared/serve.ts";
import { FUNCTIONS } from "../../supabase/functions/_shared/handlers/registry.ts";
import type { JwtKeys } from "../../supabase/functions/_shared/auth.ts";
import { parseJwksEnv } from "../../supabase/functions/_shared/config.ts";
import { gatewayJwtError, readVerifyJwt } from "./verify-jwt.ts";

const CONFIG_TOML = new URL("../../supabase/config.toml", import.meta.url);
const PREFIX = "/functions/v1/";

const verify = await readVerifyJwt(CONFIG_TOML);
const handlers = new Map(Object.entries(FUNCTIONS).map(([name, h]) => [name, toFetchHandler(h)]));

// The same reading of SUPABASE_JWKS as the functions' (array or key set; unusable -> remote JWKS).
const { jwks, problem: jwksProblem } = parseJwksEnv(Deno.env.get("SUPABASE_JWKS"));
const keys: JwtKeys = {
  jwtSecret: Deno.env.get("SUPABASE_JWT_SECRET") || Deno.env.get("CALENDAR_JWT_SECRET") || undefined,
  jwks,
  jwksProblem,
  supabaseUrl: (Deno.env.get("SUPABASE_URL") ?? "").replace(/\/$/, ""),
};

function gatewayAnswer(status: number, code: number | string, message: string): Response {
  return new Response(JSON.stringify({ code, message }), {
    status,
    headers: { "content-type": "application/json", "x-request-id": crypto.randomUUID() },
  });
}

async function route(req: Request): Promise<{ name: string; res: Response }> {
  const path = new URL(req.url).pathname;
  if (!path.startsWith(PREFIX)) {
    return { name: "-", res: gatewayAnswer(404, "NOT_FOUND", "Requested function was not found") };
  }
  let name: string;
  try {
    name = decodeURIComponent(path.slice(PREFIX.length).split("/")[0]).slice(0, 80);
  } catch {
    return { name: "-", res: gatewayAnswer(404, "NOT_FOUND", "Requested function was not found") };
  }
  const handler = handlers.get(name);
  if (!handler) return { name, res: gatewayAnswer(404, "NOT_FOUND", "Requested function was not found") };
  // Browsers send preflights without credentials: they reach the function (which answers CORS).
  if (req.method !== "OPTIONS" && (verify.get(name) ?? true)) {
    const problem = await gatewayJwtError(req, keys);
    if (problem) return { name, res: gatewayAnswer(401, 401, problem) };
  }
  return { name, res: await handler(req) };
}

const port = Number(Deno.env.get("PORT") ?? "54321");
const hostname = Deno.env.get("GATEWAY_HOSTNAME") ?? "127.0.0.1";
const server = Deno.serve({
  port,
  hostname,
  onListen: (addr) => {
    console.log(JSON.stringify({ event: "listening", url: `http://${addr.hostname}:${addr.port}` }));
  },
}, async (req) => {
  const started = performance.now();
  const { name, res } = await route(req);
  console.log(JSON.stringify({
    event: "gateway_request",
    method: req.method,
    function: name,
    status: res.status,
    ms: Math.round(performance.now() - started),
    request_id: res.headers.get("x-request-id"),
  }));
  return res;
});

let stopping = false;
async function stop() {
  if (stopping) return;
  stopping = true;
  await server.shutdown();
  Deno.exit(0);
}
Deno.addSignalListener("SIGTERM", stop);
Deno.addSignalListener("SIGINT", stop);

// Orphan guard: when started with a piped stdin, EOF means the parent is gone.
if (Deno.env.get("GATEWAY_EXIT_ON_STDIN_EOF") === "1") {
  (async () => {
    const buf = new Uint8Array(64);
    try {
      while ((await Deno.stdin.read(buf)) !== null) { /* ignore input */ }
    } catch { /* closed */ }
    await stop();
  })();
}
