/**
 * `calendar-sync-appointment` (and the seed's `google-calendar-sync-appointment`): bring one
 * appointment's calendar event in line with the appointment now, through the outbox worker's own
 * code (queue the rows like the trigger does, claim them by id, process, answer).
 *
 * Gateway verify_jwt is off for calendar-sync-appointment (server callers send secret API keys,
 * which the platform's JWT check refuses) and on for the seed's name; either way the caller is
 * verified here (auth.ts `authenticate`). Callers: a signed-in user who is staff of the
 * appointment's tenant, or the service role (a secret API key in `apikey` or as the bearer token,
 * or the legacy service_role JWT).
 *
 * Input, POST JSON (unknown fields refused): `{appointment_id: uuid, action?: "create" | "update" |
 * "delete"}`. The appointment's state decides what happens (the event exists iff the appointment
 * exists, has a staff member and is not cancelled / no-show); `action`, when given, must agree with
 * it: create/update for an appointment that wants an event, delete for one that does not (cancelled,
 * no staff, or already deleted: a hard-deleted appointment is still found through its sync rows).
 * On reassignment the previous staff member's event is deleted in the same call.
 *
 * Output: `{appointment_id, action: "create"|"update"|"delete", sync_status: "synced"|"pending"|
 * "failed", google_event_id, google_calendar_id}` for the appointment's current staff member (or,
 * for a delete, the row that held the event), plus `error: {code, message}` and `request_id` when
 * something went wrong (a superset of the error envelope), and `next_attempt_at` for a retry.
 * - 200 synced (a delete answers null ids);
 * - 202 pending: a worker holds the row right now (it finishes the job);
 * - 429 `rate_limited`, 503 `provider_unavailable` / `internal_error`, 502 `provider_conflict`: this
 *   attempt failed, the row stays pending (retry_count + 1, error_message set) and the worker retries
 *   it at `next_attempt_at`; `Retry-After` says when, in seconds;
 * - 409 `not_connected` (no connected calendar), `needs_reconnect` (grant revoked; the row waits
 *   parked and resumes after the reconnect), `insufficient_scope`, `calendar_not_found`,
 *   `action_conflicts_with_state`;
 * - 422 `invalid_appointment` (ends before it starts), `appointment_has_no_staff`,
 *   `staff_not_in_tenant` (the appointment names a staff member of another tenant, or none that
 *   exists: it never reaches any calendar, and nothing is queued or called);
 * - 502 `provider_error` (the provider refused the request); a row that ran out of attempts is
 *   `failed` and answers the status of its last error (429, 503 or 502).
 * Errors before any work: 400 `invalid_json` / `invalid_request`, 401 `missing_authorization` /
 * `invalid_token`, 403 `forbidden_role` / `not_staff` / `forbidden_tenant`, 404
 * `appointment_not_found`, 405, 413, 415.
 */
import { z } from "zod";
import { authenticate } from "../auth.ts";
import { connectionProblem, findConnection } from "../connections.ts";
import { getSql } from "../db/client.ts";
import type { Row } from "../db/rows.ts";
import { HttpError, json, readJson, requireMethod } from "../http.ts";
import { DEFAULT_RETRY_AFTER_SECONDS } from "../errors/http-answers.ts";
import { NO_STORE } from "../request-input.ts";
import type { FunctionHandler } from "../serve.ts";
import { staffForUser } from "../staff.ts";
import {
  type AppointmentTarget,
  findAppointmentTarget,
  type RowResult,
  syncAppointmentNow,
} from "../sync/appointment.ts";
import { getWorkerOptions } from "../sync/options.ts";
import { cachedProviders } from "../sync/worker.ts";

const inputSchema = z.strictObject({
  appointment_id: z.guid({ error: "must be an appointment id (uuid)" }),
  action: z.enum(["create", "update", "delete"]).optional(),
});

type Action = "create" | "update" | "delete";

/** What the function answers; `error` and `request_id` only when something went wrong. */
export interface SyncAppointmentAnswer {
  appointment_id: string;
  action: Action;
  sync_status: "synced" | "pending" | "failed";
  google_event_id: string | null;
  google_calendar_id: string | null;
  next_attempt_at?: string;
  error?: { code: string; message: string };
  request_id?: string;
}

const FAILED_STATUS: Record<string, number> = {
  invalid_appointment: 422,
  calendar_not_found: 409,
  provider_error: 502,
  rate_limited: 429,
  provider_unavailable: 503,
};

/** HTTP status for a failed attempt that the worker will retry, by the row's error code. */
const RETRY_STATUS: Record<string, number> = {
  rate_limited: 429,
  provider_unavailable: 503,
  provider_conflict: 502,
  internal_error: 503,
};

export const syncAppointment: FunctionHandler = async (req, ctx) => {
  requireMethod(req, "POST");
  const { config } = ctx;
  const caller = await authenticate(req, config);
  const input = await readJson(req, inputSchema);
  const sql = getSql(config);
  const appointmentId = input.appointment_id.toLowerCase();

  const target = await findAppointmentTarget(sql, appointmentId);
  if (!target) {
    throw new HttpError(404, "appointment_not_found", "no appointment (or sync record of one) has this id");
  }
  if (caller.kind === "user") {
    const mine = await staffForUser(sql, caller.userId);
    if (mine.length === 0) {
      throw new HttpError(403, "not_staff", "the signed-in user is not a staff member of any tenant");
    }
    if (!mine.some((s) => s.tenant_id === target.tenantId)) {
      throw new HttpError(403, "forbidden_tenant", "this appointment belongs to another tenant");
    }
  }
  if (!target.staffInTenant) {
    throw new HttpError(
      422,
      "staff_not_in_tenant",
      "the appointment's staff_id is not a staff member of the appointment's tenant, so it is never synced to a calendar; fix staff_id or tenant_id",
    );
  }
  if (input.action === "delete" && target.wantsEvent) {
    throw new HttpError(
      409,
      "action_conflicts_with_state",
      "the appointment is still active; cancel it (status cancelled or no_show), unassign or delete it, then sync",
    );
  }
  if ((input.action === "create" || input.action === "update") && !target.wantsEvent) {
    throw new HttpError(
      409,
      "action_conflicts_with_state",
      target.exists
        ? "the appointment is cancelled or has no staff member, so its event is deleted; send action delete or omit action"
        : "the appointment was deleted, so its event is deleted; send action delete or omit action",
    );
  }
  if (target.wantsEvent) {
    const conn = await findConnection(sql, { tenantId: target.tenantId, staffId: target.staffId! });
    // A needs_reconnect connection goes on: its row is queued and parked, and the answer says so.
    if (connectionProblem(conn) === "not_connected") {
      throw new HttpError(
        409,
        "not_connected",
        "the appointment's staff member has not connected a calendar",
      );
    }
  } else if (target.rows.length === 0) {
    if (target.exists && target.staffId === null) {
      throw new HttpError(
        422,
        "appointment_has_no_staff",
        "the appointment has no staff member and never reached a calendar; assign a staff member first",
      );
    }
    // Nothing was ever written for it: the calendar already matches.
    return json(
      answer(appointmentId, "delete", "synced", null, null),
      200,
      NO_STORE,
    );
  }

  const results = await syncAppointmentNow(
    {
      sql,
      config,
      options: getWorkerOptions(),
      provider: cachedProviders(config),
    },
    appointmentId,
    target.tenantId,
  );
  const primary = pickPrimary(results, target.wantsEvent ? target.staffId : null) ??
    results[0];
  if (!primary) {
    throw new HttpError(409, "not_connected", "the appointment's staff member has not connected a calendar");
  }
  ctx.log("appointment_synced", {
    appointment_id: appointmentId,
    rows: results.length,
    outcome: primary.outcome?.status ?? "held",
  });
  return await respond(sql, target, primary, ctx.requestId);
};

/** The row the answer is about: the current staff member's, else the one that held an event. */
function pickPrimary(results: RowResult[], staffId: string | null): RowResult | undefined {
  if (staffId) return results.find((r) => r.staffId === staffId);
  return results.find((r) => r.outcome?.status !== "synced" || r.outcome.eventId !== null) ?? results[0];
}

function answer(
  appointmentId: string,
  action: Action,
  status: SyncAppointmentAnswer["sync_status"],
  eventId: string | null,
  calendarId: string | null,
): SyncAppointmentAnswer {
  return {
    appointment_id: appointmentId,
    action,
    sync_status: status,
    google_event_id: eventId,
    google_calendar_id: calendarId,
  };
}

async function respond(
  sql: ReturnType<typeof getSql>,
  target: AppointmentTarget,
  primary: RowResult,
  requestId: string,
): Promise<Response> {
  const { appointmentId, wantsEvent } = target;
  const outcome = primary.outcome;
  const [row] = await sql<Pick<Row<"calendar_sync_log">, "event_id" | "calendar_id">[]>`
    select event_id, calendar_id from public.calendar_sync_log where id = ${primary.rowId}`;
  const eventId = row?.event_id ?? null;
  const calendarId = row?.calendar_id ?? null;
  const fallbackAction: Action = wantsEvent ? (eventId ? "update" : "create") : "delete";
  if (outcome === null) {
    const conn = await findConnection(sql, { tenantId: target.tenantId, staffId: primary.staffId });
    const problem = connectionProblem(conn);
    if (problem === "needs_reconnect") {
      const body = withError(answer(appointmentId, fallbackAction, "pending", eventId, calendarId), {
        code: "needs_reconnect",
        message:
          "the calendar grant was revoked or expired; the staff member must connect the calendar again",
      }, requestId);
      return json(body, 409, NO_STORE);
    }
    if (problem === "not_connected") {
      const body = withError(answer(appointmentId, fallbackAction, "pending", eventId, calendarId), {
        code: "not_connected",
        message: "the staff member has not connected a calendar",
      }, requestId);
      return json(body, 409, NO_STORE);
    }
    // Another worker holds the row; it finishes the job.
    return json(answer(appointmentId, fallbackAction, "pending", eventId, calendarId), 202, NO_STORE);
  }
  if (outcome.status === "synced") {
    const action: Action = outcome.action === "delete"
      ? "delete"
      : outcome.operation === "updated"
      ? "update"
      : "create";
    const status = outcome.settled ? "synced" : "pending";
    return json(
      answer(appointmentId, action, status, outcome.eventId, outcome.calendarId),
      outcome.settled ? 200 : 202,
      NO_STORE,
    );
  }
  const action: Action = outcome.action === "delete" ? "delete" : fallbackAction;
  const error = { code: outcome.code, message: outcome.message };
  if (outcome.status === "parked") {
    return json(
      withError(answer(appointmentId, action, "pending", eventId, calendarId), error, requestId),
      409,
      NO_STORE,
    );
  }
  if (outcome.status === "retry") {
    // The row stays pending and the worker retries it, but this call failed at the provider: answer
    // the provider status (docs/architecture.md "Contracts": 429, 502/503) with a Retry-After hint.
    const body = withError(answer(appointmentId, action, "pending", eventId, calendarId), error, requestId);
    if (outcome.retryAt) body.next_attempt_at = outcome.retryAt.toISOString();
    const seconds = outcome.retryAt
      ? Math.max(1, Math.ceil((outcome.retryAt.getTime() - Date.now()) / 1000))
      : DEFAULT_RETRY_AFTER_SECONDS.transient;
    return json(body, RETRY_STATUS[outcome.code] ?? 503, { ...NO_STORE, "retry-after": String(seconds) });
  }
  const status = FAILED_STATUS[outcome.code] ?? 502;
  return json(
    withError(answer(appointmentId, action, "failed", eventId, calendarId), error, requestId),
    status,
    NO_STORE,
  );
}

function withError(
  body: SyncAppointmentAnswer,
  error: { code: string; message: string },
  requestId: string,
): SyncAppointmentAnswer {
  return { ...body, error, request_id: requestId };
}
