/**
 * Recurring events in the provider sandbox (dev/sandbox/CONTRACT.md "Recurring events") through real
 * HTTP. Google: a weekly series in New York across the March DST change, expanded by events.list with
 * `singleEvents=true` (instance ids, `recurringEventId`, `originalStartTime`, EXDATE, COUNT), by
 * freeBusy, and reported by incremental sync when an instance is moved or cancelled, when the master
 * changes and when the series is deleted; all-day series; refused rules. Microsoft: a weekly
 * seriesMaster expanded into occurrences by calendarView, calendarView/delta and getSchedule, an
 * edited occurrence becoming an exception and a deleted one coming out of delta as `@removed`.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { startSandbox } from "../../dev/sandbox/server.ts";

const G_CLIENT = { clientId: "it-recur.apps.googleusercontent.com", clientSecret: "it-recur-secret" };
const MS_CLIENT = { clientId: "33334444-dddd-5555-eeee-6666ffff7777", clientSecret: "it-recur-ms-secret" };
const REDIRECT = "http://127.0.0.1:54321/functions/v1/calendar-auth-callback";
const VERIFIER = "it-recur-verifier-0123456789-0123456789-012345";
const CHALLENGE = createHash("sha256").update(VERIFIER).digest("base64url");

// deno-lint-ignore no-explicit-any
type Json = any;

async function call(url: string, method = "GET", body?: unknown, headers: Record<string, string> = {}) {
  const res = await fetch(url, {
    method,
    headers: { ...(body === undefined ? {} : { "content-type": "application/json" }), ...headers },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, json: (text ? JSON.parse(text) : undefined) as Json };
}

const enc = encodeURIComponent;

Deno.test("Google recurring series: instances, exceptions, freeBusy and incremental sync", async (t) => {
  const sb = await startSandbox({ clients: [{ ...G_CLIENT, redirectUris: [REDIRECT] }] });
  const admin = async (method: string, path: string, body?: unknown) => {
    const a = await call(`${sb.url}/_admin${path}`, method, body);
    assert.ok(a.status < 300, `admin ${method} ${path} -> ${a.status} ${JSON.stringify(a.json)}`);
    return a.json;
  };
  const login = "dr.series@example.com";
  const { redirect } = await admin("POST", "/authorize", {
    authorizationUrl: `${sb.url}/google/o/oauth2/v2/auth?${new URLSearchParams({
      client_id: G_CLIENT.clientId,
      redirect_uri: REDIRECT,
      response_type: "code",
      scope: "https://www.googleapis.com/auth/calendar",
    })}`,
    login,
    decision: "approve",
  });
  const res = await fetch(`${sb.url}/google/token`, {
    method: "POST",
    body: new URLSearchParams({
      grant_type: "authorization_code",
      code: new URL(redirect).searchParams.get("code")!,
      redirect_uri: REDIRECT,
      client_id: G_CLIENT.clientId,
      client_secret: G_CLIENT.clientSecret,
    }),
  });
  const bearer = { authorization: `Bearer ${(await res.json()).access_token}` };
  const api = (method: string, path: string, body?: unknown) =>
    call(`${sb.url}/google/calendar/v3/calendars/primary${path}`, method, body, bearer);
  const list = async (q: Record<string, string>) => {
    const a = await api("GET", `/events?${new URLSearchParams(q)}`);
    assert.equal(a.status, 200, JSON.stringify(a.json));
    return a.json as { items: Json[]; nextSyncToken?: string };
  };
  const busy = async (timeMin: string, timeMax: string) => {
    const a = await call(`${sb.url}/google/calendar/v3/freeBusy`, "POST", {
      timeMin,
      timeMax,
      items: [{ id: "primary" }],
    }, bearer);
    assert.equal(a.status, 200, JSON.stringify(a.json));
    return a.json.calendars.primary.busy;
  };
  const march = { timeMin: "2026-03-01T00:00:00Z", timeMax: "2026-04-01T00:00:00Z" };
  const zone = "America/New_York";
  let id = "";
  let syncToken = "";

  try {
    await t.step("a series needs a time zone and a supported rule", async () => {
      const base = {
        start: { dateTime: "2026-03-02T09:00:00-05:00" },
        end: { dateTime: "2026-03-02T10:00:00-05:00" },
      };
      const noZone = await api("POST", "/events", { ...base, recurrence: ["RRULE:FREQ=WEEKLY"] });
      assert.equal(noZone.status, 400);
      assert.equal(noZone.json.error.message, "Missing time zone definition for start time.");
      const yearly = await api("POST", "/events", {
        start: { ...base.start, timeZone: zone },
        end: { ...base.end, timeZone: zone },
        recurrence: ["RRULE:FREQ=YEARLY"],
      });
      assert.equal(yearly.status, 400);
      assert.equal(yearly.json.error.errors[0].reason, "invalid");
    });

    await t.step("singleEvents=true expands the series in its zone across DST, EXDATE out", async () => {
      const a = await api("POST", "/events", {
        summary: "Weekly clinic",
        start: { dateTime: "2026-03-02T09:00:00", timeZone: zone },
        end: { dateTime: "2026-03-02T10:00:00", timeZone: zone },
        recurrence: ["RRULE:FREQ=WEEKLY;BYDAY=MO;COUNT=5", `EXDATE;TZID=${zone}:20260316T090000`],
      });
      assert.equal(a.status, 200, JSON.stringify(a.json));
      id = a.json.id;
      const page = await list({ ...march, singleEvents: "true", orderBy: "startTime" });
      assert.deepEqual(page.items.map((i) => i.id), [
        `${id}_20260302T140000Z`,
        `${id}_20260309T130000Z`,
        `${id}_20260323T130000Z`,
        `${id}_20260330T130000Z`,
      ], "09:00 New York before and after the DST change; EXDATE counts against COUNT");
      const [first, second] = page.items;
      assert.equal(first.recurringEventId, id);
      assert.deepEqual(first.originalStartTime, { dateTime: "2026-03-02T09:00:00-05:00", timeZone: zone });
      assert.deepEqual(second.start, { dateTime: "2026-03-09T09:00:00-04:00", timeZone: zone });
      assert.deepEqual(second.end, { dateTime: "2026-03-09T10:00:00-04:00", timeZone: zone });
      assert.equal(first.recurrence, undefined, "instances carry no recurrence");
      assert.equal(first.summary, "Weekly clinic");
      const masters = await list({ ...march });
      assert.deepEqual(masters.items.map((i) => [i.id, i.recurrence?.length]), [[id, 2]]);
      const one = await api("GET", `/events/${second.id}`);
      assert.equal(one.status, 200);
      assert.equal(one.json.recurringEventId, id);
      assert.equal((await api("GET", `/events/${id}_20260316T130000Z`)).status, 404, "the EXDATE instance");
      assert.deepEqual(await busy(march.timeMin, march.timeMax), [
        { start: "2026-03-02T14:00:00Z", end: "2026-03-02T15:00:00Z" },
        { start: "2026-03-09T13:00:00Z", end: "2026-03-09T14:00:00Z" },
        { start: "2026-03-23T13:00:00Z", end: "2026-03-23T14:00:00Z" },
        { start: "2026-03-30T13:00:00Z", end: "2026-03-30T14:00:00Z" },
      ]);
      syncToken = (await list({ singleEvents: "true", showDeleted: "true" })).nextSyncToken!;
      assert.ok(syncToken);
    });

    await t.step(
      "an instance moved and one cancelled are exceptions; sync reports exactly them",
      async () => {
        const moved = await api("PATCH", `/events/${id}_20260309T130000Z`, {
          start: { dateTime: "2026-03-09T15:00:00Z" },
          end: { dateTime: "2026-03-09T16:00:00Z" },
        });
        assert.equal(moved.status, 200, JSON.stringify(moved.json));
        assert.equal(moved.json.id, `${id}_20260309T130000Z`, "the instance keeps its id");
        assert.deepEqual(moved.json.originalStartTime, {
          dateTime: "2026-03-09T09:00:00-04:00",
          timeZone: zone,
        });
        assert.equal((await api("DELETE", `/events/${id}_20260323T130000Z`)).status, 204);
        assert.equal((await api("DELETE", `/events/${id}_20260323T130000Z`)).status, 410);
        const changes = await list({ singleEvents: "true", showDeleted: "true", syncToken });
        const byId = new Map(changes.items.map((i) => [i.id, i]));
        assert.equal(changes.items.length, 2, JSON.stringify(changes.items));
        assert.equal(byId.get(`${id}_20260309T130000Z`).start.dateTime, "2026-03-09T15:00:00Z");
        assert.deepEqual(byId.get(`${id}_20260323T130000Z`), {
          kind: "calendar#event",
          etag: byId.get(`${id}_20260323T130000Z`).etag,
          id: `${id}_20260323T130000Z`,
          status: "cancelled",
          recurringEventId: id,
          originalStartTime: { dateTime: "2026-03-23T09:00:00-04:00", timeZone: zone },
        });
        syncToken = changes.nextSyncToken!;
        const live = await list({ ...march, singleEvents: "true", orderBy: "startTime" });
        assert.deepEqual(live.items.map((i) => i.start.dateTime), [
          "2026-03-02T09:00:00-05:00",
          "2026-03-09T15:00:00Z",
          "2026-03-30T09:00:00-04:00",
        ]);
        const withDeleted = await list({ ...march, singleEvents: "true", showDeleted: "true" });
        assert.equal(withDeleted.items.length, 4, "the cancelled instance with showDeleted");
        const raw = await list({ ...march });
        assert.deepEqual(
          raw.items.map((i) => i.status).sort(),
          ["cancelled", "confirmed", "confirmed"],
          "singleEvents=false: the master, the exception and the cancelled instance even without showDeleted",
        );
        assert.deepEqual(await busy(march.timeMin, march.timeMax), [
          { start: "2026-03-02T14:00:00Z", end: "2026-03-02T15:00:00Z" },
          { start: "2026-03-09T15:00:00Z", end: "2026-03-09T16:00:00Z" },
          { start: "2026-03-30T13:00:00Z", end: "2026-03-30T14:00:00Z" },
        ]);
      },
    );

    await t.step("the user cancels an instance and edits, then deletes the series (admin API)", async () => {
      const path = `/accounts/${enc(login)}/calendars/${enc(login)}/events`;
      await admin("DELETE", `${path}/${id}_20260330T130000Z`);
      let changes = await list({ singleEvents: "true", showDeleted: "true", syncToken });
      assert.deepEqual(changes.items.map((i) => [i.id, i.status]), [[`${id}_20260330T130000Z`, "cancelled"]]);
      await admin("PATCH", `${path}/${id}`, { summary: "Renamed clinic" });
      changes = await list({ singleEvents: "true", showDeleted: "true", syncToken: changes.nextSyncToken! });
      assert.deepEqual(
        changes.items.map((i) => [i.id, i.summary]),
        [[`${id}_20260302T140000Z`, "Renamed clinic"]],
        "a master change reports the instances that are not exceptions",
      );
      const masterOnly = await list({ showDeleted: "true", syncToken: (await list({})).nextSyncToken! });
      assert.deepEqual(masterOnly.items, [], "a quiet singleEvents=false round");
      await admin("DELETE", `${path}/${id}`);
      changes = await list({ singleEvents: "true", showDeleted: "true", syncToken: changes.nextSyncToken! });
      assert.deepEqual(
        changes.items.map((i) => [i.id, i.status]).sort(),
        [[`${id}_20260302T140000Z`, "cancelled"], [`${id}_20260309T130000Z`, "cancelled"]],
      );
      assert.deepEqual(await busy(march.timeMin, march.timeMax), []);
      assert.deepEqual((await list({ ...march, singleEvents: "true" })).items, []);
    });

    await t.step("an all-day daily series has date instance ids", async () => {
      const ev = await admin("POST", `/accounts/${enc(login)}/calendars/${enc(login)}/events`, {
        start: { date: "2026-04-06" },
        end: { date: "2026-04-07" },
        recurrence: ["RRULE:FREQ=DAILY;INTERVAL=2;UNTIL=20260410"],
      });
      const page = await list({
        timeMin: "2026-04-01T00:00:00Z",
        timeMax: "2026-05-01T00:00:00Z",
        singleEvents: "true",
      });
      assert.deepEqual(page.items.map((i) => [i.id, i.start.date, i.originalStartTime.date]), [
        [`${ev.id}_20260406`, "2026-04-06", "2026-04-06"],
        [`${ev.id}_20260408`, "2026-04-08", "2026-04-08"],
        [`${ev.id}_20260410`, "2026-04-10", "2026-04-10"],
      ]);
    });
  } finally {
    await sb.close();
  }
});

Deno.test("Microsoft seriesMaster: occurrences, exceptions, deleted occurrences in delta and getSchedule", async (t) => {
  const sb = await startSandbox({ microsoftClients: [{ ...MS_CLIENT, redirectUris: [REDIRECT] }] });
  const admin = async (method: string, path: string, body?: unknown) => {
    const a = await call(`${sb.url}/_admin${path}`, method, body);
    assert.ok(a.status < 300, `admin ${method} ${path} -> ${a.status} ${JSON.stringify(a.json)}`);
    return a.json;
  };
  const login = "dr.series@contoso.example";
  const authUrl = new URL(`${sb.url}/microsoft/common/oauth2/v2.0/authorize`);
  for (
    const [k, v] of Object.entries({
      client_id: MS_CLIENT.clientId,
      redirect_uri: REDIRECT,
      response_type: "code",
      scope: "openid offline_access Calendars.ReadWrite User.Read",
      code_challenge: CHALLENGE,
      code_challenge_method: "S256",
    })
  ) authUrl.searchParams.set(k, v);
  const { redirect } = await admin("POST", "/authorize", {
    authorizationUrl: authUrl.href,
    login,
    decision: "approve",
  });
  const res = await fetch(`${sb.url}/microsoft/common/oauth2/v2.0/token`, {
    method: "POST",
    body: new URLSearchParams({
      grant_type: "authorization_code",
      code: new URL(redirect).searchParams.get("code")!,
      redirect_uri: REDIRECT,
      code_verifier: VERIFIER,
      client_id: MS_CLIENT.clientId,
      client_secret: MS_CLIENT.clientSecret,
    }),
  });
  const bearer = { authorization: `Bearer ${(await res.json()).access_token}` };
  const graph = (method: string, path: string, body?: unknown, headers: Record<string, string> = {}) =>
    call(path.startsWith("http") ? path : `${sb.url}/microsoft/graph/v1.0${path}`, method, body, {
      ...bearer,
      ...headers,
    });
  const view = async () => {
    const a = await graph(
      "GET",
      "/me/calendar/calendarView?startDateTime=2026-03-01T00:00:00Z&endDateTime=2026-04-01T00:00:00Z&$top=50",
    );
    assert.equal(a.status, 200, JSON.stringify(a.json));
    return a.json.value as Json[];
  };
  const round = async (link: string) => {
    const items: Json[] = [];
    for (let url = link;;) {
      const a = await graph("GET", url, undefined, { prefer: "odata.maxpagesize=2" });
      assert.equal(a.status, 200, JSON.stringify(a.json));
      items.push(...a.json.value);
      if (a.json["@odata.deltaLink"]) return { items, deltaLink: a.json["@odata.deltaLink"] as string };
      url = a.json["@odata.nextLink"];
    }
  };
  const schedule = async () => {
    const a = await graph("POST", "/me/calendar/getSchedule", {
      schedules: [login],
      startTime: { dateTime: "2026-03-01T00:00:00", timeZone: "UTC" },
      endTime: { dateTime: "2026-04-01T00:00:00", timeZone: "UTC" },
    });
    assert.equal(a.status, 200, JSON.stringify(a.json));
    return (a.json.value[0].scheduleItems as Json[]).map((i) => [i.start.dateTime, i.end.dateTime]);
  };
  const series = {
    subject: "Weekly clinic",
    start: { dateTime: "2026-03-02T09:00:00", timeZone: "Eastern Standard Time" },
    end: { dateTime: "2026-03-02T10:00:00", timeZone: "Eastern Standard Time" },
    recurrence: {
      pattern: { type: "weekly", interval: 1, daysOfWeek: ["monday"], firstDayOfWeek: "sunday" },
      range: { type: "numbered", startDate: "2026-03-02", numberOfOccurrences: 4 },
    },
  };
  let master: Json;
  let occ: Json[] = [];
  let deltaLink = "";

  try {
    await t.step(
      "a series master is expanded into occurrences across DST; masters are not listed",
      async () => {
        const bad = await graph("POST", "/me/events", {
          ...series,
          recurrence: { ...series.recurrence, pattern: { type: "relativeYearly", interval: 1 } },
        });
        assert.equal(bad.status, 400);
        const created = await graph("POST", "/me/events", series);
        assert.equal(created.status, 201, JSON.stringify(created.json));
        master = created.json;
        assert.equal(master.type, "seriesMaster");
        assert.deepEqual(master.recurrence, series.recurrence);
        occ = await view();
        assert.deepEqual(occ.map((o) => [o.type, o.seriesMasterId, o.start.dateTime]), [
          ["occurrence", master.id, "2026-03-02T14:00:00.0000000"],
          ["occurrence", master.id, "2026-03-09T13:00:00.0000000"],
          ["occurrence", master.id, "2026-03-16T13:00:00.0000000"],
          ["occurrence", master.id, "2026-03-23T13:00:00.0000000"],
        ]);
        assert.equal(new Set(occ.map((o) => o.id)).size, 4, "an id per occurrence");
        assert.ok(occ.every((o) => o.id !== master.id));
        assert.equal(occ[1].originalStart, "2026-03-09T13:00:00Z");
        const one = await graph("GET", `/me/events/${enc(occ[1].id)}`);
        assert.equal(one.status, 200);
        assert.equal(one.json.type, "occurrence");
        const first = await round(
          "/me/calendar/calendarView/delta?startDateTime=2026-03-01T00:00:00Z&endDateTime=2026-04-01T00:00:00Z",
        );
        assert.deepEqual(first.items.map((i) => i.id).sort(), occ.map((o) => o.id).sort());
        deltaLink = first.deltaLink;
        assert.equal((await schedule()).length, 4);
      },
    );

    await t.step("an edited occurrence is an exception, a deleted one is @removed", async () => {
      const edited = await graph("PATCH", `/me/events/${enc(occ[1].id)}`, {
        start: { dateTime: "2026-03-09T15:00:00", timeZone: "UTC" },
        end: { dateTime: "2026-03-09T16:00:00", timeZone: "UTC" },
      });
      assert.equal(edited.status, 200, JSON.stringify(edited.json));
      assert.equal(edited.json.id, occ[1].id);
      assert.equal(edited.json.type, "exception");
      assert.equal((await graph("DELETE", `/me/events/${enc(occ[2].id)}`)).status, 204);
      assert.equal((await graph("GET", `/me/events/${enc(occ[2].id)}`)).status, 404);
      await admin(
        "DELETE",
        `/microsoft/accounts/${enc(login)}/calendars/default/events/${enc(occ[3].id)}`,
      );
      const next = await round(deltaLink);
      const byId = new Map(next.items.map((i) => [i.id, i]));
      assert.equal(next.items.length, 3, JSON.stringify(next.items));
      assert.equal(byId.get(occ[1].id).type, "exception");
      assert.equal(byId.get(occ[1].id).start.dateTime, "2026-03-09T15:00:00.0000000");
      assert.deepEqual(byId.get(occ[2].id)["@removed"], { reason: "deleted" });
      assert.deepEqual(byId.get(occ[3].id)["@removed"], { reason: "deleted" });
      deltaLink = next.deltaLink;
      assert.deepEqual((await view()).map((o) => [o.type, o.start.dateTime]), [
        ["occurrence", "2026-03-02T14:00:00.0000000"],
        ["exception", "2026-03-09T15:00:00.0000000"],
      ]);
      assert.deepEqual(await schedule(), [
        ["2026-03-02T14:00:00.0000000", "2026-03-02T15:00:00.0000000"],
        ["2026-03-09T15:00:00.0000000", "2026-03-09T16:00:00.0000000"],
      ]);
    });

    await t.step("deleting the series removes its occurrences and exceptions", async () => {
      assert.equal((await graph("DELETE", `/me/events/${enc(master.id)}`)).status, 204);
      const next = await round(deltaLink);
      assert.deepEqual(
        next.items.map((i) => [i.id, i["@removed"]?.reason]).sort(),
        [[occ[0].id, "deleted"], [occ[1].id, "deleted"]].sort(),
      );
      assert.deepEqual(await view(), []);
    });

    await t.step("admin API: a daily all-day series ending on a date", async () => {
      await admin("POST", `/microsoft/accounts/${enc(login)}/calendars/default/events`, {
        start: { dateTime: "2026-03-10T00:00:00", timeZone: "UTC" },
        end: { dateTime: "2026-03-11T00:00:00", timeZone: "UTC" },
        isAllDay: true,
        recurrence: {
          pattern: { type: "daily", interval: 1 },
          range: { type: "endDate", startDate: "2026-03-10", endDate: "2026-03-12" },
        },
      });
      assert.deepEqual((await view()).map((o) => [o.isAllDay, o.start.dateTime, o.end.dateTime]), [
        [true, "2026-03-10T00:00:00.0000000", "2026-03-11T00:00:00.0000000"],
        [true, "2026-03-11T00:00:00.0000000", "2026-03-12T00:00:00.0000000"],
        [true, "2026-03-12T00:00:00.0000000", "2026-03-13T00:00:00.0000000"],
      ]);
    });
  } finally {
    await sb.close();
  }
});
