/**
 * `GET /me/calendarView/delta` (and `/me/calendar/calendarView/delta`, `/me/calendars/{id}/calendarView/delta`)
 * as Graph documents it (docs/providers/microsoft.md B8; CONTRACT.md "Inbound sync"): the first call
 * names the window (`startDateTime`, `endDateTime`, both required), pages follow `@odata.nextLink`
 * (`$skiptoken`) and a round ends with `@odata.deltaLink` (`$deltatoken`). A later round returns the
 * events changed since, and events deleted or moved out of the window as
 * `{"@odata.type","id","@removed":{"reason":"deleted"}}`. Page size: `Prefer: odata.maxpagesize`.
 *
 * Tokens are self-contained (calendar, window, change counter, calendar generation), so any token of
 * the calendar stays usable until the admin API expires them all (410 SyncStateNotFound). A round
 * pages by change order and stops at the counter seen on its first page: events changed while paging
 * come in the next round (replays are possible, losses are not).
 */
import type { EndpointName } from "./faults.ts";
import { base64url, fromBase64url } from "./ids.ts";
import { GraphError } from "./ms-errors.ts";
import { CAL_READ, eventView, type GraphContext, graphJson, META, preferredZone } from "./ms-graph.ts";
import { accessDenied, itemNotFound } from "./ms-errors.ts";
import { expandedEvents } from "./ms-series.ts";
import type { MsCalendar, MsEvent } from "./ms-state.ts";
import { parseRfc3339 } from "./time.ts";

/** Page size without `Prefer: odata.maxpagesize` [sandbox choice; Graph's default is not documented]. */
export const DELTA_PAGE_SIZE = 10;

/** What a `$skiptoken` / `$deltatoken` carries. */
interface DeltaToken {
  /** Calendar id. */
  c: string;
  /** The calendar's syncGeneration when the token was issued. */
  g: number;
  /** Window, epoch ms. */
  w: [number, number];
  /** Round base: changes after this counter value (0 with `i` = the initial round). */
  s: number;
  /** Initial round (full listing, no removals). */
  i?: boolean;
  /** Skip tokens: the counter value this round stops at, and the last [seq, id] returned. */
  n?: number;
  a?: [number, string];
}

const encode = (t: DeltaToken) => base64url(JSON.stringify(t));

function decode(s: string): DeltaToken | undefined {
  const text = fromBase64url(s);
  if (text === undefined) return undefined;
  try {
    const t = JSON.parse(text) as DeltaToken;
    return typeof t.c === "string" && typeof t.g === "number" && Array.isArray(t.w) && typeof t.s === "number"
      ? t
      : undefined;
  } catch {
    return undefined;
  }
}

/** 410 SyncStateNotFound, with the shape of the observed message (B8). */
function syncStateNotFound(generation: number, highest: number): GraphError {
  return new GraphError(
    410,
    "SyncStateNotFound",
    `The sync state generation is not found; generation=${generation};[highest=${highest}][${highest}].`,
  );
}

/** Query parameter by case-insensitive name (`startdatetime` works, as in Graph's own example). */
function param(url: URL, name: string): string | undefined {
  for (const [k, v] of url.searchParams) if (k.toLowerCase() === name.toLowerCase()) return v;
  return undefined;
}

/** An instant: RFC 3339 with offset, or without one read as UTC (Graph's reading). */
function instant(value: string, name: string): number {
  const ms = parseRfc3339(value) ?? parseRfc3339(`${value}Z`);
  if (ms === undefined) {
    throw new GraphError(
      400,
      "ErrorInvalidParameter",
      `The value '${value}' of parameter '${name}' is invalid.`,
    );
  }
  return ms;
}

function pageSize(req: Request): number | undefined {
  const m = /odata\.maxpagesize\s*=\s*(\d+)/i.exec(req.headers.get("prefer") ?? "");
  const n = m ? Number(m[1]) : undefined;
  return n && n > 0 ? n : undefined;
}

const seqOf = (ev: MsEvent) => ev.changeSeq ?? 0;
const cmp = (x: [number, string], y: [number, string]) =>
  x[0] - y[0] || (x[1] < y[1] ? -1 : x[1] > y[1] ? 1 : 0);

/** `GET …/calendarView/delta`: one page of a round. */
function delta(ctx: GraphContext): Response {
  if (!CAL_READ.some((s) => ctx.caller.scopes.includes(s))) throw accessDenied();
  const ms = ctx.sb.state.microsoft;
  const account = ctx.caller.account;
  const cal: MsCalendar | undefined = ctx.params.calendarId
    ? account.calendars[ctx.params.calendarId]
    : ms.defaultCalendar(account);
  if (!cal) throw itemNotFound();
  const generation = cal.syncGeneration ?? 0;
  const { zone, applied } = preferredZone(ctx.req);

  const skip = param(ctx.url, "$skiptoken");
  const deltaToken = param(ctx.url, "$deltatoken");
  let tok: DeltaToken;
  if (skip !== undefined || deltaToken !== undefined) {
    const t = decode(skip ?? deltaToken!);
    if (!t || t.c !== cal.id || t.g !== generation || (skip !== undefined && t.n === undefined)) {
      throw syncStateNotFound(t?.g ?? 0, generation);
    }
    tok = skip !== undefined ? t : { c: t.c, g: t.g, w: t.w, s: t.s };
  } else {
    const start = param(ctx.url, "startDateTime");
    const end = param(ctx.url, "endDateTime");
    if (start === undefined || end === undefined) {
      throw new GraphError(
        400,
        "ErrorInvalidParameter",
        "This request requires a time window specified by the query string parameters StartDateTime and EndDateTime.",
      );
    }
    const w: [number, number] = [instant(start, "startDateTime"), instant(end, "endDateTime")];
    if (w[1] <= w[0]) {
      throw new GraphError(
        400,
        "ErrorInvalidParameter",
        "The parameter 'EndDateTime' must be after 'StartDateTime'.",
      );
    }
    tok = { c: cal.id, g: generation, w, s: 0, i: true };
  }

  const stop = tok.n ?? ms.changeSeq();
  const inWindow = (ev: MsEvent) => ev.startMs < tok.w[1] && ev.endMs > tok.w[0];
  // Series come as their occurrences (ms-series.ts), never as masters.
  const candidates = expandedEvents(cal, tok.w[0], tok.w[1]).filter((ev) => {
    const seq = seqOf(ev);
    if (seq > stop) return false;
    if (tok.i) return !ev.deletedAt && inWindow(ev);
    if (seq <= tok.s) return false;
    // Deleted or out of the window: reported as removed, unless it was created within this round
    // (the client never saw it).
    return !ev.deletedAt && inWindow(ev) || (ev.createdSeq ?? 0) <= tok.s;
  }).map((ev) => ({ ev, key: [seqOf(ev), ev.id] as [number, string] }))
    .filter(({ key }) => !tok.a || cmp(key, tok.a) > 0)
    .sort((x, y) => cmp(x.key, y.key));

  const size = pageSize(ctx.req) ?? DELTA_PAGE_SIZE;
  const page = candidates.slice(0, size);
  const more = candidates.length > size;
  const base = `${ctx.url.origin}${ctx.url.pathname}`;
  const link = more
    ? { "@odata.nextLink": `${base}?$skiptoken=${encode({ ...tok, n: stop, a: page[page.length - 1].key })}` }
    : {
      "@odata.deltaLink": `${base}?$deltatoken=${encode({ c: cal.id, g: generation, w: tok.w, s: stop })}`,
    };
  const value = page.map(({ ev }) =>
    !ev.deletedAt && inWindow(ev)
      ? { "@odata.type": "#microsoft.graph.event", ...eventView(ev, zone, ctx.url.origin) }
      : { "@odata.type": "#microsoft.graph.event", id: ev.id, "@removed": { reason: "deleted" } }
  );
  const preferences = ["odata.track-changes", ...(pageSize(ctx.req) ? [`odata.maxpagesize=${size}`] : [])];
  if (applied) preferences.push(applied);
  return graphJson(
    ctx,
    { "@odata.context": `${META}#Collection(event)`, ...link, value },
    200,
    { "preference-applied": preferences.join(", ") },
  );
}

/** Match the calendarView/delta routes (endpoint name `microsoft.calendarView.delta`). */
export function matchDeltaRoute(
  method: string,
  subpath: string,
):
  | { endpoint: EndpointName; params: Record<string, string>; handle: (ctx: GraphContext) => Response }
  | undefined {
  if (method !== "GET") return undefined;
  let seg: string[];
  try {
    seg = subpath.split("/").filter(Boolean).map(decodeURIComponent);
  } catch {
    return undefined;
  }
  const low = seg.map((s) => s.toLowerCase());
  if (low[0] !== "me" || low.at(-1) !== "delta" || low.at(-2) !== "calendarview") return undefined;
  if (seg.length === 3 || (seg.length === 4 && low[1] === "calendar")) {
    return { endpoint: "microsoft.calendarView.delta", params: {}, handle: delta };
  }
  if (seg.length === 5 && low[1] === "calendars") {
    return { endpoint: "microsoft.calendarView.delta", params: { calendarId: seg[2] }, handle: delta };
  }
  return undefined;
}
