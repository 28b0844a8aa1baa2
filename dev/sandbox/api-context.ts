/**
 * What every Calendar v3 handler receives, and the checks they share: bearer-token authentication
 * (A2: header or `access_token` query), scope checks, and calendar lookup with access-role checks.
 */
import { authError, GoogleApiError, insufficientScope, loginRequired } from "./errors.ts";
import { type AccessRole, type CalendarRecord, roleAtLeast, type SandboxState } from "./state.ts";

const S = "https://www.googleapis.com/auth/";

/** Scopes each method accepts (Google's discovery document; CONTRACT.md). */
export const SCOPES = {
  calendarList: [
    `${S}calendar`,
    `${S}calendar.readonly`,
    `${S}calendar.calendarlist`,
    `${S}calendar.calendarlist.readonly`,
  ],
  /** calendars.get: the Calendars resource (metadata) scopes. */
  calendars: [
    `${S}calendar`,
    `${S}calendar.readonly`,
    `${S}calendar.calendars`,
    `${S}calendar.calendars.readonly`,
  ],
  freeBusy: [
    `${S}calendar`,
    `${S}calendar.readonly`,
    `${S}calendar.freebusy`,
    `${S}calendar.events.freebusy`,
  ],
  eventsRead: [
    `${S}calendar`,
    `${S}calendar.events`,
    `${S}calendar.readonly`,
    `${S}calendar.events.readonly`,
  ],
  eventsWrite: [`${S}calendar`, `${S}calendar.events`],
} as const;

/** The access token presented with a request, resolved once by the server. */
export interface BearerAuth {
  email: string;
  scopes: string[];
  /** False when expired or its grant was revoked. */
  valid: boolean;
}

/** Per-request input to a Calendar v3 handler. */
export interface ApiContext {
  state: SandboxState;
  req: Request;
  url: URL;
  /** Decoded path parameters (`calendarId`, `eventId`). */
  params: Record<string, string>;
  bodyText: string;
  /** Undefined when no token was sent; `null` when the token is unknown. */
  auth: BearerAuth | null | undefined;
}

/** The bearer token of a request: `Authorization: Bearer` first, then the `access_token` query param. */
export function bearerToken(req: Request, url: URL): string | undefined {
  const h = req.headers.get("authorization");
  const m = h ? /^Bearer\s+(\S+)\s*$/i.exec(h) : null;
  if (m) return m[1];
  return url.searchParams.get("access_token") ?? undefined;
}

/** Resolve a token against the state: undefined = none sent, null = unknown. */
export function resolveBearer(state: SandboxState, token: string | undefined): BearerAuth | null | undefined {
  if (token === undefined) return undefined;
  const found = state.accessToken(token);
  if (!found) return null;
  return {
    email: found.grant.email,
    scopes: found.record.scopes,
    valid: !found.grant.revoked && found.record.expiresAt > Date.now(),
  };
}

/** The caller's email; throws 401 (missing/invalid/expired token) or 403 insufficientPermissions. */
export function requireAuth(ctx: ApiContext, accepted: readonly string[]): string {
  if (ctx.auth === undefined) throw loginRequired();
  if (ctx.auth === null || !ctx.auth.valid) throw authError();
  const scopes = ctx.auth.scopes;
  if (!accepted.some((s) => scopes.includes(s))) throw insufficientScope();
  return ctx.auth.email;
}

/**
 * The caller's calendar `calendarId` (or `primary`), requiring role `min`. Unknown -> 404 notFound;
 * too weak a role -> 403 requiredAccessLevel (A2.1).
 */
export function calendarFor(ctx: ApiContext, email: string, min: AccessRole): CalendarRecord {
  const cal = ctx.state.calendar(email, ctx.params.calendarId ?? "");
  if (!cal) throw new GoogleApiError(404, "notFound");
  if (!roleAtLeast(cal.accessRole, min)) {
    throw new GoogleApiError(403, "requiredAccessLevel", {
      message: `You need to have ${min} access to this calendar.`,
    });
  }
  return cal;
}

/** Default reminders Google reports for a calendar: popup 10 min on the primary, none elsewhere. */
export const defaultReminders = (cal: CalendarRecord): Array<{ method: string; minutes: number }> =>
  cal.primary ? [{ method: "popup", minutes: 10 }] : [];

/** Parse a JSON request body; Google's 400 parseError when malformed. */
export function parseJson(text: string): unknown {
  try {
    return JSON.parse(text || "{}");
  } catch {
    throw new GoogleApiError(400, "parseError");
  }
}
