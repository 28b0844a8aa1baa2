/**
 * The sandbox's request handler: `/google/**` through the test instrumentation (latency, injected
 * faults, call counters, per-event concurrency tracking) to the Google emulation, `/_admin/**` to the
 * admin API. Handler errors become Google-shaped answers; anything unexpected is a 500 backendError.
 */
import { handleAdmin } from "./admin-api.ts";
import { errorPage } from "./consent-page.ts";
import { AdminError, errorForStatus, GoogleApiError, jsonResponse, OAuthError } from "./errors.ts";
import { type CallInfo, type FaultResponse, sleep } from "./faults.ts";
import { type GoogleRoute, routeGoogle } from "./google-routes.ts";
import { AadstsError, GraphError } from "./ms-errors.ts";
import { mailboxThrottled, type MicrosoftRoute, routeMicrosoft } from "./ms-routes.ts";
import type { SandboxRuntime } from "./runtime.ts";

/** Default hold of a timeout fault without `hangMs`, in ms (CONTRACT.md). */
export const DEFAULT_HANG_MS = 30_000;

/** Build the `Deno.serve` handler for one sandbox. */
export function createHandler(sb: SandboxRuntime): (req: Request) => Promise<Response> {
  const handler = async (req: Request): Promise<Response> => {
    const url = new URL(req.url);
    if (url.pathname === "/google" || url.pathname.startsWith("/google/")) {
      const bodyText = await req.text();
      const route = routeGoogle(sb, req, url, bodyText);
      return await handleProvider(sb, req, url, route, (f) => faultResponse(route, f));
    }
    if (url.pathname === "/microsoft" || url.pathname.startsWith("/microsoft/")) {
      const bodyText = await req.text();
      const route = routeMicrosoft(sb, req, url, bodyText);
      return await handleProvider(sb, req, url, route, route.faultAnswer);
    }
    if (url.pathname === "/_admin" || url.pathname.startsWith("/_admin/")) {
      return await guard(() => handleAdmin(sb, req, url, handler));
    }
    if (url.pathname === "/" && req.method === "GET") {
      return jsonResponse({
        sandbox: "google",
        authorizationEndpoint: `${url.origin}/google/o/oauth2/v2/auth`,
        tokenEndpoint: `${url.origin}/google/token`,
        revocationEndpoint: `${url.origin}/google/revoke`,
        issuer: `${url.origin}/google`,
        jwksUri: `${url.origin}/google/oauth2/v3/certs`,
        discovery: `${url.origin}/google/.well-known/openid-configuration`,
        calendarApiBase: `${url.origin}/google/calendar/v3`,
        admin: `${url.origin}/_admin`,
        microsoft: {
          authorizationEndpoint: `${url.origin}/microsoft/common/oauth2/v2.0/authorize`,
          tokenEndpoint: `${url.origin}/microsoft/common/oauth2/v2.0/token`,
          discovery: `${url.origin}/microsoft/common/v2.0/.well-known/openid-configuration`,
          jwksUri: `${url.origin}/microsoft/common/discovery/v2.0/keys`,
          graphApiBase: `${url.origin}/microsoft/graph/v1.0`,
        },
      });
    }
    return new AdminError(404, "not_found", `No route for ${req.method} ${url.pathname}`).toResponse();
  };
  return handler;
}

/**
 * One provider call through the instrumentation: Outlook's mailbox concurrency gate (Microsoft Graph),
 * latency, injected faults, per-event concurrency tracking and the call log.
 */
async function handleProvider(
  sb: SandboxRuntime,
  req: Request,
  url: URL,
  route: GoogleRoute | MicrosoftRoute,
  answerFault: (fault: Exclude<FaultResponse, { timeout: true }>) => Response,
): Promise<Response> {
  const call: CallInfo = {
    endpoint: route.endpoint,
    method: req.method,
    path: url.pathname,
    email: route.email,
  };
  const release = route.eventKey ? sb.concurrency.enter(...route.eventKey) : () => {};
  const mailbox = "mailbox" in route && route.mailbox !== undefined ? route.mailbox : undefined;
  const leaveMailbox = mailbox !== undefined ? sb.mailboxes.enter(mailbox) : () => {};
  let status = 0;
  try {
    if (!leaveMailbox) {
      const res = mailboxThrottled(req);
      status = res.status;
      return res;
    }
    // req.signal is read only when a request is held: it is how Deno reports a client that went away.
    const signals = () => [req.signal, sb.closing];
    const delay = sb.faults.nextDelayMs();
    if (delay > 0) await sleep(delay, signals());
    const fault = sb.faults.take(call);
    let res: Response | undefined;
    if (fault && "timeout" in fault) {
      // Hold the answer; with `executed` the work is done first, so only the response is lost.
      if (fault.executed) res = await guard(route.handle);
      const full = await sleep(fault.hangMs ?? DEFAULT_HANG_MS, signals());
      if (!full) return errorForStatus(503).toResponse();
      res ??= await guard(route.handle);
    } else if (fault) {
      res = answerFault(fault);
    } else {
      res = await guard(route.handle);
    }
    status = res.status;
    return res;
  } finally {
    release(status === 0);
    leaveMailbox?.();
    if (route.counted) sb.calls.record(call, status);
  }
}

/** Run a handler, turning thrown sandbox errors into their responses. */
async function guard(fn: () => Response | Promise<Response>): Promise<Response> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof GoogleApiError || err instanceof AdminError) return err.toResponse();
    if (err instanceof OAuthError || err instanceof AadstsError) return err.toResponse();
    if (err instanceof GraphError) return err.toResponse();
    console.error(`sandbox: unexpected error: ${(err as Error)?.stack ?? err}`);
    return errorForStatus(500).toResponse();
  }
}

const OAUTH_DEFAULTS: Record<number, [string, string]> = {
  400: ["invalid_grant", "Bad Request"],
  401: ["invalid_client", "Unauthorized"],
  403: ["rate_limit_exceeded", "Rate Limit Exceeded"],
  429: ["rate_limit_exceeded", "Rate Limit Exceeded"],
};

/**
 * The answer of an injected status fault, in the endpoint's own format: Google's Calendar envelope
 * (429/403 -> rateLimitExceeded, 5xx -> backendError), RFC 6749 JSON for the token and revocation
 * endpoints, an error page for the consent screen. `retryAfterSeconds` sets `Retry-After`.
 */
function faultResponse(route: GoogleRoute, fault: Exclude<FaultResponse, { timeout: true }>): Response {
  const headers: Record<string, string> = fault.retryAfterSeconds !== undefined
    ? { "retry-after": String(fault.retryAfterSeconds) }
    : {};
  let res: Response;
  if (route.endpoint === "oauth.authorize") {
    res = errorPage(fault.status, fault.reason ?? "server_error", fault.message ?? "Something went wrong.");
  } else if (route.endpoint.startsWith("oauth.")) {
    const [error, description] = OAUTH_DEFAULTS[fault.status] ??
      (fault.status >= 500 ? ["internal_failure", "Backend Error"] : ["invalid_request", "Bad Request"]);
    res = new OAuthError(fault.status, fault.reason ?? error, fault.message ?? description).toResponse();
  } else {
    res = errorForStatus(fault.status, fault.reason, fault.message).toResponse();
  }
  for (const [k, v] of Object.entries(headers)) res.headers.set(k, v);
  return res;
}
