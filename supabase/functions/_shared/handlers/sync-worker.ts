/**
 * `calendar-sync-worker`: one bounded drain of the calendar sync outbox (see sync/worker.ts).
 * Called by the pg_net kick (`calendar_private.kick_worker`: appointment changes, and pg_cron's
 * sweep every minute), or by the local dispatcher, which repeats while `remaining > 0`.
 *
 * Gateway verify_jwt is off: the caller is authorised here (auth.ts `authenticate`), by
 * CALENDAR_WORKER_SECRET or a secret API key (`sb_secret_...`), each as `Authorization: Bearer` or
 * in the `apikey` header (compared in constant time), or a verified service-role JWT.
 *
 * Input: POST with an empty body or `{}` (any field is refused).
 * With `Prefer: respond-async` (RFC 7240; the pg_net kick sends it) and a runtime that keeps work
 * alive after the response (`EdgeRuntime.waitUntil`, see background.ts): 202 `{"status":"accepted"}`
 * with `Preference-Applied: respond-async` at once; the drain runs in the background, logs
 * `sync_worker_run` with its summary, and kicks the next run itself while due rows remain
 * (sync/follow-up.ts). A pg_net kick therefore never waits for a run, whatever its length.
 * Otherwise 200: `{claimed, synced, retried, failed, parked, remaining, channel_jobs}` (row counts, and
 * channel job counts `{claimed, done, retried, failed, parked, remaining}`; see DrainSummary). Before
 * draining, at most once a minute, the channel sweep opens missing channels and plans renewals.
 * Errors: 401 `missing_authorization` / `invalid_token`, 403 `forbidden_role` (a valid JWT that is
 * not the service role), 400 `invalid_json` / `invalid_request`, 405, 413, 415; 500
 * `server_misconfigured` for a malformed CALENDAR_SYNC_* variable.
 */
import { z } from "zod";
import { authenticate } from "../auth.ts";
import { prefersRespondAsync, runtimeWaitUntil } from "../background.ts";
import { revokeGrants, takeExpiredPendingGrants } from "../pending-grants.ts";
import type { Config } from "../config.ts";
import { getSql } from "../db/client.ts";
import { HttpError, json, readJson, requireMethod } from "../http.ts";
import { NO_STORE } from "../request-input.ts";
import type { FunctionContext, FunctionHandler } from "../serve.ts";
import { kickFollowUp, needsFollowUp } from "../sync/follow-up.ts";
import { sweepChannels } from "../inbound/channels.ts";
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

/**
 * One drain after a 202: logs its summary and kicks the next run while due rows remain. Never
 * rejects (nobody awaits it but the runtime): failures are logged with their code only.
 */
async function backgroundRun(ctx: FunctionContext): Promise<void> {
  const sql = getSql(ctx.config);
  try {
    await sweepChannelsSometimes(ctx);
    const summary = await drain({ sql, config: ctx.config, options: getWorkerOptions() });
    await revokeAbandonedGrants(ctx);
    const followUp = needsFollowUp(summary);
    ctx.log("sync_worker_run", { ...summary, background: true, follow_up: followUp });
    if (followUp) await kickFollowUp(sql);
  } catch (err) {
    ctx.log("sync_worker_failed", {
      background: true,
      code: (err as { code?: string })?.code ?? (err as Error)?.name ?? "Error",
    });
  }
}

/** How often one isolate runs the channel sweep (at most), in ms. */
const CHANNEL_SWEEP_INTERVAL_MS = 60_000;
let lastChannelSweep = 0;

/**
 * The channel sweep (inbound/channels.ts sweepChannels: channels for workable connections without
 * one, renewals near expiry, retirements when inbound sync is off), at most once a minute per
 * isolate, before a drain runs the jobs it requests. Best effort: a failure is logged with its code.
 */
async function sweepChannelsSometimes(ctx: FunctionContext): Promise<void> {
  if (Date.now() - lastChannelSweep < CHANNEL_SWEEP_INTERVAL_MS) return;
  lastChannelSweep = Date.now();
  try {
    const swept = await sweepChannels(getSql(ctx.config), ctx.config);
    if (swept.opened + swept.retired + swept.renewals > 0) ctx.log("channel_sweep", swept);
  } catch (err) {
    ctx.log("channel_sweep_failed", { code: (err as { code?: string })?.code ?? (err as Error)?.name });
  }
}

/**
 * Revoke consent grants left pending past their confirmation window (pending-grants.ts), a batch per
 * run, so an abandoned consent never keeps a live grant at the provider until someone next connects.
 * Best effort: a failure is logged with its code and never fails the run.
 */
async function revokeAbandonedGrants(ctx: FunctionContext): Promise<void> {
  try {
    const sql = getSql(ctx.config);
    await revokeGrants(ctx.config, await takeExpiredPendingGrants(sql, ctx.config), ctx.log);
  } catch (err) {
    ctx.log("pending_grant_sweep_failed", { code: (err as { code?: string })?.code ?? (err as Error)?.name });
  }
}

export const syncWorker: FunctionHandler = async (req, ctx) => {
  requireMethod(req, "POST");
  const { config } = ctx;
  await authorizeWorkerCall(req, config);
  await readJson(req, z.strictObject({}));
  // Malformed CALENDAR_SYNC_* variables fail here, before any answer, in both modes.
  const options = getWorkerOptions();
  const waitUntil = prefersRespondAsync(req) ? runtimeWaitUntil() : null;
  if (waitUntil) {
    waitUntil(backgroundRun(ctx));
    return json({ status: "accepted" }, 202, { ...NO_STORE, "preference-applied": "respond-async" });
  }
  await sweepChannelsSometimes(ctx);
  const summary = await drain({ sql: getSql(config), config, options });
  await revokeAbandonedGrants(ctx);
  ctx.log("sync_worker_run", { ...summary });
  return json(summary, 200, NO_STORE);
};
