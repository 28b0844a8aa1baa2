/**
 * `calendar-sync-worker`: one bounded drain of the calendar sync outbox (see sync/worker.ts).
 * Called by pg_cron every minute and by the pg_net kick (hosted Supabase), or by the local
 * dispatcher, which repeats while `remaining > 0`.
 *
 * Gateway verify_jwt is off: the caller is authorised here, by `Authorization: Bearer
 * <CALENDAR_WORKER_SECRET>` (compared in constant time), a secret API key (`sb_secret_...`) or a
 * verified service-role JWT.
 *
 * Input: POST with an empty body or `{}` (any field is refused).
 * Output 200: `{claimed, synced, retried, failed, parked, remaining}` (row counts; see DrainSummary).
 * Errors: 401 `missing_authorization` / `invalid_token`, 403 `forbidden_role` (a valid JWT that is
 * not the service role), 400 `invalid_json` / `invalid_request`, 405, 413, 415; 500
 * `server_misconfigured` for a malformed CALENDAR_SYNC_* variable.
 */
import { z } from "zod";
import { bearerToken, isSecretApiKey, timingSafeEqual, verifyJwt } from "../auth.ts";
import type { Config } from "../config.ts";
import { getSql } from "../db/client.ts";
import { HttpError, json, readJson, requireMethod } from "../http.ts";
import { NO_STORE } from "../request-input.ts";
import type { FunctionHandler } from "../serve.ts";
import { getWorkerOptions } from "../sync/options.ts";
import { drain } from "../sync/worker.ts";

/**
 * Allow the worker secret or a service-role JWT.
 * @throws HttpError 401 without a bearer token or with one that is neither; 403 for another role.
 */
export async function authorizeWorkerCall(req: Request, config: Config): Promise<void> {
  const token = bearerToken(req);
  if (config.workerSecret && timingSafeEqual(token, config.workerSecret)) return;
  if (isSecretApiKey(token, config)) return;
  const claims = await verifyJwt(token, config);
  if (claims.role !== "service_role") {
    throw new HttpError(
      403,
      "forbidden_role",
      "only the service role or the worker secret may run the worker",
    );
  }
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
