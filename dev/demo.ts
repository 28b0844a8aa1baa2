/**
 * `npm run demo`: walks the main job against the stack `npm start` runs, printing each step, for
 * Google (staff `clinician@example.com`) and then Microsoft 365 (the second demo staff member,
 * `ms.clinician@example.com`: a staff member has one active connection). `--provider google|microsoft`
 * walks one.
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
import { DEMO_FILE, DEMO_RETURN_TO, type DemoInfo, type DemoStaff } from "./demo-ids.ts";
import { resolveZone } from "./sandbox/ms-zones.ts";
import { eventInstant } from "./sandbox/time.ts";

const SYNC_DEADLINE_MS = 30_000;
const BUSY_SUMMARY = "Busy (demo block)";

/** A demo step failed; the message says what was expected and what happened. */
class StepError extends Error {}

/** The providers the demo walks, in order when no `--provider` is given. */
const PROVIDERS = ["google", "microsoft"] as const;
type Provider = typeof PROVIDERS[number];
const LABEL: Record<Provider, string> = { google: "Google", microsoft: "Microsoft 365" };

/** One provider's walk: who connects, and where their sandbox calendar lives. */
interface Walk {
  provider: Provider;
  staff: DemoStaff;
  sandboxUrl: string;
}

/** A sandbox event in Google's shape; Microsoft events are converted (instants as UTC `Z`). */
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

async function sandboxEvents(w: Walk): Promise<SandboxEvent[]> {
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

/** Put a busy block on the staff member's sandbox calendar, as the person would by hand. */
async function addBusy(w: Walk, start: Date, end: Date): Promise<void> {
  const body = w.provider === "google"
    ? {
      start: { dateTime: start.toISOString() },
      end: { dateTime: end.toISOString() },
      summary: BUSY_SUMMARY,
    }
    : {
      start: { dateTime: start.toISOString().slice(0, 19), timeZone: "UTC" },
      end: { dateTime: end.toISOString().slice(0, 19), timeZone: "UTC" },
      subject: BUSY_SUMMARY,
      showAs: "busy",
    };
  await jsonOf(
    await call(eventsPath(w), {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body),
    }),
    "sandbox: add a busy event",
  );
}

function printCalendar(events: SandboxEvent[], highlight?: string): void {
  console.log(`  sandbox calendar ${dim("(primary / default)")} now holds ${events.length} event(s):`);
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

/**
 * Walk one provider for one staff member: steps 1-6 above. `begin` prints each step's title;
 * `onAppointment` learns the appointment's id so a failure can name it.
 * @throws StepError when a step does not reach the expected state.
 */
async function walk(
  info: DemoInfo,
  w: Walk,
  sql: postgres.Sql,
  begin: (n: number, title: string) => void,
  onAppointment: (id: string) => void,
): Promise<void> {
  const fn = info.functionsUrl;
  const auth = { authorization: `Bearer ${w.staff.jwt}` };
  const logRow = async (id: string) =>
    (await sql<SyncLogRow[]>`
      select sync_status, desired_action, event_id, calendar_id, retry_count, error_message,
        last_synced_at
      from public.calendar_sync_log where appointment_key = ${id} and staff_id = ${w.staff.staffId}`)[0];

  begin(1, `Connect the ${LABEL[w.provider]} calendar (OAuth redirect flow)`);
  const startRes = await call(`${fn}/calendar-auth-start`, {
    method: "POST",
    headers: { ...auth, "content-type": "application/json" },
    body: JSON.stringify({ provider: w.provider, return_to: DEMO_RETURN_TO, login_hint: w.staff.email }),
  });
  const started = await jsonOf<{ url: string; expires_at: string; flow_id: string }>(
    startRes,
    "calendar-auth-start",
  );
  const consent = new URL(started.url);
  console.log(`  calendar-auth-start -> consent URL ${consent.origin}${consent.pathname}`);
  console.log(`    scopes: ${consent.searchParams.get("scope")}`);
  // Google asks for offline access with access_type; Microsoft with the offline_access scope.
  const params = ["access_type", "prompt", "code_challenge_method"]
    .filter((k) => consent.searchParams.has(k))
    .map((k) => `${k}=${consent.searchParams.get(k)}`);
  console.log(`    ${params.join(" ")} (state expires ${started.expires_at})`);
  const decision = await jsonOf<{ redirect: string }>(
    await call(`${info.sandboxUrl}/_admin/authorize`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ authorizationUrl: started.url, login: w.staff.email, decision: "approve" }),
    }),
    "sandbox consent (approve)",
  );
  const callbackUrl = new URL(decision.redirect);
  console.log(
    `  consent approved as ${w.staff.email}; the browser is sent to ${callbackUrl.origin}${callbackUrl.pathname}`,
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
      where staff_id = ${w.staff.staffId} and provider = ${w.provider}`;
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
  const existing = await sandboxEvents(w);
  if (!existing.some((e) => e.summary === BUSY_SUMMARY && sameInstant(e.start?.dateTime, busyStart))) {
    await addBusy(w, busyStart, busyEnd);
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
        staff_id: w.staff.staffId,
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
      values (${info.tenantId}, ${w.staff.staffId}, ${startsAt}, ${endsAt}, 'scheduled')
      returning id`;
  onAppointment(appt.id);
  const apptId = appt.id;
  console.log(`  inserted appointment ${apptId}: ${startsAt.toISOString()} .. ${endsAt.toISOString()}`);
  const created = await waitFor("the event to appear on the sandbox calendar", async () => {
    const row = await logRow(apptId);
    if (row?.sync_status !== "synced" || !row.event_id) return undefined;
    const ev = (await sandboxEvents(w)).find((e) => e.id === row.event_id);
    return ev && sameInstant(ev.start?.dateTime, startsAt) ? row : undefined;
  });
  const eventId = created.event_id!;
  printCalendar(await sandboxEvents(w), eventId);
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
    const ev = (await sandboxEvents(w)).find((e) => e.id === eventId);
    return ev && sameInstant(ev.start?.dateTime, movedStart) && sameInstant(ev.end?.dateTime, movedEnd)
      ? row
      : undefined;
  });
  printCalendar(await sandboxEvents(w), eventId);
  printLog(moved);

  begin(6, "Cancel it (status = 'cancelled')");
  await sql`update public.appointments set status = 'cancelled', updated_at = now() where id = ${apptId}`;
  const cancelled = await waitFor("the event to leave the sandbox calendar", async () => {
    const row = await logRow(apptId);
    if (row?.sync_status !== "synced" || row.desired_action !== null) return undefined;
    const still = (await sandboxEvents(w)).some((e) => e.id === eventId);
    return still ? undefined : row;
  });
  printCalendar(await sandboxEvents(w));
  printLog(cancelled);

  const [status] = await sql<
    {
      connection_status: string;
      pending_count: number;
      failed_count: number;
      last_synced_at: Date | null;
    }[]
  >`select connection_status, pending_count, failed_count, last_synced_at from public.calendar_sync_status
      where staff_id = ${w.staff.staffId}`;
  console.log(
    `\ncalendar_sync_status: connection_status=${status?.connection_status} pending=${status?.pending_count} ` +
      `failed=${status?.failed_count} last_synced_at=${status?.last_synced_at?.toISOString() ?? "null"}`,
  );
  console.log(
    bold(`\n${LABEL[w.provider]}: connect, list, availability, create, move and cancel all worked.`),
  );
}

/** `--provider google|microsoft` (or `--provider=...`): that one; none: all of {@link PROVIDERS}. */
function providersFromArgs(args: string[]): Provider[] {
  const i = args.findIndex((a) => a === "--provider" || a.startsWith("--provider="));
  if (i < 0) return [...PROVIDERS];
  const value = args[i].includes("=") ? args[i].slice(args[i].indexOf("=") + 1) : args[i + 1];
  if (!PROVIDERS.includes(value as Provider)) {
    throw new StepError(`--provider must be one of ${PROVIDERS.join(", ")} (got ${value ?? "nothing"})`);
  }
  return [value as Provider];
}

async function main(): Promise<number> {
  let providers: Provider[];
  let info: DemoInfo;
  try {
    providers = providersFromArgs(Deno.args);
    info = await readDemoInfo();
  } catch (err) {
    console.error(`demo: ${(err as Error).message}`);
    return 1;
  }
  if (providers.includes("microsoft") && !info.microsoft) {
    console.error(`demo: ${DEMO_FILE} has no Microsoft staff member: restart \`npm start\``);
    return 1;
  }
  const sql = postgres(info.databaseUrl, { max: 2, prepare: false, onnotice: () => {} });
  let step = "";
  let appointmentId: string | undefined;
  const begin = (n: number, title: string) => {
    step = `${n}. ${title}`;
    console.log(`\n${bold(step)}`);
  };
  try {
    for (const provider of providers) {
      const staff: DemoStaff = provider === "google"
        ? { jwt: info.jwt, staffId: info.staffId, userId: info.userId, email: info.email }
        : info.microsoft;
      step = "";
      appointmentId = undefined;
      console.log(
        `\n${bold(`== ${LABEL[provider]} ==`)} demo against ${info.functionsUrl} ` +
          `(staff ${staff.email}, staff_id ${staff.staffId})`,
      );
      await walk(info, { provider, staff, sandboxUrl: info.sandboxUrl }, sql, begin, (id) => {
        appointmentId = id;
      });
    }
    console.log(bold(`\nDemo complete (${providers.map((p) => LABEL[p]).join(", ")}): every step passed.`));
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
