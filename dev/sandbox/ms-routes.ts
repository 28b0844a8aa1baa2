/**
 * Maps a request under `/microsoft` to its handler and endpoint name (CONTRACT.md), and enforces
 * Outlook's per-app-per-mailbox concurrency limit: a 5th request in flight for the same (client,
 * mailbox) answers 429 ApplicationThrottled "MailboxConcurrency" (CONTRACT.md, "Microsoft").
 */
import { errorPage } from "./consent-page.ts";
import type { CallInfo, FaultResponse } from "./faults.ts";
import type { GoogleRoute } from "./google-routes.ts";
import {
  aadErrorForStatus,
  AadstsError,
  GraphError,
  graphErrorForStatus,
  mailboxConcurrency,
} from "./ms-errors.ts";
import { matchDeltaRoute } from "./ms-delta.ts";
import { graphCaller, matchGraphRoute } from "./ms-graph.ts";
import {
  msAuthorizePage,
  msDecisionPost,
  msGrantTypeOf,
  msKeys,
  msOpenIdConfiguration,
  msTokenEndpoint,
  msTokenRequestEmail,
} from "./ms-oauth.ts";
import { matchSubscriptionRoute } from "./ms-subscriptions.ts";
import { formBody, type SandboxRuntime } from "./runtime.ts";

/** Outlook's concurrent-request limit per app and mailbox. */
export const MAILBOX_CONCURRENCY_LIMIT = 4;
/** `Retry-After` (seconds) of a MailboxConcurrency 429 [sandbox choice]. */
export const MAILBOX_RETRY_AFTER_S = 1;

/** A routed `/microsoft/**` request: a provider route plus its mailbox and its fault answer. */
export interface MicrosoftRoute extends GoogleRoute {
  /** `clientId mailbox` for Graph calls with a valid token (the concurrency key). */
  mailbox?: string;
  /** The answer of an injected status fault in this endpoint's own format. */
  faultAnswer: (fault: Exclude<FaultResponse, { timeout: true }>) => Response;
}

/** Live in-flight Graph requests per (client, mailbox), with maxima and throttled counts. */
export class MailboxGate {
  private inFlight = new Map<string, number>();
  private max = new Map<string, number>();
  private throttled = new Map<string, number>();

  /** Admit a request (returns its release) or refuse it (undefined) when the limit is reached. */
  enter(key: string): (() => void) | undefined {
    const n = this.inFlight.get(key) ?? 0;
    if (n >= MAILBOX_CONCURRENCY_LIMIT) {
      this.throttled.set(key, (this.throttled.get(key) ?? 0) + 1);
      return undefined;
    }
    this.inFlight.set(key, n + 1);
    if (n + 1 > (this.max.get(key) ?? 0)) this.max.set(key, n + 1);
    let done = false;
    return () => {
      if (done) return;
      done = true;
      const left = (this.inFlight.get(key) ?? 1) - 1;
      if (left <= 0) this.inFlight.delete(key);
      else this.inFlight.set(key, left);
    };
  }

  /** Forget maxima and throttled counts (requests in flight stay counted). */
  reset(): void {
    this.max = new Map([...this.inFlight]);
    this.throttled.clear();
  }

  /** `{limit, mailboxes:[{clientId, mailbox, inFlight, maxInFlight, throttled}]}`. */
  report() {
    const keys = new Set([...this.inFlight.keys(), ...this.max.keys(), ...this.throttled.keys()]);
    return {
      limit: MAILBOX_CONCURRENCY_LIMIT,
      mailboxes: [...keys].map((k) => {
        const [clientId, mailbox] = k.split(" ");
        return {
          clientId,
          mailbox,
          inFlight: this.inFlight.get(k) ?? 0,
          maxInFlight: this.max.get(k) ?? 0,
          throttled: this.throttled.get(k) ?? 0,
        };
      }),
    };
  }
}

const GRAPH_BASE = "/graph/v1.0";

/** Route a request whose path starts with `/microsoft`. */
export function routeMicrosoft(sb: SandboxRuntime, req: Request, url: URL, bodyText: string): MicrosoftRoute {
  const path = url.pathname.slice("/microsoft".length);
  const method = req.method;
  const clientRequestId = req.headers.get("client-request-id") ?? undefined;
  const graphFault = (f: Exclude<FaultResponse, { timeout: true }>) => {
    const err = graphErrorForStatus(f.status, f.reason, f.message);
    if (f.retryAfterSeconds !== undefined) err.headers["retry-after"] = String(f.retryAfterSeconds);
    return err.toResponse(clientRequestId);
  };
  if (path === GRAPH_BASE || path.startsWith(`${GRAPH_BASE}/`)) {
    const sub = path.slice(GRAPH_BASE.length);
    const route = matchGraphRoute(method, sub) ?? matchSubscriptionRoute(method, sub) ??
      matchDeltaRoute(method, sub);
    if (!route) {
      return {
        endpoint: "unknown",
        counted: true,
        email: null,
        faultAnswer: graphFault,
        handle: () =>
          new GraphError(400, "BadRequest", `Resource not found for the segment '${path.split("/").pop()}'.`)
            .toResponse(clientRequestId),
      };
    }
    let caller: ReturnType<typeof graphCaller> | undefined;
    let authError: GraphError | undefined;
    try {
      caller = graphCaller(sb, req);
    } catch (e) {
      authError = e as GraphError;
    }
    return {
      endpoint: route.endpoint,
      counted: true,
      email: caller?.account.email ?? null,
      ...(caller ? { mailbox: `${caller.clientId} ${caller.account.email}` } : {}),
      faultAnswer: graphFault,
      handle: () => {
        if (!caller) throw authError!;
        return route.handle({ sb, req, url, params: route.params, bodyText, caller });
      },
    };
  }
  const m = /^\/([^/]+)(\/.*)$/.exec(path);
  const tenant = m ? decodeURIComponent(m[1]) : "";
  const rest = m?.[2] ?? "";
  const aadFault = (f: Exclude<FaultResponse, { timeout: true }>) =>
    aadErrorForStatus(f.status, f.reason, f.message).toResponse(
      f.retryAfterSeconds !== undefined ? { "retry-after": String(f.retryAfterSeconds) } : {},
    );
  const pageFault = (f: Exclude<FaultResponse, { timeout: true }>) =>
    errorPage(f.status, f.reason ?? "server_error", f.message ?? "Something went wrong.");
  if (rest === "/oauth2/v2.0/authorize" && method === "GET") {
    return {
      endpoint: "microsoft.oauth.authorize",
      counted: true,
      email: url.searchParams.get("login_hint")?.toLowerCase() ?? null,
      faultAnswer: pageFault,
      handle: () => msAuthorizePage(sb, url, tenant),
    };
  }
  if (rest === "/oauth2/v2.0/authorize/decision" && method === "POST") {
    return {
      endpoint: "microsoft.oauth.authorize",
      counted: false,
      email: formBody(req, bodyText)?.get("login")?.trim().toLowerCase() || null,
      faultAnswer: pageFault,
      handle: () => msDecisionPost(sb, req, bodyText),
    };
  }
  if (rest === "/oauth2/v2.0/token" && method === "POST") {
    const grantType = msGrantTypeOf(req, bodyText);
    return {
      endpoint: grantType === "authorization_code"
        ? "microsoft.oauth.token.authorization_code"
        : grantType === "refresh_token"
        ? "microsoft.oauth.token.refresh_token"
        : "unknown",
      counted: true,
      email: msTokenRequestEmail(sb, req, bodyText),
      faultAnswer: aadFault,
      handle: () => msTokenEndpoint(sb, req, bodyText),
    };
  }
  // Metadata and keys: neither counted nor fault targets (not API calls), as on the Google side.
  if (rest === "/v2.0/.well-known/openid-configuration" && method === "GET") {
    return {
      endpoint: "unknown",
      counted: false,
      email: null,
      faultAnswer: aadFault,
      handle: () => msOpenIdConfiguration(sb, url.origin, tenant),
    };
  }
  if (rest === "/discovery/v2.0/keys" && method === "GET") {
    return {
      endpoint: "unknown",
      counted: false,
      email: null,
      faultAnswer: aadFault,
      handle: () => msKeys(sb),
    };
  }
  return {
    endpoint: "unknown",
    counted: true,
    email: null,
    faultAnswer: aadFault,
    handle: () =>
      new AadstsError(
        404,
        "invalid_request",
        900561,
        `No Microsoft sandbox route for ${method} ${url.pathname}.`,
      ).toResponse(),
  };
}

/** The MailboxConcurrency answer for a refused request. */
export const mailboxThrottled = (req: Request): Response =>
  mailboxConcurrency(MAILBOX_RETRY_AFTER_S).toResponse(req.headers.get("client-request-id") ?? undefined);

/** Whether a call is a non-timeout fault matching this route (helper for the router). */
export type { CallInfo };
