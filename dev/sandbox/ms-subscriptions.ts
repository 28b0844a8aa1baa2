/**
 * Microsoft Graph change notifications for Outlook events (docs/providers/microsoft.md B9; CONTRACT.md
 * "Inbound sync"): `POST /subscriptions` with the validation handshake on `notificationUrl` and
 * `lifecycleNotificationUrl`, `GET`/`PATCH`/`DELETE /subscriptions/{id}` (renewal validates again),
 * `POST /subscriptions/{id}/reauthorize`, change notifications batched per receiver URL, and lifecycle
 * notifications (`reauthorizationRequired`, `subscriptionRemoved`, `missed`) on admin request.
 *
 * Subscriptions live in memory only: a restarted sandbox has forgotten them (renewal then answers 404,
 * as for a subscription Graph deleted).
 */
import { GraphError, graphHeaders } from "./ms-errors.ts";
import { accessDenied } from "./ms-errors.ts";
import { CAL_READ, type GraphContext, graphJson, META } from "./ms-graph.ts";
import {
  graphTimestamp,
  type MsAccount,
  type MsCalendar,
  type MsChangeType,
  type MsEvent,
} from "./ms-state.ts";
import type { EndpointName } from "./faults.ts";
import { type PushHub, webhookUrlAllowed } from "./push.ts";
import type { SandboxState } from "./state.ts";
import { parseRfc3339 } from "./time.ts";

/** Longest lifetime of a basic (no resource data) Outlook event subscription, in minutes (B9.2). */
export const MAX_SUBSCRIPTION_MINUTES = 10_080;
/** How long the receiver has to answer a validation request (B9.3). */
export const VALIDATION_TIMEOUT_MS = 10_000;
/** `clientState` length limit (B9.1, the subscription resource's 128). */
export const CLIENT_STATE_MAX = 128;

/** The lifecycle events Graph sends for Outlook resources (B9.5). */
export const LIFECYCLE_EVENTS = ["reauthorizationRequired", "subscriptionRemoved", "missed"] as const;
/** One of {@link LIFECYCLE_EVENTS}. */
export type LifecycleEvent = typeof LIFECYCLE_EVENTS[number];

/** One subscription. */
export interface Subscription {
  id: string;
  clientId: string;
  email: string;
  /** The resource exactly as the client wrote it. */
  resource: string;
  /** The calendar it watches (`me/events` = the default calendar). */
  calendarId: string;
  changeType: string;
  notificationUrl: string;
  lifecycleNotificationUrl?: string;
  /** Epoch ms. */
  expiration: number;
  clientState?: string;
  latestSupportedTlsVersion: string;
  createdAt: string;
  /** Why it is gone: deleted by the client, expired, or removed by Graph (`subscriptionRemoved`). */
  removed?: "deleted" | "expired" | "removed";
}

type Route = {
  endpoint: EndpointName;
  params: Record<string, string>;
  handle: (ctx: GraphContext) => Response | Promise<Response>;
};

const badRequest = (code: string, message: string) => new GraphError(400, code, message);
const notFound = () => new GraphError(404, "ResourceNotFound", "The object was not found.");

/** The subscriptions of one sandbox and the notifications they send. */
export class MsSubscriptions {
  private subs = new Map<string, Subscription>();

  constructor(private readonly hub: PushHub, private readonly state: SandboxState) {}

  /** Forget every subscription. */
  reset(): void {
    this.subs.clear();
  }

  /** Every subscription with its state now. */
  list(): Array<Subscription & { state: "active" | "deleted" | "expired" | "removed" }> {
    return [...this.subs.values()].map((s) => ({ ...s, state: this.live(s) ? "active" : s.removed! }));
  }

  /** End a subscription's life now (Graph deletes expired subscriptions); false when unknown. */
  expire(id: string): boolean {
    const s = this.subs.get(id);
    if (!s) return false;
    s.expiration = Math.min(s.expiration, Date.now());
    this.live(s);
    return true;
  }

  /**
   * Send a lifecycle notification to the subscription's lifecycleNotificationUrl; `subscriptionRemoved`
   * also removes the subscription. @returns whether one was sent (false without a lifecycle URL), or
   * undefined when the subscription is unknown.
   */
  lifecycle(id: string, event: LifecycleEvent): boolean | undefined {
    const s = this.subs.get(id);
    if (!s) return undefined;
    const account = this.state.microsoft.account(s.email);
    if (event === "subscriptionRemoved" && this.live(s)) s.removed = "removed";
    if (!s.lifecycleNotificationUrl || !account) return false;
    this.hub.notify({
      provider: "microsoft",
      kind: "lifecycle",
      target: s.id,
      url: s.lifecycleNotificationUrl,
      headers: { "content-type": "application/json; charset=utf-8" },
      body: JSON.stringify({
        value: [{
          subscriptionId: s.id,
          subscriptionExpirationDateTime: graphTimestamp(s.expiration),
          tenantId: account.tenantId,
          clientState: s.clientState ?? null,
          lifecycleEvent: event,
        }],
      }),
    });
    return true;
  }

  /** An event changed: one POST per receiver URL carrying every matching subscription's notification. */
  changed(cal: MsCalendar, ev: MsEvent, changeType: MsChangeType): void {
    const account = this.state.microsoft.ownerOf(cal);
    if (!account) return;
    const byUrl = new Map<string, Subscription[]>();
    for (const s of this.subs.values()) {
      if (s.email !== account.email || s.calendarId !== cal.id || !this.live(s)) continue;
      if (!s.changeType.split(",").includes(changeType)) continue;
      byUrl.set(s.notificationUrl, [...(byUrl.get(s.notificationUrl) ?? []), s]);
    }
    const path = `Users/${account.oid}/Events/${ev.id}`;
    for (const [url, subs] of byUrl) {
      const value = subs.map((s) => ({
        id: crypto.randomUUID().replace(/-/g, "").slice(0, 13),
        subscriptionId: s.id,
        subscriptionExpirationDateTime: graphTimestamp(s.expiration),
        clientState: s.clientState ?? null,
        changeType,
        resource: path,
        tenantId: account.tenantId,
        resourceData: {
          "@odata.type": "#Microsoft.Graph.Event",
          "@odata.id": path,
          "@odata.etag": `W/"${ev.changeKey}"`,
          id: ev.id,
        },
      }));
      this.hub.notify({
        provider: "microsoft",
        kind: "change",
        target: subs.map((s) => s.id).join(","),
        url,
        headers: { "content-type": "application/json; charset=utf-8" },
        body: JSON.stringify({ value }),
      });
    }
  }

  /** `POST /subscriptions` -> 201 after both URLs passed validation. */
  async create(ctx: GraphContext): Promise<Response> {
    requireRead(ctx);
    const body = parseObject(ctx.bodyText);
    for (const f of ["changeType", "notificationUrl", "resource", "expirationDateTime"]) {
      if (typeof body[f] !== "string" || !body[f]) {
        throw badRequest("InvalidRequest", `The property '${f}' is required and must be a non-empty string.`);
      }
    }
    const changeTypes = String(body.changeType).split(",").map((t) => t.trim());
    if (
      changeTypes.some((t) => !["created", "updated", "deleted"].includes(t)) ||
      new Set(changeTypes).size !== changeTypes.length
    ) {
      throw badRequest("InvalidRequest", `Invalid changeType '${body.changeType}'.`);
    }
    const calendarId = this.resolveResource(ctx, String(body.resource));
    const notificationUrl = String(body.notificationUrl);
    const lifecycleUrl = body.lifecycleNotificationUrl;
    if (lifecycleUrl !== undefined && lifecycleUrl !== null && typeof lifecycleUrl !== "string") {
      throw badRequest("InvalidRequest", "lifecycleNotificationUrl must be a string.");
    }
    for (const u of [notificationUrl, lifecycleUrl].filter((u): u is string => typeof u === "string")) {
      if (!webhookUrlAllowed(u)) {
        throw badRequest("InvalidRequest", `The notification URL '${u}' must use https.`);
      }
    }
    const clientState = body.clientState;
    if (clientState !== undefined && clientState !== null) {
      if (typeof clientState !== "string" || clientState.length > CLIENT_STATE_MAX) {
        throw badRequest(
          "InvalidRequest",
          `clientState must be a string of at most ${CLIENT_STATE_MAX} characters.`,
        );
      }
    }
    const expiration = checkExpiration(body.expirationDateTime);
    const id = crypto.randomUUID();
    await this.validate(id, notificationUrl);
    if (typeof lifecycleUrl === "string") await this.validate(id, lifecycleUrl);
    const sub: Subscription = {
      id,
      clientId: ctx.caller.clientId,
      email: ctx.caller.account.email,
      resource: String(body.resource),
      calendarId,
      changeType: changeTypes.join(","),
      notificationUrl,
      ...(typeof lifecycleUrl === "string" ? { lifecycleNotificationUrl: lifecycleUrl } : {}),
      expiration,
      ...(typeof clientState === "string" ? { clientState } : {}),
      latestSupportedTlsVersion: typeof body.latestSupportedTlsVersion === "string"
        ? body.latestSupportedTlsVersion
        : "v1_2",
      createdAt: new Date().toISOString(),
    };
    this.subs.set(id, sub);
    return graphJson(ctx, { "@odata.context": `${META}#subscriptions/$entity`, ...this.view(sub) }, 201);
  }

  /** `GET /subscriptions`: the calling app's live subscriptions for the signed-in user. */
  listOwn(ctx: GraphContext): Response {
    const own = [...this.subs.values()].filter((s) => this.owns(ctx, s) && this.live(s));
    return graphJson(ctx, { "@odata.context": `${META}#subscriptions`, value: own.map((s) => this.view(s)) });
  }

  /** `GET /subscriptions/{id}`. */
  getOne(ctx: GraphContext): Response {
    const s = this.find(ctx);
    return graphJson(ctx, { "@odata.context": `${META}#subscriptions/$entity`, ...this.view(s) });
  }

  /**
   * `PATCH /subscriptions/{id}` `{expirationDateTime?, notificationUrl?}` -> 200; the notification URL
   * is validated again (as observed, B9.3). `lifecycleNotificationUrl` cannot be changed (400).
   */
  async update(ctx: GraphContext): Promise<Response> {
    const s = this.find(ctx);
    const body = parseObject(ctx.bodyText);
    if ("lifecycleNotificationUrl" in body) {
      throw badRequest(
        "InvalidRequest",
        "lifecycleNotificationUrl can only be set when the subscription is created.",
      );
    }
    for (const k of Object.keys(body)) {
      if (k !== "expirationDateTime" && k !== "notificationUrl") {
        throw badRequest("InvalidRequest", `The property '${k}' cannot be updated.`);
      }
    }
    const expiration = body.expirationDateTime !== undefined
      ? checkExpiration(body.expirationDateTime)
      : s.expiration;
    const url = body.notificationUrl !== undefined ? String(body.notificationUrl) : s.notificationUrl;
    if (!webhookUrlAllowed(url)) {
      throw badRequest("InvalidRequest", `The notification URL '${url}' must use https.`);
    }
    await this.validate(s.id, url);
    if (!this.live(s)) throw notFound();
    s.expiration = expiration;
    s.notificationUrl = url;
    return graphJson(ctx, { "@odata.context": `${META}#subscriptions/$entity`, ...this.view(s) });
  }

  /** `DELETE /subscriptions/{id}` -> 204. */
  remove(ctx: GraphContext): Response {
    const s = this.find(ctx);
    s.removed = "deleted";
    return new Response(null, { status: 204, headers: headersOf(ctx) });
  }

  /** `POST /subscriptions/{id}/reauthorize` -> 204 after validating the notification URL again. */
  async reauthorize(ctx: GraphContext): Promise<Response> {
    const s = this.find(ctx);
    await this.validate(s.id, s.notificationUrl);
    return new Response(null, { status: 204, headers: headersOf(ctx) });
  }

  /**
   * The validation handshake (B9.3): POST `{url}?validationToken=…` (the URL's own query kept),
   * `Content-Type: text/plain; charset=utf-8`, empty body. The receiver must answer within 10 s with
   * 200, `text/plain` and the decoded token as the body.
   * @throws GraphError 400 ValidationError otherwise.
   */
  private async validate(subscriptionId: string, url: string): Promise<void> {
    const token =
      `Validation: Testing client application reachability for subscription Request-Id: ${crypto.randomUUID()}`;
    const target = new URL(url);
    target.searchParams.append("validationToken", token);
    const res = await this.hub.request(
      "microsoft",
      subscriptionId,
      target.href,
      { "content-type": "text/plain; charset=utf-8" },
      VALIDATION_TIMEOUT_MS,
    );
    if (res.status === 0) throw badRequest("ValidationError", "Subscription validation request timed out.");
    if (res.status !== 200) {
      throw badRequest(
        "ValidationError",
        `Subscription validation request failed. Notification endpoint must respond with 200 OK to validation request. HTTP status code is '${res.status}'.`,
      );
    }
    if (!/^text\/plain\b/i.test(res.contentType) || res.text !== token) {
      throw badRequest(
        "ValidationError",
        "Subscription validation request failed. Response must exactly match validationToken query parameter.",
      );
    }
  }

  /** The calendar a subscription resource names; unknown forms 400, another user's mailbox 403. */
  private resolveResource(ctx: GraphContext, resource: string): string {
    const a = ctx.caller.account;
    const seg = resource.replace(/^\/+/, "").split("/").filter(Boolean);
    const lower = seg.map((s) => s.toLowerCase());
    let rest: string[];
    if (lower[0] === "me") rest = lower.slice(1);
    else if (lower[0] === "users" && seg.length > 1) {
      const who = seg[1].toLowerCase();
      if (who !== a.oid && who !== a.email) throw accessDenied();
      rest = lower.slice(2);
    } else throw badRequest("InvalidRequest", `The resource '${resource}' is not supported.`);
    const at = lower.length - rest.length;
    const ms = this.state.microsoft;
    if (rest.join("/") === "events" || rest.join("/") === "calendar/events") return ms.defaultCalendar(a).id;
    if (rest.length === 3 && rest[0] === "calendars" && rest[2] === "events") {
      const cal = a.calendars[seg[at + 1]];
      if (!cal) {
        throw new GraphError(404, "ErrorItemNotFound", "The specified object was not found in the store.");
      }
      return cal.id;
    }
    throw badRequest("InvalidRequest", `The resource '${resource}' is not supported.`);
  }

  private owns(ctx: GraphContext, s: Subscription): boolean {
    return s.clientId === ctx.caller.clientId && s.email === ctx.caller.account.email;
  }

  /** The caller's live subscription `params.id`, else 404. */
  private find(ctx: GraphContext): Subscription {
    const s = this.subs.get(ctx.params.id);
    if (!s || !this.owns(ctx, s) || !this.live(s)) throw notFound();
    return s;
  }

  /** Whether a subscription is live; an expired one is marked removed (Graph deletes it). */
  private live(s: Subscription): boolean {
    if (!s.removed && s.expiration <= Date.now()) s.removed = "expired";
    return !s.removed;
  }

  private view(s: Subscription) {
    const account: MsAccount | undefined = this.state.microsoft.account(s.email);
    return {
      id: s.id,
      resource: s.resource,
      applicationId: s.clientId,
      changeType: s.changeType,
      clientState: s.clientState ?? null,
      notificationUrl: s.notificationUrl,
      notificationQueryOptions: null,
      lifecycleNotificationUrl: s.lifecycleNotificationUrl ?? null,
      expirationDateTime: graphTimestamp(s.expiration),
      creatorId: account?.oid ?? null,
      includeResourceData: false,
      latestSupportedTlsVersion: s.latestSupportedTlsVersion,
      encryptionCertificate: null,
      encryptionCertificateId: null,
      notificationUrlAppId: null,
    };
  }
}

function requireRead(ctx: GraphContext): void {
  if (!CAL_READ.some((s) => ctx.caller.scopes.includes(s))) throw accessDenied();
}

function headersOf(ctx: GraphContext): Record<string, string> {
  return graphHeaders(crypto.randomUUID(), ctx.req.headers.get("client-request-id") ?? crypto.randomUUID());
}

function parseObject(text: string): Record<string, unknown> {
  let v: unknown;
  try {
    v = JSON.parse(text || "{}");
  } catch {
    throw badRequest("BadRequest", "Invalid JSON. A token was not recognized in the JSON content.");
  }
  if (!v || typeof v !== "object" || Array.isArray(v)) {
    throw badRequest("BadRequest", "The request body must be a JSON object.");
  }
  return v as Record<string, unknown>;
}

/** A requested expiration: in the future and at most 10080 minutes ahead (400 otherwise). */
function checkExpiration(value: unknown): number {
  const ms = typeof value === "string" ? parseRfc3339(value) : undefined;
  if (ms === undefined) {
    throw badRequest("InvalidRequest", `Invalid expirationDateTime '${String(value)}'.`);
  }
  if (ms <= Date.now()) {
    throw badRequest("ExtensionError", "Subscription expiration can only be in the future.");
  }
  if (ms > Date.now() + MAX_SUBSCRIPTION_MINUTES * 60_000) {
    throw badRequest(
      "ExtensionError",
      `Subscription expiration can only be ${MAX_SUBSCRIPTION_MINUTES} minutes in the future.`,
    );
  }
  return ms;
}

/** Match `/subscriptions` routes below the Graph base (endpoint names `microsoft.subscriptions.*`). */
export function matchSubscriptionRoute(method: string, subpath: string): Route | undefined {
  const seg = subpath.split("/").filter(Boolean);
  if (seg[0]?.toLowerCase() !== "subscriptions" || seg.length > 3) return undefined;
  const subs = (ctx: GraphContext) => ctx.sb.subscriptions;
  if (seg.length === 1) {
    if (method === "POST") {
      return {
        endpoint: "microsoft.subscriptions.create",
        params: {},
        handle: (c) => subs(c).create(c),
      };
    }
    if (method === "GET") {
      return {
        endpoint: "microsoft.subscriptions.list",
        params: {},
        handle: (c) => subs(c).listOwn(c),
      };
    }
    return undefined;
  }
  let id: string;
  try {
    id = decodeURIComponent(seg[1]);
  } catch {
    return undefined;
  }
  if (seg.length === 3) {
    return seg[2].toLowerCase() === "reauthorize" && method === "POST"
      ? {
        endpoint: "microsoft.subscriptions.reauthorize",
        params: { id },
        handle: (c) => subs(c).reauthorize(c),
      }
      : undefined;
  }
  if (method === "GET") {
    return {
      endpoint: "microsoft.subscriptions.get",
      params: { id },
      handle: (c) => subs(c).getOne(c),
    };
  }
  if (method === "PATCH") {
    return {
      endpoint: "microsoft.subscriptions.update",
      params: { id },
      handle: (c) => subs(c).update(c),
    };
  }
  if (method === "DELETE") {
    return {
      endpoint: "microsoft.subscriptions.delete",
      params: { id },
      handle: (c) => subs(c).remove(c),
    };
  }
  return undefined;
}
