/**
 * Microsoft Graph v1.0 under `/microsoft/graph/v1.0` (CONTRACT.md, "Microsoft"): `/me`,
 * `/me/calendars` (paged), `/me/calendar/getSchedule`, calendarView (paged, `$select`, `$top`), and
 * events create/get/patch/delete with
 * `transactionId` de-duplication. Times: `dateTimeTimeZone` with local `dateTime` (7 fractional digits)
 * and Windows zone names; reads answer in UTC unless `Prefer: outlook.timezone="…"`.
 */
import { jsonResponse } from "./errors.ts";
import {
  accessDenied,
  GraphError,
  graphHeaders,
  invalidRequest,
  invalidToken,
  itemNotFound,
  timeZoneNotSupported,
} from "./ms-errors.ts";
import {
  graphTimestamp,
  type MicrosoftStore,
  type MsAccount,
  type MsCalendar,
  type MsEvent,
  newChangeKey,
  newOutlookId,
} from "./ms-state.ts";
import {
  applyRecurrence,
  exceptionsOf,
  expandedEvents,
  findOccurrence,
  isMaster,
  seriesView,
  storeOccurrence,
} from "./ms-series.ts";
import { type GraphZone, resolveZone, UTC_ZONE } from "./ms-zones.ts";
import type { SandboxRuntime } from "./runtime.ts";
import { eventInstant, isDate, isLocalDateTime, parseRfc3339, wallClock } from "./time.ts";

/** Base of every `@odata.context`. */
export const META = "https://graph.microsoft.com/v1.0/$metadata";
/** Graph's page size for `/me/calendars` without `$top`. */
export const CALENDARS_PAGE_SIZE = 10;
/** getSchedule limits (B4): schedules per request, days per window. */
export const GETSCHEDULE_MAX_SCHEDULES = 20;
export const GETSCHEDULE_MAX_DAYS = 62;
/** calendarView: page size without `$top` (observed: 10), largest `$top`, longest window (B8). */
export const CALENDAR_VIEW_PAGE_SIZE = 10;
export const CALENDAR_VIEW_MAX_TOP = 1000;
export const CALENDAR_VIEW_MAX_DAYS = 1825;

/** Who is calling: the account and client behind the bearer token. */
export interface GraphCaller {
  account: MsAccount;
  clientId: string;
  scopes: string[];
}

/** Per-request input of a Graph handler. */
export interface GraphContext {
  sb: SandboxRuntime;
  req: Request;
  url: URL;
  params: Record<string, string>;
  bodyText: string;
  caller: GraphCaller;
}

/** A matched Graph route (endpoint names: CONTRACT.md). */
export interface GraphRoute {
  endpoint:
    | "microsoft.me.get"
    | "microsoft.calendars.list"
    | "microsoft.calendar.getSchedule"
    | "microsoft.calendar.calendarView"
    | "microsoft.events.create"
    | "microsoft.events.get"
    | "microsoft.events.update"
    | "microsoft.events.delete";
  params: Record<string, string>;
  handle: (ctx: GraphContext) => Response | Promise<Response>;
}

/** Match a path below `/microsoft/graph/v1.0` (segments percent-decoded). */
export function matchGraphRoute(method: string, subpath: string): GraphRoute | undefined {
  let seg: string[];
  try {
    seg = subpath.split("/").filter(Boolean).map(decodeURIComponent);
  } catch {
    return undefined;
  }
  const is = (...parts: string[]) =>
    seg.length === parts.length &&
    parts.every((p, i) => p === "*" || p.toLowerCase() === seg[i].toLowerCase());
  if (method === "GET" && is("me")) return { endpoint: "microsoft.me.get", params: {}, handle: me };
  if (method === "GET" && is("me", "calendars")) {
    return { endpoint: "microsoft.calendars.list", params: {}, handle: calendars };
  }
  if (
    method === "POST" && (is("me", "calendar", "getSchedule") || is("me", "calendars", "*", "getSchedule"))
  ) {
    return { endpoint: "microsoft.calendar.getSchedule", params: {}, handle: getSchedule };
  }
  if (method === "GET" && (is("me", "calendarView") || is("me", "calendar", "calendarView"))) {
    return { endpoint: "microsoft.calendar.calendarView", params: {}, handle: calendarViewList };
  }
  if (method === "GET" && is("me", "calendars", "*", "calendarView")) {
    return {
      endpoint: "microsoft.calendar.calendarView",
      params: { calendarId: seg[2] },
      handle: calendarViewList,
    };
  }
  if (method === "POST" && is("me", "events")) {
    return { endpoint: "microsoft.events.create", params: {}, handle: createEvent };
  }
  if (method === "POST" && is("me", "calendar", "events")) {
    return { endpoint: "microsoft.events.create", params: {}, handle: createEvent };
  }
  if (method === "POST" && is("me", "calendars", "*", "events")) {
    return { endpoint: "microsoft.events.create", params: { calendarId: seg[2] }, handle: createEvent };
  }
  const one: Record<string, string> | undefined = is("me", "events", "*")
    ? { eventId: seg[2] }
    : is("me", "calendars", "*", "events", "*")
    ? { calendarId: seg[2], eventId: seg[4] }
    : undefined;
  if (one) {
    if (method === "GET") return { endpoint: "microsoft.events.get", params: one, handle: getEvent };
    if (method === "PATCH") return { endpoint: "microsoft.events.update", params: one, handle: patchEvent };
    if (method === "DELETE") return { endpoint: "microsoft.events.delete", params: one, handle: deleteEvent };
  }
  return undefined;
}

/**
 * The caller behind `Authorization: Bearer`. Missing -> 401 "Access token is empty."; unknown -> 401
 * "IDX14100…"; expired or its grant revoked -> 401 "Lifetime validation failed, the token is expired."
 * (all InvalidAuthenticationToken).
 */
export function graphCaller(sb: SandboxRuntime, req: Request): GraphCaller {
  const h = req.headers.get("authorization");
  const m = h ? /^Bearer\s+(\S+)\s*$/i.exec(h) : null;
  if (!m) throw invalidToken("Access token is empty.");
  const found = sb.state.microsoft.accessToken(m[1]);
  if (!found) throw invalidToken("IDX14100: JWT is not well formed, there are no dots (.).");
  if (found.grant.revoked || found.record.expiresAt <= Date.now()) {
    throw invalidToken("Lifetime validation failed, the token is expired.");
  }
  const account = sb.state.microsoft.account(found.grant.email);
  if (!account) throw invalidToken("Access token validation failure. Invalid audience.");
  return { account, clientId: found.grant.clientId, scopes: found.record.scopes };
}

/** Scopes that can read calendars (also what subscriptions and delta need). */
export const CAL_READ = [
  "Calendars.Read",
  "Calendars.ReadWrite",
  "Calendars.Read.Shared",
  "Calendars.ReadWrite.Shared",
];
const CAL_WRITE = ["Calendars.ReadWrite", "Calendars.ReadWrite.Shared"];

function requireScope(ctx: GraphContext, accepted: string[]): void {
  if (!accepted.some((s) => ctx.caller.scopes.includes(s))) throw accessDenied();
}

/** A JSON answer with Graph's headers. */
export function graphJson(
  ctx: GraphContext,
  body: unknown,
  status = 200,
  extra: Record<string, string> = {},
): Response {
  return jsonResponse(body, status, {
    ...graphHeaders(crypto.randomUUID(), ctx.req.headers.get("client-request-id") ?? crypto.randomUUID()),
    "odata-version": "4.0",
    ...extra,
  });
}

function me(ctx: GraphContext): Response {
  if (!ctx.caller.scopes.includes("User.Read")) {
    throw new GraphError(
      403,
      "Authorization_RequestDenied",
      "Insufficient privileges to complete the operation.",
    );
  }
  const a = ctx.caller.account;
  const [given, ...rest] = a.displayName.split(" ");
  return graphJson(ctx, {
    "@odata.context": `${META}#users/$entity`,
    businessPhones: [],
    displayName: a.displayName,
    givenName: given ?? null,
    jobTitle: null,
    mail: a.email,
    mobilePhone: null,
    officeLocation: null,
    preferredLanguage: "en-US",
    surname: rest.join(" ") || null,
    userPrincipalName: a.email,
    id: a.oid,
  });
}

function calendarView(c: MsCalendar) {
  return {
    id: c.id,
    name: c.name,
    color: c.color,
    hexColor: c.hexColor,
    isDefaultCalendar: c.isDefaultCalendar,
    changeKey: c.changeKey,
    canShare: c.canShare,
    canViewPrivateItems: c.canViewPrivateItems,
    canEdit: c.canEdit,
    allowedOnlineMeetingProviders: ["teamsForBusiness"],
    defaultOnlineMeetingProvider: "teamsForBusiness",
    isTallyingResponses: c.isDefaultCalendar,
    isRemovable: c.isRemovable,
    owner: c.owner,
  };
}

/** `GET /me/calendars?$top=&$skip=`: pages of 10 by default, `@odata.nextLink` while more remain. */
function calendars(ctx: GraphContext): Response {
  requireScope(ctx, CAL_READ);
  const q = ctx.url.searchParams;
  const top = q.has("$top") ? Number(q.get("$top")) : CALENDARS_PAGE_SIZE;
  const skip = q.has("$skip") ? Number(q.get("$skip")) : 0;
  if (!Number.isInteger(top) || top < 1 || top > 1000) {
    throw new GraphError(
      400,
      "ErrorInvalidUrlQuery",
      `Invalid value '${q.get("$top")}' for query parameter $top.`,
    );
  }
  if (!Number.isInteger(skip) || skip < 0) {
    throw new GraphError(
      400,
      "ErrorInvalidUrlQuery",
      `Invalid value '${q.get("$skip")}' for query parameter $skip.`,
    );
  }
  const all = Object.values(ctx.caller.account.calendars);
  const page = all.slice(skip, skip + top).map(calendarView);
  // Graph writes the OData options unescaped: `…/calendars?$top=10&$skip=10`.
  const next = skip + top < all.length
    ? `${ctx.url.origin}${ctx.url.pathname}?$top=${top}&$skip=${skip + top}`
    : undefined;
  return graphJson(ctx, {
    "@odata.context": `${META}#users('${ctx.caller.account.oid}')/calendars`,
    value: page,
    ...(next ? { "@odata.nextLink": next } : {}),
  });
}

/**
 * The zone of `Prefer: outlook.timezone="…"` (UTC when absent).
 * @throws GraphError 400 TimeZoneNotSupportedException for an unknown zone.
 */
export function preferredZone(req: Request): { zone: GraphZone; applied?: string } {
  const prefer = req.headers.get("prefer") ?? "";
  const m = /outlook\.timezone\s*=\s*"([^"]*)"/i.exec(prefer);
  if (!m) return { zone: UTC_ZONE };
  const zone = resolveZone(m[1]);
  if (!zone) throw timeZoneNotSupported(m[1]);
  return { zone, applied: `outlook.timezone="${m[1]}"` };
}

const seven = (local: string) => `${local}.0000000`;

/** An event time in `zone`: timed events by instant; all-day events float (midnight in any zone). */
function timeIn(ev: MsEvent, which: "start" | "end", zone: GraphZone) {
  if (ev.isAllDay) {
    return {
      dateTime: seven(`${which === "start" ? ev.startDate : ev.endDate}T00:00:00`),
      timeZone: zone.display,
    };
  }
  return {
    dateTime: seven(wallClock(which === "start" ? ev.startMs : ev.endMs, zone.iana)),
    timeZone: zone.display,
  };
}

/** The instants an event occupies when viewed in `zone` (all-day: that zone's midnights). */
function spanIn(ev: MsEvent, zone: GraphZone): [number, number] {
  if (!ev.isAllDay) return [ev.startMs, ev.endMs];
  return [
    eventInstant({ dateTime: `${ev.startDate}T00:00:00`, timeZone: zone.iana }, zone.iana)!,
    eventInstant({ dateTime: `${ev.endDate}T00:00:00`, timeZone: zone.iana }, zone.iana)!,
  ];
}

/** The event resource as Graph returns it, times in `zone` (or each side's own zone when undefined). */
export function eventView(ev: MsEvent, zone: GraphZone | undefined, origin: string) {
  const startZone = zone ?? resolveZone(ev.startZone) ?? UTC_ZONE;
  const endZone = zone ?? resolveZone(ev.endZone) ?? UTC_ZONE;
  const location = { displayName: ev.location, locationType: "default", uniqueIdType: "unknown" };
  return {
    "@odata.etag": `W/"${ev.changeKey}"`,
    id: ev.id,
    createdDateTime: ev.createdDateTime,
    lastModifiedDateTime: ev.lastModifiedDateTime,
    changeKey: ev.changeKey,
    categories: ev.categories,
    ...(ev.transactionId !== undefined ? { transactionId: ev.transactionId } : {}),
    originalStartTimeZone: resolveZone(ev.startZone)?.display ?? ev.startZone,
    originalEndTimeZone: resolveZone(ev.endZone)?.display ?? ev.endZone,
    iCalUId: ev.iCalUId,
    reminderMinutesBeforeStart: ev.reminderMinutesBeforeStart,
    isReminderOn: ev.isReminderOn,
    hasAttachments: false,
    hideAttendees: false,
    subject: ev.subject,
    bodyPreview: ev.body.content.replace(/<[^>]*>/g, "").trim().slice(0, 255),
    importance: ev.importance,
    sensitivity: ev.sensitivity,
    isAllDay: ev.isAllDay,
    isCancelled: ev.isCancelled ?? false,
    isDraft: false,
    isOrganizer: true,
    responseRequested: true,
    showAs: ev.showAs,
    ...seriesView(ev),
    webLink: `${origin}/microsoft/owa/?itemid=${encodeURIComponent(ev.id)}&exvsurl=1&path=/calendar/item`,
    onlineMeetingUrl: null,
    isOnlineMeeting: false,
    onlineMeetingProvider: "unknown",
    onlineMeeting: null,
    responseStatus: { response: "organizer", time: "0001-01-01T00:00:00Z" },
    body: ev.body,
    start: timeIn(ev, "start", startZone),
    end: timeIn(ev, "end", endZone),
    location,
    locations: ev.location ? [location] : [],
    attendees: ev.attendees,
    organizer: { emailAddress: ev.organizer ?? { name: "", address: "" } },
  };
}

function parseBody(text: string): Record<string, unknown> {
  let v: unknown;
  try {
    v = JSON.parse(text || "{}");
  } catch {
    throw new GraphError(
      400,
      "RequestBodyRead",
      "Invalid JSON. A token was not recognized in the JSON content.",
    );
  }
  if (!v || typeof v !== "object" || Array.isArray(v)) {
    throw new GraphError(400, "RequestBodyRead", "The request body must be a JSON object.");
  }
  return v as Record<string, unknown>;
}

/** Writable event properties the sandbox models; read-only ones are ignored, unknown ones refused. */
const WRITABLE = new Set([
  "subject",
  "body",
  "start",
  "end",
  "isAllDay",
  "showAs",
  "transactionId",
  "location",
  "sensitivity",
  "importance",
  "categories",
  "isReminderOn",
  "reminderMinutesBeforeStart",
  "attendees",
  "recurrence",
]);
const READ_ONLY = new Set([
  "seriesMasterId",
  "originalStart",
  "@odata.etag",
  "@odata.type",
  "id",
  "createdDateTime",
  "lastModifiedDateTime",
  "changeKey",
  "iCalUId",
  "originalStartTimeZone",
  "originalEndTimeZone",
  "type",
  "webLink",
  "organizer",
  "isOrganizer",
  "responseStatus",
]);
const SHOW_AS = ["free", "tentative", "busy", "oof", "workingElsewhere", "unknown"];

interface ParsedTime {
  ms: number;
  date: string;
  zone: string;
  midnight: boolean;
}

/** Parse a dateTimeTimeZone: local `dateTime` (offset also accepted) in a Windows/IANA `timeZone`. */
function parseDtz(v: unknown, field: string): ParsedTime {
  const o = v as { dateTime?: unknown; timeZone?: unknown } | null;
  if (!o || typeof o !== "object" || typeof o.dateTime !== "string") {
    throw invalidRequest(`The property '${field}' must be a dateTimeTimeZone with dateTime and timeZone.`);
  }
  const zoneName = typeof o.timeZone === "string" ? o.timeZone : "UTC";
  const zone = resolveZone(zoneName);
  if (!zone) throw timeZoneNotSupported(zoneName);
  const withOffset = parseRfc3339(o.dateTime);
  const ms = withOffset ?? eventInstant({ dateTime: o.dateTime, timeZone: zone.iana }, zone.iana);
  if (ms === undefined) {
    throw invalidRequest(
      `Cannot convert the literal '${o.dateTime}' to the expected type 'Edm.DateTimeOffset'.`,
    );
  }
  const local = wallClock(ms, zone.iana);
  return { ms, date: local.slice(0, 10), zone: zoneName, midnight: local.endsWith("T00:00:00") };
}

/** Apply a create/patch body onto `ev` (in place), validating like Graph. */
export function applyBody(ev: MsEvent, body: Record<string, unknown>, creating: boolean): void {
  for (const k of Object.keys(body)) {
    if (!WRITABLE.has(k) && !READ_ONLY.has(k)) {
      throw new GraphError(
        400,
        "RequestBodyRead",
        `The property '${k}' does not exist on type 'Microsoft.OutlookServices.Event'. Make sure to only use property names that are defined by the type or mark the type as open type.`,
      );
    }
  }
  if (body.subject !== undefined) ev.subject = String(body.subject ?? "");
  if (body.body !== undefined) {
    const b = body.body as { contentType?: string; content?: string } | null;
    ev.body = {
      contentType: b?.contentType?.toLowerCase() === "html" ? "html" : "text",
      content: b?.content ?? "",
    };
  }
  if (body.showAs !== undefined) {
    if (typeof body.showAs !== "string" || !SHOW_AS.includes(body.showAs)) {
      throw invalidRequest(`The value '${body.showAs}' is not valid for property 'showAs'.`);
    }
    ev.showAs = body.showAs as MsEvent["showAs"];
  }
  if (body.location !== undefined) {
    ev.location = String((body.location as { displayName?: string } | null)?.displayName ?? "");
  }
  if (body.sensitivity !== undefined) ev.sensitivity = body.sensitivity as MsEvent["sensitivity"];
  if (body.importance !== undefined) ev.importance = body.importance as MsEvent["importance"];
  if (Array.isArray(body.categories)) ev.categories = body.categories.map(String);
  if (typeof body.isReminderOn === "boolean") ev.isReminderOn = body.isReminderOn;
  if (typeof body.reminderMinutesBeforeStart === "number") {
    ev.reminderMinutesBeforeStart = body.reminderMinutesBeforeStart;
  }
  if (Array.isArray(body.attendees)) ev.attendees = body.attendees;
  if (body.recurrence !== undefined) applyRecurrence(ev, body.recurrence);
  if (creating && (body.start === undefined || body.end === undefined)) {
    throw invalidRequest("Your request can't be completed. The start and end of an event are required.");
  }
  const allDay = typeof body.isAllDay === "boolean" ? body.isAllDay : ev.isAllDay;
  if (body.start !== undefined || body.end !== undefined || body.isAllDay !== undefined) {
    const start = body.start !== undefined
      ? parseDtz(body.start, "start")
      : { ms: ev.startMs, date: ev.startDate ?? "", zone: ev.startZone, midnight: ev.isAllDay };
    const end = body.end !== undefined
      ? parseDtz(body.end, "end")
      : { ms: ev.endMs, date: ev.endDate ?? "", zone: ev.endZone, midnight: ev.isAllDay };
    if (end.ms < start.ms) throw invalidRequest("The end time of the event must be after its start time.");
    if (allDay && (!start.midnight || !end.midnight || end.date <= start.date)) {
      throw invalidRequest(
        "Your request can't be completed. If the event is an all-day event, start and end must be at midnight and span at least one day.",
      );
    }
    ev.isAllDay = allDay;
    ev.startZone = start.zone;
    ev.endZone = end.zone;
    if (allDay) {
      ev.startDate = start.date;
      ev.endDate = end.date;
      ev.startMs = eventInstant({ date: start.date }, "UTC")!;
      ev.endMs = eventInstant({ date: end.date }, "UTC")!;
    } else {
      delete ev.startDate;
      delete ev.endDate;
      ev.startMs = start.ms;
      ev.endMs = end.ms;
    }
  }
}

function targetCalendar(ctx: GraphContext): MsCalendar {
  const ms = ctx.sb.state.microsoft;
  const a = ctx.caller.account;
  const cal = ctx.params.calendarId ? a.calendars[ctx.params.calendarId] : ms.defaultCalendar(a);
  if (!cal) throw itemNotFound();
  return cal;
}

/**
 * `POST /me/events`, `/me/calendar/events`, `/me/calendars/{id}/events` -> 201 with the event (times in
 * the zones the body used). A `transactionId` this mailbox already used for a live event -> 201 with
 * that event, unchanged (no duplicate). Read-only calendar -> 403 ErrorAccessDenied.
 */
function createEvent(ctx: GraphContext): Response {
  requireScope(ctx, CAL_WRITE);
  const cal = targetCalendar(ctx);
  if (!cal.canEdit) throw accessDenied();
  const body = parseBody(ctx.bodyText);
  const a = ctx.caller.account;
  const txn = typeof body.transactionId === "string" && body.transactionId ? body.transactionId : undefined;
  const now = Date.now();
  const ev: MsEvent = {
    id: newOutlookId(),
    calendarId: cal.id,
    ...(txn !== undefined ? { transactionId: txn } : {}),
    subject: "",
    body: { contentType: "text", content: "" },
    showAs: "busy",
    isAllDay: false,
    startMs: 0,
    endMs: 0,
    startZone: "UTC",
    endZone: "UTC",
    location: "",
    sensitivity: "normal",
    importance: "normal",
    categories: [],
    isReminderOn: true,
    reminderMinutesBeforeStart: 15,
    attendees: [],
    organizer: { name: a.displayName, address: a.email },
    changeKey: newChangeKey(),
    iCalUId: `040000008200E00074C5B7101A82E008${crypto.randomUUID().replace(/-/g, "").toUpperCase()}`,
    createdDateTime: graphTimestamp(now),
    lastModifiedDateTime: graphTimestamp(now),
  };
  // The body is validated first: a malformed retry is refused even when its transactionId is known.
  applyBody(ev, body, true);
  if (txn !== undefined) {
    const existingId = a.transactionIds[txn];
    const existing = existingId ? ctx.sb.state.microsoft.findEvent(a, existingId) : undefined;
    if (existing) {
      return graphJson(ctx, {
        "@odata.context": `${META}#users('${a.oid}')/calendars('${existing.calendarId}')/events/$entity`,
        ...eventView(existing, undefined, ctx.url.origin),
      }, 201);
    }
  }
  cal.events[ev.id] = ev;
  if (txn !== undefined) a.transactionIds[txn] = ev.id;
  ctx.sb.state.microsoft.eventChanged(cal, ev, "created");
  return graphJson(
    ctx,
    {
      "@odata.context": `${META}#users('${a.oid}')/calendars('${cal.id}')/events/$entity`,
      ...eventView(ev, undefined, ctx.url.origin),
    },
    201,
    { location: `${ctx.url.origin}/microsoft/graph/v1.0/me/events/${encodeURIComponent(ev.id)}` },
  );
}

/** The caller's live event by id: stored, or a computed occurrence of a series (ms-series.ts). */
function findOwnEvent(ctx: GraphContext): MsEvent {
  const a = ctx.caller.account;
  const ev = ctx.sb.state.microsoft.findEvent(a, ctx.params.eventId) ??
    Object.values(a.calendars).map((c) => findOccurrence(c, ctx.params.eventId)).find((o) => o);
  if (!ev || (ctx.params.calendarId && ev.calendarId !== ctx.params.calendarId)) throw itemNotFound();
  return ev;
}

/** `GET /me/events/{id}` -> 200 (UTC unless Prefer); missing or deleted -> 404 ErrorItemNotFound. */
function getEvent(ctx: GraphContext): Response {
  requireScope(ctx, CAL_READ);
  const ev = findOwnEvent(ctx);
  const { zone, applied } = preferredZone(ctx.req);
  return graphJson(
    ctx,
    {
      "@odata.context": `${META}#users('${ctx.caller.account.oid}')/events/$entity`,
      ...eventView(ev, zone, ctx.url.origin),
    },
    200,
    applied ? { "preference-applied": applied } : {},
  );
}

/**
 * `PATCH /me/events/{id}` -> 200 with the full event; only given properties change. Stale `If-Match`
 * -> 412 ErrorIrresolvableConflict; changing `transactionId` -> 400; missing -> 404.
 */
function patchEvent(ctx: GraphContext): Response {
  requireScope(ctx, CAL_WRITE);
  const ev = findOwnEvent(ctx);
  const cal = ctx.caller.account.calendars[ev.calendarId];
  if (!cal.canEdit) throw accessDenied();
  const ifMatch = ctx.req.headers.get("if-match");
  if (ifMatch && ifMatch !== "*" && ifMatch !== `W/"${ev.changeKey}"` && ifMatch !== ev.changeKey) {
    throw new GraphError(
      412,
      "ErrorIrresolvableConflict",
      "The send or update operation could not be performed because the change key passed in the request does not match the current change key for the item.",
    );
  }
  const body = parseBody(ctx.bodyText);
  if (body.transactionId !== undefined && body.transactionId !== ev.transactionId) {
    throw invalidRequest("The transactionId of an event cannot be changed once set.");
  }
  const draft: MsEvent = structuredClone(ev);
  applyBody(draft, body, false);
  Object.assign(ev, draft, { changeKey: newChangeKey(), lastModifiedDateTime: graphTimestamp(Date.now()) });
  storeOccurrence(cal, ev); // an edited occurrence becomes an exception
  ctx.sb.state.microsoft.eventChanged(cal, ev, "updated");
  return graphJson(ctx, {
    "@odata.context": `${META}#users('${ctx.caller.account.oid}')/events/$entity`,
    ...eventView(ev, undefined, ctx.url.origin),
  });
}

/** `DELETE /me/events/{id}` -> 204; again or unknown -> 404 ErrorItemNotFound (never 410). */
function deleteEvent(ctx: GraphContext): Response {
  requireScope(ctx, CAL_WRITE);
  const ev = findOwnEvent(ctx);
  const cal = ctx.caller.account.calendars[ev.calendarId];
  if (!cal.canEdit) throw accessDenied();
  deleteMsEvent(ctx.sb.state.microsoft, cal, ev);
  return new Response(null, {
    status: 204,
    headers: graphHeaders(
      crypto.randomUUID(),
      ctx.req.headers.get("client-request-id") ?? crypto.randomUUID(),
    ),
  });
}

const VIEW_DIGIT: Record<MsEvent["showAs"], number> = {
  free: 0,
  workingElsewhere: 0, // the concept page's reading: 0 = free or working elsewhere (Part C #14)
  unknown: 0,
  tentative: 1,
  busy: 2,
  oof: 3,
};

/**
 * `POST /me/calendar/getSchedule` `{schedules, startTime, endTime, availabilityViewInterval?}`.
 * >20 schedules -> 400 ErrorInvalidParameter; window > 62 days -> 400 ErrorTimeIntervalTooBig; end not
 * after start -> 400 ErrorInvalidParameter; interval outside 5..1440 -> 400; `null` interval -> 500 (as
 * observed). Per schedule: unknown address -> `error` 5009 (no items); admin-injected error -> that
 * `error` with `scheduleItems: null`; else the default calendar's live events overlapping the window
 * (every status, `free` included), times in the Prefer zone (Windows name) or UTC, plus
 * `availabilityView` (busiest status per slot) and `workingHours`.
 */
function getSchedule(ctx: GraphContext): Response {
  requireScope(ctx, CAL_READ);
  const { zone, applied } = preferredZone(ctx.req);
  const body = parseBody(ctx.bodyText);
  const schedules = body.schedules;
  if (!Array.isArray(schedules) || schedules.length === 0 || schedules.some((s) => typeof s !== "string")) {
    throw new GraphError(
      400,
      "ErrorInvalidParameter",
      "The parameter 'schedules' must be a non-empty array of SMTP addresses.",
    );
  }
  if (schedules.length > GETSCHEDULE_MAX_SCHEDULES) {
    throw new GraphError(
      400,
      "ErrorInvalidParameter",
      `The number of schedules requested (${schedules.length}) exceeds the limit of ${GETSCHEDULE_MAX_SCHEDULES}.`,
    );
  }
  if (body.availabilityViewInterval === null) {
    throw new GraphError(
      500,
      "ErrorInternalServerError",
      "An internal server error occurred. The operation failed.",
    );
  }
  const interval = body.availabilityViewInterval === undefined ? 30 : body.availabilityViewInterval;
  if (typeof interval !== "number" || !Number.isInteger(interval) || interval < 5 || interval > 1440) {
    throw new GraphError(
      400,
      "ErrorInvalidParameter",
      "availabilityViewInterval must be between 5 and 1440 minutes.",
    );
  }
  const start = parseDtz(body.startTime, "startTime");
  const end = parseDtz(body.endTime, "endTime");
  if (end.ms <= start.ms) {
    throw new GraphError(400, "ErrorInvalidParameter", "The start time must be before the end time.");
  }
  const days = Math.ceil((end.ms - start.ms) / 86_400_000);
  if (days > GETSCHEDULE_MAX_DAYS) {
    throw new GraphError(
      400,
      "ErrorTimeIntervalTooBig",
      `The requested time duration specified is too long. The allowed limit = ${GETSCHEDULE_MAX_DAYS} days; the actual limit = ${days} days.`,
    );
  }
  const ms = ctx.sb.state.microsoft;
  const caller = ctx.caller.account;
  const value = (schedules as string[]).map((id) => {
    const target = ms.account(id);
    if (!target || target.tenantId !== caller.tenantId) {
      return {
        scheduleId: id,
        error: {
          message: `Unable to resolve e-mail address ${id} to an Active Directory object.`,
          responseCode: "5009",
        },
      };
    }
    if (target.scheduleError) {
      return {
        scheduleId: id,
        availabilityView: "",
        scheduleItems: null,
        error: { ...target.scheduleError },
      };
    }
    const own = target.email === caller.email;
    const events = expandedEvents(ms.defaultCalendar(target), start.ms, end.ms)
      .filter((ev) => !ev.deletedAt)
      .map((ev) => ({ ev, span: spanIn(ev, zone) }))
      .filter(({ span }) => span[0] < end.ms && span[1] > start.ms)
      .sort((x, y) => x.span[0] - y.span[0]);
    const slots = Math.ceil((end.ms - start.ms) / (interval * 60_000));
    let view = "";
    for (let i = 0; i < slots; i++) {
      const s0 = start.ms + i * interval * 60_000;
      const s1 = Math.min(end.ms, s0 + interval * 60_000);
      let digit = 0;
      for (const { ev, span } of events) {
        if (span[0] < s1 && span[1] > s0) digit = Math.max(digit, VIEW_DIGIT[ev.showAs]);
      }
      view += String(digit);
    }
    const targetZone = resolveZone(target.timeZone) ?? UTC_ZONE;
    return {
      scheduleId: id,
      availabilityView: view,
      scheduleItems: events.map(({ ev }) => ({
        ...(own
          ? { isPrivate: ev.sensitivity === "private", subject: ev.subject, location: ev.location }
          : {}),
        status: ev.showAs,
        start: timeIn(ev, "start", zone),
        end: timeIn(ev, "end", zone),
      })),
      workingHours: {
        daysOfWeek: ["monday", "tuesday", "wednesday", "thursday", "friday"],
        startTime: "08:00:00.0000000",
        endTime: "17:00:00.0000000",
        timeZone: { name: targetZone.display },
      },
    };
  });
  return graphJson(
    ctx,
    { "@odata.context": `${META}#Collection(microsoft.graph.scheduleInformation)`, value },
    200,
    applied ? { "preference-applied": applied } : {},
  );
}

/** A calendarView window bound: RFC 3339 with offset, or without one (then UTC, whatever Prefer says). */
function viewBound(q: URLSearchParams, name: "startDateTime" | "endDateTime"): number {
  const key = [...q.keys()].find((k) => k.toLowerCase() === name.toLowerCase());
  const raw = key === undefined ? undefined : q.get(key);
  if (!raw) {
    throw new GraphError(
      400,
      "ErrorInvalidParameter",
      "This request requires a time window specified by the query string parameters StartDateTime and EndDateTime.",
    );
  }
  const ms = parseRfc3339(raw) ??
    (isLocalDateTime(raw) ? eventInstant({ dateTime: raw, timeZone: "UTC" }, "UTC") : undefined);
  if (ms === undefined) {
    throw new GraphError(
      400,
      "ErrorInvalidParameter",
      `The value '${raw}' of parameter '${name.charAt(0).toUpperCase()}${name.slice(1)}' is invalid.`,
    );
  }
  return ms;
}

/** A non-negative integer query option (`$top`, `$skip`), or undefined when absent. */
function intOption(q: URLSearchParams, name: string, min: number, max: number): number | undefined {
  if (!q.has(name)) return undefined;
  const n = Number(q.get(name));
  if (!Number.isInteger(n) || n < min || n > max) {
    throw new GraphError(
      400,
      "ErrorInvalidUrlQuery",
      `Invalid value '${q.get(name)}' for query parameter ${name}.`,
    );
  }
  return n;
}

/**
 * `GET /me/calendars/{id}/calendarView` (also `/me/calendar/calendarView`, `/me/calendarView`: the
 * default calendar) `?startDateTime&endDateTime[&$select][&$top][&$skip]`: the live events overlapping
 * the window, earliest first. Both bounds required (400 ErrorInvalidParameter); a bound without offset
 * is UTC, never the Prefer zone; a window over 1825 days -> 400 ErrorInvalidRequest. Times in the Prefer
 * zone (Windows name) else UTC; all-day events float (midnight to midnight in that zone, and matched
 * against the window there). Pages of `$top` (1..1000), else `Prefer: odata.maxpagesize`, else 10, and
 * at most the admin's `calendarViewMaxPageSize` (server-driven paging); `@odata.nextLink` repeats the
 * query with `$skip`. `$select` keeps `id` and `@odata.etag`; an unknown property -> 400. Unknown
 * calendar -> 404 ErrorItemNotFound.
 */
function calendarViewList(ctx: GraphContext): Response {
  requireScope(ctx, CAL_READ);
  const q = ctx.url.searchParams;
  const start = viewBound(q, "startDateTime");
  const end = viewBound(q, "endDateTime");
  if (end < start) {
    throw new GraphError(
      400,
      "ErrorInvalidParameter",
      "The EndDateTime must be later than the StartDateTime.",
    );
  }
  if (end - start > CALENDAR_VIEW_MAX_DAYS * 86_400_000) {
    throw invalidRequest(
      `The time range between StartDateTime and EndDateTime exceeds the maximum of ${CALENDAR_VIEW_MAX_DAYS} days.`,
    );
  }
  const top = intOption(q, "$top", 1, CALENDAR_VIEW_MAX_TOP);
  const skip = intOption(q, "$skip", 0, Number.MAX_SAFE_INTEGER) ?? 0;
  const { zone, applied } = preferredZone(ctx.req);
  const maxPage = /odata\.maxpagesize\s*=\s*(\d+)/i.exec(ctx.req.headers.get("prefer") ?? "");
  const asked = top ?? (maxPage ? Math.max(1, Number(maxPage[1])) : CALENDAR_VIEW_PAGE_SIZE);
  const pageSize = Math.min(asked, ctx.sb.state.microsoft.calendarViewMaxPageSize ?? asked);
  const cal = targetCalendar(ctx);
  const select = q.get("$select")?.split(",").map((p) => p.trim()).filter(Boolean);
  const matching = expandedEvents(cal, start, end)
    .filter((ev) => !ev.deletedAt)
    .map((ev) => ({ ev, span: spanIn(ev, zone) }))
    .filter(({ span }) => span[0] < end && span[1] > start)
    .sort((x, y) => x.span[0] - y.span[0] || (x.ev.id < y.ev.id ? -1 : 1));
  const value = matching.slice(skip, skip + pageSize).map(({ ev }) => {
    const full: Record<string, unknown> = eventView(ev, zone, ctx.url.origin);
    if (!select) return full;
    const picked: Record<string, unknown> = { "@odata.etag": full["@odata.etag"], id: full.id };
    for (const p of select) {
      if (!(p in full)) {
        throw new GraphError(
          400,
          "RequestBroker--ParseUri",
          `Could not find a property named '${p}' on type 'Microsoft.OutlookServices.Event'.`,
        );
      }
      picked[p] = full[p];
    }
    return picked;
  });
  // Graph repeats the caller's query in the next link, with the next $skip, OData options unescaped.
  const rest = ctx.url.search.slice(1).split("&").filter((kv) => kv && !/^(\$|%24)skip=/i.test(kv));
  const next = skip + pageSize < matching.length
    ? `${ctx.url.origin}${ctx.url.pathname}?${[...rest, `$skip=${skip + pageSize}`].join("&")}`
    : undefined;
  const preferApplied = [applied, maxPage && top === undefined ? `odata.maxpagesize=${asked}` : undefined]
    .filter(Boolean).join(", ");
  return graphJson(
    ctx,
    {
      "@odata.context": `${META}#users('${ctx.caller.account.oid}')/calendars('${cal.id}')/calendarView${
        select ? `(${select.join(",")})` : ""
      }`,
      value,
      ...(next ? { "@odata.nextLink": next } : {}),
    },
    200,
    preferApplied ? { "preference-applied": preferApplied } : {},
  );
}

/**
 * Admin helper: add an event directly (busy time), validated as a Graph create would be; `isCancelled`
 * (which no Graph create can set) stands for a meeting its organizer cancelled.
 */
export function adminInsertEvent(
  sb: SandboxRuntime,
  cal: MsCalendar,
  body: Record<string, unknown>,
): MsEvent {
  const now = Date.now();
  const ev: MsEvent = {
    id: newOutlookId(),
    calendarId: cal.id,
    subject: "",
    body: { contentType: "text", content: "" },
    showAs: "busy",
    isAllDay: false,
    startMs: 0,
    endMs: 0,
    startZone: "UTC",
    endZone: "UTC",
    location: "",
    sensitivity: "normal",
    importance: "normal",
    categories: [],
    isReminderOn: false,
    reminderMinutesBeforeStart: 0,
    attendees: [],
    organizer: cal.owner,
    changeKey: newChangeKey(),
    iCalUId: `040000008200E00074C5B7101A82E008${crypto.randomUUID().replace(/-/g, "").toUpperCase()}`,
    createdDateTime: graphTimestamp(now),
    lastModifiedDateTime: graphTimestamp(now),
  };
  const { isCancelled, ...graphBody } = body;
  applyBody(ev, graphBody, true);
  if (isCancelled === true) ev.isCancelled = true;
  cal.events[ev.id] = ev;
  sb.state.microsoft.eventChanged(cal, ev, "created");
  return ev;
}

/**
 * Delete an event: a stored one gets `deletedAt`, an occurrence is stored deleted, and a series
 * master takes its stored exceptions with it (its occurrences follow it, being computed).
 */
export function deleteMsEvent(ms: MicrosoftStore, cal: MsCalendar, ev: MsEvent): void {
  const at = new Date().toISOString();
  if (isMaster(ev)) {
    for (const ex of exceptionsOf(cal, ev.id)) {
      if (ex.deletedAt) continue;
      ex.deletedAt = at;
      ms.eventChanged(cal, ex, "deleted");
    }
  }
  storeOccurrence(cal, ev);
  ev.deletedAt = at;
  ms.eventChanged(cal, ev, "deleted");
}

/** True for a `yyyy-mm-dd` string (admin input). */
export const isDay = isDate;
