/**
 * The per-provider half of the provider contract suite (./providers.test.ts): how each sandbox
 * (dev/sandbox/CONTRACT.md) is set up, read and faulted for the same contract case. Everything the
 * product does goes through the provider interface; only the sandbox's admin API differs, and it is
 * confined here. Behaviour that differs between the providers themselves is not here: it is declared
 * in the provider's capabilities (supabase/functions/_shared/providers/types.ts).
 */
import type { ProviderErrorKind, ProviderId } from "../../supabase/functions/_shared/providers/types.ts";
import type { SandboxClient } from "../support/stack.ts";

/** An event as the sandbox stores it on the account's default calendar. */
export interface SandboxEvent {
  id: string;
  /** Epoch ms. */
  start: number;
  end: number;
  /** False once deleted (Google keeps it `cancelled`, Graph marks it `deletedAt`). */
  live: boolean;
}

/** A busy item added straight to the sandbox calendar: timed (UTC instants) or all-day (dates). */
export type BusyItem =
  | { start: string; end: string; free?: boolean }
  | { allDay: { from: string; to: string } };

/** A fault to inject at the sandbox and what the provider must classify it as. */
export interface ThrottleCase {
  label: string;
  /** `POST /_admin/faults` body. */
  fault: unknown;
  /** The provider call the fault meets. */
  call: "listCalendars" | "busy" | "refresh" | "upsertEvent";
  retryAfterMs: number;
  /** Expected `details.reason`, when the provider documents one. */
  reason?: string;
}

/** A way the user (or an administrator) ends the grant, and the reason the refresh error must carry. */
export interface RevocationCase {
  label: string;
  revoke(sb: SandboxClient, email: string): Promise<void>;
  /** `details.reason` of the refused refresh (kind `auth`). */
  reason: string;
}

/** What the contract suite needs to know about one provider's sandbox. */
export interface ProviderFixture {
  id: ProviderId;
  /** An account email at this provider (Microsoft's tenant follows the domain). */
  email(label: string): string;
  /** Sandbox endpoint names (call counters, fault targets). */
  endpoints: { refresh: string; listCalendars: string; busy: string; createEvent: string };
  /** Create the account with `extraCalendars` writable calendars beyond the defaults. */
  createAccount(sb: SandboxClient, email: string, extraCalendars?: number): Promise<void>;
  /** Whether the consent URL asks for offline access (a refresh token). */
  asksOfflineAccess(url: URL): boolean;
  /** Add an item to the account's default calendar "as the user". @returns the new event's id. */
  addBusy(sb: SandboxClient, email: string, item: BusyItem): Promise<string>;
  /**
   * Add a weekly recurring busy series to the default calendar as its user would: `count` occurrences
   * on the weekday of `firstStart` (a wall-clock time in IANA `zone`), each `minutes` long. Its
   * instances are then edited and deleted by id with {@link editEvent} / {@link deleteEvent}.
   */
  addWeeklySeries(
    sb: SandboxClient,
    email: string,
    series: { firstStart: string; zone: string; minutes: number; count: number },
  ): Promise<void>;
  /** Make reading the default calendar's busy times fail per calendar/schedule (or clear that). */
  setBusyError(sb: SandboxClient, email: string, failing: boolean): Promise<void>;
  /** The kind the injected busy error is classified as. */
  busyErrorKind: ProviderErrorKind;
  /** Events on the account's default calendar, deleted ones included. */
  events(sb: SandboxClient, email: string): Promise<SandboxEvent[]>;
  /** Refreshes and refused reuses of the account's grants at the sandbox. */
  grantCounters(sb: SandboxClient, email: string): Promise<{ refreshCount: number; reuseCount: number }>;
  throttles: ThrottleCase[];
  revocations: RevocationCase[];
  /** Move an event of the default calendar as its user would in the provider's own app (UTC instants). */
  editEvent(sb: SandboxClient, email: string, eventId: string, start: string, end: string): Promise<void>;
  /** Delete an event of the default calendar as its user would. */
  deleteEvent(sb: SandboxClient, email: string, eventId: string): Promise<void>;
  /** Retitle an event of the default calendar as its user would (Google `summary`, Graph `subject`). */
  retitleEvent(sb: SandboxClient, email: string, eventId: string, title: string): Promise<void>;
  /**
   * Change what we never write and what does not block time, keeping title and times, as its user
   * would (Google `colorId`, Graph `location`): a new version all the same.
   */
  touchEvent(sb: SandboxClient, email: string, eventId: string): Promise<void>;
  /** An event's title as the sandbox holds it (the test's own look; the product never reads it so). */
  titleOf(sb: SandboxClient, email: string, eventId: string): Promise<string | null>;
  /** Make the provider refuse every sync cursor of the default calendar (Google 410, Graph 410). */
  expireCursors(sb: SandboxClient, email: string): Promise<void>;
  /** End a channel / subscription early, as the provider may. */
  expireChannel(sb: SandboxClient, channelId: string): Promise<void>;
  /** The notifications one POST to the webhook carries (never a validation request). */
  notificationsIn(req: { headers: Headers; body: string }): PushNotice[];
}

/** One notification as the webhook would read it. */
export interface PushNotice {
  channelId: string;
  /** The channel secret it carries (Google channel token, Graph clientState). */
  secret: string | null;
  /** `sync`: the channel is set up (Google only); `change`: the calendar changed. */
  kind: "sync" | "change";
}

const enc = encodeURIComponent;
const sum = (grants: { refreshCount: number; reuseCount?: number }[]) => ({
  refreshCount: grants.reduce((n, g) => n + g.refreshCount, 0),
  reuseCount: grants.reduce((n, g) => n + (g.reuseCount ?? 0), 0),
});

/** Google Calendar v3 in the sandbox (CONTRACT.md "Google endpoints", "Admin API"). */
export const googleFixture: ProviderFixture = {
  id: "google",
  email: (label) => `${label}-${crypto.randomUUID().slice(0, 6)}@example.com`,
  endpoints: {
    refresh: "oauth.token.refresh_token",
    listCalendars: "calendarList.list",
    busy: "freeBusy.query",
    createEvent: "events.insert",
  },
  async createAccount(sb, email, extraCalendars = 0) {
    await sb.admin("POST", "/_admin/accounts", {
      email,
      calendars: Array.from(
        { length: extraCalendars },
        (_, i) => ({ summary: `Shared ${i}`, accessRole: "writer" }),
      ),
    });
  },
  asksOfflineAccess: (url) => url.searchParams.get("access_type") === "offline",
  async addBusy(sb, email, item) {
    const body = "allDay" in item
      ? { start: { date: item.allDay.from }, end: { date: item.allDay.to } }
      : { start: item.start, end: item.end, ...(item.free ? { transparency: "transparent" } : {}) };
    return (await sb.admin<{ id: string }>(
      "POST",
      `/_admin/accounts/${enc(email)}/calendars/${enc(email)}/events`,
      body,
    )).id;
  },
  async addWeeklySeries(sb, email, { firstStart, zone, minutes, count }) {
    const end = new Date(Date.parse(`${firstStart}Z`) + minutes * 60_000).toISOString().slice(0, 19);
    await sb.admin("POST", `/_admin/accounts/${enc(email)}/calendars/${enc(email)}/events`, {
      start: { dateTime: firstStart, timeZone: zone },
      end: { dateTime: end, timeZone: zone },
      recurrence: [`RRULE:FREQ=WEEKLY;COUNT=${count}`],
    });
  },
  async setBusyError(sb, email, failing) {
    await sb.admin("PATCH", `/_admin/accounts/${enc(email)}/calendars/${enc(email)}`, {
      freeBusyError: failing ? "internalError" : null,
    });
  },
  busyErrorKind: "transient",
  async events(sb, email) {
    const items = await sb.events(email, email, true) as {
      id: string;
      status: string;
      start: { dateTime: string };
      end: { dateTime: string };
    }[];
    return items.map((e) => ({
      id: e.id,
      start: Date.parse(e.start.dateTime),
      end: Date.parse(e.end.dateTime),
      live: e.status !== "cancelled",
    }));
  },
  async grantCounters(sb, email) {
    return sum(
      (await sb.admin<{ grants: { refreshCount: number }[] }>(
        "GET",
        `/_admin/grants?email=${enc(email)}`,
      )).grants,
    );
  },
  throttles: [
    {
      label: "429 with Retry-After on calendarList",
      call: "listCalendars",
      fault: { match: { endpoint: "calendarList.list" }, response: { status: 429, retryAfterSeconds: 7 } },
      retryAfterMs: 7_000,
      reason: "rateLimitExceeded",
    },
    {
      label: "403 rateLimitExceeded with Retry-After on freeBusy",
      call: "busy",
      fault: {
        match: { endpoint: "freeBusy.query" },
        response: { status: 403, reason: "rateLimitExceeded", retryAfterSeconds: 5 },
      },
      retryAfterMs: 5_000,
      reason: "rateLimitExceeded",
    },
    {
      label: "403 userRateLimitExceeded with Retry-After on events.insert",
      call: "upsertEvent",
      fault: {
        match: { endpoint: "events.insert" },
        response: { status: 403, reason: "userRateLimitExceeded", retryAfterSeconds: 3 },
      },
      retryAfterMs: 3_000,
      reason: "userRateLimitExceeded",
    },
    {
      label: "429 with Retry-After at the token endpoint",
      call: "refresh",
      fault: {
        match: { endpoint: "oauth.token.refresh_token" },
        response: { status: 429, retryAfterSeconds: 2 },
      },
      retryAfterMs: 2_000,
    },
  ],
  revocations: [{
    label: "the user removed the app's access",
    revoke: async (sb, email) => void await sb.admin("POST", "/_admin/grants/revoke", { email }),
    reason: "invalid_grant",
  }],
  async editEvent(sb, email, eventId, start, end) {
    await sb.admin("PATCH", `/_admin/accounts/${enc(email)}/calendars/${enc(email)}/events/${enc(eventId)}`, {
      start: { dateTime: start },
      end: { dateTime: end },
    });
  },
  async deleteEvent(sb, email, eventId) {
    await sb.admin("DELETE", `/_admin/accounts/${enc(email)}/calendars/${enc(email)}/events/${enc(eventId)}`);
  },
  async retitleEvent(sb, email, eventId, title) {
    await sb.admin("PATCH", `/_admin/accounts/${enc(email)}/calendars/${enc(email)}/events/${enc(eventId)}`, {
      summary: title,
    });
  },
  async touchEvent(sb, email, eventId) {
    await sb.admin("PATCH", `/_admin/accounts/${enc(email)}/calendars/${enc(email)}/events/${enc(eventId)}`, {
      colorId: "5",
    });
  },
  async titleOf(sb, email, eventId) {
    const items = await sb.events(email, email, true) as { id: string; summary?: string }[];
    return items.find((e) => e.id === eventId)?.summary ?? null;
  },
  async expireCursors(sb, email) {
    await sb.admin("POST", `/_admin/accounts/${enc(email)}/calendars/${enc(email)}/sync-tokens/invalidate`);
  },
  async expireChannel(sb, channelId) {
    await sb.admin("POST", `/_admin/google/channels/${enc(channelId)}/expire`);
  },
  notificationsIn({ headers }) {
    const channelId = headers.get("x-goog-channel-id");
    if (!channelId) return [];
    return [{
      channelId,
      secret: headers.get("x-goog-channel-token"),
      kind: headers.get("x-goog-resource-state") === "sync" ? "sync" : "change",
    }];
  },
};

const msRevoke = (reason: string) => async (sb: SandboxClient, email: string) =>
  void await sb.admin("POST", "/_admin/microsoft/grants/revoke", { email, reason });

/** Microsoft identity platform v2 and Graph v1.0 in the sandbox (CONTRACT.md "Microsoft"). */
export const microsoftFixture: ProviderFixture = {
  id: "microsoft",
  email: (label) => `${label}-${crypto.randomUUID().slice(0, 6)}@contoso-clinic.com`,
  endpoints: {
    refresh: "microsoft.oauth.token.refresh_token",
    listCalendars: "microsoft.calendars.list",
    busy: "microsoft.calendar.getSchedule",
    createEvent: "microsoft.events.create",
  },
  async createAccount(sb, email, extraCalendars = 0) {
    await sb.admin("POST", "/_admin/microsoft/accounts", {
      email,
      calendars: Array.from({ length: extraCalendars }, (_, i) => ({ name: `Shared ${i}`, canEdit: true })),
    });
  },
  asksOfflineAccess: (url) => (url.searchParams.get("scope") ?? "").split(" ").includes("offline_access"),
  async addBusy(sb, email, item) {
    // Graph takes wall-clock times with a zone; the admin API reads them like a Graph create.
    const at = (iso: string) => ({ dateTime: new Date(iso).toISOString().slice(0, 19), timeZone: "UTC" });
    const body = "allDay" in item
      ? {
        start: { dateTime: `${item.allDay.from}T00:00:00`, timeZone: "UTC" },
        end: { dateTime: `${item.allDay.to}T00:00:00`, timeZone: "UTC" },
        isAllDay: true,
      }
      : { start: at(item.start), end: at(item.end), showAs: item.free ? "free" : "busy" };
    return (await sb.admin<{ id: string }>(
      "POST",
      `/_admin/microsoft/accounts/${enc(email)}/calendars/default/events`,
      body,
    )).id;
  },
  async addWeeklySeries(sb, email, { firstStart, zone, minutes, count }) {
    const end = new Date(Date.parse(`${firstStart}Z`) + minutes * 60_000).toISOString().slice(0, 19);
    const day = new Date(`${firstStart.slice(0, 10)}T00:00:00Z`).getUTCDay();
    const days = ["sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday"];
    await sb.admin("POST", `/_admin/microsoft/accounts/${enc(email)}/calendars/default/events`, {
      start: { dateTime: firstStart, timeZone: zone },
      end: { dateTime: end, timeZone: zone },
      recurrence: {
        pattern: { type: "weekly", interval: 1, daysOfWeek: [days[day]] },
        range: { type: "numbered", startDate: firstStart.slice(0, 10), numberOfOccurrences: count },
      },
    });
  },
  // A mailbox with no Exchange calendar: getSchedule's per-schedule 5016, and calendarView (which the
  // default calendar falls back to when getSchedule refuses a mailbox) 404 MailboxNotEnabledForRESTAPI.
  async setBusyError(sb, email, failing) {
    await sb.admin("PATCH", `/_admin/microsoft/accounts/${enc(email)}`, {
      scheduleError: failing ? { responseCode: "5016", message: "mailbox unavailable" } : null,
    });
    if (!failing) return void await sb.admin("DELETE", "/_admin/faults");
    await sb.admin("POST", "/_admin/faults", {
      match: { endpoint: "microsoft.calendar.calendarView", email },
      response: { status: 404, reason: "MailboxNotEnabledForRESTAPI", message: "no mailbox" },
      times: -1,
    });
  },
  busyErrorKind: "invalid",
  async events(sb, email) {
    const items = await sb.msEvents(email, "default", true) as {
      id: string;
      deletedAt?: string;
      start: { dateTime: string };
      end: { dateTime: string };
    }[];
    // The admin listing shows Graph's UTC wall-clock times without an offset.
    return items.map((e) => ({
      id: e.id,
      start: Date.parse(`${e.start.dateTime}Z`),
      end: Date.parse(`${e.end.dateTime}Z`),
      live: !e.deletedAt,
    }));
  },
  async grantCounters(sb, email) {
    return sum(
      (await sb.admin<{ grants: { refreshCount: number; reuseCount: number }[] }>(
        "GET",
        `/_admin/microsoft/grants?email=${enc(email)}`,
      )).grants,
    );
  },
  throttles: [
    {
      label: "429 TooManyRequests with Retry-After on /me/calendars",
      call: "listCalendars",
      fault: {
        match: { endpoint: "microsoft.calendars.list" },
        response: { status: 429, retryAfterSeconds: 7 },
      },
      retryAfterMs: 7_000,
      reason: "TooManyRequests",
    },
    {
      label: "429 MailboxConcurrency with Retry-After on getSchedule",
      call: "busy",
      fault: {
        match: { endpoint: "microsoft.calendar.getSchedule" },
        response: {
          status: 429,
          reason: "ApplicationThrottled",
          message: "Application is over its MailboxConcurrency limit.",
          retryAfterSeconds: 5,
        },
      },
      retryAfterMs: 5_000,
      reason: "MailboxConcurrency",
    },
    {
      label: "429 with Retry-After on events.create",
      call: "upsertEvent",
      fault: {
        match: { endpoint: "microsoft.events.create" },
        response: { status: 429, retryAfterSeconds: 3 },
      },
      retryAfterMs: 3_000,
      reason: "TooManyRequests",
    },
    {
      label: "429 with Retry-After at the token endpoint",
      call: "refresh",
      fault: {
        match: { endpoint: "microsoft.oauth.token.refresh_token" },
        response: { status: 429, retryAfterSeconds: 2 },
      },
      retryAfterMs: 2_000,
    },
  ],
  revocations: [
    { label: "password change (AADSTS50173)", revoke: msRevoke("password_change"), reason: "grant_revoked" },
    { label: "admin revoked sessions (AADSTS50173)", revoke: msRevoke("admin"), reason: "grant_revoked" },
    {
      label: "consent withdrawn (AADSTS65001)",
      revoke: msRevoke("consent_revoked"),
      reason: "consent_required",
    },
    {
      label: "refresh token expired after inactivity (AADSTS700082)",
      revoke: msRevoke("inactivity"),
      reason: "refresh_token_expired",
    },
    {
      label: "MFA now required (AADSTS50076)",
      revoke: msRevoke("mfa_required"),
      reason: "interaction_required",
    },
  ],
  async editEvent(sb, email, eventId, start, end) {
    const at = (iso: string) => ({ dateTime: new Date(iso).toISOString().slice(0, 19), timeZone: "UTC" });
    await sb.admin(
      "PATCH",
      `/_admin/microsoft/accounts/${enc(email)}/calendars/default/events/${enc(eventId)}`,
      { start: at(start), end: at(end) },
    );
  },
  async deleteEvent(sb, email, eventId) {
    await sb.admin(
      "DELETE",
      `/_admin/microsoft/accounts/${enc(email)}/calendars/default/events/${enc(eventId)}`,
    );
  },
  async retitleEvent(sb, email, eventId, title) {
    await sb.admin(
      "PATCH",
      `/_admin/microsoft/accounts/${enc(email)}/calendars/default/events/${enc(eventId)}`,
      { subject: title },
    );
  },
  async touchEvent(sb, email, eventId) {
    await sb.admin(
      "PATCH",
      `/_admin/microsoft/accounts/${enc(email)}/calendars/default/events/${enc(eventId)}`,
      { location: { displayName: "Room 2" } },
    );
  },
  async titleOf(sb, email, eventId) {
    const items = await sb.msEvents(email, "default", true) as { id: string; subject?: string | null }[];
    return items.find((e) => e.id === eventId)?.subject ?? null;
  },
  async expireCursors(sb, email) {
    await sb.admin("POST", `/_admin/microsoft/accounts/${enc(email)}/calendars/default/delta/expire`);
  },
  async expireChannel(sb, channelId) {
    await sb.admin("POST", `/_admin/microsoft/subscriptions/${enc(channelId)}/expire`);
  },
  notificationsIn({ body }) {
    const parsed = JSON.parse(body) as { value?: { subscriptionId: string; clientState: string | null }[] };
    return (parsed.value ?? []).map((n) => ({
      channelId: n.subscriptionId,
      secret: n.clientState,
      kind: "change" as const,
    }));
  },
};

/** The providers the contract runs against, in order. */
export const FIXTURES: readonly ProviderFixture[] = [googleFixture, microsoftFixture];
