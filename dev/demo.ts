/**
 * `npm run demo`: walks the main job against the stack `npm start` runs, printing each step.
 *
 * 1. connect: calendar-auth-start -> the sandbox consent page (approved through `/_admin/authorize`,
 *    which is what a browser does) -> calendar-auth-callback, whose redirect is followed by hand
 *    and shown;
 * 2. list calendars;
 * 3. availability for the next 7 days (a busy block is put on the sandbox calendar first);
 * 4. create an appointment with a plain INSERT, as the app would: the trigger queues it, the
 *    dispatcher runs the worker, the event appears on the sandbox calendar;
 * 5. move it (UPDATE of starts_at / ends_at), then 6. cancel it (status 'cancelled'), each time
 *    waiting until the sandbox calendar agrees and printing it and the calendar_sync_log row.
 *
 * Exits 0 when every step passed, 1 naming the failing step otherwise. Safe to run again: it
 * reconnects and uses a fresh appointment each time. Prints no token.
 */
import postgres from "postgres";
import { DEMO_FILE, DEMO_RETURN_TO, type DemoInfo } from "./demo-ids.ts";

const SYNC_DEADLINE_MS = 30_000;
const BUSY_SUMMARY = "Busy (demo block)";

/** A demo step failed; the message says what was expected and what happened. */
class StepError extends Error {}

interface SandboxEvent {
  id: string;
  status?: string;
  summary?: string;
  start?: { dateTime?: string; date?: string };
  end?: { dateTime?: string; date?: string };
}

interface SyncLogRow {
  sync_status: string;
  desired_action: string | null;
  event_id: string | null;
  calendar_id: string | null;
  retry_count: number;
  error_message: string | null;
  last_synced_at: Date | null;
}

const dim = (s: string) => (Deno.stdout.isTerminal() ? `\x1b[2m${s}\x1b[0m` : s);
const bold = (s: string) => (Deno.stdout.isTerminal() ? `\x1b[1m${s}\x1b[0m` : s);

async function readDemoInfo(): Promise<DemoInfo> {
  let text: string;
  try {
    text = await Deno.readTextFile(DEMO_FILE);
  } catch {
    throw new StepError(
      `${DEMO_FILE} not found: start the stack first with \`npm start\` (in another terminal)`,
    );
  }
  return JSON.parse(text) as DemoInfo;
}

/** fetch that turns "connection refused" into a message naming `npm start`. */
async function call(url: string, init: RequestInit = {}): Promise<Response> {
  try {
    return await fetch(url, { redirect: "manual", ...init });
  } catch (err) {
    throw new StepError(
      `nothing answers at ${new URL(url).origin} (${(err as Error).name}): is \`npm start\` running?`,
    );
  }
}

async function jsonOf<T>(res: Response, what: string): Promise<T> {
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

async function sandboxEvents(info: DemoInfo): Promise<SandboxEvent[]> {
  const email = encodeURIComponent(info.email);
  const res = await call(`${info.sandboxUrl}/_admin/accounts/${email}/calendars/${email}/events`);
  const body = await jsonOf<{ items: SandboxEvent[] }>(res, "sandbox calendar");
  return body.items.filter((e) => e.status !== "cancelled");
}

function printCalendar(events: SandboxEvent[], highlight?: string): void {
  console.log(`  sandbox calendar ${dim("(primary)")} now holds ${events.length} event(s):`);
  for (const e of events) {
    const mark = e.id === highlight ? "  <- this appointment" : "";
    console.log(
      `    - ${eventTime(e.start)} .. ${eventTime(e.end)}  "${e.summary ?? ""}"  id=${e.id}${mark}`,
    );
  }
}

function printLog(row: SyncLogRow | undefined): void {
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

/** Poll until `check` returns a value (not undefined), or fail after the deadline with `what`. */
async function waitFor<T>(what: string, check: () => Promise<T | undefined>): Promise<T> {
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

/** The instant `days` days from now at hh:00 UTC. */
function atHour(days: number, hour: number): Date {
  const d = new Date();
  d.setUTCDate(d.getUTCDate() + days);
  d.setUTCHours(hour, 0, 0, 0);
  return d;
}

/** Same instant as Google writes it back; compares without caring about the offset notation. */
function sameInstant(a: string | undefined, b: Date): boolean {
  return a !== undefined && new Date(a).getTime() === b.getTime();
}

async function main(): Promise<number> {
  const info = await readDemoInfo().catch((err) => {
    console.error(`demo: ${(err as Error).message}`);
    return null;
  });
  if (!info) return 1;
  const fn = info.functionsUrl;
  const auth = { authorization: `Bearer ${info.jwt}` };
  const sql = postgres(info.databaseUrl, { max: 2, prepare: false, onnotice: () => {} });
  let step = "";
  let appointmentId: string | undefined;

  const begin = (n: number, title: string) => {
    step = `${n}. ${title}`;
    console.log(`\n${bold(step)}`);
  };

  const logRow = async (id: string) =>
    (await sql<SyncLogRow[]>`
      select sync_status, desired_action, event_id, calendar_id, retry_count, error_message,
        last_synced_at
      from public.calendar_sync_log where appointment_key = ${id} and staff_id = ${info.staffId}`)[0];

  try {
    console.log(`Demo against ${fn} (staff ${info.email}, staff_id ${info.staffId})`);

    begin(1, "Connect the Google calendar (OAuth redirect flow)");
    const startRes = await call(`${fn}/calendar-auth-start`, {
      method: "POST",
      headers: { ...auth, "content-type": "application/json" },
      body: JSON.stringify({ return_to: DEMO_RETURN_TO, login_hint: info.email }),
    });
    const started = await jsonOf<{ url: string; expires_at: string; flow_id: string }>(
      startRes,
      "calendar-auth-start",
    );
    const consent = new URL(started.url);
    console.log(`  calendar-auth-start -> consent URL ${consent.origin}${consent.pathname}`);
    console.log(`    scopes: ${consent.searchParams.get("scope")}`);
    console.log(
      `    access_type=${consent.searchParams.get("access_type")} prompt=${
        consent.searchParams.get("prompt")
      } ` +
        `code_challenge_method=${
          consent.searchParams.get("code_challenge_method")
        } (state expires ${started.expires_at})`,
    );
    const decision = await jsonOf<{ redirect: string }>(
      await call(`${info.sandboxUrl}/_admin/authorize`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ authorizationUrl: started.url, login: info.email, decision: "approve" }),
      }),
      "sandbox consent (approve)",
    );
    const callbackUrl = new URL(decision.redirect);
    console.log(
      `  consent approved as ${info.email}; the browser is sent to ${callbackUrl.origin}${callbackUrl.pathname}`,
    );
    const callbackRes = await call(decision.redirect);
    await callbackRes.body?.cancel();
    const location = callbackRes.headers.get("location");
    if (callbackRes.status !== 302 || !location) {
      throw new StepError(`calendar-auth-callback answered ${callbackRes.status}, expected a 302 redirect`);
    }
    console.log(`  calendar-auth-callback -> 302 ${location}`);
    const back = new URL(location);
    const pendingId = back.searchParams.get("calendar_pending");
    if (back.searchParams.get("calendar_status") === "pending" && pendingId) {
      // The app confirms the grant with the signed-in user's session: only the user who started
      // the flow can attach the account the consent page returned.
      const confirmed = await jsonOf<{ status: string; account_email: string }>(
        await call(`${fn}/calendar-auth-confirm`, {
          method: "POST",
          headers: { ...auth, "content-type": "application/json" },
          body: JSON.stringify({ pending_id: pendingId, flow_id: started.flow_id }),
        }),
        "calendar-auth-confirm",
      );
      console.log(`  calendar-auth-confirm -> ${confirmed.status} (account ${confirmed.account_email})`);
    } else if (back.searchParams.get("calendar_status") !== "connected") {
      throw new StepError(
        `the callback reported calendar_status=${back.searchParams.get("calendar_status")} ` +
          `calendar_error=${back.searchParams.get("calendar_error")}`,
      );
    }
    const [conn] = await sql<{ connection_status: string; selected_calendar_id: string }[]>`
      select connection_status, selected_calendar_id from public.staff_calendar_connections
      where staff_id = ${info.staffId} and provider = 'google'`;
    console.log(
      `  staff_calendar_connections: connection_status=${conn?.connection_status} selected_calendar_id=${conn?.selected_calendar_id} (tokens stored encrypted)`,
    );

    begin(2, "List calendars");
    const calendars = await jsonOf<{ id: string; summary: string; primary: boolean; access_role: string }[]>(
      await call(`${fn}/calendar-list-calendars`, { headers: auth }),
      "calendar-list-calendars",
    );
    for (const c of calendars) {
      console.log(
        `  - ${c.id}  "${c.summary}"  access_role=${c.access_role}${c.primary ? "  (primary)" : ""}`,
      );
    }
    if (!calendars.some((c) => c.primary)) throw new StepError("no primary calendar in the list");

    begin(3, "Availability for the next 7 days");
    const busyStart = atHour(1, 9);
    const busyEnd = atHour(1, 10);
    const existing = await sandboxEvents(info);
    if (!existing.some((e) => e.summary === BUSY_SUMMARY && sameInstant(e.start?.dateTime, busyStart))) {
      const email = encodeURIComponent(info.email);
      await jsonOf(
        await call(`${info.sandboxUrl}/_admin/accounts/${email}/calendars/${email}/events`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({
            start: { dateTime: busyStart.toISOString() },
            end: { dateTime: busyEnd.toISOString() },
            summary: BUSY_SUMMARY,
          }),
        }),
        "sandbox: add a busy event",
      );
      console.log(
        `  added a busy block to the sandbox calendar: ${busyStart.toISOString()} .. ${busyEnd.toISOString()}`,
      );
    } else {
      console.log(
        `  the sandbox calendar already has the busy block ${busyStart.toISOString()} (earlier run)`,
      );
    }
    const timeMin = new Date();
    const timeMax = new Date(timeMin.getTime() + 7 * 24 * 3600 * 1000);
    const availability = await jsonOf<{ busy: { start: string; end: string }[] }>(
      await call(`${fn}/calendar-get-availability`, {
        method: "POST",
        headers: { ...auth, "content-type": "application/json" },
        body: JSON.stringify({
          staff_id: info.staffId,
          time_min: timeMin.toISOString(),
          time_max: timeMax.toISOString(),
        }),
      }),
      "calendar-get-availability",
    );
    console.log(`  busy intervals (${availability.busy.length}):`);
    for (const b of availability.busy) console.log(`    - ${b.start} .. ${b.end}`);
    if (!availability.busy.some((b) => new Date(b.start) <= busyStart && new Date(b.end) >= busyEnd)) {
      throw new StepError("the busy block does not show in the availability answer");
    }

    begin(4, "Create an appointment (INSERT, as the app does) and wait for the calendar");
    const startsAt = atHour(2, 14);
    const endsAt = new Date(startsAt.getTime() + 50 * 60 * 1000);
    const [appt] = await sql<{ id: string }[]>`
      insert into public.appointments (tenant_id, staff_id, starts_at, ends_at, status)
      values (${info.tenantId}, ${info.staffId}, ${startsAt}, ${endsAt}, 'scheduled')
      returning id`;
    appointmentId = appt.id;
    const apptId = appt.id;
    console.log(`  inserted appointment ${apptId}: ${startsAt.toISOString()} .. ${endsAt.toISOString()}`);
    const created = await waitFor("the event to appear on the sandbox calendar", async () => {
      const row = await logRow(apptId);
      if (row?.sync_status !== "synced" || !row.event_id) return undefined;
      const ev = (await sandboxEvents(info)).find((e) => e.id === row.event_id);
      return ev && sameInstant(ev.start?.dateTime, startsAt) ? row : undefined;
    });
    const eventId = created.event_id!;
    printCalendar(await sandboxEvents(info), eventId);
    printLog(created);

    begin(5, "Move it one hour later (UPDATE starts_at / ends_at)");
    const movedStart = new Date(startsAt.getTime() + 3600_000);
    const movedEnd = new Date(endsAt.getTime() + 3600_000);
    await sql`update public.appointments set starts_at = ${movedStart}, ends_at = ${movedEnd}, updated_at = now()
      where id = ${apptId}`;
    console.log(`  moved to ${movedStart.toISOString()} .. ${movedEnd.toISOString()}`);
    const moved = await waitFor("the event to move on the sandbox calendar", async () => {
      const row = await logRow(apptId);
      if (row?.sync_status !== "synced") return undefined;
      const ev = (await sandboxEvents(info)).find((e) => e.id === eventId);
      return ev && sameInstant(ev.start?.dateTime, movedStart) && sameInstant(ev.end?.dateTime, movedEnd)
        ? row
        : undefined;
    });
    printCalendar(await sandboxEvents(info), eventId);
    printLog(moved);

    begin(6, "Cancel it (status = 'cancelled')");
    await sql`update public.appointments set status = 'cancelled', updated_at = now() where id = ${apptId}`;
    const cancelled = await waitFor("the event to leave the sandbox calendar", async () => {
      const row = await logRow(apptId);
      if (row?.sync_status !== "synced" || row.desired_action !== null) return undefined;
      const still = (await sandboxEvents(info)).some((e) => e.id === eventId);
      return still ? undefined : row;
    });
    printCalendar(await sandboxEvents(info));
    printLog(cancelled);

    const [status] = await sql<
      {
        connection_status: string;
        pending_count: number;
        failed_count: number;
        last_synced_at: Date | null;
      }[]
    >`select connection_status, pending_count, failed_count, last_synced_at from public.calendar_sync_status
      where staff_id = ${info.staffId}`;
    console.log(
      `\ncalendar_sync_status: connection_status=${status?.connection_status} pending=${status?.pending_count} ` +
        `failed=${status?.failed_count} last_synced_at=${status?.last_synced_at?.toISOString() ?? "null"}`,
    );
    console.log(bold("\nDemo complete: connect, list, availability, create, move and cancel all worked."));
    return 0;
  } catch (err) {
    const message = err instanceof StepError ? err.message : (err as Error)?.stack ?? String(err);
    console.error(`\ndemo failed at step "${step || "setup"}": ${message}`);
    if (appointmentId) console.error(`  (appointment ${appointmentId})`);
    return 1;
  } finally {
    await sql.end({ timeout: 2 });
  }
}

if (import.meta.main) {
  Deno.exit(await main());
}
