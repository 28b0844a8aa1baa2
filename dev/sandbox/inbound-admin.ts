/**
 * Admin API of the inbound-sync emulation (CONTRACT.md "Inbound sync"): changes made "as the user"
 * in Google Calendar or Outlook (they bump etags and send notifications like any change), sync-token
 * and delta-token invalidation, channel and subscription listings, early expiry, Graph lifecycle
 * notifications, and the delivery controls (drop, duplicate, reorder, flush, counters).
 */
import { z } from "zod";
import { readJson } from "./admin-api.ts";
import { AdminError, GoogleApiError, jsonResponse } from "./errors.ts";
import { deleteEvent, parseEventBody, writeEvent } from "./event-model.ts";
import { findInstance } from "./google-series.ts";
import { GraphError } from "./ms-errors.ts";
import { applyBody, deleteMsEvent, eventView } from "./ms-graph.ts";
import { findOccurrence, storeOccurrence } from "./ms-series.ts";
import { graphTimestamp, newChangeKey } from "./ms-state.ts";
import { LIFECYCLE_EVENTS } from "./ms-subscriptions.ts";
import type { SandboxRuntime } from "./runtime.ts";

const ok = (body: unknown = { ok: true }) => jsonResponse(body);

const planBody = z.strictObject({
  provider: z.enum(["google", "microsoft"]),
  drop: z.number().int().min(0).optional(),
  duplicate: z.number().int().min(0).optional(),
  reorder: z.number().int().min(0).optional(),
});

const msEventPatch = z.strictObject({
  subject: z.string().optional(),
  start: z.strictObject({ dateTime: z.string().min(1), timeZone: z.string().min(1) }).optional(),
  end: z.strictObject({ dateTime: z.string().min(1), timeZone: z.string().min(1) }).optional(),
  isAllDay: z.boolean().optional(),
  showAs: z.enum(["free", "tentative", "busy", "oof", "workingElsewhere", "unknown"]).optional(),
  location: z.strictObject({ displayName: z.string() }).optional(),
});

const lifecycleBody = z.strictObject({ lifecycleEvent: z.enum(LIFECYCLE_EVENTS) });

/** Forget channels, subscriptions, delivery plans and counters (part of `POST /_admin/reset`). */
export async function resetInbound(sb: SandboxRuntime): Promise<void> {
  await sb.push.reset();
  sb.channels.reset();
  sb.subscriptions.reset();
}

/** Google-side and shared routes below `/_admin` (`seg` = decoded segments after `_admin`); undefined = not ours. */
export async function handleInboundAdmin(
  sb: SandboxRuntime,
  req: Request,
  url: URL,
  seg: string[],
): Promise<Response | undefined> {
  const route = `${req.method} ${seg.map((s, i) => (isParam(seg, i) ? "*" : s)).join("/")}`;
  switch (route) {
    case "PATCH accounts/*/calendars/*/events/*": {
      const { cal, stored } = googleEvent(sb, seg);
      const text = await req.text();
      return ok(asAdmin(() => writeEvent(sb.state, cal, stored, parseEventBody(text), "patch")));
    }
    case "DELETE accounts/*/calendars/*/events/*": {
      const { cal, stored } = googleEvent(sb, seg);
      if (stored.resource.status === "cancelled") {
        throw new AdminError(409, "already_deleted", `Event ${seg[5]} is already deleted`);
      }
      deleteEvent(sb.state, cal, stored);
      return ok();
    }
    case "POST accounts/*/calendars/*/sync-tokens/invalidate": {
      const cal = googleCalendar(sb, seg[1], seg[3]);
      cal.syncGeneration++;
      sb.state.changed();
      return ok({ syncGeneration: cal.syncGeneration });
    }
    case "GET google/channels": {
      const email = url.searchParams.get("email")?.toLowerCase();
      const channels = sb.channels.list().filter((c) => !email || c.email === email).map((c) => ({
        ...c,
        expiration: String(c.expiration),
        notifications: sb.push.countersOf(c.id),
      }));
      return ok({ channels });
    }
    case "POST google/channels/*/expire":
      if (!sb.channels.expire(seg[2])) throw new AdminError(404, "not_found", `No channel ${seg[2]}`);
      return ok();
    case "POST push/plan": {
      const b = await readJson(req, planBody);
      return ok({ plan: sb.push.plan(b.provider, b) });
    }
    case "POST push/flush":
      await sb.push.flush();
      return ok(sb.push.report());
    case "GET push/deliveries":
      return ok(sb.push.report(url.searchParams.get("target") ?? undefined));
  }
  return undefined;
}

/** Microsoft routes below `/_admin/microsoft` (`seg` = segments after `microsoft`); undefined = not ours. */
export async function handleMsInboundAdmin(
  sb: SandboxRuntime,
  req: Request,
  url: URL,
  seg: string[],
): Promise<Response | undefined> {
  const ms = sb.state.microsoft;
  const route = `${req.method} ${seg.map((s, i) => (isParam(seg, i) ? "*" : s)).join("/")}`;
  const calendarOf = () => {
    const account = ms.account(seg[1]);
    if (!account) throw new AdminError(404, "not_found", `No Microsoft sandbox account ${seg[1]}`);
    const cal = ms.calendar(account, seg[3]);
    if (!cal) throw new AdminError(404, "not_found", `Account ${seg[1]} has no calendar ${seg[3]}`);
    return cal;
  };
  const eventOf = () => {
    const cal = calendarOf();
    // An occurrence of a series is addressed by its occurrence id; it is stored once edited or deleted.
    const ev = cal.events[seg[5]] ?? findOccurrence(cal, seg[5]);
    if (!ev || ev.deletedAt) {
      throw new AdminError(404, "not_found", `Calendar ${cal.id} has no live event ${seg[5]}`);
    }
    return { cal, ev };
  };
  switch (route) {
    case "PATCH accounts/*/calendars/*/events/*": {
      const { cal, ev } = eventOf();
      const body = await readJson(req, msEventPatch);
      const draft = structuredClone(ev);
      try {
        applyBody(draft, body, false);
      } catch (err) {
        if (err instanceof GraphError) throw new AdminError(400, "invalid_request", err.message);
        throw err;
      }
      Object.assign(ev, draft, {
        changeKey: newChangeKey(),
        lastModifiedDateTime: graphTimestamp(Date.now()),
      });
      storeOccurrence(cal, ev);
      ms.eventChanged(cal, ev, "updated");
      return ok(eventView(ev, undefined, url.origin));
    }
    case "DELETE accounts/*/calendars/*/events/*": {
      const { cal, ev } = eventOf();
      deleteMsEvent(ms, cal, ev);
      return ok();
    }
    case "POST accounts/*/calendars/*/delta/expire": {
      const cal = calendarOf();
      cal.syncGeneration = (cal.syncGeneration ?? 0) + 1;
      sb.state.changed();
      return ok({ syncGeneration: cal.syncGeneration });
    }
    case "GET subscriptions": {
      const email = url.searchParams.get("email")?.toLowerCase();
      const subscriptions = sb.subscriptions.list().filter((s) => !email || s.email === email).map((s) => ({
        ...s,
        expirationDateTime: graphTimestamp(s.expiration),
        notifications: sb.push.countersOf(s.id),
      }));
      return ok({ subscriptions });
    }
    case "POST subscriptions/*/expire":
      if (!sb.subscriptions.expire(seg[1])) {
        throw new AdminError(404, "not_found", `No subscription ${seg[1]}`);
      }
      return ok();
    case "POST subscriptions/*/lifecycle": {
      const b = await readJson(req, lifecycleBody);
      const sent = sb.subscriptions.lifecycle(seg[1], b.lifecycleEvent);
      if (sent === undefined) throw new AdminError(404, "not_found", `No subscription ${seg[1]}`);
      return ok({ sent });
    }
  }
  return undefined;
}

/** Which segments are parameters: account, calendar and event ids, and channel/subscription ids. */
function isParam(seg: string[], i: number): boolean {
  if (seg[0] === "accounts") return i === 1 || i === 3 || (i === 5 && seg[4] === "events");
  if (seg[0] === "google" && seg[1] === "channels") return i === 2;
  if (seg[0] === "subscriptions") return i === 1;
  return false;
}

function googleCalendar(sb: SandboxRuntime, email: string, calendarId: string) {
  const cal = sb.state.calendar(email, calendarId);
  if (!cal) throw new AdminError(404, "not_found", `Account ${email} has no calendar ${calendarId}`);
  return cal;
}

function googleEvent(sb: SandboxRuntime, seg: string[]) {
  const cal = googleCalendar(sb, seg[1], seg[3]);
  // An instance of a series is addressed by its instance id; writing it makes it an exception.
  const stored = cal.events[seg[5]] ?? findInstance(cal, seg[5]);
  if (!stored) throw new AdminError(404, "not_found", `Calendar ${cal.id} has no event ${seg[5]}`);
  return { cal, stored };
}

/** Run a Google model operation for the admin API: its 4xx becomes an admin 400 with Google's message. */
function asAdmin<T>(fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    if (err instanceof GoogleApiError) throw new AdminError(400, "invalid_request", err.item.message);
    throw err;
  }
}
