/**
 * GoogleProvider end to end against the provider sandbox (dev/sandbox, CONTRACT.md) started
 * in-process on a random port: consent, token exchange, calendar list, busy times, idempotent
 * writes, refresh, revocation, and injected faults. Real HTTP; nothing is stubbed.
 */
import assert from "node:assert/strict";
import * as oauth from "oauth4webapi";
import { startSandbox } from "../../dev/sandbox/server.ts";
import type { Config } from "../../supabase/functions/_shared/config.ts";
import { eventIdFor } from "../../supabase/functions/_shared/providers/google/event-id.ts";
import { providerFor } from "../../supabase/functions/_shared/providers/registry.ts";
import {
  type CalendarProvider,
  ProviderError,
  type TokenSet,
} from "../../supabase/functions/_shared/providers/types.ts";
import { rejectedWith } from "../support/assertions.ts";

const CLIENT_ID = "it-google-provider.apps.googleusercontent.com";
const CLIENT_SECRET = "it-google-provider-secret";
const REDIRECT = "http://127.0.0.1:54321/functions/v1/calendar-auth-callback";
const S = (name: string) => `https://www.googleapis.com/auth/${name}`;
const SCOPES = [S("calendar.events"), S("calendar.freebusy"), S("calendar.calendarlist.readonly")];

function googleConfig(base: string): Config["google"] {
  return {
    clientId: CLIENT_ID,
    clientSecret: CLIENT_SECRET,
    redirectUri: REDIRECT,
    scopes: SCOPES,
    prompt: "consent",
    accessType: "offline",
    authorizationEndpoint: `${base}/google/o/oauth2/v2/auth`,
    tokenEndpoint: `${base}/google/token`,
    revocationEndpoint: `${base}/google/revoke`,
    calendarApiBase: `${base}/google/calendar/v3`,
    issuer: `${base}/google`,
    jwksUri: `${base}/google/oauth2/v3/certs`,
    issParameter: "required",
  };
}

Deno.test("GoogleProvider against the sandbox", async (t) => {
  const sb = await startSandbox({
    port: 0,
    hostname: "127.0.0.1",
    clients: [{ clientId: CLIENT_ID, clientSecret: CLIENT_SECRET, redirectUris: [REDIRECT] }],
    seed: 42,
  });
  const admin = async (method: string, path: string, body?: unknown) => {
    const res = await fetch(`${sb.url}${path}`, {
      method,
      headers: body === undefined ? {} : { "content-type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    assert.ok(res.ok, `admin ${method} ${path} -> ${res.status} ${text}`);
    return text ? JSON.parse(text) : undefined;
  };
  const eventsOf = async (email: string, calendarId: string) =>
    (await admin(
      "GET",
      `/_admin/accounts/${encodeURIComponent(email)}/calendars/${
        encodeURIComponent(calendarId)
      }/events?includeDeleted=true`,
    )).items as { id: string; status: string; summary?: string; start: { dateTime: string } }[];

  const config = { google: googleConfig(sb.url), providerTimeoutMs: 10_000 };
  const provider: CalendarProvider = providerFor("google", config);

  /** What the app does: consent URL -> the user approves (some scopes) -> the callback exchanges the code. */
  async function connect(email: string, scopes?: string[]): Promise<TokenSet> {
    const verifier = oauth.generateRandomCodeVerifier();
    const state = oauth.generateRandomState();
    const nonce = oauth.generateRandomNonce();
    const authorizationUrl = provider.authorizationUrl({
      state,
      codeChallenge: await oauth.calculatePKCECodeChallenge(verifier),
      nonce,
      loginHint: email,
    });
    const { redirect } = await admin("POST", "/_admin/authorize", {
      authorizationUrl: authorizationUrl.href,
      login: email,
      ...(scopes ? { scopes } : {}),
      decision: "approve",
    });
    return await provider.exchangeCode({
      callbackUrl: new URL(redirect),
      codeVerifier: verifier,
      state,
      nonce,
    });
  }

  const email = "dr.grey@example.com";
  const OPS = "ops#shared@group.calendar.google.com";
  let tokens!: TokenSet;

  try {
    await admin("POST", "/_admin/reset");
    await admin("POST", "/_admin/accounts", {
      email,
      calendars: [{ id: OPS, summary: "Ops", accessRole: "owner" }],
    });

    await t.step("consent and code exchange", async () => {
      tokens = await connect(email);
      assert.ok(tokens.accessToken);
      assert.ok(tokens.refreshToken, "offline consent with prompt=consent yields a refresh token");
      assert.ok(tokens.expiresAt.getTime() > Date.now());
      assert.deepEqual([...tokens.scopes].sort(), [...SCOPES, "email", "openid"].sort());
      assert.equal(tokens.accountEmail, email, "the verified ID token names the account");
      assert.deepEqual(provider.missingScopes(tokens.scopes), []);
    });

    await t.step("a consent with an unticked scope is reported as missing it", async () => {
      const partial = await connect("dr.partial@example.com", [S("calendar.events"), S("calendar.freebusy")]);
      assert.deepEqual(provider.missingScopes(partial.scopes), [S("calendar.calendarlist.readonly")]);
      const err = await rejectedWith(ProviderError, provider.listCalendars(partial.accessToken));
      assert.equal(err.kind, "insufficient_scope");
    });

    await t.step("a reused authorization code is invalid_grant", async () => {
      const verifier = oauth.generateRandomCodeVerifier();
      const state = oauth.generateRandomState();
      const nonce = oauth.generateRandomNonce();
      const url = provider.authorizationUrl({
        state,
        codeChallenge: await oauth.calculatePKCECodeChallenge(verifier),
        nonce,
      });
      const { redirect } = await admin("POST", "/_admin/authorize", {
        authorizationUrl: url.href,
        login: "dr.reuse@example.com",
        decision: "approve",
      });
      await provider.exchangeCode({ callbackUrl: new URL(redirect), codeVerifier: verifier, state, nonce });
      const err = await rejectedWith(
        ProviderError,
        provider.exchangeCode({ callbackUrl: new URL(redirect), codeVerifier: verifier, state, nonce }),
      );
      assert.equal(err.kind, "auth");
      assert.equal(err.details.reason, "invalid_grant");
    });

    await t.step("listCalendars", async () => {
      const calendars = await provider.listCalendars(tokens.accessToken);
      const primary = calendars.filter((c) => c.primary);
      assert.deepEqual(primary, [{
        id: email,
        summary: primary[0]?.summary,
        primary: true,
        access_role: "owner",
      }]);
      assert.ok(calendars.some((c) => c.summary === "Team" && c.access_role === "writer" && !c.primary));
      assert.ok(
        calendars.some((c) =>
          c.id === "en.usa#holiday@group.v.calendar.google.com" && c.access_role === "reader"
        ),
      );
      assert.ok(calendars.some((c) => c.id === OPS && c.summary === "Ops" && c.access_role === "owner"));
    });

    await t.step("busy: admin-added events, merged across calendars and windows", async () => {
      const team = (await provider.listCalendars(tokens.accessToken)).find((c) => c.summary === "Team")!.id;
      const base = `/_admin/accounts/${encodeURIComponent(email)}/calendars`;
      await admin("POST", `${base}/${encodeURIComponent(email)}/events`, {
        start: "2026-03-02T09:00:00Z",
        end: "2026-03-02T10:00:00Z",
      });
      // 11:00+01:00 is 10:00Z: touches the first one, so the two merge.
      await admin("POST", `${base}/${encodeURIComponent(team)}/events`, {
        start: "2026-03-02T11:00:00+01:00",
        end: "2026-03-02T11:30:00+01:00",
      });
      await admin("POST", `${base}/${encodeURIComponent(email)}/events`, {
        start: "2026-06-10T14:00:00Z",
        end: "2026-06-10T15:00:00Z",
        transparency: "transparent", // free time: not busy
      });
      await admin("POST", "/_admin/calls/reset");
      // 200 days: longer than Google (and the sandbox) accept in one query; chunked into 4 windows.
      const busy = await provider.busy(tokens.accessToken, {
        calendarIds: [email, team],
        timeMin: "2026-01-01T00:00:00-05:00",
        timeMax: "2026-07-20T00:00:00-05:00",
      });
      assert.deepEqual(busy, [{ start: "2026-03-02T09:00:00Z", end: "2026-03-02T10:30:00Z" }]);
      const calls = await admin("GET", "/_admin/calls");
      assert.equal(calls.byEndpoint["freeBusy.query"], 4);
    });

    await t.step("busy: an unknown calendar throws not_found instead of looking free", async () => {
      const err = await rejectedWith(
        ProviderError,
        provider.busy(tokens.accessToken, {
          calendarIds: [email, "nobody@example.com"],
          timeMin: "2026-03-01T00:00:00Z",
          timeMax: "2026-03-03T00:00:00Z",
        }),
      );
      assert.equal(err.kind, "not_found");
      assert.equal(err.details.reason, "notFound");
    });

    const appointmentId = crypto.randomUUID();
    const derived = eventIdFor(appointmentId);
    const write = {
      calendarId: OPS,
      appointmentId,
      start: "2026-03-05T09:00:00-05:00",
      end: "2026-03-05T09:50:00-05:00",
      title: "ValorWell",
      timeZone: "America/New_York",
    };

    await t.step("upsert: create, then a retried create makes no second event", async () => {
      const created = await provider.upsertEvent(tokens.accessToken, write);
      assert.equal(created.operation, "created");
      assert.equal(created.eventId, derived);
      assert.ok(created.etag);
      const retried = await provider.upsertEvent(tokens.accessToken, write);
      assert.equal(retried.operation, "updated");
      assert.equal(retried.eventId, derived);
      const events = await eventsOf(email, OPS);
      assert.equal(events.length, 1);
      assert.equal(events[0].id, derived);
      assert.equal(events[0].status, "confirmed");
      assert.equal(events[0].summary, "ValorWell");
    });

    await t.step("upsert: update moves the event", async () => {
      const moved = await provider.upsertEvent(tokens.accessToken, {
        ...write,
        eventId: derived,
        start: "2026-03-05T11:00:00-05:00",
        end: "2026-03-05T11:50:00-05:00",
      });
      assert.equal(moved.operation, "updated");
      const busy = await provider.busy(tokens.accessToken, {
        calendarIds: [OPS],
        timeMin: "2026-03-05T00:00:00Z",
        timeMax: "2026-03-06T00:00:00Z",
      });
      assert.deepEqual(busy, [{ start: "2026-03-05T16:00:00Z", end: "2026-03-05T16:50:00Z" }]);
    });

    await t.step("delete, delete again, then create revives the same event", async () => {
      await provider.deleteEvent(tokens.accessToken, { calendarId: OPS, eventId: derived });
      await provider.deleteEvent(tokens.accessToken, { calendarId: OPS, eventId: derived });
      await provider.deleteEvent(tokens.accessToken, {
        calendarId: OPS,
        eventId: eventIdFor(crypto.randomUUID()),
      });
      assert.deepEqual((await eventsOf(email, OPS)).map((e) => e.status), ["cancelled"]);
      const restored = await provider.upsertEvent(tokens.accessToken, write);
      assert.equal(restored.operation, "restored");
      assert.equal(restored.eventId, derived);
      const events = await eventsOf(email, OPS);
      assert.equal(events.length, 1);
      assert.equal(events[0].status, "confirmed");
    });

    await t.step("delete, then an update by known id revives it too", async () => {
      await provider.deleteEvent(tokens.accessToken, { calendarId: OPS, eventId: derived });
      const restored = await provider.upsertEvent(tokens.accessToken, { ...write, eventId: derived });
      assert.equal(restored.operation, "restored");
      assert.deepEqual((await eventsOf(email, OPS)).map((e) => e.status), ["confirmed"]);
    });

    const calendarsPath = `/_admin/accounts/${encodeURIComponent(email)}/calendars`;
    const eventAdmin = (calendarId: string, eventId: string, action: string) =>
      `${calendarsPath}/${encodeURIComponent(calendarId)}/events/${eventId}/${action}`;

    await t.step("a plain PATCH of a deleted event is 403 forbidden; the provider revives it", async () => {
      await provider.deleteEvent(tokens.accessToken, { calendarId: OPS, eventId: derived });
      await admin("POST", "/_admin/calls/reset");
      const restored = await provider.upsertEvent(tokens.accessToken, { ...write, eventId: derived });
      assert.equal(restored.operation, "restored");
      const { recent } = await admin("GET", "/_admin/calls");
      assert.deepEqual(
        recent.map((c: { endpoint: string; status: number }) => `${c.endpoint} ${c.status}`),
        ["events.patch 403", "events.get 200", "events.patch 200"],
      );
    });

    await t.step("getCalendar: the live access role and the calendar's time zone", async () => {
      await admin("PATCH", `${calendarsPath}/${encodeURIComponent(OPS)}`, { timeZone: "America/Chicago" });
      assert.deepEqual(await provider.getCalendar(tokens.accessToken, OPS), {
        id: OPS,
        summary: "Ops",
        primary: false,
        access_role: "owner",
        time_zone: "America/Chicago",
      });
      const primary = await provider.getCalendar(tokens.accessToken, "primary");
      assert.equal(primary.id, email);
      assert.equal(primary.primary, true);
      assert.equal(primary.time_zone, "UTC");
      const holidays = await provider.getCalendar(
        tokens.accessToken,
        "en.usa#holiday@group.v.calendar.google.com",
      );
      assert.equal(holidays.access_role, "reader");
      const err = await rejectedWith(
        ProviderError,
        provider.getCalendar(tokens.accessToken, "nope@example.com"),
      );
      assert.equal(err.kind, "not_found");
      assert.equal(err.details.resource, "calendar");
    });

    await t.step(
      "an event purged by the user: not_found for the event; the next generation writes it again",
      async () => {
        await admin("POST", eventAdmin(OPS, derived, "purge"));
        const err = await rejectedWith(
          ProviderError,
          provider.upsertEvent(tokens.accessToken, { ...write, eventId: derived }),
        );
        assert.equal(err.kind, "not_found");
        assert.equal(err.details.resource, "event", "the calendar is there: only the event is missing");
        // The purged id stays taken: a create under it is refused (409) and its GET is a 404.
        const again = await rejectedWith(ProviderError, provider.upsertEvent(tokens.accessToken, write));
        assert.equal(again.details.resource, "event");
        const fresh = await provider.upsertEvent(tokens.accessToken, { ...write, eventGeneration: 1 });
        assert.equal(fresh.operation, "created");
        assert.equal(fresh.eventId, eventIdFor(appointmentId, 1));
        // A retry of that re-create (its answer lost) adopts the event instead of duplicating it.
        const retried = await provider.upsertEvent(tokens.accessToken, { ...write, eventGeneration: 1 });
        assert.equal(retried.operation, "updated");
        assert.equal(retried.eventId, fresh.eventId);
        const live = (await eventsOf(email, OPS)).filter((e) => e.status !== "cancelled");
        assert.deepEqual(live.map((e) => e.id), [fresh.eventId]);
      },
    );

    await t.step("an event moved to another calendar: not_found for the event on the old one", async () => {
      const team = (await provider.listCalendars(tokens.accessToken)).find((c) => c.summary === "Team")!.id;
      const id = eventIdFor(appointmentId, 1);
      const moved = await admin("POST", eventAdmin(OPS, id, "move"), { destination: team });
      assert.equal(moved.id, id);
      assert.deepEqual((await eventsOf(email, team)).map((e) => e.id).filter((x) => x === id), [id]);
      const err = await rejectedWith(
        ProviderError,
        provider.upsertEvent(tokens.accessToken, { ...write, eventId: id }),
      );
      assert.equal(err.details.resource, "event");
      const fresh = await provider.upsertEvent(tokens.accessToken, { ...write, eventGeneration: 2 });
      assert.equal(fresh.operation, "created");
      assert.equal(fresh.eventId, eventIdFor(appointmentId, 2));
    });

    await t.step("a deleted calendar: not_found for the calendar, whichever call meets it", async () => {
      const doomed = "doomed@group.calendar.google.com";
      await admin("POST", "/_admin/accounts", { email, calendars: [{ id: doomed, summary: "Doomed" }] });
      const made = await provider.upsertEvent(tokens.accessToken, { ...write, calendarId: doomed });
      await admin("DELETE", `${calendarsPath}/${encodeURIComponent(doomed)}`);
      for (
        const w of [{ ...write, calendarId: doomed, eventId: made.eventId }, { ...write, calendarId: doomed }]
      ) {
        const err = await rejectedWith(ProviderError, provider.upsertEvent(tokens.accessToken, w));
        assert.equal(err.kind, "not_found");
        assert.equal(err.details.resource, "calendar");
      }
    });

    await t.step("busy: an injected per-calendar internalError is an error, never free time", async () => {
      await admin("PATCH", `${calendarsPath}/${encodeURIComponent(OPS)}`, { freeBusyError: "internalError" });
      const err = await rejectedWith(
        ProviderError,
        provider.busy(tokens.accessToken, {
          calendarIds: [OPS],
          timeMin: "2026-03-05T00:00:00Z",
          timeMax: "2026-03-06T00:00:00Z",
        }),
      );
      assert.equal(err.kind, "transient");
      assert.equal(err.details.reason, "internalError");
      await admin("PATCH", `${calendarsPath}/${encodeURIComponent(OPS)}`, { freeBusyError: null });
      assert.ok(
        (await provider.busy(tokens.accessToken, {
          calendarIds: [OPS],
          timeMin: "2026-03-05T00:00:00Z",
          timeMax: "2026-03-06T00:00:00Z",
        })).length > 0,
      );
    });

    await t.step("refresh: a new access token, no new refresh token; expired tokens are auth", async () => {
      await admin("POST", "/_admin/tokens/expire", { email });
      assert.equal(
        (await rejectedWith(ProviderError, provider.listCalendars(tokens.accessToken))).kind,
        "auth",
      );
      const refreshed = await provider.refresh(tokens.refreshToken!);
      assert.notEqual(refreshed.accessToken, tokens.accessToken);
      assert.equal(refreshed.refreshToken, undefined);
      assert.ok((await provider.listCalendars(refreshed.accessToken)).length >= 3);
      tokens = { ...refreshed, refreshToken: tokens.refreshToken };
    });

    await t.step("faults: 429 with Retry-After, 503, and a timeout", async () => {
      await admin("POST", "/_admin/faults", {
        match: { endpoint: "calendarList.list" },
        response: { status: 429, retryAfterSeconds: 7 },
      });
      const limited = await rejectedWith(ProviderError, provider.listCalendars(tokens.accessToken));
      assert.equal(limited.kind, "rate_limited");
      assert.equal(limited.details.retryAfterMs, 7000);
      assert.equal(limited.details.reason, "rateLimitExceeded");

      await admin("POST", "/_admin/faults", {
        match: { endpoint: "freeBusy.query" },
        response: { status: 503 },
      });
      const unavailable = await rejectedWith(
        ProviderError,
        provider.busy(tokens.accessToken, {
          calendarIds: [email],
          timeMin: "2026-03-01T00:00:00Z",
          timeMax: "2026-03-02T00:00:00Z",
        }),
      );
      assert.equal(unavailable.kind, "transient");
      assert.equal(unavailable.details.status, 503);

      await admin("POST", "/_admin/faults", {
        match: { endpoint: "oauth.token.refresh_token" },
        response: { status: 429, retryAfterSeconds: 2 },
      });
      const tokenLimited = await rejectedWith(ProviderError, provider.refresh(tokens.refreshToken!));
      assert.equal(tokenLimited.kind, "rate_limited");
      assert.equal(tokenLimited.details.retryAfterMs, 2000);

      await admin("POST", "/_admin/faults", {
        match: { endpoint: "events.insert" },
        response: { timeout: true, hangMs: 5000 },
      });
      const impatient = providerFor("google", config, { timeoutMs: 300 });
      const timedOut = await rejectedWith(
        ProviderError,
        impatient.upsertEvent(tokens.accessToken, { ...write, appointmentId: crypto.randomUUID() }),
      );
      assert.equal(timedOut.kind, "transient");
      assert.equal(timedOut.details.reason, "timeout");
      await admin("DELETE", "/_admin/faults");
      // The fault fired once and is gone: the same provider works again.
      assert.ok((await provider.listCalendars(tokens.accessToken)).length >= 3);
    });

    await t.step("revoke: the whole grant goes; revoking again is fine", async () => {
      const other = await connect("dr.revoke@example.com");
      await provider.revoke(other.accessToken);
      await provider.revoke(other.accessToken);
      const err = await rejectedWith(ProviderError, provider.refresh(other.refreshToken!));
      assert.equal(err.kind, "auth");
      assert.equal(err.details.reason, "invalid_grant");
    });

    await t.step(
      "a grant revoked by the user: refresh is auth (invalid_grant), API calls are auth",
      async () => {
        await admin("POST", "/_admin/grants/revoke", { email });
        const err = await rejectedWith(ProviderError, provider.refresh(tokens.refreshToken!));
        assert.equal(err.kind, "auth");
        assert.equal(err.details.reason, "invalid_grant");
        assert.doesNotMatch(
          err.message,
          new RegExp(tokens.refreshToken!.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&")),
        );
        assert.equal(
          (await rejectedWith(ProviderError, provider.listCalendars(tokens.accessToken))).kind,
          "auth",
        );
      },
    );
  } finally {
    await sb.close();
  }
});
