/**
 * Calendar v3 under `/google/calendar/v3`: route table, calendarList.list and .get (A3), calendars.get,
 * and freeBusy.query (A4). The events methods live in events-api.ts.
 */
import { z } from "zod";
import {
  type ApiContext,
  calendarFor,
  defaultReminders,
  parseJson,
  requireAuth,
  SCOPES,
} from "./api-context.ts";
import { GoogleApiError, invalid, jsonResponse } from "./errors.ts";
import { generatedInstances, isSeries } from "./google-series.ts";
import { eventSpan } from "./event-model.ts";
import { eventsDelete, eventsGet, eventsInsert, eventsList, eventsWrite } from "./events-api.ts";
import type { EndpointName } from "./faults.ts";
import { base64url, fromBase64url, sha256Hex } from "./ids.ts";
import { ACCESS_ROLES, type AccessRole, type CalendarRecord, roleAtLeast } from "./state.ts";
import { parseRfc3339, utcZ } from "./time.ts";

/** A matched Calendar v3 route. */
export interface CalendarRoute {
  endpoint: EndpointName;
  params: Record<string, string>;
  handle: (ctx: ApiContext) => Response | Promise<Response>;
}

/**
 * Match `method` + path below `/google/calendar/v3` (e.g. `/calendars/primary/events`). Path segments
 * are percent-decoded, so ids like `en.usa%23holiday%40group.v.calendar.google.com` work (Part C #13).
 */
export function matchCalendarRoute(method: string, subpath: string): CalendarRoute | undefined {
  let seg: string[];
  try {
    seg = subpath.split("/").filter(Boolean).map(decodeURIComponent);
  } catch {
    return undefined;
  }
  const is = (...parts: string[]) =>
    seg.length === parts.length && parts.every((p, i) => p === "*" || p === seg[i]);
  if (method === "GET" && is("users", "me", "calendarList")) {
    return { endpoint: "calendarList.list", params: {}, handle: calendarList };
  }
  if (method === "GET" && is("users", "me", "calendarList", "*")) {
    return { endpoint: "calendarList.get", params: { calendarId: seg[3] }, handle: calendarListGet };
  }
  if (method === "GET" && is("calendars", "*")) {
    return { endpoint: "calendars.get", params: { calendarId: seg[1] }, handle: calendarsGet };
  }
  if (method === "POST" && is("freeBusy")) {
    return { endpoint: "freeBusy.query", params: {}, handle: freeBusy };
  }
  if (is("calendars", "*", "events")) {
    const params = { calendarId: seg[1] };
    if (method === "POST") return { endpoint: "events.insert", params, handle: eventsInsert };
    if (method === "GET") return { endpoint: "events.list", params, handle: eventsList };
  }
  if (is("calendars", "*", "events", "*")) {
    const params = { calendarId: seg[1], eventId: seg[3] };
    if (method === "GET") return { endpoint: "events.get", params, handle: eventsGet };
    if (method === "PATCH") {
      return {
        endpoint: "events.patch",
        params,
        handle: (c) => eventsWrite(c, "patch"),
      };
    }
    if (method === "PUT") {
      return {
        endpoint: "events.update",
        params,
        handle: (c) => eventsWrite(c, "update"),
      };
    }
    if (method === "DELETE") return { endpoint: "events.delete", params, handle: eventsDelete };
  }
  return undefined;
}

function listEntry(cal: CalendarRecord): Record<string, unknown> {
  const entry: Record<string, unknown> = {
    kind: "calendar#calendarListEntry",
    etag: cal.etag,
    id: cal.id,
    summary: cal.summary,
    ...(cal.description ? { description: cal.description } : {}),
    timeZone: cal.timeZone,
    colorId: cal.colorId,
    backgroundColor: cal.backgroundColor,
    foregroundColor: "#000000",
    selected: true,
    accessRole: cal.accessRole,
    defaultReminders: defaultReminders(cal),
  };
  if (cal.primary) {
    entry.notificationSettings = {
      notifications: ["eventCreation", "eventChange", "eventCancellation", "eventResponse"].map((type) => ({
        method: "email",
        type,
      })),
    };
    // Boolean fields are omitted when false (A3; gcalcli fixture), so only the primary carries one.
    entry.primary = true;
  }
  entry.conferenceProperties = { allowedConferenceSolutionTypes: ["hangoutsMeet"] };
  return entry;
}

/**
 * GET /users/me/calendarList/{calendarId} (A3): the caller's list entry, with its `accessRole` and
 * `timeZone`; `primary` names the account's own calendar. Not in the list -> 404 notFound.
 */
function calendarListGet(ctx: ApiContext): Response {
  const email = requireAuth(ctx, SCOPES.calendarList);
  return jsonResponse(listEntry(calendarFor(ctx, email, "freeBusyReader")));
}

/**
 * GET /calendars/{calendarId}: the calendar's metadata (`id`, `summary`, `timeZone`, ...); no access
 * role (that is per user, in the calendar list). Needs a calendar or calendar.calendars scope;
 * unknown -> 404 notFound.
 */
function calendarsGet(ctx: ApiContext): Response {
  const email = requireAuth(ctx, SCOPES.calendars);
  const cal = calendarFor(ctx, email, "freeBusyReader");
  return jsonResponse({
    kind: "calendar#calendar",
    etag: cal.etag,
    id: cal.id,
    summary: cal.summary,
    ...(cal.description ? { description: cal.description } : {}),
    timeZone: cal.timeZone,
    conferenceProperties: { allowedConferenceSolutionTypes: ["hangoutsMeet"] },
  });
}

const calendarListQuery = z.object({
  maxResults: z.coerce.number().int().min(1).optional(),
  pageToken: z.string().optional(),
  minAccessRole: z.enum(ACCESS_ROLES).optional(),
  showDeleted: z.string().optional(),
  showHidden: z.string().optional(),
  syncToken: z.string().optional(),
});

/**
 * GET /users/me/calendarList (A3): maxResults (default 100, capped at 250), pageToken, minAccessRole.
 * A syncToken is accepted and answered with the full list (the sandbox keeps no calendar-list history);
 * minAccessRole with syncToken is a 400 as in Google.
 */
function calendarList(ctx: ApiContext): Response {
  const email = requireAuth(ctx, SCOPES.calendarList);
  const parsed = calendarListQuery.safeParse(Object.fromEntries(ctx.url.searchParams));
  if (!parsed.success) throw invalid(`Invalid value for: ${parsed.error.issues[0].path.join(".")}`);
  const q = parsed.data;
  if (q.syncToken !== undefined && q.minAccessRole !== undefined) {
    throw new GoogleApiError(400, "invalid", { message: "minAccessRole cannot be used with syncToken." });
  }
  const account = ctx.state.account(email);
  const min: AccessRole = q.minAccessRole ?? "freeBusyReader";
  const all = Object.values(account?.calendars ?? {}).filter((c) => roleAtLeast(c.accessRole, min));
  const offset = q.pageToken === undefined ? 0 : Number(fromBase64url(q.pageToken));
  if (!Number.isInteger(offset) || offset < 0) throw invalid("Invalid page token value.", "pageToken");
  const size = Math.min(q.maxResults ?? 100, 250);
  const page = all.slice(offset, offset + size);
  const body: Record<string, unknown> = {
    kind: "calendar#calendarList",
    etag: `"p${sha256Hex(all.map((c) => c.etag).join()).slice(0, 14)}"`,
  };
  if (offset + size < all.length) body.nextPageToken = base64url(String(offset + size));
  else body.nextSyncToken = base64url(`cl:${sha256Hex(all.map((c) => c.etag).join()).slice(0, 16)}`);
  body.items = page.map(listEntry);
  return jsonResponse(body);
}

const freeBusyBody = z.object({
  timeMin: z.string(),
  timeMax: z.string(),
  timeZone: z.string().optional(),
  groupExpansionMax: z.number().int().min(0).max(100).optional(),
  calendarExpansionMax: z.number().int().min(0).max(50).optional(),
  items: z.array(z.object({ id: z.string() })).default([]),
});

const MAX_CALENDARS = 50;
/** Longest window Google accepts ([obs] cal.com chunks at 90 days, Part C #10). */
export const FREEBUSY_MAX_RANGE_MS = 90 * 86_400_000;

/**
 * POST /freeBusy (A4): busy = confirmed/tentative opaque events overlapping the window, clipped and
 * merged, in UTC `Z`. Unknown calendars get `errors:[notFound]` with `busy:[]`, and so does a calendar
 * with an injected error (`freeBusyError`, e.g. `internalError`) with that reason; items past 50 (or
 * calendarExpansionMax) get `tooManyCalendarsRequested`. Range > 90 days -> 400 timeRangeTooLong;
 * timeMax <= timeMin -> 400 timeRangeEmpty. `timeZone` is accepted but answers stay in UTC.
 */
function freeBusy(ctx: ApiContext): Response {
  const email = requireAuth(ctx, SCOPES.freeBusy);
  const raw = parseJson(ctx.bodyText);
  for (const field of ["timeMin", "timeMax"]) {
    if ((raw as Record<string, unknown> | null)?.[field] === undefined) {
      throw new GoogleApiError(400, "required", { message: `Missing ${field}.` });
    }
  }
  const parsed = freeBusyBody.safeParse(raw);
  if (!parsed.success) throw invalid(`Invalid value for: ${parsed.error.issues[0].path.join(".")}`);
  const body = parsed.data;
  const tMin = parseRfc3339(body.timeMin);
  const tMax = parseRfc3339(body.timeMax);
  if (tMin === undefined) throw invalid("Invalid value for: timeMin", "timeMin");
  if (tMax === undefined) throw invalid("Invalid value for: timeMax", "timeMax");
  if (tMax <= tMin) throw new GoogleApiError(400, "timeRangeEmpty");
  if (tMax - tMin > FREEBUSY_MAX_RANGE_MS) throw new GoogleApiError(400, "timeRangeTooLong");

  const cap = Math.min(body.calendarExpansionMax ?? MAX_CALENDARS, MAX_CALENDARS);
  const calendars: Record<string, unknown> = {};
  body.items.forEach(({ id }, i) => {
    if (i >= cap) {
      calendars[id] = { errors: [{ domain: "global", reason: "tooManyCalendarsRequested" }], busy: [] };
      return;
    }
    let cal: CalendarRecord;
    try {
      cal = calendarFor({ ...ctx, params: { calendarId: id } }, email, "freeBusyReader");
    } catch {
      calendars[id] = { errors: [{ domain: "global", reason: "notFound" }], busy: [] };
      return;
    }
    if (cal.freeBusyError) {
      calendars[id] = { errors: [{ domain: "global", reason: cal.freeBusyError }], busy: [] };
      return;
    }
    calendars[id] = { busy: busyIntervals(cal, tMin, tMax) };
  });
  return jsonResponse({
    kind: "calendar#freeBusy",
    timeMin: new Date(tMin).toISOString(),
    timeMax: new Date(tMax).toISOString(),
    calendars,
  });
}

function busyIntervals(
  cal: CalendarRecord,
  tMin: number,
  tMax: number,
): Array<{ start: string; end: string }> {
  const spans: Array<[number, number]> = [];
  // A series counts through its instances (exceptions are stored events of their own).
  const events = Object.values(cal.events).flatMap((s) =>
    isSeries(s.resource) ? generatedInstances(s, cal, tMin, tMax) : [s]
  );
  for (const { resource: ev } of events) {
    if (ev.status === "cancelled" || ev.transparency === "transparent") continue;
    const { start, end } = eventSpan(ev, cal);
    if (start < tMax && end > tMin && end > start) spans.push([Math.max(start, tMin), Math.min(end, tMax)]);
  }
  spans.sort((a, b) => a[0] - b[0]);
  const merged: Array<[number, number]> = [];
  for (const s of spans) {
    const last = merged[merged.length - 1];
    if (last && s[0] <= last[1]) last[1] = Math.max(last[1], s[1]);
    else merged.push([s[0], s[1]]);
  }
  return merged.map(([s, e]) => ({ start: utcZ(s), end: utcZ(e) }));
}
