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
 *    waiting until the sandbox calendar agrees and printing it and the calendar_sync_log row;
 * 7-10. the inbound side (dev/demo-inbound.ts): the push channel, a block added on the calendar
 *    answered from the busy cache, our moved event put back, an overlap conflict opening and resolving.
 *
 * Exits 0 when every step passed, 1 naming the failing step otherwise. Safe to run again: it
 * reconnects and uses a fresh appointment each time. Prints no token.
 */
import postgres from "postgres";
import {
  addBusy,
  atHour,
  bold,
  call,
  covers,
  getAvailability,
  jsonOf,
  LABEL,
  printCalendar,
  printLog,
  type Provider,
  PROVIDERS,
  sameInstant,
  sandboxEvents,
  StepError,
  syncLogRow,
  waitFor,
  waitForEventAt,
  type Walk,
} from "./demo-common.ts";
import { DEMO_FILE, DEMO_RETURN_TO, type DemoInfo, type DemoStaff } from "./demo-ids.ts";
import { walkInbound } from "./demo-inbound.ts";

const BUSY_SUMMARY = "Busy (demo block)";

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

/**
 * Walk one provider for one staff member: steps 1-10 above. `begin` prints each step's title;
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
    await addBusy(w, busyStart, busyEnd, BUSY_SUMMARY);
    console.log(
      `  added a busy block to the sandbox calendar: ${busyStart.toISOString()} .. ${busyEnd.toISOString()}`,
    );
  } else {
    console.log(
      `  the sandbox calendar already has the busy block ${busyStart.toISOString()} (earlier run)`,
    );
  }
  // The block reaches the answer at once when it is read live, or once its push notification was
  // synced when the busy cache answers (a channel opened by the connect above may already serve it).
  const availability = await waitFor("the busy block in the availability answer", async () => {
    const a = await getAvailability(fn, w, new Date());
    return covers(a, busyStart, busyEnd) ? a : undefined;
  });
  console.log(
    `  calendar-get-availability -> source=${availability.source} as_of=${availability.as_of}, ` +
      `busy intervals (${availability.busy.length}):`,
  );
  for (const b of availability.busy) console.log(`    - ${b.start} .. ${b.end}`);

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
  const created = await waitForEventAt(
    sql,
    w,
    apptId,
    startsAt,
    endsAt,
    "the event to appear on the sandbox calendar",
  );
  const eventId = created.event_id!;
  printCalendar(await sandboxEvents(w), eventId);
  printLog(created);

  begin(5, "Move it one hour later (UPDATE starts_at / ends_at)");
  const movedStart = new Date(startsAt.getTime() + 3600_000);
  const movedEnd = new Date(endsAt.getTime() + 3600_000);
  await sql`update public.appointments set starts_at = ${movedStart}, ends_at = ${movedEnd}, updated_at = now()
      where id = ${apptId}`;
  console.log(`  moved to ${movedStart.toISOString()} .. ${movedEnd.toISOString()}`);
  const moved = await waitForEventAt(
    sql,
    w,
    apptId,
    movedStart,
    movedEnd,
    "the event to move on the sandbox calendar",
  );
  printCalendar(await sandboxEvents(w), eventId);
  printLog(moved);

  begin(6, "Cancel it (status = 'cancelled')");
  await sql`update public.appointments set status = 'cancelled', updated_at = now() where id = ${apptId}`;
  const cancelled = await waitFor("the event to leave the sandbox calendar", async () => {
    const row = await syncLogRow(sql, w, apptId);
    if (row?.sync_status !== "synced" || row.desired_action !== null) return undefined;
    const still = (await sandboxEvents(w)).some((e) => e.id === eventId);
    return still ? undefined : row;
  });
  printCalendar(await sandboxEvents(w));
  printLog(cancelled);

  await walkInbound(info, w, sql, begin, onAppointment);

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
    bold(
      `\n${LABEL[w.provider]}: connect, list, availability, create, move and cancel, and inbound ` +
        "(channel, cached availability, restore, overlap) all worked.",
    ),
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
