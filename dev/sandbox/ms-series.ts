/**
 * Outlook recurring series (docs/providers/microsoft.md B6, B8): a `seriesMaster` keeps its
 * `recurrence` (pattern daily | weekly | absoluteMonthly, range endDate | noEnd | numbered); its
 * occurrences are computed, never stored, each with an id of its own (derived from the master's id
 * and the occurrence's original start), `type: "occurrence"`, `seriesMasterId` and `originalStart`.
 * Editing an occurrence stores it under that id as `type: "exception"`; deleting one stores it
 * deleted. calendarView, calendarView/delta and getSchedule read the expanded pool
 * ({@link expandedEvents}): single instances, occurrences and exceptions, never masters.
 *
 * Occurrences carry the master's change counter, deletion and creation counters, so a delta round
 * after a change to the master reports every occurrence in its window (removed when the series was
 * deleted) and one after an occurrence edit or delete reports that occurrence alone.
 */
import { base64url, fromBase64url } from "./ids.ts";
import { invalidRequest } from "./ms-errors.ts";
import type { MsCalendar, MsEvent } from "./ms-state.ts";
import { resolveZone, UTC_ZONE } from "./ms-zones.ts";
import { expand, parseGraphRecurrence, RecurrenceError } from "./recurrence.ts";
import { wallClock } from "./time.ts";

const DAY_MS = 86_400_000;
/** The marker between a master's id and an occurrence's start in occurrence ids [sandbox choice]. */
const MARK = "BEOcc";

/** True for a series master. */
export const isMaster = (ev: MsEvent): boolean => ev.recurrence !== undefined && !ev.seriesMasterId;

/**
 * Validate a `recurrence` body member and store it on `ev` (null clears it).
 * @throws GraphError 400 ErrorInvalidRequest outside the supported subset, or on an occurrence.
 */
export function applyRecurrence(ev: MsEvent, value: unknown): void {
  if (ev.seriesMasterId) throw invalidRequest("The recurrence of an occurrence cannot be set.");
  if (value === null) {
    delete ev.recurrence;
    return;
  }
  try {
    parseGraphRecurrence(value);
  } catch (err) {
    if (err instanceof RecurrenceError) throw invalidRequest(`Invalid recurrence: ${err.message}`);
    throw err;
  }
  ev.recurrence = structuredClone(value) as MsEvent["recurrence"];
}

/** The id of the occurrence of `master` that originally starts at `startMs`. */
const occurrenceId = (master: MsEvent, startMs: number) =>
  `${master.id.replace(/=+$/, "")}${MARK}${base64url(String(startMs))}=`;

/**
 * The occurrences of `master` overlapping `[fromMs, toMs)` (all-day ones by their UTC days, give or
 * take a day: callers place them in their zone), except those stored as exceptions or deleted.
 */
export function occurrences(cal: MsCalendar, master: MsEvent, fromMs: number, toMs: number): MsEvent[] {
  const { rule, startDate } = parseGraphRecurrence(master.recurrence);
  const zone = resolveZone(master.recurrence!.range.recurrenceTimeZone ?? master.startZone) ?? UTC_ZONE;
  const duration = master.endMs - master.startMs;
  const time = master.isAllDay ? undefined : wallClock(master.startMs, zone.iana).slice(11);
  const out: MsEvent[] = [];
  for (const occ of expand(rule, startDate, time, master.isAllDay ? "UTC" : zone.iana, toMs + DAY_MS)) {
    const id = occurrenceId(master, occ.startMs);
    if (cal.events[id] || occ.startMs + duration <= fromMs - DAY_MS) continue;
    const ev: MsEvent = {
      ...structuredClone(master),
      id,
      occurrenceType: "occurrence",
      seriesMasterId: master.id,
      originalStartMs: occ.startMs,
      startMs: occ.startMs,
      endMs: occ.startMs + duration,
    };
    delete ev.recurrence;
    delete ev.transactionId;
    if (master.isAllDay) {
      const days = Math.round(duration / DAY_MS);
      ev.startDate = occ.date;
      ev.endDate = new Date(occ.startMs + days * DAY_MS).toISOString().slice(0, 10);
    }
    out.push(ev);
  }
  return out;
}

/** The calendar's events with every master replaced by its occurrences around `[fromMs, toMs)`. */
export function expandedEvents(cal: MsCalendar, fromMs: number, toMs: number): MsEvent[] {
  return Object.values(cal.events).flatMap((ev) => isMaster(ev) ? occurrences(cal, ev, fromMs, toMs) : [ev]);
}

/** The not-yet-stored occurrence an id names (of a live master of `cal`), if any. */
export function findOccurrence(cal: MsCalendar, id: string): MsEvent | undefined {
  const i = id.lastIndexOf(MARK);
  if (i < 0) return undefined;
  const master = Object.values(cal.events).find((ev) =>
    isMaster(ev) && !ev.deletedAt && ev.id.replace(/=+$/, "") === id.slice(0, i)
  );
  const startMs = Number(fromBase64url(id.slice(i + MARK.length).replace(/=+$/, "")));
  if (!master || !Number.isFinite(startMs)) return undefined;
  return occurrences(cal, master, startMs - DAY_MS, startMs + DAY_MS).find((o) => o.id === id);
}

/**
 * Store a computed occurrence (about to be edited or deleted) as an exception of its own. It keeps
 * the master's creation counter: a delta client has known it since the series came.
 */
export function storeOccurrence(cal: MsCalendar, ev: MsEvent): void {
  if (cal.events[ev.id]) return;
  ev.occurrenceType = "exception";
  cal.events[ev.id] = ev;
}

/** The stored exceptions and deleted occurrences of a series. */
export const exceptionsOf = (cal: MsCalendar, masterId: string): MsEvent[] =>
  Object.values(cal.events).filter((ev) => ev.seriesMasterId === masterId);

/** Graph's view members for series: `type`, `seriesMasterId`, `originalStart`, `recurrence`. */
export function seriesView(ev: MsEvent): Record<string, unknown> {
  if (isMaster(ev)) return { type: "seriesMaster", seriesMasterId: null, recurrence: ev.recurrence };
  if (!ev.seriesMasterId) return { type: "singleInstance", seriesMasterId: null, recurrence: null };
  return {
    type: ev.occurrenceType ?? "exception",
    seriesMasterId: ev.seriesMasterId,
    recurrence: null,
    originalStart: new Date(ev.originalStartMs!).toISOString().replace(".000Z", "Z"),
  };
}
