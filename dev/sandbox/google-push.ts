/**
 * Google Calendar push notifications (docs/providers/google.md A10, Part E 9; CONTRACT.md "Inbound
 * sync"): `POST /calendars/{calendarId}/events/watch` opens a channel, `POST /channels/stop` closes it,
 * and every change to the watched calendar's events (API writes and admin edits alike, the caller's
 * own writes included) POSTs a headers-only `exists` notification to the channel's address. The
 * `sync` notification is sent as the channel opens and may arrive before the watch answer.
 *
 * Channels live in memory only: a restarted sandbox has forgotten them, as if Google had dropped them.
 */
import { z } from "zod";
import { type ApiContext, bearerToken, calendarFor, parseJson, requireAuth, SCOPES } from "./api-context.ts";
import type { CalendarRoute } from "./calendar-api.ts";
import { GoogleApiError, invalid, jsonResponse } from "./errors.ts";
import { base64url, sha256Hex } from "./ids.ts";
import { type PushHub, webhookUrlAllowed } from "./push.ts";
import type { CalendarRecord } from "./state.ts";

/** Default and longest channel lifetime: `params.ttl` defaults to 604800 s (7 days), A10. */
export const CHANNEL_TTL_S = 604_800;

/** One notification channel. */
export interface Channel {
  id: string;
  resourceId: string;
  resourceUri: string;
  token?: string;
  /** Epoch ms. */
  expiration: number;
  address: string;
  email: string;
  clientId: string;
  calendarId: string;
  /** The watched calendar record's `uid` (changes are matched on it). */
  calendarUid: string;
  /** Last `X-Goog-Message-Number` sent. */
  messageNumber: number;
  createdAt: string;
  stoppedAt?: string;
}

/** Google's calendar scopes (any of them may stop a channel). */
const ANY_CALENDAR_SCOPE = [...new Set([...SCOPES.eventsRead, ...SCOPES.calendarList, ...SCOPES.freeBusy])];

const watchBody = z.object({
  id: z.string().min(1).max(64).regex(/^[A-Za-z0-9\-_+/=]+$/),
  type: z.enum(["web_hook", "webhook"]),
  address: z.string().min(1),
  token: z.string().max(256).optional(),
  expiration: z.union([z.string().regex(/^\d+$/), z.number().int()]).optional(),
  params: z.looseObject({ ttl: z.union([z.string().regex(/^\d+$/), z.number().int()]).optional() })
    .optional(),
  payload: z.boolean().optional(),
});

const stopBody = z.object({ id: z.string().min(1), resourceId: z.string().min(1) });

/** Open channels of one sandbox and the notifications they send. */
export class GoogleChannels {
  private channels = new Map<string, Channel>();

  constructor(private readonly hub: PushHub) {}

  /** Forget every channel. */
  reset(): void {
    this.channels.clear();
  }

  /** Every channel, with its state at `now`. */
  list(): Array<Channel & { state: "active" | "stopped" | "expired" }> {
    return [...this.channels.values()].map((c) => ({ ...c, state: this.stateOf(c) }));
  }

  /** The channel with this id, if any. */
  get(id: string): Channel | undefined {
    return this.channels.get(id);
  }

  /** End a channel's life now (as if its expiration had come); false when unknown. */
  expire(id: string): boolean {
    const c = this.channels.get(id);
    if (!c) return false;
    c.expiration = Math.min(c.expiration, Date.now());
    return true;
  }

  /** A calendar's events changed: every active channel on it gets an `exists` notification. */
  changed(cal: CalendarRecord): void {
    for (const c of this.channels.values()) {
      if (c.calendarUid === cal.uid && this.stateOf(c) === "active") this.send(c, "exists");
    }
  }

  /** Handle `POST /calendars/{calendarId}/events/watch` -> 200 channel resource. */
  watch(ctx: ApiContext): Response {
    const email = requireAuth(ctx, SCOPES.eventsRead);
    const cal = calendarFor(ctx, email, "reader");
    if (cal.id.includes("#holiday@")) {
      throw new GoogleApiError(400, "pushNotSupportedForRequestedResource", {
        domain: "calendar",
        message: "Push notifications are not supported by this resource.",
      });
    }
    const parsed = watchBody.safeParse(parseJson(ctx.bodyText));
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      if (issue.code === "invalid_type" && issue.input === undefined) {
        throw new GoogleApiError(400, "required", { message: `Required parameter: ${issue.path.join(".")}` });
      }
      throw invalid(`Invalid value for: ${issue.path.join(".")}`);
    }
    const body = parsed.data;
    if (!webhookUrlAllowed(body.address)) {
      throw new GoogleApiError(400, "push.webhookUrlNotHttps", {
        message: `WebHook callback must be HTTPS: ${body.address}`,
      });
    }
    const clientId = this.clientOf(ctx);
    const existing = this.channels.get(body.id);
    if (existing && existing.clientId === clientId && this.stateOf(existing) === "active") {
      throw new GoogleApiError(400, "channelIdNotUnique", { message: `Channel id ${body.id} not unique` });
    }
    const now = Date.now();
    const ttl = Math.min(Number(body.params?.ttl ?? CHANNEL_TTL_S), CHANNEL_TTL_S);
    let expiration = now + ttl * 1000;
    if (body.expiration !== undefined) expiration = Math.min(expiration, Number(body.expiration));
    if (ttl <= 0 || expiration <= now) throw invalid("Invalid value for: expiration");
    const channel: Channel = {
      id: body.id,
      resourceId: base64url(sha256Hex(`resource:${cal.uid}`)).slice(0, 27),
      resourceUri: `${ctx.url.origin}/google/calendar/v3/calendars/${
        encodeURIComponent(cal.id)
      }/events?alt=json`,
      ...(body.token !== undefined ? { token: body.token } : {}),
      expiration,
      address: body.address,
      email,
      clientId,
      calendarId: cal.id,
      calendarUid: cal.uid,
      messageNumber: 0,
      createdAt: new Date(now).toISOString(),
    };
    this.channels.set(channel.id, channel);
    this.send(channel, "sync");
    return jsonResponse({
      kind: "api#channel",
      id: channel.id,
      resourceId: channel.resourceId,
      resourceUri: channel.resourceUri,
      ...(channel.token !== undefined ? { token: channel.token } : {}),
      expiration: String(channel.expiration),
    });
  }

  /**
   * Handle `POST /channels/stop` `{id, resourceId}` -> 204. A channel that is unknown, already stopped,
   * another client's or another user's, or whose resourceId differs -> 404 notFound.
   */
  stop(ctx: ApiContext): Response {
    const email = requireAuth(ctx, ANY_CALENDAR_SCOPE);
    const parsed = stopBody.safeParse(parseJson(ctx.bodyText));
    if (!parsed.success) {
      throw new GoogleApiError(400, "required", {
        message: `Required parameter: ${parsed.error.issues[0].path.join(".")}`,
      });
    }
    const { id, resourceId } = parsed.data;
    const clientId = this.clientOf(ctx);
    const c = this.channels.get(id);
    if (!c || c.stoppedAt || c.resourceId !== resourceId || c.clientId !== clientId || c.email !== email) {
      throw new GoogleApiError(404, "notFound", {
        message: `Channel '${id}' not found for project '${projectNumber(clientId)}'`,
      });
    }
    c.stoppedAt = new Date().toISOString();
    return new Response(null, { status: 204 });
  }

  private stateOf(c: Channel): "active" | "stopped" | "expired" {
    if (c.stoppedAt) return "stopped";
    return Date.now() >= c.expiration ? "expired" : "active";
  }

  private clientOf(ctx: ApiContext): string {
    const token = bearerToken(ctx.req, ctx.url);
    return (token && ctx.state.accessToken(token)?.grant.clientId) ?? "";
  }

  /** POST one notification; message numbers increase per channel, in uneven steps (A10: "not sequential"). */
  private send(c: Channel, state: "sync" | "exists"): void {
    c.messageNumber = state === "sync" ? 1 : c.messageNumber + 1 + Math.floor(Math.random() * 3);
    const headers: Record<string, string> = {
      "content-type": "application/json; utf-8",
      "user-agent": "APIs-Google; (+https://developers.google.com/webmasters/APIs-Google.html)",
      "x-goog-channel-id": c.id,
      "x-goog-channel-expiration": new Date(c.expiration).toUTCString(),
      "x-goog-resource-id": c.resourceId,
      "x-goog-resource-uri": c.resourceUri,
      "x-goog-resource-state": state,
      "x-goog-message-number": String(c.messageNumber),
      ...(c.token !== undefined ? { "x-goog-channel-token": c.token } : {}),
    };
    this.hub.notify({
      provider: "google",
      kind: state,
      target: c.id,
      url: c.address,
      headers,
      body: "",
      messageNumber: c.messageNumber,
    });
  }
}

/** A stable 12-digit "project number" for a client id (Google's 404 names the project). */
const projectNumber = (clientId: string) =>
  String(parseInt(sha256Hex(clientId).slice(0, 10), 16)).slice(0, 12);

/**
 * Match the push routes below `/google/calendar/v3`: `POST /calendars/{id}/events/watch` and
 * `POST /channels/stop` (endpoint names `events.watch`, `channels.stop`).
 */
export function matchPushRoute(
  channels: GoogleChannels,
  method: string,
  subpath: string,
): CalendarRoute | undefined {
  if (method !== "POST") return undefined;
  let seg: string[];
  try {
    seg = subpath.split("/").filter(Boolean).map(decodeURIComponent);
  } catch {
    return undefined;
  }
  if (seg.length === 4 && seg[0] === "calendars" && seg[2] === "events" && seg[3] === "watch") {
    return { endpoint: "events.watch", params: { calendarId: seg[1] }, handle: (c) => channels.watch(c) };
  }
  if (seg.length === 2 && seg[0] === "channels" && seg[1] === "stop") {
    return { endpoint: "channels.stop", params: {}, handle: (c) => channels.stop(c) };
  }
  return undefined;
}
