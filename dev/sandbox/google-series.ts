/**
 * Google recurring events (docs/providers/google.md A5, A9): a series master keeps its `recurrence`
 * lines; its instances are computed, never stored, with ids `{masterId}_{YYYYMMDDTHHMMSSZ}` (UTC start)
 * or `{masterId}_{YYYYMMDD}` (all-day), `recurringEventId` = the master's id and `originalStartTime`
 * (the start the rule gave it, same form as the master's start). Writing or deleting an instance
 * stores it under that id as an exception (its own etag and change counter); a cancelled exception is
 * how one instance is removed. Expansion is in the master's `start.timeZone` (else the calendar's).
 *
 * What incremental sync reports (CONTRACT.md "Recurring events"): a changed exception reports itself;
 * a changed master reports the master with `singleEvents=false` and, with `singleEvents=true`, every
 * instance of the series not overridden by an exception (cancelled ones when the series was deleted),
 * up to {@link seriesHorizon}.
 */
import { GoogleApiError } from "./errors.ts";
import { base64url } from "./ids.ts";
import { expand, parseGoogleRecurrence, RecurrenceError, type RecurrenceRule } from "./recurrence.ts";
import type { CalendarRecord, EventResource, StoredEvent } from "./state.ts";
import { eventInstant, offsetDateTime, wallClock } from "./time.ts";

const DAY_MS = 86_400_000;
/** How far an open-ended window reaches: two years past now or past the series start [sandbox choice]. */
const HORIZON_MS = 730 * DAY_MS;

/** True for a series master: an event with `recurrence` lines that is not itself an instance. */
export const isSeries = (ev: EventResource): boolean =>
  Array.isArray(ev.recurrence) && ev.recurrence.length > 0 && ev.recurringEventId === undefined;

/** The zone a series is expanded in: its start's `timeZone`, else the calendar's. */
const seriesZone = (ev: EventResource, cal: CalendarRecord) => ev.start.timeZone ?? cal.timeZone;

/**
 * The master's rule, validated.
 * @throws GoogleApiError 400 invalid "Invalid recurrence rule." outside the supported subset.
 */
export function seriesRule(ev: EventResource, cal: CalendarRecord): RecurrenceRule {
  try {
    return parseGoogleRecurrence(ev.recurrence as string[], seriesZone(ev, cal));
  } catch (err) {
    if (err instanceof RecurrenceError) {
      throw new GoogleApiError(400, "invalid", { message: "Invalid recurrence rule." });
    }
    throw err;
  }
}

/**
 * Checks for a master being written: the rule must parse, and a timed series needs `start.timeZone`
 * (A5: "For recurring events this field is required").
 * @throws GoogleApiError 400.
 */
export function checkSeries(ev: EventResource, cal: CalendarRecord): void {
  if (!isSeries(ev)) return;
  if (ev.start.dateTime !== undefined && ev.start.timeZone === undefined) {
    throw new GoogleApiError(400, "required", { message: "Missing time zone definition for start time." });
  }
  seriesRule(ev, cal);
}

/** Where an open-ended expansion stops (epoch ms). */
export const seriesHorizon = (ev: EventResource, cal: CalendarRecord): number =>
  Math.max(Date.now(), eventInstant(ev.start, cal.timeZone) ?? 0) + HORIZON_MS;

const stamp = (ms: number) => new Date(ms).toISOString().replace(/[-:]/g, "").replace(/\.\d{3}/, "");

/**
 * The instances of a live or cancelled master starting before `toMs` and ending after `fromMs`,
 * overridden ones (an exception is stored under the instance id) left out.
 */
export function generatedInstances(
  master: StoredEvent,
  cal: CalendarRecord,
  fromMs: number,
  toMs: number,
): StoredEvent[] {
  const ev = master.resource;
  const zone = seriesZone(ev, cal);
  const allDay = ev.start.date !== undefined;
  const first = eventInstant(ev.start, cal.timeZone)!;
  const duration = (eventInstant(ev.end, cal.timeZone) ?? first) - first;
  const local = allDay ? `${ev.start.date}T00:00:00` : wallClock(first, zone);
  const out: StoredEvent[] = [];
  const occurrences = expand(
    seriesRule(ev, cal),
    local.slice(0, 10),
    allDay ? undefined : local.slice(11),
    allDay ? cal.timeZone : zone,
    toMs,
  );
  for (const occ of occurrences) {
    const id = `${ev.id}_${allDay ? occ.date.replace(/-/g, "") : stamp(occ.startMs)}`;
    if (cal.events[id]) continue;
    if (allDay) {
      const days = Math.round(duration / DAY_MS);
      const end = new Date(Date.parse(`${occ.date}T00:00:00Z`) + days * DAY_MS).toISOString().slice(0, 10);
      if (eventInstant({ date: end }, cal.timeZone)! <= fromMs) continue;
      out.push(instance(cal, master, id, { date: occ.date }, { date: end }, { date: occ.date }));
    } else {
      if (occ.startMs + duration <= fromMs) continue;
      const at = (ms: number) => ({ dateTime: offsetDateTime(ms, zone), timeZone: zone });
      const endZone = ev.end.timeZone ?? zone;
      out.push(instance(cal, master, id, at(occ.startMs), {
        dateTime: offsetDateTime(occ.startMs + duration, endZone),
        timeZone: endZone,
      }, at(occ.startMs)));
    }
  }
  return out;
}

function instance(
  cal: CalendarRecord,
  master: StoredEvent,
  id: string,
  start: EventResource["start"],
  end: EventResource["end"],
  originalStartTime: EventResource["start"],
): StoredEvent {
  const { recurrence: _, ...rest } = master.resource;
  return {
    changeSeq: master.changeSeq,
    resource: {
      ...structuredClone(rest),
      id,
      htmlLink: `https://www.google.com/calendar/event?eid=${base64url(`${id} ${cal.id}`)}`,
      start,
      end,
      recurringEventId: master.resource.id,
      originalStartTime,
    },
  };
}

/**
 * The instance an id names that is not stored yet: `{masterId}_{suffix}` of a series in this
 * calendar whose rule gives that start. Undefined otherwise.
 */
export function findInstance(cal: CalendarRecord, id: string): StoredEvent | undefined {
  const m = /^(.+)_(\d{8})(T\d{6}Z)?$/.exec(id);
  const master = m ? cal.events[m[1]] : undefined;
  if (!m || !master || !isSeries(master.resource)) return undefined;
  const day = `${m[2].slice(0, 4)}-${m[2].slice(4, 6)}-${m[2].slice(6, 8)}`;
  const at = eventInstant({ dateTime: `${day}T00:00:00`, timeZone: "UTC" }, "UTC")!;
  // The instance starts within a day of its UTC date (all-day dates are local): expand around it.
  return generatedInstances(master, cal, at - 2 * DAY_MS, at + 2 * DAY_MS).find((s) => s.resource.id === id);
}

/**
 * How a cancelled instance appears in listings: only `id`, `recurringEventId` and `originalStartTime`
 * are guaranteed for a cancelled exception of a live series (A9), so that is what is sent.
 */
export function cancelledInstanceView(ev: EventResource): Record<string, unknown> {
  return {
    kind: ev.kind,
    etag: ev.etag,
    id: ev.id,
    status: "cancelled",
    recurringEventId: ev.recurringEventId,
    originalStartTime: ev.originalStartTime,
  };
}

/** The stored exceptions (modified or cancelled instances) of a series. */
export function exceptionsOf(cal: CalendarRecord, masterId: string): StoredEvent[] {
  return Object.values(cal.events).filter((s) => s.resource.recurringEventId === masterId);
}

/** The last instant a series covers (for `singleEvents=false` window filtering): its last end, or +∞. */
export function seriesEnd(master: StoredEvent, cal: CalendarRecord): number {
  const rule = seriesRule(master.resource, cal);
  if (rule.count === undefined && rule.untilDate === undefined && rule.untilMs === undefined) return Infinity;
  const all = generatedInstances(master, cal, -Infinity, Infinity);
  const last = all[all.length - 1]?.resource;
  return last ? eventInstant(last.end, cal.timeZone)! : eventInstant(master.resource.end, cal.timeZone)!;
}
