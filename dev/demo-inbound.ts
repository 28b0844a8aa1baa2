/**
 * The inbound half of `npm run demo` (steps 7-10, after dev/demo.ts's connect and outbound steps):
 * what happens when the staff member changes their calendar in Google Calendar or Outlook. Every
 * change is made through the sandbox's admin API, "as the user"; the sandbox then pushes a
 * notification to calendar-webhook, the dispatcher runs calendar-sync-worker, and the channel's
 * sync job reads the change (docs/architecture.md, "Inbound sync").
 *
 * 7. the connection's push channel is live and its first full sync done (stage `incremental`);
 * 8. a busy block added on the calendar shows in calendar-get-availability with `source: "cache"`;
 * 9. our event moved on the calendar is put back at the appointment's time with exactly one
 *    provider write, and a `calendar_conflicts` row `external_edit_restored` records it;
 * 10. a block overlapping an appointment opens an `overlap` conflict; removing it resolves it.
 */
import type postgres from "postgres";
import {
  addBusy,
  atHour,
  call,
  covers,
  deleteEvent,
  getAvailability,
  jsonOf,
  moveEvent,
  printCalendar,
  sameInstant,
  sandboxEvents,
  StepError,
  syncLogRow,
  waitFor,
  waitForEventAt,
  type Walk,
} from "./demo-common.ts";
import type { DemoInfo } from "./demo-ids.ts";

const BLOCK_SUMMARY = "Dentist (demo, added on the calendar)";
const OVERLAP_SUMMARY = "Overlapping block (demo)";
const APP_NAME = { google: "Google Calendar", microsoft: "Outlook" } as const;

interface ConflictRow {
  kind: string;
  details: Record<string, unknown>;
  detected_at: Date;
  resolved_at: Date | null;
}

function printConflict(row: ConflictRow): void {
  console.log(
    `  calendar_conflicts: kind=${row.kind} detected_at=${row.detected_at.toISOString()} ` +
      `resolved_at=${row.resolved_at?.toISOString() ?? "null"}`,
  );
  console.log(`    details=${JSON.stringify(row.details)}`);
}

/**
 * Steps 7-10 for one provider, after the connect and outbound steps of dev/demo.ts. `begin` prints
 * each step's title; `onAppointment` learns the appointment's id so a failure can name it.
 * @throws StepError when a step does not reach the expected state.
 */
export async function walkInbound(
  info: DemoInfo,
  w: Walk,
  sql: postgres.Sql,
  begin: (n: number, title: string) => void,
  onAppointment: (id: string) => void,
): Promise<void> {
  const since = new Date();
  const availability = () => getAvailability(info.functionsUrl, w, since);
  /** The appointment's newest conflict of `kind` once `ready` holds for it. */
  const conflict = (appointmentId: string, kind: string, ready: (c: ConflictRow) => boolean, what: string) =>
    waitFor(what, async () => {
      const [row] = await sql<ConflictRow[]>`
        select kind, details, detected_at, resolved_at from public.calendar_conflicts
        where appointment_id = ${appointmentId} and kind = ${kind}
        order by detected_at desc limit 1`;
      return row && ready(row) ? row : undefined;
    });

  begin(7, "Inbound: the calendar's push channel is live and synced");
  // The newest channel of the staff member: connecting (again) in step 1 opened it and stopped any
  // older one. A Google renewal's `standby` replacement is not the live channel yet.
  const channel = await waitFor("the push channel's first full sync", async () => {
    const [ch] = await sql<
      {
        provider_channel_id: string | null;
        calendar_id: string;
        sync_stage: string;
        expires_at: Date | null;
        last_synced_at: Date | null;
      }[]
    >`
      select provider_channel_id, calendar_id, sync_stage, expires_at, last_synced_at
      from public.calendar_channels
      where staff_id = ${w.staff.staffId} and provider = ${w.provider} and sync_stage <> 'standby'
      order by created_at desc limit 1`;
    return ch?.sync_stage === "incremental" ? ch : undefined;
  });
  console.log(
    `  calendar_channels: provider_channel_id=${channel.provider_channel_id} calendar=${channel.calendar_id} ` +
      `sync_stage=${channel.sync_stage}`,
  );
  console.log(
    `    expires_at=${channel.expires_at?.toISOString() ?? "null"} ` +
      `last_synced_at=${channel.last_synced_at?.toISOString() ?? "null"} ` +
      `(the sandbox pushes to ${info.functionsUrl}/calendar-webhook/${w.provider})`,
  );

  begin(8, `A block the user adds in ${APP_NAME[w.provider]} shows in availability, from the cache`);
  const blockStart = atHour(1, 12);
  const blockEnd = atHour(1, 13);
  await addBusy(w, blockStart, blockEnd, BLOCK_SUMMARY);
  console.log(
    `  added "${BLOCK_SUMMARY}" on the sandbox calendar: ${blockStart.toISOString()} .. ${blockEnd.toISOString()}`,
  );
  const cached = await waitFor("the block in a cached availability answer", async () => {
    const a = await availability();
    return a.source === "cache" && covers(a, blockStart, blockEnd) ? a : undefined;
  });
  console.log(
    `  calendar-get-availability -> source=${cached.source} as_of=${cached.as_of}, busy (${cached.busy.length}):`,
  );
  for (const b of cached.busy) {
    const mark = sameInstant(b.start, blockStart) ? "  <- the new block" : "";
    console.log(`    - ${b.start} .. ${b.end}${mark}`);
  }
  // Take it off again, so that a next run starts from the same calendar.
  const added = (await sandboxEvents(w)).filter((e) => e.summary === BLOCK_SUMMARY);
  for (const e of added) await deleteEvent(w, e.id);
  const dropped = await waitFor("the removed block to leave the cache", async () => {
    const a = await availability();
    return a.source === "cache" && !covers(a, blockStart, blockEnd) ? a : undefined;
  });
  console.log(`  removed it on the sandbox: the cache no longer has it (as_of=${dropped.as_of})`);

  begin(9, `Our event moved by the user in ${APP_NAME[w.provider]} is put back`);
  const startsAt = atHour(3, 10);
  const endsAt = new Date(startsAt.getTime() + 50 * 60 * 1000);
  const [appt] = await sql<{ id: string }[]>`
      insert into public.appointments (tenant_id, staff_id, starts_at, ends_at, status)
      values (${info.tenantId}, ${w.staff.staffId}, ${startsAt}, ${endsAt}, 'scheduled')
      returning id`;
  const apptId = appt.id;
  onAppointment(apptId);
  console.log(`  inserted appointment ${apptId}: ${startsAt.toISOString()} .. ${endsAt.toISOString()}`);
  const eventId = (await waitForEventAt(sql, w, apptId, startsAt, endsAt, "the appointment's event"))
    .event_id!;
  console.log(`  its event ${eventId} is on the sandbox calendar`);
  const movedStart = new Date(startsAt.getTime() + 2 * 3600_000);
  const movedEnd = new Date(endsAt.getTime() + 2 * 3600_000);
  const editedAt = new Date();
  await moveEvent(w, eventId, movedStart, movedEnd);
  console.log(
    `  the user moves it on the sandbox to ${movedStart.toISOString()} .. ${movedEnd.toISOString()}`,
  );
  await waitFor("the event to be back at the appointment's time", async () => {
    const ev = (await sandboxEvents(w)).find((e) => e.id === eventId);
    return ev && sameInstant(ev.start?.dateTime, startsAt) && sameInstant(ev.end?.dateTime, endsAt)
      ? ev
      : undefined;
  });
  printCalendar(await sandboxEvents(w), eventId);
  const restored = await conflict(apptId, "external_edit_restored", () => true, "the restore's conflict row");
  printConflict(restored);
  // The restore's own write notifies too; reading that echo resolves the conflict and writes nothing.
  const settled = await conflict(
    apptId,
    "external_edit_restored",
    (c) => c.resolved_at !== null,
    "the restore's echo to be read (its conflict resolved)",
  );
  console.log(`  the restore's echo was read: resolved_at=${settled.resolved_at!.toISOString()}`);
  const writes = await eventWritesSince(w, editedAt);
  for (const c of writes) {
    console.log(`  provider write since the user's move: ${c.method} ${c.path} (${c.endpoint})`);
  }
  if (writes.length !== 1) {
    throw new StepError(`expected exactly one provider write to put the event back, saw ${writes.length}`);
  }
  console.log("  exactly one write put it back, and its echo wrote nothing");

  begin(10, "A block overlapping an appointment opens a conflict; removing it resolves it");
  const overlapStart = new Date(startsAt.getTime() + 30 * 60 * 1000);
  const overlapEnd = new Date(overlapStart.getTime() + 3600_000);
  await addBusy(w, overlapStart, overlapEnd, OVERLAP_SUMMARY);
  console.log(
    `  added "${OVERLAP_SUMMARY}" on the sandbox calendar: ${overlapStart.toISOString()} .. ${overlapEnd.toISOString()}`,
  );
  printConflict(await conflict(apptId, "overlap", (c) => c.resolved_at === null, "an open overlap conflict"));
  for (const e of (await sandboxEvents(w)).filter((e) => e.summary === OVERLAP_SUMMARY)) {
    await deleteEvent(w, e.id);
  }
  console.log("  removed the block on the sandbox calendar");
  printConflict(
    await conflict(apptId, "overlap", (c) => c.resolved_at !== null, "the overlap conflict to resolve"),
  );

  // Clean up: cancel the appointment, so that a next run starts from the same calendar.
  await sql`update public.appointments set status = 'cancelled', updated_at = now() where id = ${apptId}`;
  await waitFor("the cancelled appointment's event to leave the sandbox calendar", async () => {
    const row = await syncLogRow(sql, w, apptId);
    if (row?.sync_status !== "synced" || row.desired_action !== null) return undefined;
    return (await sandboxEvents(w)).some((e) => e.id === eventId) ? undefined : row;
  });
  console.log(`  (cancelled appointment ${apptId} again: its event left the calendar)`);
}

/** A provider call the sandbox recorded (`GET /_admin/calls`). */
interface SandboxCall {
  endpoint: string;
  method: string;
  path: string;
  email: string;
  status: number;
  at: string;
}

/** Successful event writes (insert, patch, update, delete) for the staff member's account since `since`. */
async function eventWritesSince(w: Walk, since: Date): Promise<SandboxCall[]> {
  const { recent } = await jsonOf<{ recent: SandboxCall[] }>(
    await call(`${w.sandboxUrl}/_admin/calls`),
    "sandbox call log",
  );
  return recent.filter((c) =>
    c.email === w.staff.email && c.method !== "GET" && c.status >= 200 && c.status < 300 &&
    /events\.(insert|patch|update|create|delete)$/.test(c.endpoint) && Date.parse(c.at) >= since.getTime()
  );
}
