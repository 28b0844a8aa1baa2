/**
 * The convergence check of the sync proofs: each staff member's sandbox calendar must equal the
 * projection of the appointments table onto it, i.e. for a staff member whose connection is
 * `connected`, one live event per appointment assigned to them whose status wants an event
 * (`calendar_private.appointment_wants_event`), with the same start and end instants, and nothing
 * else. The calendar read is the one of the connection's provider:
 *
 * - Google: the event id derives from the appointment id and a generation
 *   (providers/google/event-id.ts);
 * - Microsoft: Graph chooses event ids, so an event is traced to its appointment by its
 *   `transactionId`, which derives from the appointment id, a generation and the calendar
 *   (providers/microsoft/event-body.ts).
 *
 * Either way an event is attributed from what the calendar holds, not from the ids the outbox
 * stored, so a duplicate the engine lost track of is still counted.
 */
import type postgres from "postgres";
import { eventIdFor } from "../../supabase/functions/_shared/providers/google/event-id.ts";
import { transactionIdFor } from "../../supabase/functions/_shared/providers/microsoft/event-body.ts";
import type { SandboxClient } from "./stack.ts";

/** A provider whose sandbox calendars the projection reads. */
export type ProjectedProvider = "google" | "microsoft";

/** What was compared for one staff member, and every difference found (event ids). */
export interface CalendarDiff {
  staffId: string;
  email: string;
  provider: ProjectedProvider;
  calendarId: string;
  /** Events the appointments table asks for. */
  expected: number;
  /** Live (not cancelled / not deleted) events on the calendar. */
  actual: number;
  /** Expected events absent from the calendar (appointment ids). */
  missing: string[];
  /** Events present with other start/end instants than the appointment's. */
  stale: string[];
  /** Live events no wanted appointment of this staff member accounts for, each with the
   * appointment it was written for when that one still exists. */
  orphaned: string[];
  /** Events beyond the first for one appointment (a Google id listed twice, or a second Graph
   * event traced to the same appointment). */
  duplicates: string[];
}

/** Sums over a set of calendars. */
export interface ProjectionTotals {
  expected: number;
  actual: number;
  missing: number;
  stale: number;
  orphaned: number;
  duplicates: number;
}

/** The comparison over several staff members. */
export interface ProjectionReport extends ProjectionTotals {
  calendars: CalendarDiff[];
  /** The same sums per provider (only providers with a compared calendar). */
  byProvider: Partial<Record<ProjectedProvider, ProjectionTotals>>;
  /** True when every calendar equals its projection. */
  equal: boolean;
}

// deno-lint-ignore no-explicit-any
type Json = any;

/** A Google event time: RFC 3339 with offset (or an all-day date). */
const googleInstant = (v: Json): number => Date.parse(v?.dateTime ?? v?.date ?? "");

/**
 * A Graph dateTimeTimeZone as the sandbox's admin API lists it. Only UTC is read: the staff of the
 * sync proofs keep the default zone, and guessing another zone's offset here could hide a stale event.
 * @throws Error for another zone.
 */
function graphInstant(v: Json): number {
  if (v?.timeZone !== "UTC") {
    throw new Error(`projection reads UTC Graph times only, got ${JSON.stringify(v)}`);
  }
  return Date.parse(`${v.dateTime}Z`);
}

/**
 * Compare the calendars of `staff` (connected ones only; others are skipped) with the
 * appointments table. The selected calendar `primary` is the account's email in the Google sandbox
 * and the default calendar in the Microsoft one. `userEvents`: ids of events the users made
 * themselves (busy blocks); they are not ours, so neither compared nor counted.
 */
export async function compareWithAppointments(
  sql: postgres.Sql,
  sandbox: SandboxClient,
  staff: { id: string; email: string }[],
  userEvents: ReadonlySet<string> = new Set(),
): Promise<ProjectionReport> {
  // Every id an event of ours can carry, for every appointment that exists: generations up to the
  // highest any outbox row reached. An event that maps to none is orphaned.
  const [{ generations }] = await sql<{ generations: number }[]>`
    select coalesce(max(event_generation), 0)::int + 1 as generations from public.calendar_sync_log`;
  const allIds = (await sql<{ id: string }[]>`select id from public.appointments`).map((a) => a.id);
  const keysByCalendar = new Map<string, Map<string, string>>();
  const keysFor = (provider: ProjectedProvider, calendarId: string): Map<string, string> => {
    const cacheKey = `${provider} ${calendarId}`;
    let keys = keysByCalendar.get(cacheKey);
    if (keys) return keys;
    keys = new Map();
    for (const id of allIds) {
      for (let g = 0; g < generations; g++) {
        keys.set(provider === "google" ? eventIdFor(id, g) : transactionIdFor(id, g, calendarId), id);
      }
    }
    keysByCalendar.set(cacheKey, keys);
    return keys;
  };

  const calendars: CalendarDiff[] = [];
  for (const s of staff) {
    const [conn] = await sql<{ provider: ProjectedProvider; selected_calendar_id: string }[]>`
      select provider, selected_calendar_id from public.staff_calendar_connections
      where staff_id = ${s.id} and connection_status = 'connected'`;
    if (!conn) continue;
    const google = conn.provider === "google";
    const selected = conn.selected_calendar_id;
    const calendarId = selected === "primary" ? (google ? s.email : "default") : selected;
    const wanted = await sql<{ id: string; starts_at: Date; ends_at: Date }[]>`
      select id, starts_at, ends_at from public.appointments
      where staff_id = ${s.id} and calendar_private.appointment_wants_event(status)`;
    const expected = new Map(wanted.map((a) => [a.id, a]));
    const live = (google
      ? (await sandbox.events(s.email, calendarId)).filter((e) =>
        e.status !== "cancelled"
      )
      : await sandbox.msEvents(s.email, calendarId)).filter((e) => !userEvents.has(e.id));
    const keys = keysFor(conn.provider, selected);
    const seen = new Set<string>();
    const diff: CalendarDiff = {
      staffId: s.id,
      email: s.email,
      provider: conn.provider,
      calendarId,
      expected: expected.size,
      actual: live.length,
      missing: [],
      stale: [],
      orphaned: [],
      duplicates: [],
    };
    for (const ev of live) {
      const appointmentId = keys.get(google ? ev.id : ev.transactionId);
      const a = appointmentId ? expected.get(appointmentId) : undefined;
      if (!appointmentId || !a) {
        diff.orphaned.push(appointmentId ? `${ev.id} (appointment ${appointmentId})` : ev.id);
        continue;
      }
      if (seen.has(appointmentId)) diff.duplicates.push(ev.id);
      seen.add(appointmentId);
      const instant = google ? googleInstant : graphInstant;
      if (instant(ev.start) !== a.starts_at.getTime() || instant(ev.end) !== a.ends_at.getTime()) {
        diff.stale.push(ev.id);
      }
    }
    for (const id of expected.keys()) if (!seen.has(id)) diff.missing.push(id);
    calendars.push(diff);
  }
  const totals = (ds: CalendarDiff[]): ProjectionTotals => {
    const sum = (f: (d: CalendarDiff) => number) => ds.reduce((n, d) => n + f(d), 0);
    return {
      expected: sum((d) => d.expected),
      actual: sum((d) => d.actual),
      missing: sum((d) => d.missing.length),
      stale: sum((d) => d.stale.length),
      orphaned: sum((d) => d.orphaned.length),
      duplicates: sum((d) => d.duplicates.length),
    };
  };
  const byProvider: ProjectionReport["byProvider"] = {};
  for (const p of ["google", "microsoft"] as const) {
    const ds = calendars.filter((d) => d.provider === p);
    if (ds.length > 0) byProvider[p] = totals(ds);
  }
  const report = totals(calendars);
  return {
    ...report,
    calendars,
    byProvider,
    equal: report.missing + report.stale + report.orphaned + report.duplicates === 0,
  };
}

const line = (t: ProjectionTotals) =>
  `expected ${t.expected}, on calendar ${t.actual}, missing ${t.missing}, stale ${t.stale}, ` +
  `orphaned ${t.orphaned}, duplicates ${t.duplicates}`;

/** One line per calendar, one per provider and a total, for the test output. */
export function formatReport(report: ProjectionReport): string {
  const lines = report.calendars.map((d) =>
    `  ${d.email} (${d.provider}): ${
      line({
        ...d,
        missing: d.missing.length,
        stale: d.stale.length,
        orphaned: d.orphaned.length,
        duplicates: d.duplicates.length,
      })
    }`
  );
  for (const [p, t] of Object.entries(report.byProvider)) lines.push(`  ${p}: ${line(t)}`);
  lines.push(`  total: ${line(report)}`);
  return lines.join("\n");
}
