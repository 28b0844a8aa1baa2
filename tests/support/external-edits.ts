/**
 * The two-way part of the sync proofs: what became of each change a "user" made to one of our events
 * on the sandbox calendar (moved or deleted through the admin API), and whether the busy cache equals
 * the calendars it mirrors. Both read only what the engine left in the database (conflict rows, the
 * outbox audit of tests/support/outbox-audit.ts, busy blocks) and the sandbox's calendars.
 */
import type postgres from "postgres";
import type { ProviderFixture } from "../contract/fixtures.ts";
import type { SandboxClient } from "./stack.ts";

/** One change a user made to one of our events, as the test made it. */
export interface ExternalEdit {
  provider: "google" | "microsoft";
  staffId: string;
  email: string;
  eventId: string;
  /** The appointment whose sync row stored `eventId` when the user acted. */
  appointmentId: string;
  kind: "edit" | "delete";
  /** Index of the operation in the test's sequence. */
  operation: number;
  /** Database clock just before the admin call (the outbox audit's clock). */
  before: Date;
}

/**
 * What became of one edit:
 * - `restored`: an `external_{kind}_restored` conflict of the appointment was opened or refreshed
 *   after the edit (the calendar agreeing with the appointment is the projection's check);
 * - `superseded`: the app's own work overwrote or removed it: the appointment no longer wants an
 *   event of this staff member, its sync row had a write in flight when the user acted, or the row
 *   changed after (the app re-queued it, a disconnect dropped it), or a later user change of the same
 *   appointment is the one accounted for;
 * - `unaccounted`: none of these, the engine missed it.
 */
export type EditVerdict = "restored" | "superseded" | "unaccounted";

/** Each edit with its verdict and why. */
export async function accountForExternalEdits(
  sql: postgres.Sql,
  edits: readonly ExternalEdit[],
): Promise<{ edit: ExternalEdit; verdict: EditVerdict; why: string }[]> {
  const out: { edit: ExternalEdit; verdict: EditVerdict; why: string }[] = [];
  for (const [i, edit] of edits.entries()) {
    const [restored] = await sql<{ n: number }[]>`
      select count(*)::int as n from public.calendar_conflicts
      where appointment_id = ${edit.appointmentId} and staff_id = ${edit.staffId}
        and kind = ${`external_${edit.kind}_restored`} and detected_at >= ${edit.before}`;
    if (restored.n > 0) {
      out.push({ edit, verdict: "restored", why: `external_${edit.kind}_restored` });
      continue;
    }
    const [wanted] = await sql<{ wanted: boolean }[]>`
      select a.staff_id = ${edit.staffId} and calendar_private.appointment_wants_event(a.status) as wanted
      from public.appointments a where a.id = ${edit.appointmentId}`;
    const later = edits.slice(i + 1).find((e) => e.appointmentId === edit.appointmentId);
    // The row as it was when the user acted (its last audited state), and any change after.
    const [atEdit] = await sql<{ op: string; status: string; leased: boolean }[]>`
      select op, r->>'sync_status' as status,
        coalesce((r->>'lease_expires_at')::timestamptz > ${edit.before}, false) as leased
      from public.test_outbox_audit
      where r->>'appointment_key' = ${edit.appointmentId} and r->>'staff_id' = ${edit.staffId}
        and at <= ${edit.before}
      order by at desc limit 1`;
    const [changed] = await sql<{ n: number }[]>`
      select count(*)::int as n from public.test_outbox_audit
      where r->>'appointment_key' = ${edit.appointmentId} and at > ${edit.before}`;
    const why = !wanted?.wanted
      ? "the appointment no longer wants this event"
      : atEdit && (atEdit.op === "DELETE" || atEdit.status !== "synced" || atEdit.leased)
      ? "the app's write was in flight"
      : changed.n > 0
      ? "the app changed it again"
      : later
      ? `overtaken by the user's ${later.kind} at operation ${later.operation}`
      : null;
    out.push({ edit, verdict: why ? "superseded" : "unaccounted", why: why ?? "nothing" });
  }
  return out;
}

/** SHA-256 of an event id, hex: the busy cache's key (inbound/busy-cache.ts). */
async function eventKey(id: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(id));
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * Compare each connected staff member's busy blocks with the live events of their calendar inside the
 * cache window (all timed events: the proofs write no all-day ones): same keys, same instants, and
 * `ours` exactly for the events `userEvents` does not name. @returns one line per difference.
 */
export async function compareBusyCache(
  sql: postgres.Sql,
  sandbox: SandboxClient,
  staff: readonly { id: string; email: string; fixture: ProviderFixture }[],
  userEvents: ReadonlySet<string>,
): Promise<string[]> {
  const diffs: string[] = [];
  for (const s of staff) {
    const [ch] = await sql<{ connection_id: string; start: Date; end: Date }[]>`
      select ch.connection_id, ch.cache_window_start as start, ch.cache_window_end as end
      from public.calendar_channels ch
      join public.staff_calendar_connections c on c.id = ch.connection_id and c.connection_status = 'connected'
      where ch.staff_id = ${s.id} and calendar_private.channel_is_live(ch.sync_stage)`;
    if (!ch) {
      diffs.push(`${s.email}: no live channel`);
      continue;
    }
    const events = (await s.fixture.events(sandbox, s.email)).filter((e) =>
      e.live && e.end > ch.start.getTime() && e.start < ch.end.getTime()
    );
    const want = new Map<string, string>();
    for (const e of events) {
      want.set(await eventKey(e.id), `${e.start} ${e.end} ours=${!userEvents.has(e.id)} (event ${e.id})`);
    }
    const blocks = await sql<{ key: string; start: Date; end: Date; ours: boolean }[]>`
      select encode(event_key, 'hex') as key, starts_at as start, ends_at as end, ours
      from public.calendar_busy_blocks where connection_id = ${ch.connection_id}`;
    const have = new Map(
      blocks.map((b) => [b.key, `${b.start.getTime()} ${b.end.getTime()} ours=${b.ours}`]),
    );
    for (const [key, w] of want) {
      const h = have.get(key);
      if (h === undefined) diffs.push(`${s.email}: block missing for ${w}`);
      else if (!w.startsWith(`${h} `)) diffs.push(`${s.email}: block ${h} for ${w}`);
    }
    for (const [key, h] of have) {
      if (!want.has(key)) diffs.push(`${s.email}: stale block ${key.slice(0, 12)} ${h}`);
    }
  }
  return diffs;
}
