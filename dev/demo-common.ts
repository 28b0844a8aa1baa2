/**
 * What both halves of `npm run demo` share (dev/demo.ts: connect and the outbound steps;
 * dev/demo-inbound.ts: the inbound steps): HTTP calls that name `npm start` when nothing answers,
 * the sandbox calendar as its user sees and edits it (admin API), polling, and printing.
 */
import type postgres from "postgres";
import type { DemoStaff } from "./demo-ids.ts";
import { resolveZone } from "./sandbox/ms-zones.ts";
import { eventInstant } from "./sandbox/time.ts";

/** How long a step waits for the stack to reach the expected state. */
export const SYNC_DEADLINE_MS = 30_000;

/** A demo step failed; the message says what was expected and what happened. */
export class StepError extends Error {}

/** The providers the demo walks, in order when no `--provider` is given. */
export const PROVIDERS = ["google", "microsoft"] as const;
export type Provider = typeof PROVIDERS[number];
export const LABEL: Record<Provider, string> = { google: "Google", microsoft: "Microsoft 365" };

/** One provider's walk: who connects, and where their sandbox calendar lives. */
export interface Walk {
  provider: Provider;
  staff: DemoStaff;
  sandboxUrl: string;
}

/** A sandbox event in Google's shape; Microsoft events are converted (instants as UTC `Z`). */
export interface SandboxEvent {
  id: string;
  status?: string;
  summary?: string;
  start?: { dateTime?: string; date?: string };
  end?: { dateTime?: string; date?: string };
}

/** The columns of a calendar_sync_log row the demo prints. */
export interface SyncLogRow {
  sync_status: string;
  desired_action: string | null;
  event_id: string | null;
  calendar_id: string | null;
  retry_count: number;
  error_message: string | null;
  last_synced_at: Date | null;
}

export const dim = (s: string) => (Deno.stdout.isTerminal() ? `\x1b[2m${s}\x1b[0m` : s);
export const bold = (s: string) => (Deno.stdout.isTerminal() ? `\x1b[1m${s}\x1b[0m` : s);

/** fetch that turns "connection refused" into a message naming `npm start`. */
export async function call(url: string, init: RequestInit = {}): Promise<Response> {
  try {
    return await fetch(url, { redirect: "manual", ...init });
  } catch (err) {
    throw new StepError(
      `nothing answers at ${new URL(url).origin} (${(err as Error).name}): is \`npm start\` running?`,
    );
  }
}

/**
 * The JSON body of `res`.
 * @throws StepError naming `what` when the answer is not JSON or not a 2xx.
 */
export async function jsonOf<T>(res: Response, what: string): Promise<T> {
  const text = await res.text();
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    throw new StepError(`${what}: HTTP ${res.status}, not JSON: ${text.slice(0, 200)}`);
  }
  if (!res.ok) throw new StepError(`${what}: HTTP ${res.status} ${JSON.stringify(body)}`);
  return body as T;
}

function eventTime(t?: { dateTime?: string; date?: string }): string {
  return t?.dateTime ?? t?.date ?? "?";
}

interface GraphEvent {
  id: string;
  subject?: string;
  start: { dateTime: string; timeZone: string };
  end: { dateTime: string; timeZone: string };
}

/** A Graph dateTimeTimeZone (local wall clock + Windows or IANA zone) as an ISO 8601 UTC instant. */
function graphInstant(t: { dateTime: string; timeZone: string }): string {
  const ms = eventInstant(
    { dateTime: t.dateTime, timeZone: resolveZone(t.timeZone)?.iana ?? t.timeZone },
    "UTC",
  );
  return ms === undefined ? t.dateTime : new Date(ms).toISOString();
}

/** Admin path of the staff member's sandbox calendar events (Google primary, Microsoft default). */
function eventsPath(w: Walk): string {
  const email = encodeURIComponent(w.staff.email);
  return w.provider === "google"
    ? `${w.sandboxUrl}/_admin/accounts/${email}/calendars/${email}/events`
    : `${w.sandboxUrl}/_admin/microsoft/accounts/${email}/calendars/default/events`;
}

/** The live events of the staff member's sandbox calendar (deleted ones left out). */
export async function sandboxEvents(w: Walk): Promise<SandboxEvent[]> {
  const res = await call(eventsPath(w));
  if (w.provider === "google") {
    const body = await jsonOf<{ items: SandboxEvent[] }>(res, "sandbox calendar");
    return body.items.filter((e) => e.status !== "cancelled");
  }
  // Deleted Graph events are left out unless includeDeleted=true.
  const body = await jsonOf<{ items: GraphEvent[] }>(res, "sandbox calendar");
  return body.items.map((e) => ({
    id: e.id,
    summary: e.subject,
    start: { dateTime: graphInstant(e.start) },
    end: { dateTime: graphInstant(e.end) },
  }));
}

/** calendar-get-availability's answer: busy intervals, and whether the busy cache or the provider answered. */
export interface Availability {
  busy: { start: string; end: string }[];
  source: "cache" | "live";
  as_of: string;
}

/** calendar-get-availability for the staff member over the 7 days from `from`, as the staff member. */
export async function getAvailability(functionsUrl: string, w: Walk, from: Date): Promise<Availability> {
  return await jsonOf<Availability>(
    await call(`${functionsUrl}/calendar-get-availability`, {
      method: "POST",
      headers: { authorization: `Bearer ${w.staff.jwt}`, "content-type": "application/json" },
      body: JSON.stringify({
        staff_id: w.staff.staffId,
        time_min: from.toISOString(),
        time_max: new Date(from.getTime() + 7 * 24 * 3600 * 1000).toISOString(),
      }),
    }),
    "calendar-get-availability",
  );
}

/** Whether some busy interval of the answer covers [start, end]. */
export function covers(a: Availability, start: Date, end: Date): boolean {
  return a.busy.some((b) => new Date(b.start) <= start && new Date(b.end) >= end);
}

/** Start and end in the provider's event body: Google instants, Graph UTC wall clock. */
function times(w: Walk, start: Date, end: Date): Record<string, unknown> {
  return w.provider === "google"
    ? { start: { dateTime: start.toISOString() }, end: { dateTime: end.toISOString() } }
    : {
      start: { dateTime: start.toISOString().slice(0, 19), timeZone: "UTC" },
      end: { dateTime: end.toISOString().slice(0, 19), timeZone: "UTC" },
    };
}

/** Put a busy block titled `title` on the staff member's sandbox calendar, as the person would by hand. */
export async function addBusy(w: Walk, start: Date, end: Date, title: string): Promise<void> {
  const body = w.provider === "google"
    ? { ...times(w, start, end), summary: title }
    : { ...times(w, start, end), subject: title, showAs: "busy" };
  await jsonOf(
    await call(eventsPath(w), {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body),
    }),
    "sandbox: add a busy event",
  );
}

/** Move an event of the sandbox calendar, as its user would in Google Calendar or Outlook. */
export async function moveEvent(w: Walk, eventId: string, start: Date, end: Date): Promise<void> {
  await jsonOf(
    await call(`${eventsPath(w)}/${encodeURIComponent(eventId)}`, {
      method: "PATCH",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(times(w, start, end)),
    }),
    "sandbox: move an event",
  );
}

/** Delete an event of the sandbox calendar, as its user would. */
export async function deleteEvent(w: Walk, eventId: string): Promise<void> {
  const res = await call(`${eventsPath(w)}/${encodeURIComponent(eventId)}`, { method: "DELETE" });
  const text = await res.text();
  if (!res.ok) throw new StepError(`sandbox: delete an event: HTTP ${res.status} ${text.slice(0, 200)}`);
}

/** The staff member's calendar_sync_log row of appointment `appointmentId`, if any. */
export async function syncLogRow(
  sql: postgres.Sql,
  w: Walk,
  appointmentId: string,
): Promise<SyncLogRow | undefined> {
  return (await sql<SyncLogRow[]>`
      select sync_status, desired_action, event_id, calendar_id, retry_count, error_message,
        last_synced_at
      from public.calendar_sync_log where appointment_key = ${appointmentId} and staff_id = ${w.staff.staffId}`)[
    0
  ];
}

/**
 * Poll until the appointment's row is synced and its event is on the sandbox calendar at `start`..`end`.
 * @returns the row (its `event_id` set).
 * @throws StepError after {@link SYNC_DEADLINE_MS}.
 */
export function waitForEventAt(
  sql: postgres.Sql,
  w: Walk,
  appointmentId: string,
  start: Date,
  end: Date,
  what: string,
): Promise<SyncLogRow> {
  return waitFor(what, async () => {
    const row = await syncLogRow(sql, w, appointmentId);
    if (row?.sync_status !== "synced" || !row.event_id) return undefined;
    const ev = (await sandboxEvents(w)).find((e) => e.id === row.event_id);
    return ev && sameInstant(ev.start?.dateTime, start) && sameInstant(ev.end?.dateTime, end)
      ? row
      : undefined;
  });
}

/** Print the sandbox calendar, marking event `highlight` as the appointment's. */
export function printCalendar(events: SandboxEvent[], highlight?: string): void {
  console.log(`  sandbox calendar ${dim("(primary / default)")} now holds ${events.length} event(s):`);
  for (const e of events) {
    const mark = e.id === highlight ? "  <- this appointment" : "";
    console.log(
      `    - ${eventTime(e.start)} .. ${eventTime(e.end)}  "${e.summary ?? ""}"  id=${e.id}${mark}`,
    );
  }
}

export function printLog(row: SyncLogRow | undefined): void {
  if (!row) {
    console.log("  calendar_sync_log: no row");
    return;
  }
  console.log(
    `  calendar_sync_log: sync_status=${row.sync_status} desired_action=${row.desired_action ?? "null"} ` +
      `event_id=${row.event_id ?? "null"} calendar=${row.calendar_id ?? "null"} ` +
      `retry_count=${row.retry_count} last_synced_at=${row.last_synced_at?.toISOString() ?? "null"}` +
      (row.error_message ? ` error="${row.error_message}"` : ""),
  );
}

/**
 * Poll until `check` returns a value (not undefined).
 * @throws StepError naming `what` after {@link SYNC_DEADLINE_MS}.
 */
export async function waitFor<T>(what: string, check: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + SYNC_DEADLINE_MS;
  let delay = 100;
  while (true) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) {
      throw new StepError(
        `timed out after ${
          SYNC_DEADLINE_MS / 1000
        } s waiting for ${what} (is the dispatcher running? see the npm start output)`,
      );
    }
    await new Promise((r) => setTimeout(r, delay));
    delay = Math.min(delay * 2, 1000);
  }
}

/** The instant `days` days from now at hh:mm UTC. */
export function atHour(days: number, hour: number, minute = 0): Date {
  const d = new Date();
  d.setUTCDate(d.getUTCDate() + days);
  d.setUTCHours(hour, minute, 0, 0);
  return d;
}

/** Same instant as the provider writes it back; compares without caring about the offset notation. */
export function sameInstant(a: string | undefined, b: Date): boolean {
  return a !== undefined && new Date(a).getTime() === b.getTime();
}
