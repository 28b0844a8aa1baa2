/**
 * Calendar v3 events.insert/get/patch/update/delete/list (docs/providers/google.md A6-A9, Part E 4-7).
 *
 * events.list paging uses cursors rather than offsets, so an event written or deleted between two page
 * requests never makes the list skip an unchanged event. `nextSyncToken` appears only on the last page
 * and records the change counter seen by the first page: anything written while paging is delivered
 * again by the next incremental sync (duplicates are possible, losses are not).
 */
import { z } from "zod";
import { type ApiContext, calendarFor, defaultReminders, requireAuth, SCOPES } from "./api-context.ts";
import { badRequest, GoogleApiError, invalid, jsonResponse } from "./errors.ts";
import {
  checkIfMatch,
  deleteEvent,
  eventSpan,
  ifNoneMatchHits,
  insertEvent,
  parseEventBody,
  tombstoneView,
  writeEvent,
} from "./event-model.ts";
import {
  cancelledInstanceView,
  findInstance,
  generatedInstances,
  isSeries,
  seriesEnd,
  seriesHorizon,
} from "./google-series.ts";
import { base64url, fromBase64url, sha256Hex } from "./ids.ts";
import type { CalendarRecord, EventResource, StoredEvent } from "./state.ts";
import { parseRfc3339 } from "./time.ts";

const eventResponse = (ev: EventResource) => jsonResponse(ev, 200, { etag: ev.etag });

/** A stored event, or an instance of a series (written, it becomes an exception stored under its id). */
function storedEvent(cal: CalendarRecord, eventId: string): StoredEvent {
  const stored = cal.events[eventId] ?? findInstance(cal, eventId);
  if (!stored) throw new GoogleApiError(404, "notFound");
  return stored;
}

/** POST /calendars/{calendarId}/events -> 200 with the event (Google answers 200, not 201). */
export function eventsInsert(ctx: ApiContext): Response {
  const email = requireAuth(ctx, SCOPES.eventsWrite);
  const cal = calendarFor(ctx, email, "writer");
  const body = parseEventBody(ctx.bodyText);
  return eventResponse(insertEvent(ctx.state, cal, email, body));
}

/** GET /calendars/{calendarId}/events/{eventId}; deleted events come back with status "cancelled". */
export function eventsGet(ctx: ApiContext): Response {
  const email = requireAuth(ctx, SCOPES.eventsRead);
  const cal = calendarFor(ctx, email, "reader");
  const ev = storedEvent(cal, ctx.params.eventId).resource;
  if (ifNoneMatchHits(ctx.req.headers.get("if-none-match"), ev)) {
    return new Response(null, { status: 304, headers: { etag: ev.etag } });
  }
  return eventResponse(ev);
}

/** PATCH (merge) or PUT (replace) /calendars/{calendarId}/events/{eventId}, honouring If-Match. */
export function eventsWrite(ctx: ApiContext, mode: "patch" | "update"): Response {
  const email = requireAuth(ctx, SCOPES.eventsWrite);
  const cal = calendarFor(ctx, email, "writer");
  const stored = storedEvent(cal, ctx.params.eventId);
  checkIfMatch(ctx.req.headers.get("if-match"), stored.resource);
  const body = parseEventBody(ctx.bodyText);
  return eventResponse(writeEvent(ctx.state, cal, stored, body, mode));
}

/** DELETE /calendars/{calendarId}/events/{eventId} -> 204; again -> 410 deleted; unknown -> 404. */
export function eventsDelete(ctx: ApiContext): Response {
  const email = requireAuth(ctx, SCOPES.eventsWrite);
  const cal = calendarFor(ctx, email, "writer");
  const stored = storedEvent(cal, ctx.params.eventId);
  checkIfMatch(ctx.req.headers.get("if-match"), stored.resource);
  deleteEvent(ctx.state, cal, stored);
  return new Response(null, { status: 204 });
}

const bool = z.string().toLowerCase().pipe(z.enum(["true", "false"])).transform((v) => v === "true");

const listQuery = z.object({
  timeMin: z.string().optional(),
  timeMax: z.string().optional(),
  updatedMin: z.string().optional(),
  singleEvents: bool.optional(),
  showDeleted: bool.optional(),
  showHiddenInvitations: bool.optional(),
  maxResults: z.coerce.number().int().min(1).optional(),
  maxAttendees: z.coerce.number().int().min(1).optional(),
  pageToken: z.string().optional(),
  orderBy: z.enum(["startTime", "updated"]).optional(),
  syncToken: z.string().optional(),
  q: z.string().optional(),
  iCalUID: z.string().optional(),
  timeZone: z.string().optional(),
});

/** Query parameters that do not change the result set (left out of the page-token fingerprint). */
const NEUTRAL_PARAMS = new Set([
  "pageToken",
  "maxResults",
  "access_token",
  "fields",
  "prettyPrint",
  "alt",
  "quotaUser",
  "key",
]);

/** Parameters Google refuses next to a syncToken (A9, discovery doc). */
const SYNC_RESTRICTED = [
  "timeMin",
  "timeMax",
  "orderBy",
  "q",
  "iCalUID",
  "updatedMin",
  "privateExtendedProperty",
  "sharedExtendedProperty",
];

interface SyncToken {
  c: string;
  g: number;
  s: number;
}
interface PageToken {
  f: string;
  s: number;
  /** Cursor: the last [change seq, id] returned (default order) or [startMs, id] (startTime order). */
  a?: [number, string];
}

const encodeToken = (v: unknown) => base64url(JSON.stringify(v));
function decodeToken<T>(s: string): T | undefined {
  const text = fromBase64url(s);
  if (text === undefined) return undefined;
  try {
    return JSON.parse(text) as T;
  } catch {
    return undefined;
  }
}

const calendarKey = (email: string, cal: CalendarRecord) =>
  sha256Hex(`${email}\n${cal.id}\n${cal.uid}`).slice(0, 16);

function fingerprint(sp: URLSearchParams): string {
  const entries = [...sp.entries()].filter(([k]) => !NEUTRAL_PARAMS.has(k)).sort();
  return sha256Hex(JSON.stringify(entries)).slice(0, 16);
}

function instantParam(value: string | undefined, name: string): number | undefined {
  if (value === undefined) return undefined;
  const ms = parseRfc3339(value);
  if (ms === undefined) throw badRequest(`Invalid ${name}: an RFC 3339 timestamp with offset is required.`);
  return ms;
}

function propertyFilter(values: string[], bag: unknown): boolean {
  const props = (bag ?? {}) as Record<string, string>;
  return values.every((v) => {
    const i = v.indexOf("=");
    return i > 0 && props[v.slice(0, i)] === v.slice(i + 1);
  });
}

/**
 * GET /calendars/{calendarId}/events: full listing (timeMin/timeMax/showDeleted/q/iCalUID/updatedMin/
 * extended-property filters, orderBy) or incremental with syncToken (deleted items included as
 * tombstones). 400 syncTokenWithRequestRestrictions, 410 fullSyncRequired, 400 for orderBy=startTime
 * without singleEvents=true.
 */
export function eventsList(ctx: ApiContext): Response {
  const email = requireAuth(ctx, SCOPES.eventsRead);
  const cal = calendarFor(ctx, email, "reader");
  const sp = ctx.url.searchParams;
  const parsed = listQuery.safeParse(Object.fromEntries(sp));
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw invalid(`Invalid value for: ${issue.path.join(".")}`, String(issue.path[0]));
  }
  const q = parsed.data;
  const priv = sp.getAll("privateExtendedProperty");
  const shared = sp.getAll("sharedExtendedProperty");
  const eventTypes = sp.getAll("eventTypes");

  if (q.orderBy === "startTime" && !q.singleEvents) {
    throw badRequest("The requested ordering is not available for the particular query.");
  }

  let sinceSeq: number | undefined;
  if (q.syncToken !== undefined) {
    if (SYNC_RESTRICTED.some((p) => sp.has(p)) || q.showDeleted === false) {
      throw new GoogleApiError(400, "syncTokenWithRequestRestrictions");
    }
    const tok = decodeToken<SyncToken>(q.syncToken);
    if (
      !tok || tok.c !== calendarKey(email, cal) || tok.g !== cal.syncGeneration ||
      typeof tok.s !== "number" || tok.s > ctx.state.data.changeSeq
    ) {
      throw new GoogleApiError(410, "fullSyncRequired");
    }
    sinceSeq = tok.s;
  }

  const timeMin = instantParam(q.timeMin, "timeMin");
  const timeMax = instantParam(q.timeMax, "timeMax");
  const updatedMin = instantParam(q.updatedMin, "updatedMin");
  if (timeMin !== undefined && timeMax !== undefined && timeMax <= timeMin) {
    throw new GoogleApiError(400, "timeRangeEmpty");
  }

  const fp = fingerprint(sp);
  // The calendar's own latest change, so an unchanged calendar answers with the same sync token
  // (docs/providers/google.md A9) whatever happens in other calendars.
  let snapshot = Object.values(cal.events).reduce((m, s) => Math.max(m, s.changeSeq), sinceSeq ?? 0);
  let after: [number, string] | undefined;
  if (q.pageToken !== undefined) {
    const pt = decodeToken<PageToken>(q.pageToken);
    if (!pt || pt.f !== fp || typeof pt.s !== "number") {
      throw invalid("Invalid page token value.", "pageToken");
    }
    snapshot = pt.s;
    after = pt.a;
  }

  const needle = q.q?.toLowerCase();
  const matches = (s: StoredEvent): boolean => {
    const ev = s.resource;
    if (eventTypes.length && !eventTypes.includes(String(ev.eventType ?? "default"))) return false;
    if (sinceSeq !== undefined) return true;
    // Cancelled instances of a live series are listed without showDeleted unless singleEvents (A9).
    const cancelledInstance = ev.status === "cancelled" && ev.recurringEventId !== undefined;
    if (ev.status === "cancelled" && !q.showDeleted && !(cancelledInstance && !q.singleEvents)) return false;
    const span = eventSpan(ev, cal);
    if (!q.singleEvents && isSeries(ev)) span.end = seriesEnd(s, cal);
    if (timeMin !== undefined && !(span.end > timeMin)) return false;
    if (timeMax !== undefined && !(span.start < timeMax)) return false;
    if (updatedMin !== undefined && Date.parse(ev.updated) < updatedMin) return false;
    if (q.iCalUID !== undefined && ev.iCalUID !== q.iCalUID) return false;
    if (
      needle &&
      ![ev.summary, ev.description, ev.location].some((f) => String(f ?? "").toLowerCase().includes(needle))
    ) {
      return false;
    }
    const ext = ev.extendedProperties as { private?: unknown; shared?: unknown } | undefined;
    return propertyFilter(priv, ext?.private) && propertyFilter(shared, ext?.shared);
  };
  // singleEvents=true lists instances in place of series (google-series.ts): within the window for a
  // full listing; every instance up to the series horizon when an incremental round reports a master.
  const listed: StoredEvent[] = [];
  for (const s of Object.values(cal.events)) {
    if (sinceSeq !== undefined && s.changeSeq <= sinceSeq) continue;
    if (!q.singleEvents || !isSeries(s.resource)) {
      listed.push(s);
      continue;
    }
    if (sinceSeq === undefined && s.resource.status === "cancelled") continue;
    listed.push(
      ...generatedInstances(
        s,
        cal,
        timeMin ?? -Infinity,
        timeMax ?? seriesHorizon(s.resource, cal),
      ),
    );
  }
  let items = listed.filter(matches);

  const maxResults = Math.min(q.maxResults ?? 250, 2500);
  const cmp = (x: [number, string], y: [number, string]) =>
    x[0] - y[0] || (x[1] < y[1] ? -1 : x[1] > y[1] ? 1 : 0);
  const key = q.orderBy === "startTime"
    ? (s: StoredEvent): [number, string] => [eventSpan(s.resource, cal).start, s.resource.id]
    : (s: StoredEvent): [number, string] => [s.changeSeq, s.resource.id];
  items.sort((x, y) => cmp(key(x), key(y)));
  if (after) items = items.filter((s) => cmp(key(s), after) > 0);
  const page = items.slice(0, maxResults);
  const more = items.length > maxResults;
  const cursor: Pick<PageToken, "a"> = { a: page.length ? key(page[page.length - 1]) : after };

  const lastUpdated = Object.values(cal.events).reduce(
    (m, s) => (s.resource.updated > m ? s.resource.updated : m),
    "",
  );
  const body: Record<string, unknown> = {
    kind: "calendar#events",
    etag: `"p${sha256Hex(`${cal.id}:${snapshot}:${cal.syncGeneration}`).slice(0, 14)}"`,
    summary: cal.summary,
    description: cal.description ?? "",
    updated: lastUpdated || new Date().toISOString(),
    timeZone: cal.timeZone,
    accessRole: cal.accessRole,
    defaultReminders: defaultReminders(cal),
  };
  if (more) body.nextPageToken = encodeToken({ f: fp, s: snapshot, ...cursor } satisfies PageToken);
  else {body.nextSyncToken = encodeToken(
      { c: calendarKey(email, cal), g: cal.syncGeneration, s: snapshot } satisfies SyncToken,
    );}
  body.items = page.map((s) => {
    const ev = s.resource;
    if (ev.status !== "cancelled") return ev;
    if (ev.recurringEventId !== undefined) return cancelledInstanceView(ev);
    return sinceSeq !== undefined ? tombstoneView(ev) : ev;
  });
  return jsonResponse(body);
}
