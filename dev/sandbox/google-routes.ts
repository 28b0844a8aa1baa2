/**
 * Maps a request under `/google` to its handler, its endpoint name (CONTRACT.md: the names faults and
 * counters use), the account it concerns and, for events.* calls, the event it touches.
 */
import { type ApiContext, bearerToken, resolveBearer } from "./api-context.ts";
import { matchCalendarRoute } from "./calendar-api.ts";
import { errorForStatus } from "./errors.ts";
import type { EndpointName } from "./faults.ts";
import { matchPushRoute } from "./google-push.ts";
import { authorizePage, decisionPost } from "./oauth-authorize.ts";
import { DISCOVERY_PATH, discoveryEndpoint, JWKS_PATH, jwksEndpoint } from "./oauth-identity.ts";
import {
  grantTypeOf,
  revokeEndpoint,
  revokeRequestEmail,
  revokeToken,
  tokenEndpoint,
  tokenRequestEmail,
} from "./oauth-token.ts";
import { formBody, type SandboxRuntime } from "./runtime.ts";

/** A routed `/google/**` request. */
export interface GoogleRoute {
  endpoint: EndpointName | "unknown";
  /** False for the consent form's POST: one consent counts once, as `oauth.authorize`. */
  counted: boolean;
  /** Lowercased account email when the request identifies one, for fault matching and the call log. */
  email: string | null;
  /** `[calendarId, eventId]` for events.* calls on one event (concurrency tracking). */
  eventKey?: [string, string];
  handle: () => Response | Promise<Response>;
}

const CALENDAR_BASE = "/calendar/v3";

/** Route a request whose path starts with `/google`. `bodyText` is the already-read body. */
export function routeGoogle(sb: SandboxRuntime, req: Request, url: URL, bodyText: string): GoogleRoute {
  const path = url.pathname.slice("/google".length);
  const method = req.method;
  if (path === "/o/oauth2/v2/auth" && method === "GET") {
    return {
      endpoint: "oauth.authorize",
      counted: true,
      email: url.searchParams.get("login_hint")?.toLowerCase() ?? null,
      handle: () => authorizePage(sb, url),
    };
  }
  if (path === "/o/oauth2/v2/auth/decision" && method === "POST") {
    return {
      endpoint: "oauth.authorize",
      counted: false,
      email: formBody(req, bodyText)?.get("login")?.trim().toLowerCase() || null,
      handle: () => decisionPost(sb, req, bodyText),
    };
  }
  // OpenID Connect metadata and keys: not Google API calls, so neither counted nor fault targets.
  if (url.pathname === JWKS_PATH && method === "GET") {
    return { endpoint: "unknown", counted: false, email: null, handle: () => jwksEndpoint(sb) };
  }
  if (url.pathname === DISCOVERY_PATH && method === "GET") {
    return { endpoint: "unknown", counted: false, email: null, handle: () => discoveryEndpoint(url.origin) };
  }
  if (path === "/token" && method === "POST") {
    const grantType = grantTypeOf(req, bodyText);
    return {
      endpoint: grantType === "authorization_code"
        ? "oauth.token.authorization_code"
        : grantType === "refresh_token"
        ? "oauth.token.refresh_token"
        : "unknown",
      counted: true,
      email: tokenRequestEmail(sb, req, bodyText),
      handle: () => tokenEndpoint(sb, req, bodyText),
    };
  }
  if (path === "/revoke" && method === "POST") {
    return {
      endpoint: "oauth.revoke",
      counted: true,
      email: revokeRequestEmail(sb, revokeToken(url, req, bodyText)),
      handle: () => revokeEndpoint(sb, url, req, bodyText),
    };
  }
  if (path === CALENDAR_BASE || path.startsWith(`${CALENDAR_BASE}/`)) {
    const sub = path.slice(CALENDAR_BASE.length);
    const route = matchCalendarRoute(method, sub) ?? matchPushRoute(sb.channels, method, sub);
    if (route) {
      const auth = resolveBearer(sb.state, bearerToken(req, url));
      const ctx: ApiContext = { state: sb.state, req, url, params: route.params, bodyText, auth };
      const email = auth?.email ?? null;
      return {
        endpoint: route.endpoint,
        counted: true,
        email,
        ...eventKeyOf(route.endpoint, route.params, bodyText, email),
        handle: () => route.handle(ctx),
      };
    }
  }
  return {
    endpoint: "unknown",
    counted: true,
    email: null,
    handle: () => errorForStatus(404).toResponse(),
  };
}

/** The events.* calls that change an event; only these are tracked for overlaps. */
const EVENT_WRITES: ReadonlySet<string> = new Set([
  "events.insert",
  "events.patch",
  "events.update",
  "events.delete",
  "events.move",
]);

/**
 * The event an events.* write touches: the path's event id, or the client id in an insert body.
 * Reads (get, list) are not tracked: an inbound sync may read one of our events while the outbox
 * writes it, which is harmless; two writes in flight for one event are what the tracker reports.
 */
function eventKeyOf(
  endpoint: EndpointName,
  params: Record<string, string>,
  bodyText: string,
  email: string | null,
): { eventKey?: [string, string] } {
  if (!EVENT_WRITES.has(endpoint)) return {};
  const calendarId = params.calendarId === "primary" && email ? email : params.calendarId;
  if (params.eventId) return { eventKey: [calendarId, params.eventId] };
  if (endpoint !== "events.insert") return {};
  try {
    const id = (JSON.parse(bodyText) as { id?: unknown })?.id;
    return typeof id === "string" ? { eventKey: [calendarId, id] } : {};
  } catch {
    return {};
  }
}
