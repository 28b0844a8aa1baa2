/**
 * One claimed outbox row through the provider: take the appointment as the claim read it, decide whether
 * its event should exist on this staff member's calendar, make the idempotent call(s), and record
 * the outcome. Shared by calendar-sync-worker (many rows) and calendar-sync-appointment (one
 * appointment's rows).
 *
 * The appointment's current state decides, not the queued `desired_action`: the event should exist
 * iff the appointment exists, is assigned to this row's staff member, appointment, staff member and
 * row share one tenant, and its status wants an event (`calendar_private.appointment_wants_event`).
 * So a row re-queued many times, or processed late, still converges to the latest state, and the
 * connection used is always the one of the row's tenant.
 *
 * - upsert: events carry start, end, the configured title and the staff member's zone only. When
 *   the row's event sits on another calendar than the one now selected, it is deleted there first
 *   and created on the new one. The event id derives from the appointment id and the row's
 *   `event_generation`, so retries never duplicate (docs/providers/google.md A6). When the event vanished
 *   from a calendar that still exists (purged, or moved away by the user), the generation goes up
 *   (stored first) and the event is written again under the fresh id; only a missing calendar
 *   dead-letters (`calendar_not_found`).
 * - delete: the stored event id, else the derived one; "already gone" is success.
 */
import type { Config } from "../config.ts";
import {
  connectionProblem,
  type ConnectionRow,
  markNeedsReconnect,
  withAccessToken,
} from "../connections.ts";
import type { Sql } from "../db/client.ts";
import { type CalendarProvider, ProviderError, type ProviderId } from "../providers/types.ts";
import { retryDelayMs } from "./backoff.ts";
import { decideFailure, InvalidAppointmentError } from "./failures.ts";
import type { WorkerOptions } from "./options.ts";
import {
  type ClaimedRow,
  deferStaff,
  eventWanted,
  nextEventGeneration,
  recordFailure,
  recordRetry,
  recordSuccess,
  releaseRow,
  type SuccessRecord,
} from "./outbox.ts";

/** What processing a row came to. `synced` includes a row re-queued meanwhile (it stays pending). */
export type RowOutcome =
  | {
    status: "synced";
    action: "upsert" | "delete";
    /** create/restore/update for upserts; null for deletes. */
    operation: "created" | "updated" | "restored" | null;
    eventId: string | null;
    calendarId: string | null;
    /** False when the row was re-queued during processing (another pass follows) or the lease was lost. */
    settled: boolean;
  }
  | {
    status: "retry" | "failed" | "parked";
    action: "upsert" | "delete";
    code: string;
    message: string;
    /** When the next attempt is due (retry, or a deferral behind a rate limit). */
    retryAt?: Date;
  };

/** Everything processing needs besides the row. */
export interface ProcessDeps {
  sql: Sql;
  config: Config;
  options: WorkerOptions;
  provider: (id: ProviderId) => CalendarProvider;
  /** Called when an account answered rate_limited, with the time before which it should rest. */
  onRateLimited?: (staffId: string, until: Date) => void;
  /** Uniform [0, 1) source for backoff jitter. */
  random?: () => number;
}

/** Process a claimed row and record its outcome; never throws for provider or data problems. */
export async function processRow(row: ClaimedRow, deps: ProcessDeps): Promise<RowOutcome> {
  const { sql } = deps;
  let action: "upsert" | "delete" = row.desired_action ?? "upsert";
  let conn: ConnectionRow | null = null;
  let calendarId: string | null = row.calendar_id;
  try {
    // Connection and appointment come with the claim (one round trip for the batch).
    conn = row.connection;
    const problem = connectionProblem(conn);
    if (problem !== null || !conn) {
      const code = problem ?? "not_connected";
      // Disconnected or needs reconnect since the claim: wait for a reconnect, no attempt used.
      const message = code === "needs_reconnect"
        ? "the calendar grant was revoked or expired; waiting for the staff member to reconnect"
        : "the staff member has no connected calendar; waiting for a connection";
      await releaseRow(sql, row);
      return { status: "parked", action, code, message };
    }
    const appointment = row.appointment;
    const wanted = eventWanted(row, appointment);
    action = wanted ? "upsert" : "delete";
    const provider = deps.provider(row.provider);
    let result: SuccessRecord;
    let operation: "created" | "updated" | "restored" | null = null;
    if (wanted) {
      if (appointment.ends_at.getTime() <= appointment.starts_at.getTime()) {
        // Calendars refuse an event that ends before (or when) it starts; say which row to fix.
        throw new InvalidAppointmentError(
          `appointment ${appointment.id} ${
            appointment.ends_at.getTime() < appointment.starts_at.getTime()
              ? "ends before it starts (ends_at < starts_at)"
              : "has no duration (ends_at = starts_at)"
          }; fix its times`,
        );
      }
      const target = conn.selected_calendar_id;
      calendarId = target;
      // Kept across a refresh-and-retry of the callback: a move or a re-create is done only once.
      let eventId = row.calendar_id === target ? row.event_id : null;
      let moveFrom = row.event_id && row.calendar_id && row.calendar_id !== target
        ? { calendarId: row.calendar_id, eventId: row.event_id }
        : null;
      let generation = row.event_generation;
      let recreations = 0;
      const written = await withAccessToken({ sql, config: deps.config, provider }, conn, async (token) => {
        if (moveFrom) {
          // The staff member chose another calendar: move the event (delete there, create here).
          await provider.deleteEvent(token, moveFrom);
          moveFrom = null;
        }
        const write = () =>
          provider.upsertEvent(token, {
            calendarId: target,
            appointmentId: row.appointment_key,
            eventId,
            eventGeneration: generation,
            start: appointment.starts_at.toISOString(),
            end: appointment.ends_at.toISOString(),
            title: deps.config.eventTitle,
            timeZone: appointment.time_zone,
          });
        for (;;) {
          try {
            return await write();
          } catch (err) {
            if (recreations >= MAX_RECREATIONS_PER_ATTEMPT || !isEventMissing(err)) throw err;
            // The event vanished from a calendar that still exists (purged, or moved by the user to
            // another calendar): write it again under a fresh derived id, stored before the write.
            // A fresh id can itself be held by an event that vanished (a row rebuilt from the
            // ledger starts again at generation 0), hence a few tries.
            generation = await nextEventGeneration(sql, row, generation);
            eventId = null;
            recreations++;
          }
        }
      });
      operation = written.operation;
      result = { action, eventId: written.eventId, calendarId: target, etag: written.etag ?? null };
    } else {
      const target = row.calendar_id ?? conn.selected_calendar_id;
      calendarId = target;
      await withAccessToken({ sql, config: deps.config, provider }, conn, async (token) => {
        // No stored id (a create whose answer was lost): the provider finds the appointment's event.
        await provider.deleteAppointmentEvent(token, {
          calendarId: target,
          appointmentId: row.appointment_key,
          eventId: row.event_id,
          eventGeneration: row.event_generation,
        });
      });
      result = { action, eventId: null, calendarId: null, etag: null };
    }
    const recorded = await recordSuccess(sql, row, result);
    return {
      status: "synced",
      action,
      operation,
      eventId: result.eventId,
      calendarId: result.calendarId,
      settled: recorded === "synced",
    };
  } catch (err) {
    return await recordError(row, action, err, calendarId, conn, deps);
  }
}

/** Fresh ids tried in one attempt before the row is retried later (event_not_found). */
const MAX_RECREATIONS_PER_ATTEMPT = 3;

/** The provider found the calendar but not the event (see CalendarProvider.upsertEvent). */
function isEventMissing(err: unknown): boolean {
  return err instanceof ProviderError && err.kind === "not_found" && err.details.resource === "event";
}

async function recordError(
  row: ClaimedRow,
  action: "upsert" | "delete",
  err: unknown,
  calendarId: string | null,
  conn: ConnectionRow | null,
  deps: ProcessDeps,
): Promise<RowOutcome> {
  const { sql, options } = deps;
  const decision = decideFailure(err, calendarId);
  try {
    if (decision.decision === "park") {
      if (decision.markNeedsReconnect && conn) await markNeedsReconnect(sql, conn.id, decision.message);
      await releaseRow(sql, row, { error: { code: decision.code, message: decision.message } });
      return { status: "parked", action, code: decision.code, message: decision.message };
    }
    if (decision.decision === "fail") {
      const status = await recordFailure(sql, row, decision);
      return {
        status: status === "failed" ? "failed" : "retry",
        action,
        code: decision.code,
        message: decision.message,
      };
    }
    const delayMs = retryDelayMs(
      row.retry_count + 1,
      {
        baseMs: options.backoffBaseMs,
        capMs: options.backoffCapMs,
        retryAfterMaxMs: options.retryAfterMaxMs,
      },
      decision.retryAfterMs,
      deps.random,
    );
    const retryAt = new Date(Date.now() + delayMs);
    const status = await recordRetry(sql, row, { ...decision, delayMs, budgetMs: options.retryBudgetMs });
    if (decision.rateLimited) {
      // The whole account rests: its other rows wait at least as long as this one.
      const rest = new Date(Date.now() + Math.max(delayMs, decision.retryAfterMs ?? 0));
      await deferStaff(sql, row.staff_id, row.provider, rest);
      deps.onRateLimited?.(row.staff_id, rest);
    }
    return {
      status: status === "failed" ? "failed" : "retry",
      action,
      code: decision.code,
      message: decision.message,
      ...(status === "pending" ? { retryAt } : {}),
    };
  } catch (recordErr) {
    // The database itself failed; the lease expires and another pass retries the row.
    const name = recordErr instanceof Error ? recordErr.name : "error";
    console.error(JSON.stringify({ level: "error", event: "sync_record_failed", row_id: row.id, name }));
    return { status: "retry", action, code: "internal_error", message: "could not record the outcome" };
  }
}
