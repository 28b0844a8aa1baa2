/**
 * The admin API under `/_admin` (CONTRACT.md "Admin API"): tests use it to shape the provider's world
 * (accounts, calendars, events, grants), to inject faults and latency, to read call counters and the
 * per-event concurrency report, and to play the user on the consent page. JSON in and out; mistakes
 * get the project's envelope `{"error":{"code","message"},"request_id"}` with a 4xx.
 */
import { z } from "zod";
import { AdminError, GoogleApiError, jsonResponse } from "./errors.ts";
import { type EventBody, insertEvent } from "./event-model.ts";
import { faultSchema, latencySchema } from "./faults.ts";
import { handleInboundAdmin, resetInbound } from "./inbound-admin.ts";
import { handleMicrosoftAdmin } from "./ms-admin.ts";
import type { SandboxRuntime } from "./runtime.ts";
import { ACCESS_ROLES, type Account, type CalendarRecord } from "./state.ts";
import { isValidTimeZone } from "./time.ts";

const email = z.string().trim().regex(/^[^\s@/]+@[^\s@/]+$/, "must be an email address")
  .transform((e) => e.toLowerCase());

const timeZone = z.string().min(1).refine(isValidTimeZone, "must be an IANA time zone");

const accountBody = z.strictObject({
  email,
  calendars: z.array(z.strictObject({
    id: z.string().min(1).optional(),
    summary: z.string().min(1),
    accessRole: z.enum(ACCESS_ROLES).optional(),
    timeZone: timeZone.optional(),
  })).optional(),
});

/** PATCH of a calendar: any of its list properties, and an injected freeBusy error (null clears it). */
const calendarPatch = z.strictObject({
  summary: z.string().min(1).optional(),
  accessRole: z.enum(ACCESS_ROLES).optional(),
  timeZone: timeZone.optional(),
  freeBusyError: z.string().regex(/^[A-Za-z]+$/, "must be a Google reason code").nullable().optional(),
});

const moveBody = z.strictObject({ destination: z.string().min(1) });

const dateTimeInput = z.union([
  z.string().min(1).transform((dateTime) => ({ dateTime })),
  z.strictObject({
    date: z.string().optional(),
    dateTime: z.string().optional(),
    timeZone: z.string().optional(),
  }),
]);

const eventBody = z.strictObject({
  start: dateTimeInput,
  end: dateTimeInput,
  summary: z.string().optional(),
  transparency: z.enum(["opaque", "transparent"]).optional(),
  status: z.enum(["confirmed", "tentative"]).optional(),
  id: z.string().optional(),
  /** RRULE / EXDATE lines: a recurring series (google-series.ts). */
  recurrence: z.array(z.string()).optional(),
});

const emailBody = z.strictObject({ email });

const authorizeBody = z.strictObject({
  authorizationUrl: z.url(),
  login: z.string().min(1),
  scopes: z.array(z.string().min(1)).optional(),
  decision: z.enum(["approve", "deny"]),
});

const ok = (body: unknown = { ok: true }) => jsonResponse(body);

/**
 * Handle one `/_admin/**` request. `dispatch` is the sandbox's own handler: `/_admin/authorize` sends
 * the browser's two requests through it, so faults, latency and counters apply as for a real browser.
 * @throws AdminError for unknown routes (404) and invalid input (400); the router answers it.
 */
export async function handleAdmin(
  sb: SandboxRuntime,
  req: Request,
  url: URL,
  dispatch: (req: Request) => Promise<Response>,
): Promise<Response> {
  let seg: string[];
  try {
    seg = url.pathname.split("/").filter(Boolean).slice(1).map(decodeURIComponent);
  } catch {
    throw new AdminError(400, "invalid_request", "Malformed path encoding");
  }
  if (seg[0] === "microsoft") return await handleMicrosoftAdmin(sb, req, url, seg.slice(1));
  const route = `${req.method} ${
    seg.map((s, i) => (seg[0] === "accounts" && (i === 1 || i === 3 || i === 5) ? "*" : s)).join("/")
  }`;
  switch (route) {
    case "POST reset":
      sb.state.reset();
      sb.faults.reset();
      sb.calls.reset();
      sb.concurrency.reset();
      sb.mailboxes.reset();
      await resetInbound(sb);
      return ok();
    case "POST accounts": {
      const body = await readJson(req, accountBody);
      const account = sb.state.ensureAccount(body.email);
      for (const c of body.calendars ?? []) sb.state.putCalendar(account, c);
      return ok(accountView(account));
    }
    case "GET accounts/*":
      return ok(accountView(accountOf(sb, seg[1])));
    case "GET accounts/*/calendars/*/events": {
      const cal = calendarOf(sb, seg[1], seg[3]);
      const includeDeleted = url.searchParams.get("includeDeleted") === "true";
      const items = Object.values(cal.events).map((s) => s.resource)
        .filter((ev) => includeDeleted || ev.status !== "cancelled");
      return ok({ items });
    }
    case "POST accounts/*/calendars/*/events": {
      const cal = calendarOf(sb, seg[1], seg[3]);
      const body = await readJson(req, eventBody);
      try {
        return ok(insertEvent(sb.state, cal, accountOf(sb, seg[1]).email, body as EventBody));
      } catch (err) {
        if (err instanceof GoogleApiError) throw new AdminError(400, "invalid_request", err.item.message);
        throw err;
      }
    }
    case "PATCH accounts/*/calendars/*": {
      const cal = calendarOf(sb, seg[1], seg[3]);
      const body = await readJson(req, calendarPatch);
      if (body.accessRole && cal.primary && body.accessRole !== "owner") {
        throw new AdminError(400, "invalid_request", "the primary calendar is always owned");
      }
      if (body.summary !== undefined) cal.summary = body.summary;
      if (body.accessRole !== undefined) cal.accessRole = body.accessRole;
      if (body.timeZone !== undefined) cal.timeZone = body.timeZone;
      if (body.freeBusyError === null) delete cal.freeBusyError;
      else if (body.freeBusyError !== undefined) cal.freeBusyError = body.freeBusyError;
      cal.etag = sb.state.nextEtag();
      sb.state.changed();
      return ok(calendarView(cal));
    }
    case "POST accounts/*/calendars/*/events/*/purge": {
      const cal = calendarOf(sb, seg[1], seg[3]);
      if (!sb.state.purgeEvent(cal, seg[5])) {
        throw new AdminError(404, "not_found", `Calendar ${cal.id} has no event ${seg[5]}`);
      }
      return ok();
    }
    case "POST accounts/*/calendars/*/events/*/move": {
      const from = calendarOf(sb, seg[1], seg[3]);
      const body = await readJson(req, moveBody);
      const to = calendarOf(sb, seg[1], body.destination);
      const moved = sb.state.moveEvent(from, to, seg[5]);
      if (moved === "no_event") {
        throw new AdminError(404, "not_found", `Calendar ${from.id} has no event ${seg[5]}`);
      }
      if (moved === "same_calendar") {
        throw new AdminError(400, "invalid_request", "destination is the same calendar");
      }
      if (moved === "id_taken") {
        throw new AdminError(409, "duplicate", `Calendar ${to.id} already has event ${seg[5]}`);
      }
      return ok(moved);
    }
    case "DELETE accounts/*/calendars/*": {
      const cal = calendarOf(sb, seg[1], seg[3]);
      sb.state.deleteCalendar(seg[1], cal.id);
      return ok();
    }
    case "POST grants/revoke": {
      const body = await readJson(req, emailBody);
      const grants = sb.state.grantsFor({ email: body.email }).filter((g) => !g.revoked);
      for (const g of grants) sb.state.revokeGrant(g);
      return ok({ revoked: grants.length });
    }
    case "POST tokens/expire": {
      const body = await readJson(req, emailBody);
      return ok({ expired: sb.state.expireAccessTokens(body.email) });
    }
    case "GET grants": {
      const filter = url.searchParams.get("email");
      const grants = sb.state.grantsFor(filter ? { email: filter } : {}).map((g) => ({
        email: g.email,
        clientId: g.clientId,
        scopes: g.scopes,
        revoked: g.revoked,
        hasRefreshToken: !!g.refreshToken,
        refreshCount: g.refreshCount,
        createdAt: g.createdAt,
      }));
      return ok({ grants });
    }
    case "POST faults":
      return ok({ id: sb.faults.add(await readJson(req, faultSchema)) });
    case "GET faults":
      return ok({ faults: sb.faults.list() });
    case "DELETE faults":
      sb.faults.clearFaults();
      return ok();
    case "POST latency":
      sb.faults.setLatency(await readJson(req, latencySchema));
      return ok();
    case "GET calls":
      return ok(sb.calls.snapshot());
    case "POST calls/reset":
      sb.calls.reset();
      return ok();
    case "GET concurrency":
      return ok(sb.concurrency.report());
    case "POST concurrency/reset":
      sb.concurrency.reset();
      return ok();
    case "POST authorize":
      return ok(await authorize(await readJson(req, authorizeBody), url.origin, dispatch));
  }
  const inboundAnswer = await handleInboundAdmin(sb, req, url, seg);
  if (inboundAnswer) return inboundAnswer;
  throw new AdminError(404, "not_found", `No admin route for ${req.method} ${url.pathname}`);
}

/** Parse the admin request body against `schema`; AdminError 400 when malformed or invalid. */
export async function readJson<T extends z.ZodType>(req: Request, schema: T): Promise<z.infer<T>> {
  let raw: unknown;
  try {
    const text = await req.text();
    raw = text ? JSON.parse(text) : {};
  } catch {
    throw new AdminError(400, "invalid_json", "The request body is not valid JSON");
  }
  const parsed = schema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new AdminError(400, "invalid_request", `${issue.path.join(".") || "body"}: ${issue.message}`);
  }
  return parsed.data;
}

function accountOf(sb: SandboxRuntime, emailParam: string): Account {
  const account = sb.state.account(emailParam);
  if (!account) throw new AdminError(404, "not_found", `No sandbox account ${emailParam}`);
  return account;
}

function calendarOf(sb: SandboxRuntime, emailParam: string, calendarId: string): CalendarRecord {
  accountOf(sb, emailParam);
  const cal = sb.state.calendar(emailParam, calendarId);
  if (!cal) throw new AdminError(404, "not_found", `Account ${emailParam} has no calendar ${calendarId}`);
  return cal;
}

function calendarView(c: CalendarRecord) {
  return {
    id: c.id,
    summary: c.summary,
    accessRole: c.accessRole,
    primary: c.primary,
    timeZone: c.timeZone,
    ...(c.freeBusyError ? { freeBusyError: c.freeBusyError } : {}),
  };
}

function accountView(account: Account) {
  return { email: account.email, calendars: Object.values(account.calendars).map(calendarView) };
}

/**
 * What a browser does with an authorization URL: load the consent page, then submit it with `login`,
 * the ticked `scopes` (default: all requested) and the decision. Answers `{redirect}` (the Location).
 * An error page (bad client, redirect mismatch, injected fault) becomes an AdminError with its status
 * and Google's error code.
 */
async function authorize(
  body: z.infer<typeof authorizeBody>,
  origin: string,
  dispatch: (req: Request) => Promise<Response>,
): Promise<{ redirect: string }> {
  const target = new URL(body.authorizationUrl);
  const msPath = /\/microsoft\/[^/]+\/oauth2\/v2\.0\/authorize$/.exec(target.pathname)?.[0];
  if (!msPath && !target.pathname.endsWith("/google/o/oauth2/v2/auth")) {
    throw new AdminError(
      400,
      "invalid_request",
      "authorizationUrl is not a sandbox authorization endpoint (Google or Microsoft)",
    );
  }
  const pagePath = msPath ?? "/google/o/oauth2/v2/auth";
  const page = await dispatch(new Request(new URL(`${pagePath}${target.search}`, origin)));
  const html = await page.text();
  if (page.status === 302) return { redirect: page.headers.get("location")! };
  if (page.status !== 200) throw pageError(page.status, html);
  const requestId = /name="request_id" value="([^"]+)"/.exec(html)?.[1];
  if (!requestId) throw new AdminError(502, "no_consent_form", "The consent page had no form");
  const form = new URLSearchParams({ request_id: requestId, login: body.login, decision: body.decision });
  const scopes = body.scopes ?? (target.searchParams.get("scope") ?? "").split(" ").filter(Boolean);
  for (const s of scopes) form.append("scope", s);
  const res = await dispatch(
    new Request(new URL(`${pagePath}/decision`, origin), { method: "POST", body: form }),
  );
  const text = await res.text();
  if (res.status === 302) return { redirect: res.headers.get("location")! };
  throw pageError(res.status, text);
}

function pageError(status: number, html: string): AdminError {
  const m = /Error (\d+): ([a-z_]+)/.exec(html);
  const err = /class="err">([^<]*)</.exec(html)?.[1] ?? /<\/strong><\/p>\s*<p>([^<]*)<\/p>/.exec(html)?.[1];
  return new AdminError(
    status >= 400 ? status : 502,
    m?.[2] ?? "consent_failed",
    err ?? `The consent page answered HTTP ${status}${m ? ` ${m[2]}` : ""}`,
  );
}
