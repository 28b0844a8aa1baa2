/**
 * Google Calendar event resources: request-body validation, insert/patch/update/delete semantics and
 * the resource shape Google returns (docs/providers/google.md A5-A8, Part E items 4-6, 8).
 *
 * Recurring series and their instances: google-series.ts. Not emulated: attendee notifications,
 * conference data creation.
 */
import { z } from "zod";
import { badRequest, GoogleApiError, invalid } from "./errors.ts";
import { base64url, CLIENT_EVENT_ID, randomBase32hex, rfc3339 } from "./ids.ts";
import { checkSeries, exceptionsOf, isSeries } from "./google-series.ts";
import type { CalendarRecord, EventDateTime, EventResource, SandboxState, StoredEvent } from "./state.ts";
import { eventInstant, hasOffset, isDate, isLocalDateTime, isValidTimeZone } from "./time.ts";

const nullable = <T extends z.ZodType>(t: T) => t.nullable().optional();

const eventDateTimeSchema = z.object({
  date: z.string().optional(),
  dateTime: z.string().optional(),
  timeZone: z.string().optional(),
});

/** The writable subset of the Event resource; unknown and read-only fields are ignored like Google does. */
export const eventBodySchema = z.object({
  id: z.string().optional(),
  iCalUID: z.string().optional(),
  summary: nullable(z.string()),
  description: nullable(z.string()),
  location: nullable(z.string()),
  colorId: nullable(z.string().regex(/^([1-9]|1[01])$/, 'colorId must be "1".."11"')),
  start: eventDateTimeSchema.optional(),
  end: eventDateTimeSchema.optional(),
  endTimeUnspecified: nullable(z.boolean()),
  recurrence: nullable(z.array(z.string())),
  status: z.enum(["confirmed", "tentative", "cancelled"]).optional(),
  transparency: nullable(z.enum(["opaque", "transparent"])),
  visibility: nullable(z.enum(["default", "public", "private", "confidential"])),
  attendees: nullable(z.array(z.looseObject({ email: z.string().min(1) }))),
  extendedProperties: nullable(z.object({
    private: z.record(z.string(), z.string()).optional(),
    shared: z.record(z.string(), z.string()).optional(),
  })),
  reminders: nullable(z.object({
    useDefault: z.boolean(),
    overrides: z.array(z.object({
      method: z.enum(["email", "popup"]),
      minutes: z.number().int().min(0).max(40320),
    })).max(5).optional(),
  })),
  source: nullable(z.object({ url: z.string(), title: z.string().optional() })),
  guestsCanModify: nullable(z.boolean()),
  guestsCanInviteOthers: nullable(z.boolean()),
  guestsCanSeeOtherGuests: nullable(z.boolean()),
  anyoneCanAddSelf: nullable(z.boolean()),
  sequence: z.number().int().min(0).optional(),
  eventType: z.enum(["default", "outOfOffice", "focusTime", "workingLocation"]).optional(),
});
/** A validated event request body (insert, patch or update). */
export type EventBody = z.infer<typeof eventBodySchema>;

/** Output order of Event fields, following real responses (google-events-list-incremental.COMPOSITE.json). */
const FIELD_ORDER = [
  "kind",
  "etag",
  "id",
  "status",
  "htmlLink",
  "created",
  "updated",
  "summary",
  "description",
  "location",
  "colorId",
  "creator",
  "organizer",
  "start",
  "end",
  "endTimeUnspecified",
  "recurrence",
  "transparency",
  "visibility",
  "iCalUID",
  "sequence",
  "attendees",
  "guestsCanInviteOthers",
  "guestsCanModify",
  "guestsCanSeeOtherGuests",
  "anyoneCanAddSelf",
  "extendedProperties",
  "reminders",
  "source",
  "eventType",
];

/** Fields a client may write; everything else is server-owned. */
const WRITABLE = new Set(Object.keys(eventBodySchema.shape).filter((k) => k !== "id" && k !== "iCalUID"));

function ordered(ev: Record<string, unknown>): EventResource {
  const out: Record<string, unknown> = {};
  for (const k of FIELD_ORDER) if (ev[k] !== undefined) out[k] = ev[k];
  for (const k of Object.keys(ev)) if (out[k] === undefined && ev[k] !== undefined) out[k] = ev[k];
  return out as EventResource;
}

/** Parse a JSON body text against the event schema; Google-shaped 400s on failure. */
export function parseEventBody(text: string): EventBody {
  let raw: unknown;
  try {
    raw = JSON.parse(text || "{}");
  } catch {
    throw new GoogleApiError(400, "parseError", { message: "Parse Error" });
  }
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
    throw badRequest("Invalid JSON payload.");
  }
  const result = eventBodySchema.safeParse(raw);
  if (!result.success) {
    const issue = result.error.issues[0];
    throw invalid(`Invalid value for: ${issue.path.join(".") || "body"} (${issue.message})`);
  }
  return result.data;
}

function checkDateTime(edt: EventDateTime, which: "start" | "end"): void {
  if (edt.date !== undefined && edt.dateTime !== undefined) {
    throw badRequest(`Invalid ${which} time.`);
  }
  if (edt.timeZone !== undefined && !isValidTimeZone(edt.timeZone)) {
    throw invalid(`Invalid time zone definition for ${which} time.`);
  }
  if (edt.dateTime !== undefined) {
    if (hasOffset(edt.dateTime)) return;
    if (!isLocalDateTime(edt.dateTime)) throw badRequest(`Invalid ${which} time.`);
    if (edt.timeZone === undefined) {
      throw new GoogleApiError(400, "required", {
        message: `Missing time zone definition for ${which} time.`,
      });
    }
    return;
  }
  if (edt.date !== undefined) {
    if (!isDate(edt.date)) throw badRequest(`Invalid ${which} time.`);
    return;
  }
  throw new GoogleApiError(400, "required", { message: `Missing ${which} time.` });
}

/** Validate start/end: both present, same kind (date vs dateTime), zone rules, end not before start. */
function checkTimes(ev: { start?: EventDateTime; end?: EventDateTime }, cal: CalendarRecord): void {
  if (!ev.end) throw new GoogleApiError(400, "required", { message: "Missing end time." });
  if (!ev.start) throw new GoogleApiError(400, "required", { message: "Missing start time." });
  checkDateTime(ev.start, "start");
  checkDateTime(ev.end, "end");
  if ((ev.start.date === undefined) !== (ev.end.date === undefined)) {
    throw badRequest("Start and end times must either both be date or both be dateTime.");
  }
  const s = eventInstant(ev.start, cal.timeZone);
  const e = eventInstant(ev.end, cal.timeZone);
  if (s === undefined || e === undefined) throw badRequest("Invalid start or end time.");
  if (e < s) throw new GoogleApiError(400, "timeRangeEmpty");
}

/** Start and end instants (epoch ms) of a stored event, in its calendar's zone for all-day events. */
export function eventSpan(ev: EventResource, cal: CalendarRecord): { start: number; end: number } {
  return {
    start: eventInstant(ev.start, cal.timeZone) ?? 0,
    end: eventInstant(ev.end, cal.timeZone) ?? 0,
  };
}

function htmlLink(id: string, calendarId: string): string {
  return `https://www.google.com/calendar/event?eid=${base64url(`${id} ${calendarId}`)}`;
}

/** Copy writable fields of `body` onto `target`: null clears, start/end replace whole. */
function applyWritable(target: Record<string, unknown>, body: EventBody, deepMerge: boolean): void {
  for (const [k, v] of Object.entries(body)) {
    if (!WRITABLE.has(k) || v === undefined) continue;
    if (v === null) delete target[k];
    else if (deepMerge && isPlainObject(v) && isPlainObject(target[k]) && k !== "start" && k !== "end") {
      target[k] = mergeObjects(target[k] as Record<string, unknown>, v);
    } else target[k] = structuredClone(v);
  }
}

const isPlainObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === "object" && v !== null && !Array.isArray(v);

/** Patch semantics: nested objects merge, arrays replace, null clears. */
function mergeObjects(
  base: Record<string, unknown>,
  patch: Record<string, unknown>,
): Record<string, unknown> {
  const out = structuredClone(base);
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k];
    else if (isPlainObject(v) && isPlainObject(out[k])) {
      out[k] = mergeObjects(out[k] as Record<string, unknown>, v);
    } else if (v !== undefined) out[k] = structuredClone(v);
  }
  return out;
}

function store(state: SandboxState, cal: CalendarRecord, resource: EventResource): StoredEvent {
  const stored = { resource: ordered(resource), changeSeq: state.nextChangeSeq() };
  cal.events[resource.id] = stored;
  state.changed();
  state.eventChanged(cal);
  return stored;
}

/**
 * events.insert (A6): client ids must be base32hex 5..1024 chars, `id` with `iCalUID` is refused,
 * an id that exists **or was deleted** is a 409 duplicate. Server ids are 26 base32hex chars.
 */
export function insertEvent(
  state: SandboxState,
  cal: CalendarRecord,
  ownerEmail: string,
  body: EventBody,
): EventResource {
  if (body.id !== undefined && (body.iCalUID !== undefined || !CLIENT_EVENT_ID.test(body.id))) {
    throw invalid("Invalid resource id value.");
  }
  if (body.id !== undefined && (cal.events[body.id] || cal.retiredEventIds?.includes(body.id))) {
    throw new GoogleApiError(409, "duplicate");
  }
  checkTimes(body, cal);
  const id = body.id ?? randomBase32hex(26);
  const now = rfc3339(Date.now());
  const organizer = cal.primary
    ? { email: cal.id, self: true }
    : { email: cal.id, displayName: cal.summary, self: true };
  const ev: Record<string, unknown> = {
    kind: "calendar#event",
    etag: state.nextEtag(),
    id,
    status: "confirmed",
    htmlLink: htmlLink(id, cal.id),
    created: now,
    updated: now,
    creator: { email: ownerEmail, self: true },
    organizer,
    iCalUID: body.iCalUID ?? `${id}@google.com`,
    sequence: 0,
    reminders: { useDefault: true },
    eventType: "default",
  };
  applyWritable(ev, body, false);
  checkSeries(ev as EventResource, cal);
  return store(state, cal, ev as EventResource).resource;
}

/** `If-Match` against the current etag (A7); `*` matches anything. Throws 412 conditionNotMet. */
export function checkIfMatch(header: string | null, ev: EventResource): void {
  if (header === null) return;
  const tags = header.split(",").map((t) => t.trim().replace(/^W\//, ""));
  if (!tags.includes("*") && !tags.includes(ev.etag)) throw new GoogleApiError(412, "conditionNotMet");
}

/** True when `If-None-Match` names the current etag (GET answers 304). */
export function ifNoneMatchHits(header: string | null, ev: EventResource): boolean {
  if (header === null) return false;
  const tags = header.split(",").map((t) => t.trim().replace(/^W\//, ""));
  return tags.includes("*") || tags.includes(ev.etag);
}

/**
 * events.patch / events.update (A7). Patch merges; update replaces every writable field. A deleted
 * (cancelled) event refuses any write that does not revive it with 403 `forbidden` "Forbidden", as
 * Google answered in ruby#1811 (A6); writing `status:"confirmed"` (or `tentative`) revives it. New
 * etag and `updated` on every write; `sequence` goes up when the times change, and a client
 * `sequence` below the current one is refused.
 */
export function writeEvent(
  state: SandboxState,
  cal: CalendarRecord,
  stored: StoredEvent,
  body: EventBody,
  mode: "patch" | "update",
): EventResource {
  const old = stored.resource;
  if (old.status === "cancelled" && body.status !== "confirmed" && body.status !== "tentative") {
    throw new GoogleApiError(403, "forbidden");
  }
  if (body.id !== undefined && body.id !== old.id) throw invalid("Invalid resource id value.");
  if (body.sequence !== undefined && body.sequence < old.sequence) {
    throw invalid(
      "Invalid sequence value. The specified sequence number is below the current sequence number of the resource.",
    );
  }
  let next: Record<string, unknown>;
  if (mode === "patch") {
    next = structuredClone(old) as Record<string, unknown>;
    applyWritable(next, body, true);
  } else {
    next = {};
    for (
      const k of [
        "kind",
        "id",
        "htmlLink",
        "created",
        "creator",
        "organizer",
        "iCalUID",
        "sequence",
        "eventType",
        "recurringEventId",
        "originalStartTime",
      ]
    ) {
      next[k] = structuredClone(old[k]);
    }
    next.status = "confirmed";
    next.reminders = { useDefault: true };
    applyWritable(next, body, false);
  }
  checkTimes(next as { start?: EventDateTime; end?: EventDateTime }, cal);
  checkSeries(next as EventResource, cal);
  const timesChanged = JSON.stringify([old.start, old.end]) !== JSON.stringify([next.start, next.end]);
  if (body.sequence === undefined) next.sequence = old.sequence + (timesChanged ? 1 : 0);
  next.etag = state.nextEtag();
  next.updated = rfc3339(Date.now());
  return store(state, cal, next as EventResource).resource;
}

/**
 * events.delete (A8): the event becomes a cancelled tombstone; deleting a tombstone is 410 deleted.
 * Deleting an instance stores it as a cancelled exception; deleting a series also cancels its
 * exceptions.
 */
export function deleteEvent(state: SandboxState, cal: CalendarRecord, stored: StoredEvent): void {
  if (stored.resource.status === "cancelled") throw new GoogleApiError(410, "deleted");
  if (isSeries(stored.resource)) {
    for (const ex of exceptionsOf(cal, stored.resource.id)) {
      if (ex.resource.status !== "cancelled") cancel(state, cal, ex);
    }
  }
  cancel(state, cal, stored);
}

function cancel(state: SandboxState, cal: CalendarRecord, stored: StoredEvent): void {
  const next = structuredClone(stored.resource);
  next.status = "cancelled";
  next.sequence += 1;
  next.etag = state.nextEtag();
  next.updated = rfc3339(Date.now());
  store(state, cal, next);
}

/** How a cancelled event appears in incremental sync: only id is guaranteed (A9). */
export function tombstoneView(ev: EventResource): Record<string, unknown> {
  return { kind: ev.kind, etag: ev.etag, id: ev.id, status: ev.status };
}
