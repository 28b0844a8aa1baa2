/**
 * The convergence check of the sync proofs: each staff member's sandbox calendar must equal the
 * projection of the appointments table onto it, i.e. for a staff member whose connection is
 * `connected`, one event per appointment assigned to them whose status wants an event
 * (`calendar_private.appointment_wants_event`), with the event id derived from the appointment id
 * (providers/google/event-id.ts), the same start and end instants, and nothing else.
 */
import type postgres from "postgres";
import { eventIdFor } from "../../supabase/functions/_shared/providers/google/event-id.ts";
import type { SandboxClient } from "./stack.ts";

/** What was compared for one staff member, and every difference found (event ids). */
export interface CalendarDiff {
  staffId: string;
  email: string;
  calendarId: string;
  /** Events the appointments table asks for. */
  expected: number;
  /** Live (not cancelled) events on the calendar. */
  actual: number;
  /** Expected events absent from the calendar. */
  missing: string[];
  /** Events present with other start/end instants than the appointment's. */
  stale: string[];
  /** Live events no wanted appointment of this staff member accounts for. */
  orphaned: string[];
  /** Event ids listed more than once. */
  duplicates: string[];
}

/** The comparison over several staff members. */
export interface ProjectionReport {
  calendars: CalendarDiff[];
  expected: number;
  actual: number;
  missing: number;
  stale: number;
  orphaned: number;
  duplicates: number;
  /** True when every calendar equals its projection. */
  equal: boolean;
}

// deno-lint-ignore no-explicit-any
const instant = (v: any): number => Date.parse(v?.dateTime ?? v?.date ?? "");

/**
 * Compare the calendars of `staff` (connected ones only; others are skipped) with the
 * appointments table. The selected calendar `primary` is the account's email in the sandbox.
 */
export async function compareWithAppointments(
  sql: postgres.Sql,
  sandbox: SandboxClient,
  staff: { id: string; email: string }[],
): Promise<ProjectionReport> {
  const calendars: CalendarDiff[] = [];
  for (const s of staff) {
    const [conn] = await sql<{ selected_calendar_id: string }[]>`
      select selected_calendar_id from public.staff_calendar_connections
      where staff_id = ${s.id} and connection_status = 'connected'`;
    if (!conn) continue;
    const calendarId = conn.selected_calendar_id === "primary" ? s.email : conn.selected_calendar_id;
    const wanted = await sql<{ id: string; starts_at: Date; ends_at: Date }[]>`
      select id, starts_at, ends_at from public.appointments
      where staff_id = ${s.id} and calendar_private.appointment_wants_event(status)`;
    const expected = new Map(wanted.map((a) => [eventIdFor(a.id), a]));
    const live = (await sandbox.events(s.email, calendarId)).filter((e) => e.status !== "cancelled");
    const seen = new Map<string, number>();
    const diff: CalendarDiff = {
      staffId: s.id,
      email: s.email,
      calendarId,
      expected: expected.size,
      actual: live.length,
      missing: [],
      stale: [],
      orphaned: [],
      duplicates: [],
    };
    for (const ev of live) {
      const n = (seen.get(ev.id) ?? 0) + 1;
      seen.set(ev.id, n);
      if (n === 2) diff.duplicates.push(ev.id);
      const a = expected.get(ev.id);
      if (!a) {
        diff.orphaned.push(ev.id);
        continue;
      }
      if (instant(ev.start) !== a.starts_at.getTime() || instant(ev.end) !== a.ends_at.getTime()) {
        diff.stale.push(ev.id);
      }
    }
    for (const id of expected.keys()) if (!seen.has(id)) diff.missing.push(id);
    calendars.push(diff);
  }
  const sum = (f: (d: CalendarDiff) => number) => calendars.reduce((n, d) => n + f(d), 0);
  const report = {
    calendars,
    expected: sum((d) => d.expected),
    actual: sum((d) => d.actual),
    missing: sum((d) => d.missing.length),
    stale: sum((d) => d.stale.length),
    orphaned: sum((d) => d.orphaned.length),
    duplicates: sum((d) => d.duplicates.length),
  };
  return { ...report, equal: report.missing + report.stale + report.orphaned + report.duplicates === 0 };
}

/** One line per calendar plus a total, for the test output. */
export function formatReport(report: ProjectionReport): string {
  const lines = report.calendars.map((d) =>
    `  ${d.email}: expected ${d.expected}, on calendar ${d.actual}, missing ${d.missing.length}, ` +
    `stale ${d.stale.length}, orphaned ${d.orphaned.length}, duplicates ${d.duplicates.length}`
  );
  lines.push(
    `  total: expected ${report.expected}, on calendars ${report.actual}, missing ${report.missing}, ` +
      `stale ${report.stale}, orphaned ${report.orphaned}, duplicates ${report.duplicates}`,
  );
  return lines.join("\n");
}
