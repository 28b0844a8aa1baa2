/**
 * `calendar-sync-worker`: one bounded drain of the calendar sync outbox (see sync/worker.ts).
 * Called by pg_cron every minute and by the pg_net kick (hosted Supabase), or by the local
 * dispatcher, which repeats while `remaining > 0`.
 *
 * Gateway verify_jwt is off: the caller is authorised here (auth.ts `authenticate`), by
 * CALENDAR_WORKER_SECRET or a secret API key (`sb_secret_...`), each as `Authorization: Bearer` or
 * in the `apikey` header (compared in constant time), or a verified service-role JWT.
 *
 * Input: POST with an empty body or `{}` (any field is refused).
 * Output 200: `{claimed, synced, retried, failed, parked, remaining}` (row counts; see DrainSummary).
 * Errors: 401 `missing_authorization` / `invalid_token`, 403 `forbidden_role` (a valid JWT that is
 * not the service role), 400 `invalid_json` / `invalid_request`, 405, 413, 415; 500
 * `server_misconfigured` for a malformed CALENDAR_SYNC_* variable.
 */
import { z } from "zod";
import { authenticate } from "../auth.ts";
import type { Config } from "../config.ts";
import { getSql } from "../db/client.ts";
import { HttpError, json, readJson, requireMethod } from "../http.ts";
import { NO_STORE } from "../request-input.ts";
import type { FunctionHandler } from "../serve.ts";
import { getWorkerOptions } from "../sync/options.ts";
import { drain } from "../sync/worker.ts";

/**
 * Allow the service role only: the worker secret, a secret API key or a service-role JWT.
 * @throws HttpError 401 without a credential or with a bad one; 403 for a user or another role.
 */
export async function authorizeWorkerCall(req: Request, config: Config): Promise<void> {
  const caller = await authenticate(req, config, { workerSecret: true }).catch((err) => {
    // A user's or the anon key's JWT is a valid token of the wrong role: 403, as before.
    if (err instanceof HttpError && err.status === 403) throw forbidden();
    throw err;
  });
  if (caller.kind !== "service") throw forbidden();
}

function forbidden(): HttpError {
  return new HttpError(
    403,
    "forbidden_role",
    "only the service role or the worker secret may run the worker",
  );
}

export const syncWorker: FunctionHandler = async (req, ctx) => {
  requireMethod(req, "POST");
  const { config } = ctx;
  await authorizeWorkerCall(req, config);
  await readJson(req, z.strictObject({}));
  const options = getWorkerOptions();
  const summary = await drain({ sql: getSql(config), config, options });
  ctx.log("sync_worker_run", { ...summary });
  return json(summary, 200, NO_STORE);
};
