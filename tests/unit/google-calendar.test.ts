/**
 * GoogleCalendarApi's Calendar v3 calls against scripted answers: paging, freeBusy chunking, path
 * encoding, and the write sequences of upsertEvent, including real-Google behaviours the sandbox
 * may not reproduce (403 on patching a deleted event). No network.
 */
import assert from "node:assert/strict";
import type { GoogleConfig } from "../../supabase/functions/_shared/providers/google/config.ts";
import { eventIdFor } from "../../supabase/functions/_shared/providers/google/event-id.ts";
import { GoogleCalendarApi } from "../../supabase/functions/_shared/providers/google/calendar-api.ts";
import { providerFor } from "../../supabase/functions/_shared/providers/registry.ts";
import { DomainError, ProviderError } from "../../supabase/functions/_shared/errors/domain-error.ts";
import { DAY_MS, parseInstant } from "../../supabase/functions/_shared/time-ranges.ts";
import { rejectedWith } from "../support/assertions.ts";

const BASE = "https://www.googleapis.com/calendar/v3";
const GOOGLE: GoogleConfig = {
  clientId: "id",
  clientSecret: "secret",
  redirectUri: "https://app.example.com/cb",
  scopes: ["https://www.googleapis.com/auth/calendar"],
  prompt: "consent",
  accessType: "offline",
  authorizationEndpoint: "https://accounts.google.com/o/oauth2/v2/auth",
  tokenEndpoint: "https://oauth2.googleapis.com/token",
  revocationEndpoint: "https://oauth2.googleapis.com/revoke",
  calendarApiBase: BASE,
  issuer: "https://accounts.google.com",
  jwksUri: "https://www.googleapis.com/oauth2/v3/certs",
  issParameter: "optional",
};

interface Seen {
  method: string;
  url: URL;
  /** The raw path as sent (URL.pathname would show the same encoding). */
  path: string;
  body: Record<string, unknown> | undefined;
  auth: string | null;
}

function scripted(answer: (req: Seen, index: number) => Response | Promise<Response>) {
  const seen: Seen[] = [];
  const fetchFn = (async (input: string | URL | Request, init?: RequestInit) => {
    const url = new URL(String(input));
    const req: Seen = {
      method: init?.method ?? "GET",
      url,
      path: url.pathname.slice(new URL(BASE).pathname.length),
      body: typeof init?.body === "string" ? JSON.parse(init.body) : undefined,
      auth: new Headers(init?.headers).get("authorization"),
    };
    seen.push(req);
    return await answer(req, seen.length - 1);
  }) as typeof fetch;
  return { seen, provider: new GoogleCalendarApi(GOOGLE, { fetch: fetchFn }) };
}

const json = (status: number, body: unknown, headers: Record<string, string> = {}) =>
  new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json", ...headers } });
const googleError = (status: number, reason: string) =>
  json(status, {
    error: { errors: [{ domain: "global", reason, message: reason }], code: status, message: reason },
  });

Deno.test("listCalendars: follows nextPageToken, 250 per page, maps the calendar-list fixture", async () => {
  const fixture = JSON.parse(
    await Deno.readTextFile(new URL("../fixtures/google/calendar-list.json", import.meta.url)),
  );
  const { seen, provider } = scripted((req) =>
    req.url.searchParams.get("pageToken") === "p2"
      ? json(200, { ...fixture, nextPageToken: undefined })
      : json(200, {
        items: [{
          id: "first@example.com",
          summary: "Mine",
          summaryOverride: "Clinic",
          accessRole: "writer",
        }],
        nextPageToken: "p2",
      })
  );
  const calendars = await provider.listCalendars("ya29.t");
  assert.equal(seen.length, 2);
  for (const req of seen) {
    assert.equal(req.method, "GET");
    assert.equal(req.path, "/users/me/calendarList");
    assert.equal(req.url.searchParams.get("maxResults"), "250");
    assert.equal(req.auth, "Bearer ya29.t");
  }
  assert.equal(seen[0].url.searchParams.has("pageToken"), false);
  assert.deepEqual(calendars[0], {
    id: "first@example.com",
    summary: "Clinic",
    primary: false,
    access_role: "writer",
  });
  assert.equal(calendars.length, 1 + fixture.items.length);
  assert.deepEqual(calendars.find((c) => c.primary), {
    id: "joshuacrowgey@gmail.com",
    summary: "joshuacrowgey@gmail.com",
    primary: true,
    access_role: "owner",
  });
  assert.equal(calendars.filter((c) => c.primary).length, 1);
  assert.ok(
    calendars.some((c) =>
      c.id === "en.usa#holiday@group.v.calendar.google.com" && c.access_role === "reader"
    ),
  );
});

Deno.test("busy: windows of at most 60 days, batches of at most 50, merged and sorted in UTC", async () => {
  const ids = Array.from({ length: 120 }, (_, i) => `cal-${i}@example.com`);
  const { seen, provider } = scripted((req) => {
    const body = req.body as { timeMin: string; timeMax: string; items: { id: string }[] };
    const calendars: Record<string, unknown> = {};
    for (const { id } of body.items) {
      // Each calendar is busy for the last hour of every window and the first hour of the next,
      // so intervals touch across window boundaries and must merge.
      const busy = id === "cal-0@example.com"
        ? [
          { start: new Date(parseInstant(body.timeMax) - 3600_000).toISOString(), end: body.timeMax },
          { start: body.timeMin, end: new Date(parseInstant(body.timeMin) + 3600_000).toISOString() },
        ]
        : id === "cal-119@example.com"
        ? [{ start: "2026-01-10T10:00:00+01:00", end: "2026-01-10T11:00:00+01:00" }]
        : [];
      calendars[id] = { busy };
    }
    return json(200, { kind: "calendar#freeBusy", timeMin: body.timeMin, timeMax: body.timeMax, calendars });
  });
  const busy = await provider.busy("ya29.t", {
    calendarIds: [...ids, ids[0]],
    timeMin: "2026-01-01T00:00:00Z",
    timeMax: "2026-05-11T00:00:00Z", // 130 days: 60 + 60 + 10
  });
  assert.equal(seen.length, 9, "3 windows x 3 batches");
  const perWindow = new Map<string, number>();
  for (const req of seen) {
    const body = req.body as { timeMin: string; timeMax: string; timeZone: string; items: { id: string }[] };
    assert.equal(req.path, "/freeBusy");
    assert.equal(req.method, "POST");
    assert.equal(body.timeZone, "UTC");
    assert.ok(body.items.length <= 50);
    const len = parseInstant(body.timeMax) - parseInstant(body.timeMin);
    assert.ok(len > 0 && len <= 60 * DAY_MS);
    perWindow.set(body.timeMin, (perWindow.get(body.timeMin) ?? 0) + body.items.length);
  }
  assert.deepEqual([...perWindow.values()], [120, 120, 120], "each calendar asked once per window");
  assert.deepEqual(busy, [
    { start: "2026-01-01T00:00:00Z", end: "2026-01-01T01:00:00Z" },
    { start: "2026-01-10T09:00:00Z", end: "2026-01-10T10:00:00Z" },
    { start: "2026-03-01T23:00:00Z", end: "2026-03-02T01:00:00Z" },
    { start: "2026-04-30T23:00:00Z", end: "2026-05-01T01:00:00Z" },
    { start: "2026-05-10T23:00:00Z", end: "2026-05-11T00:00:00Z" },
  ]);
});

Deno.test("busy: a per-calendar error is never reported as free", async () => {
  const answer = (calendars: Record<string, unknown>) => scripted(() => json(200, { calendars })).provider;
  const args = {
    calendarIds: ["a@example.com", "b@example.com"],
    timeMin: "2026-01-05T00:00:00Z",
    timeMax: "2026-01-06T00:00:00Z",
  };
  const notFound = await rejectedWith(
    ProviderError,
    answer({
      "a@example.com": { busy: [] },
      "b@example.com": { busy: [], errors: [{ domain: "global", reason: "notFound" }] },
    })
      .busy("t", args),
  );
  assert.equal(notFound.kind, "not_found");
  assert.equal(notFound.details.reason, "notFound");
  assert.match(notFound.message, /b@example\.com/);
  const internal = await rejectedWith(
    ProviderError,
    answer({
      "a@example.com": { busy: [], errors: [{ reason: "internalError" }] },
      "b@example.com": { busy: [] },
    })
      .busy("t", args),
  );
  assert.equal(internal.kind, "transient");
  const missing = await rejectedWith(
    ProviderError,
    answer({ "a@example.com": { busy: [] } }).busy("t", args),
  );
  assert.equal(missing.kind, "transient");
  // Google may answer an email id in another case; that still counts as an answer.
  assert.deepEqual(
    await answer({ "A@example.com": { busy: [] }, "b@example.com": { busy: [] } }).busy("t", args),
    [],
  );
});

Deno.test("busy: no calendars or an empty range make no request; bad ranges are invalid", async () => {
  const { seen, provider } = scripted(() => json(500, {}));
  assert.deepEqual(
    await provider.busy("t", {
      calendarIds: [],
      timeMin: "2026-01-05T00:00:00Z",
      timeMax: "2026-01-06T00:00:00Z",
    }),
    [],
  );
  assert.deepEqual(
    await provider.busy("t", {
      calendarIds: ["a"],
      timeMin: "2026-01-05T00:00:00Z",
      timeMax: "2026-01-05T01:00:00+01:00",
    }),
    [],
  );
  assert.equal(seen.length, 0);
  for (
    const [timeMin, timeMax] of [["2026-01-06T00:00:00Z", "2026-01-05T00:00:00Z"], [
      "2026-01-05T00:00:00",
      "2026-01-06T00:00:00Z",
    ]]
  ) {
    assert.equal(
      (await rejectedWith(ProviderError, provider.busy("t", { calendarIds: ["a"], timeMin, timeMax }))).kind,
      "invalid",
    );
  }
});

Deno.test("busy: intervals are clipped to the requested range", async () => {
  const { provider } = scripted(() =>
    json(200, {
      calendars: { a: { busy: [{ start: "2026-01-04T23:00:00Z", end: "2026-01-05T00:30:00Z" }] } },
    })
  );
  assert.deepEqual(
    await provider.busy("t", {
      calendarIds: ["a"],
      timeMin: "2026-01-05T00:00:00Z",
      timeMax: "2026-01-06T00:00:00Z",
    }),
    [
      { start: "2026-01-05T00:00:00Z", end: "2026-01-05T00:30:00Z" },
    ],
  );
});

const APPOINTMENT = "6ba7b810-9dad-11d1-80b4-00c04fd430c8";
const DERIVED = eventIdFor(APPOINTMENT);
const HOLIDAY = "en.usa#holiday@group.v.calendar.google.com";
const ENCODED = "en.usa%23holiday%40group.v.calendar.google.com";
const write = (eventId?: string) => ({
  calendarId: HOLIDAY,
  appointmentId: APPOINTMENT,
  eventId,
  start: "2026-01-05T10:00:00+01:00",
  end: "2026-01-05T10:50:00+01:00",
  title: "ValorWell",
  timeZone: "Europe/Berlin",
});
const TIMES = {
  summary: "ValorWell",
  start: { dateTime: "2026-01-05T09:00:00Z", timeZone: "Europe/Berlin" },
  end: { dateTime: "2026-01-05T09:50:00Z", timeZone: "Europe/Berlin" },
};
const event = (id: string, status = "confirmed") =>
  json(200, { kind: "calendar#event", id, etag: `"e-${status}"`, status });
const steps = (seen: Seen[]) => seen.map((r) => `${r.method} ${r.path}`);

Deno.test("upsertEvent: a new appointment inserts the derived id with a minimal body", async () => {
  const { seen, provider } = scripted(() => event(DERIVED));
  assert.deepEqual(await provider.upsertEvent("t", write()), {
    eventId: DERIVED,
    etag: '"e-confirmed"',
    operation: "created",
  });
  assert.deepEqual(steps(seen), [`POST /calendars/${ENCODED}/events`]);
  assert.equal(seen[0].url.searchParams.get("sendUpdates"), "none");
  assert.deepEqual(seen[0].body, { id: DERIVED, ...TIMES });
});

Deno.test("upsertEvent: a duplicate insert adopts the existing event (update) or revives it (restore)", async () => {
  const live = scripted((_req, i) => [googleError(409, "duplicate"), event(DERIVED), event(DERIVED)][i]);
  assert.equal((await live.provider.upsertEvent("t", write())).operation, "updated");
  assert.deepEqual(steps(live.seen), [
    `POST /calendars/${ENCODED}/events`,
    `GET /calendars/${ENCODED}/events/${DERIVED}`,
    `PATCH /calendars/${ENCODED}/events/${DERIVED}`,
  ]);
  assert.deepEqual(live.seen[2].body, TIMES);

  const deleted = scripted((_req, i) =>
    [googleError(409, "duplicate"), event(DERIVED, "cancelled"), event(DERIVED)][i]
  );
  assert.equal((await deleted.provider.upsertEvent("t", write())).operation, "restored");
  assert.deepEqual(deleted.seen[2].body, { ...TIMES, status: "confirmed" });
});

Deno.test("upsertEvent: a known event id is patched; 410, cancelled and 403-on-deleted revive", async () => {
  const updated = scripted(() => event("known"));
  assert.deepEqual(await updated.provider.upsertEvent("t", write("known")), {
    eventId: "known",
    etag: '"e-confirmed"',
    operation: "updated",
  });
  assert.deepEqual(steps(updated.seen), [`PATCH /calendars/${ENCODED}/events/known`]);
  assert.deepEqual(updated.seen[0].body, TIMES);

  const gone = scripted((_req, i) => [googleError(410, "deleted"), event("known")][i]);
  assert.equal((await gone.provider.upsertEvent("t", write("known"))).operation, "restored");
  assert.deepEqual(gone.seen[1].body, { ...TIMES, status: "confirmed" });

  const cancelled = scripted((_req, i) => [event("known", "cancelled"), event("known")][i]);
  assert.equal((await cancelled.provider.upsertEvent("t", write("known"))).operation, "restored");

  const forbidden = scripted((_req, i) =>
    [googleError(403, "forbidden"), event("known", "cancelled"), event("known")][i]
  );
  assert.equal((await forbidden.provider.upsertEvent("t", write("known"))).operation, "restored");
  assert.deepEqual(steps(forbidden.seen).map((s) => s.split(" ")[0]), ["PATCH", "GET", "PATCH"]);

  const forbiddenLive = scripted((_req, i) => [googleError(403, "forbidden"), event("known")][i]);
  const err = await rejectedWith(ProviderError, forbiddenLive.provider.upsertEvent("t", write("known")));
  assert.equal(err.kind, "invalid", "a 403 on a live event is not papered over");
});

Deno.test("upsertEvent: an event 404 is told apart from a missing calendar with calendarList.get", async () => {
  const entry = () => json(200, { kind: "calendar#calendarListEntry", id: HOLIDAY, accessRole: "owner" });
  // PATCH 404, the calendar is listed: the event is gone (purged or moved), nothing is inserted.
  const purged = scripted((_req, i) => [googleError(404, "notFound"), entry()][i]);
  const eventGone = await rejectedWith(ProviderError, purged.provider.upsertEvent("t", write("known")));
  assert.equal(eventGone.kind, "not_found");
  assert.equal(eventGone.details.resource, "event");
  assert.deepEqual(steps(purged.seen), [
    `PATCH /calendars/${ENCODED}/events/known`,
    `GET /users/me/calendarList/${ENCODED}`,
  ]);
  // PATCH 404 and the calendar is not listed: the calendar is what is missing.
  const deleted = scripted(() => googleError(404, "notFound"));
  const calendarGone = await rejectedWith(ProviderError, deleted.provider.upsertEvent("t", write("known")));
  assert.equal(calendarGone.kind, "not_found");
  assert.equal(calendarGone.details.resource, "calendar");
  // An insert's 404 can only be the calendar: no extra call.
  const insert404 = scripted(() => googleError(404, "notFound"));
  const noCalendar = await rejectedWith(ProviderError, insert404.provider.upsertEvent("t", write()));
  assert.equal(noCalendar.details.resource, "calendar");
  assert.equal(insert404.seen.length, 1);
  // 409 on insert but GET 404: the id is held by a purged or moved event, so the event is missing.
  const held = scripted((_req, i) =>
    [googleError(409, "duplicate"), googleError(404, "notFound"), entry()][i]
  );
  const heldErr = await rejectedWith(ProviderError, held.provider.upsertEvent("t", write()));
  assert.equal(heldErr.details.resource, "event");
  assert.deepEqual(steps(held.seen).map((s) => s.split(" ")[0]), ["POST", "GET", "GET"]);
  // A failure of the check itself (rate limit) is reported as such, not guessed.
  const limited = scripted((_req, i) =>
    [googleError(404, "notFound"), googleError(429, "rateLimitExceeded")][i]
  );
  assert.equal(
    (await rejectedWith(ProviderError, limited.provider.upsertEvent("t", write("known")))).kind,
    "rate_limited",
  );
  // A later generation inserts its own derived id.
  const fresh = scripted(() => event(eventIdFor(APPOINTMENT, 1)));
  const created = await fresh.provider.upsertEvent("t", { ...write(), eventGeneration: 1 });
  assert.equal(created.operation, "created");
  assert.deepEqual(fresh.seen[0].body, { id: `${DERIVED}1`, ...TIMES });
});

Deno.test("getCalendar: the live access role and zone from calendarList.get; unlisted is not_found", async () => {
  const { seen, provider } = scripted(() =>
    json(200, { id: HOLIDAY, summary: "Hol", accessRole: "reader", timeZone: "Europe/Paris" })
  );
  assert.deepEqual(await provider.getCalendar("t", HOLIDAY), {
    id: HOLIDAY,
    summary: "Hol",
    primary: false,
    access_role: "reader",
    time_zone: "Europe/Paris",
  });
  assert.deepEqual(steps(seen), [`GET /users/me/calendarList/${ENCODED}`]);
  const missing = scripted(() => googleError(404, "notFound"));
  const err = await rejectedWith(ProviderError, missing.provider.getCalendar("t", "nope@example.com"));
  assert.equal(err.kind, "not_found");
  assert.equal(err.details.resource, "calendar");
});

Deno.test("upsertEvent: bad input is invalid before any request", async () => {
  const { seen, provider } = scripted(() => event("x"));
  for (
    const bad of [
      { ...write(), appointmentId: "nope" },
      { ...write(), start: "2026-01-05T10:00:00" },
      { ...write(), end: write().start },
      { ...write(), calendarId: "" },
    ]
  ) {
    assert.equal((await rejectedWith(ProviderError, provider.upsertEvent("t", bad))).kind, "invalid");
  }
  assert.equal(seen.length, 0);
});

Deno.test("deleteEvent: 204, and 404/410 count as already gone; other failures throw", async () => {
  for (
    const response of [
      new Response(null, { status: 204 }),
      googleError(404, "notFound"),
      googleError(410, "deleted"),
    ]
  ) {
    const { seen, provider } = scripted(() => response);
    await provider.deleteEvent("t", { calendarId: HOLIDAY, eventId: DERIVED });
    assert.deepEqual(steps(seen), [`DELETE /calendars/${ENCODED}/events/${DERIVED}`]);
    assert.equal(seen[0].url.searchParams.get("sendUpdates"), "none");
  }
  const { provider } = scripted(() => googleError(500, "backendError"));
  assert.equal(
    (await rejectedWith(ProviderError, provider.deleteEvent("t", { calendarId: "a", eventId: "b" }))).kind,
    "transient",
  );
});

Deno.test("deleteAppointmentEvent: the stored id, else the id derived from the appointment and generation", async () => {
  for (
    const [ref, id] of [
      [{ eventId: "stored1" }, "stored1"],
      [{}, DERIVED],
      [{ eventId: null, eventGeneration: 2 }, eventIdFor(APPOINTMENT, 2)],
    ] as const
  ) {
    const { seen, provider } = scripted(() => new Response(null, { status: 204 }));
    await provider.deleteAppointmentEvent("t", { calendarId: HOLIDAY, appointmentId: APPOINTMENT, ...ref });
    assert.deepEqual(steps(seen), [`DELETE /calendars/${ENCODED}/events/${id}`]);
  }
});

Deno.test("findAppointmentEvent: live event, cancelled or purged (null), and a missing calendar throws", async () => {
  const ref = { calendarId: HOLIDAY, appointmentId: APPOINTMENT };
  assert.equal(await scripted(() => event(DERIVED)).provider.findAppointmentEvent("t", ref), DERIVED);
  assert.equal(
    await scripted(() => event(DERIVED, "cancelled")).provider.findAppointmentEvent("t", ref),
    null,
  );
  const entry = json(200, { kind: "calendar#calendarListEntry", id: HOLIDAY, accessRole: "owner" });
  const purged = scripted((req) => req.path.startsWith("/users/") ? entry : googleError(404, "notFound"));
  assert.equal(await purged.provider.findAppointmentEvent("t", ref), null);
  assert.deepEqual(steps(purged.seen), [
    `GET /calendars/${ENCODED}/events/${DERIVED}`,
    `GET /users/me/calendarList/${ENCODED}`,
  ]);
  const gone = scripted(() => googleError(404, "notFound"));
  const err = await rejectedWith(ProviderError, gone.provider.findAppointmentEvent("t", ref));
  assert.equal(err.code, "not_found");
  assert.equal(err.details.resource, "calendar");
});

Deno.test("a request that outlives timeoutMs is transient; a 2xx with a wrong body is transient", async () => {
  const hanging =
    ((_input: string | URL | Request, init?: RequestInit) =>
      new Promise<Response>((_resolve, reject) => {
        init?.signal?.addEventListener("abort", () => reject(init.signal!.reason));
      })) as typeof fetch;
  const slow = new GoogleCalendarApi(GOOGLE, { fetch: hanging, timeoutMs: 50 });
  const timeout = await rejectedWith(ProviderError, slow.listCalendars("t"));
  assert.equal(timeout.kind, "transient");
  assert.equal(timeout.details.reason, "timeout");

  const { provider } = scripted(() => new Response("<html>captive portal</html>", { status: 200 }));
  const garbled = await rejectedWith(ProviderError, provider.listCalendars("t"));
  assert.equal(garbled.kind, "transient");
  assert.equal(garbled.details.reason, "unexpected_response");
});

Deno.test("providerFor: google is configured, microsoft is not, plain http only on loopback", () => {
  const config = { google: GOOGLE, providerTimeoutMs: 10_000 };
  const google = providerFor("google", config);
  assert.equal(google.id, "google");
  assert.deepEqual(google.capabilities, {
    inboundSync: true,
    batch: false,
    tokenRevocation: true,
    refreshTokenRotation: false,
    eventLookupByAppointment: true,
  });
  assert.equal("eventIdFor" in google, false, "the engine never derives a provider's event id");
  assert.equal(
    google.inbound?.renewal,
    "replace",
    "inbound sync is there, as declared; channels are replaced",
  );
  for (const id of ["microsoft", "yahoo"]) {
    assert.throws(
      () => providerFor(id, config),
      (err) =>
        err instanceof DomainError && err.code === "provider_not_configured" && /google/.test(err.message),
    );
  }
  assert.throws(
    () => providerFor("google", { providerTimeoutMs: 10_000 }),
    (err) => err instanceof DomainError && err.code === "provider_not_configured",
    "a deployment without Google settings has no Google provider",
  );
  providerFor("google", {
    ...config,
    google: { ...GOOGLE, calendarApiBase: "http://127.0.0.1:54329/google/calendar/v3" },
  });
  assert.throws(
    () =>
      providerFor("google", {
        ...config,
        google: { ...GOOGLE, calendarApiBase: "http://calendar.example.com/v3" },
      }),
    (err) => err instanceof ProviderError && err.kind === "invalid",
  );
});
