/**
 * Diagnostics for the sync proofs: a test-only audit of every calendar_sync_log change (a trigger on
 * the scratch database), and, for an orphaned Microsoft event, what the sandbox knows of it and the
 * history of its appointment's sync rows. Printed when a proof fails, so a race seen once under load
 * can be explained from its output alone.
 */
import type postgres from "postgres";
import { transactionIdFor } from "../../supabase/functions/_shared/providers/microsoft/event-body.ts";
import type { ProjectionReport } from "./calendar-projection.ts";
import type { SandboxClient } from "./stack.ts";

/** Record every insert, update and delete of calendar_sync_log (with the time) in public.test_outbox_audit. */
export async function installOutboxAudit(sql: postgres.Sql): Promise<void> {
  await sql.unsafe(`
    create table public.test_outbox_audit (at timestamptz not null default clock_timestamp(), op text, r jsonb);
    create function public.test_outbox_audit() returns trigger language plpgsql as $$ begin
      insert into public.test_outbox_audit (op, r) values (tg_op, to_jsonb(coalesce(new, old)));
      return null;
    end $$;
    create trigger test_outbox_audit after insert or update or delete on public.calendar_sync_log
      for each row execute function public.test_outbox_audit();`);
}

/**
 * For each orphaned Microsoft event of the report: its transactionId traced to an appointment of
 * `appointmentIds` (every id the test ever created, deleted ones included) and a generation, every
 * event of the mailbox with that transactionId (created and deleted times, start), and the audited
 * history of that appointment's sync rows. @returns the lines to print.
 */
export async function explainOrphans(
  sql: postgres.Sql,
  sandbox: SandboxClient,
  report: ProjectionReport,
  appointmentIds: string[],
): Promise<string[]> {
  const lines: string[] = [];
  const short = (v: unknown, n = 12) => v === null || v === undefined ? "-" : String(v).slice(0, n);
  for (const d of report.calendars.filter((c) => c.provider === "microsoft" && c.orphaned.length > 0)) {
    const [conn] = await sql<{ selected_calendar_id: string }[]>`select selected_calendar_id
      from public.staff_calendar_connections where staff_id = ${d.staffId} and connection_status = 'connected'`;
    const all = await sandbox.msEvents(d.email, d.calendarId, true);
    for (const orphan of d.orphaned) {
      const ev = all.find((e) => e.id === orphan.split(" ")[0]);
      let traced: { id: string; generation: number } | undefined;
      for (const id of appointmentIds) {
        for (let g = 0; g < 8 && !traced; g++) {
          if (transactionIdFor(id, g, conn.selected_calendar_id) === ev?.transactionId) {
            traced = { id, generation: g };
          }
        }
      }
      lines.push(
        `orphan ${d.email} ${orphan}: transactionId ${ev?.transactionId} -> appointment ${
          traced?.id ?? "?"
        } generation ${traced?.generation ?? "?"}`,
      );
      for (const e of all.filter((x) => x.transactionId === ev?.transactionId)) {
        lines.push(
          `  event ${short(e.id, 24)} created ${e.createdDateTime} deleted ${e.deletedAt ?? "-"} start ${
            JSON.stringify(e.start)
          }`,
        );
      }
      if (!traced) continue;
      const history = await sql<{ at: Date; op: string; r: Record<string, unknown> }[]>`
        select at, op, r from public.test_outbox_audit where r->>'appointment_key' = ${traced.id} order by at`;
      for (const { at, op, r } of history) {
        lines.push(
          `  ${at.toISOString()} ${op} row ${short(r.id, 8)} staff ${short(r.staff_id, 8)} ${r.provider} ` +
            `${r.sync_status} ${r.desired_action ?? "-"} event ${
              short(r.event_id)
            } gen ${r.event_generation} ` +
            `qv ${r.queue_version} lease ${short(r.lease_owner)} unresolved ${r.write_unresolved} ` +
            `retries ${r.retry_count} error ${r.last_error_code ?? "-"} ${short(r.error_message, 80)}`,
        );
      }
      const [appointment] = await sql`select staff_id, status, starts_at from public.appointments
        where id = ${traced.id}`;
      lines.push(`  appointment now: ${appointment ? JSON.stringify(appointment) : "deleted"}`);
    }
  }
  return lines;
}
