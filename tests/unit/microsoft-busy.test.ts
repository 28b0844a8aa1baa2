/**
 * getSchedule and calendarView chunking, and schedule items / calendarView events to busy intervals
 * (docs/providers/microsoft.md B4, B8): statuses decided one by one (the same for both), all-day events
 * on the staff member's days, multi-day items, times in Windows zones, and answers we cannot read that
 * are never read as free.
 */
import assert from "node:assert/strict";
import {
  AVAILABILITY_VIEW_INTERVAL_MINUTES,
  busyFromEvents,
  busyFromSchedule,
  CALENDAR_VIEW_PAGE_SIZE,
  CALENDAR_VIEW_PREFER,
  CALENDAR_VIEW_WINDOW_DAYS,
  calendarViewPath,
  GET_SCHEDULE_MAX_DAYS,
  GET_SCHEDULE_MAX_SCHEDULES,
  type GetScheduleCall,
  isBusyStatus,
  planCalendarView,
  planGetSchedule,
} from "../../supabase/functions/_shared/providers/microsoft/busy.ts";
import {
  getScheduleResponse,
  type GraphEvent,
  graphEventsPage,
} from "../../supabase/functions/_shared/providers/microsoft/schemas.ts";
import { ProviderError } from "../../supabase/functions/_shared/providers/types.ts";

const FIXTURES = new URL("../fixtures/microsoft/", import.meta.url);
const fixture = (path: string) => JSON.parse(Deno.readTextFileSync(new URL(path, FIXTURES)));
const DAY = 86_400_000;

function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (err) {
    return err;
  }
  assert.fail("expected a throw");
}

Deno.test("planGetSchedule: at most 20 schedules and 61 days per call, covering the range exactly", () => {
  const schedules = Array.from({ length: 45 }, (_, i) => `user${i}@contoso.com`);
  const calls = planGetSchedule({
    schedules: [...schedules, "USER0@contoso.com"],
    timeMin: "2026-01-01T00:00:00Z",
    timeMax: "2026-05-31T00:00:00+00:00",
  });
  assert.equal(GET_SCHEDULE_MAX_SCHEDULES, 20);
  assert.ok(GET_SCHEDULE_MAX_DAYS < 62, "the documentation: less than 62 days");
  // 150 days -> 61 + 61 + 28; 45 addresses (the duplicate asked once) -> 20 + 20 + 5.
  assert.equal(calls.length, 9);
  assert.deepEqual(calls.map((c) => c.schedules.length), [20, 20, 5, 20, 20, 5, 20, 20, 5]);
  assert.deepEqual([...new Set(calls.map((c) => c.window.start))], [
    "2026-01-01T00:00:00Z",
    "2026-03-03T00:00:00Z",
    "2026-05-03T00:00:00Z",
  ]);
  assert.equal(calls.at(-1)!.window.end, "2026-05-31T00:00:00Z");
  for (const c of calls) {
    const span = Date.parse(c.window.end) - Date.parse(c.window.start);
    assert.ok(span <= GET_SCHEDULE_MAX_DAYS * DAY);
    assert.ok(c.schedules.length <= GET_SCHEDULE_MAX_SCHEDULES);
    assert.deepEqual(c.body.schedules, c.schedules);
    assert.equal(c.body.availabilityViewInterval, AVAILABILITY_VIEW_INTERVAL_MINUTES);
    assert.equal(c.body.startTime.timeZone, "UTC");
    assert.equal(`${c.body.startTime.dateTime}Z`, c.window.start);
    assert.equal(`${c.body.endTime.dateTime}Z`, c.window.end);
    assert.equal(c.prefer, 'outlook.timezone="UTC"');
  }
  const flat = calls.flatMap((c) => c.schedules.map((s) => `${c.window.start} ${s}`));
  assert.equal(new Set(flat).size, 3 * 45, "every address in every window, once");
});

Deno.test("planGetSchedule: offsets, the staff zone, exactly 61 days, empty inputs, bad input", () => {
  const one = planGetSchedule({
    schedules: ["a@contoso.com"],
    timeMin: "2026-01-05T09:00:00+01:00",
    timeMax: "2026-03-07T09:00:00+01:00",
    timeZone: "Europe/Paris",
  });
  assert.equal(one.length, 1, "61 days is one call");
  assert.deepEqual(one[0].body.startTime, { dateTime: "2026-01-05T08:00:00", timeZone: "UTC" });
  assert.equal(one[0].prefer, 'outlook.timezone="Romance Standard Time"');
  assert.equal(
    planGetSchedule({ schedules: ["a@x"], timeMin: "2026-01-05T00:00:00Z", timeMax: "2026-03-07T00:00:01Z" })
      .length,
    2,
  );
  assert.deepEqual(
    planGetSchedule({ schedules: [], timeMin: "2026-01-05T00:00:00Z", timeMax: "2026-01-06T00:00:00Z" }),
    [],
  );
  assert.deepEqual(
    planGetSchedule({ schedules: ["a@x"], timeMin: "2026-01-05T00:00:00Z", timeMax: "2026-01-05T00:00:00Z" }),
    [],
  );
  assert.throws(
    () =>
      planGetSchedule({ schedules: [" "], timeMin: "2026-01-05T00:00:00Z", timeMax: "2026-01-06T00:00:00Z" }),
    RangeError,
  );
  assert.throws(
    () =>
      planGetSchedule({
        schedules: ["a@x"],
        timeMin: "2026-01-06T00:00:00Z",
        timeMax: "2026-01-05T00:00:00Z",
      }),
    RangeError,
  );
  assert.throws(
    () =>
      planGetSchedule({
        schedules: ["a@x"],
        timeMin: "2026-01-05T00:00:00",
        timeMax: "2026-01-06T00:00:00Z",
      }),
    RangeError,
  );
});

/** A call for one schedule over a window, asked as `prefer` says. */
function callFor(schedules: string[], start: string, end: string): GetScheduleCall {
  return planGetSchedule({ schedules, timeMin: start, timeMax: end })[0];
}

Deno.test("busyFromSchedule: the documentation's answer (Pacific time, overlapping busy and tentative)", () => {
  const response = fixture("get-schedule-response.json");
  const request = fixture("get-schedule-request.json");
  // The request asked 09:00-18:00 Pacific (PDT, UTC-7, on 2019-03-15).
  const call = callFor(request.schedules, "2019-03-15T16:00:00Z", "2019-03-16T01:00:00Z");
  assert.deepEqual(busyFromSchedule(response, call), [
    { start: "2019-03-15T16:00:00Z", end: "2019-03-15T16:30:00Z" }, // 08:30-09:30, clipped at 09:00
    { start: "2019-03-15T19:00:00Z", end: "2019-03-15T21:00:00Z" }, // busy + tentative, merged
    { start: "2019-03-15T23:00:00Z", end: "2019-03-16T00:00:00Z" }, // tentative 16:00-17:00
  ]);
  // Only one of the two schedules asked: the other one's items do not count.
  const adele = callFor(["AdeleV@contoso.onmicrosoft.com"], "2019-03-15T16:00:00Z", "2019-03-16T01:00:00Z");
  assert.deepEqual(busyFromSchedule(response, adele), [
    { start: "2019-03-15T19:00:00Z", end: "2019-03-15T21:00:00Z" },
  ]);
});

/** A one-schedule answer with the given items. */
function answer(items: unknown, extra: Record<string, unknown> = {}) {
  return { value: [{ scheduleId: "a@contoso.com", availabilityView: "", scheduleItems: items, ...extra }] };
}
const item = (status: string, start: string, end: string, timeZone = "UTC") => ({
  status,
  start: { dateTime: start, timeZone },
  end: { dateTime: end, timeZone },
});
const DAY_CALL = callFor(["a@contoso.com"], "2026-01-05T00:00:00Z", "2026-01-06T00:00:00Z");

Deno.test("busyFromSchedule / isBusyStatus: each status decided; unknown statuses are busy", () => {
  const expected: Record<string, boolean> = {
    free: false,
    workingElsewhere: false,
    tentative: true,
    busy: true,
    oof: true,
    unknown: true,
    somethingNew: true,
  };
  for (const [status, busy] of Object.entries(expected)) {
    assert.equal(isBusyStatus(status), busy, status);
    const got = busyFromSchedule(
      answer([item(status, "2026-01-05T09:00:00.0000000", "2026-01-05T10:00:00.0000000")]),
      DAY_CALL,
    );
    assert.deepEqual(
      got,
      busy ? [{ start: "2026-01-05T09:00:00Z", end: "2026-01-05T10:00:00Z" }] : [],
      status,
    );
  }
  assert.equal(isBusyStatus(undefined), true);
  assert.deepEqual(busyFromSchedule(answer([]), DAY_CALL), [], "no items: free");
});

Deno.test("busyFromSchedule: all-day in the staff zone, multi-day clipped, Windows zone names", () => {
  // Asked in New York's zone: an all-day item is midnight to midnight there (05:00Z to 05:00Z).
  const ny = planGetSchedule({
    schedules: ["a@contoso.com"],
    timeMin: "2026-01-04T00:00:00Z",
    timeMax: "2026-01-08T00:00:00Z",
    timeZone: "America/New_York",
  })[0];
  assert.equal(ny.prefer, 'outlook.timezone="Eastern Standard Time"');
  const allDay = item(
    "oof",
    "2026-01-05T00:00:00.0000000",
    "2026-01-06T00:00:00.0000000",
    "Eastern Standard Time",
  );
  assert.deepEqual(busyFromSchedule(answer([allDay]), ny), [
    { start: "2026-01-05T05:00:00Z", end: "2026-01-06T05:00:00Z" },
  ]);
  // A week off from 2026-01-01 runs past both ends of the window.
  const week = item(
    "oof",
    "2026-01-01T00:00:00.0000000",
    "2026-01-10T00:00:00.0000000",
    "Eastern Standard Time",
  );
  assert.deepEqual(busyFromSchedule(answer([week, allDay]), ny), [
    { start: "2026-01-04T00:00:00Z", end: "2026-01-08T00:00:00Z" },
  ]);
  // Items ending before or starting after the window add nothing.
  const outside = [
    item("busy", "2026-01-01T00:00:00", "2026-01-02T00:00:00"),
    item("busy", "2026-01-09T00:00:00", "2026-01-10T00:00:00"),
  ];
  assert.deepEqual(busyFromSchedule(answer(outside), ny), []);
});

Deno.test("busyFromSchedule: a per-schedule error is an error, never free", () => {
  const unresolvable = fixture("get-schedule-error-unresolvable.json");
  const call = callFor(["nobody@contoso.com"], "2026-01-05T00:00:00Z", "2026-01-06T00:00:00Z");
  const e1 = thrown(() => busyFromSchedule(unresolvable, call));
  assert.ok(e1 instanceof ProviderError);
  assert.equal(e1.kind, "not_found");
  assert.equal(e1.details.reason, "schedule_error_5009");
  assert.equal(e1.details.resource, "calendar");
  // No mailbox (5016), with scheduleItems null.
  const e2 = thrown(() =>
    busyFromSchedule(answer(null, { error: { message: "no mailbox", responseCode: "5016" } }), DAY_CALL)
  );
  assert.ok(
    e2 instanceof ProviderError && e2.kind === "not_found" && e2.details.reason === "schedule_error_5016",
  );
  // Any other error, even with items beside it.
  const e3 = thrown(() =>
    busyFromSchedule(answer([], { error: { message: "server busy", responseCode: "5000" } }), DAY_CALL)
  );
  assert.ok(
    e3 instanceof ProviderError && e3.kind === "invalid" && e3.details.reason === "schedule_error_5000",
  );
  // Items null without an error, a schedule missing from the answer, a body that is not an answer.
  for (
    const [body, reason] of [
      [answer(null), "schedule_items_missing"],
      [answer(undefined), "schedule_items_missing"],
      [{ value: [] }, "schedule_missing"],
      [{ value: [{ scheduleId: "other@contoso.com", scheduleItems: [] }] }, "schedule_missing"],
      [{ nope: 1 }, "malformed_response"],
      [answer([{ status: "busy" }]), "malformed_response"],
    ] as const
  ) {
    const err = thrown(() => busyFromSchedule(body, DAY_CALL));
    assert.ok(err instanceof ProviderError && err.kind === "invalid", JSON.stringify(body));
    assert.equal(err.details.reason, reason, JSON.stringify(body));
  }
  // A time in a zone we cannot place: an error, not a guess.
  const custom = item("busy", "2026-01-05T09:00:00", "2026-01-05T10:00:00", "Customized Time Zone");
  const e4 = thrown(() => busyFromSchedule(answer([custom]), DAY_CALL));
  assert.ok(e4 instanceof ProviderError && e4.details.reason === "unknown_time_zone");
});

Deno.test("schemas: the getSchedule fixtures parse; a scheduleId matches case-insensitively", () => {
  assert.ok(getScheduleResponse.safeParse(fixture("get-schedule-response.json")).success);
  assert.ok(getScheduleResponse.safeParse(fixture("get-schedule-error-unresolvable.json")).success);
  const call = callFor(["A@CONTOSO.COM"], "2026-01-05T00:00:00Z", "2026-01-06T00:00:00Z");
  assert.deepEqual(
    busyFromSchedule(answer([item("busy", "2026-01-05T09:00:00", "2026-01-05T10:00:00")]), call),
    [
      { start: "2026-01-05T09:00:00Z", end: "2026-01-05T10:00:00Z" },
    ],
  );
});

Deno.test("calendarView: only the fields busy needs, the calendar id encoded, the range bounded", () => {
  const path = calendarViewPath("AAMkAGI2TGuLAAA=/x", "2026-01-05T09:00:00+01:00", "2026-01-06T00:00:00Z");
  const url = new URL(path, "https://graph.example");
  assert.equal(url.pathname, "/me/calendars/AAMkAGI2TGuLAAA%3D%2Fx/calendarView");
  assert.equal(url.searchParams.get("startDateTime"), "2026-01-05T08:00:00Z");
  assert.equal(url.searchParams.get("endDateTime"), "2026-01-06T00:00:00Z");
  assert.equal(url.searchParams.get("$select"), "showAs,start,end,isAllDay,isCancelled");
  assert.equal(url.searchParams.get("$top"), String(CALENDAR_VIEW_PAGE_SIZE));
  assert.equal(CALENDAR_VIEW_PREFER, 'outlook.timezone="UTC"');
  assert.throws(() => calendarViewPath("c", "2026-01-05T00:00:00Z", "2031-01-05T00:00:00Z"), RangeError);
  assert.throws(() => calendarViewPath("c", "2026-01-06T00:00:00Z", "2026-01-05T00:00:00Z"), RangeError);
});

Deno.test("planCalendarView: the range widened by a day each side, then 31-day windows end to end", () => {
  const windows = (paths: string[]) =>
    paths.map((p) => {
      const q = new URL(p, "https://graph.example").searchParams;
      return [q.get("startDateTime"), q.get("endDateTime")];
    });
  // A week: one read, a day of margin on both sides.
  assert.deepEqual(windows(planCalendarView("c", "2026-01-05T00:00:00+01:00", "2026-01-12T00:00:00+01:00")), [
    ["2026-01-03T23:00:00Z", "2026-01-12T23:00:00Z"],
  ]);
  // The product's longest range (62 days) plus margins is 64 days: three windows, no gap, no overlap.
  const long = windows(planCalendarView("c", "2026-01-01T00:00:00Z", "2026-03-04T00:00:00Z"));
  assert.equal(long.length, 3);
  assert.equal(long[0][0], "2025-12-31T00:00:00Z");
  assert.equal(long[2][1], "2026-03-05T00:00:00Z");
  for (let i = 0; i < long.length; i++) {
    const [start, end] = long[i].map((t) => Date.parse(t!));
    assert.ok(end - start <= CALENDAR_VIEW_WINDOW_DAYS * DAY);
    if (i > 0) assert.equal(long[i - 1][1], long[i][0]);
  }
  assert.deepEqual(planCalendarView("c", "2026-01-05T00:00:00Z", "2026-01-05T00:00:00Z"), []);
  assert.throws(() => planCalendarView("c", "2026-01-06T00:00:00Z", "2026-01-05T00:00:00Z"), RangeError);
  assert.throws(() => planCalendarView("c", "yesterday", "2026-01-05T00:00:00Z"), RangeError);
});

const ev = (
  id: string,
  showAs: string,
  start: string,
  end: string,
  extra: Record<string, unknown> = {},
  timeZone = "Pacific Standard Time",
) => ({
  id,
  showAs,
  start: { dateTime: start, timeZone },
  end: { dateTime: end, timeZone },
  ...extra,
});

Deno.test("busyFromEvents: statuses as getSchedule's, cancelled skipped, timed events in any zone", () => {
  const events = [
    ev("1", "busy", "2026-01-05T09:00:00.0000000", "2026-01-05T10:00:00.0000000"),
    ev("2", "free", "2026-01-05T11:00:00.0000000", "2026-01-05T12:00:00.0000000"),
    ev("3", "workingElsewhere", "2026-01-05T12:00:00.0000000", "2026-01-05T13:00:00.0000000"),
    ev("4", "busy", "2026-01-05T13:00:00.0000000", "2026-01-05T14:00:00.0000000", { isCancelled: true }),
    ev("5", "oof", "2026-01-06T01:00:00.0000000", "2026-01-06T02:00:00.0000000", {}, "UTC"),
    ev("6", "tentative", "2026-01-05T09:30:00.0000000", "2026-01-05T10:30:00.0000000"),
    ev("7", "unknown", "2026-01-06T03:00:00.0000000", "2026-01-06T04:00:00.0000000", {}, "UTC"),
    ev("8", "someday-new", "2026-01-06T05:00:00.0000000", "2026-01-06T06:00:00.0000000", {}, "UTC"),
  ];
  assert.deepEqual(busyFromEvents(events, "2026-01-05T00:00:00Z", "2026-01-07T00:00:00Z"), [
    { start: "2026-01-05T17:00:00Z", end: "2026-01-05T18:30:00Z" },
    { start: "2026-01-06T01:00:00Z", end: "2026-01-06T02:00:00Z" },
    { start: "2026-01-06T03:00:00Z", end: "2026-01-06T04:00:00Z" },
    { start: "2026-01-06T05:00:00Z", end: "2026-01-06T06:00:00Z" },
  ]);
  // Whatever a status means, calendarView and getSchedule read it the same way.
  for (const status of ["free", "tentative", "busy", "oof", "workingElsewhere", "unknown"]) {
    const one = busyFromEvents(
      [ev("x", status, "2026-01-05T09:00:00", "2026-01-05T10:00:00", {}, "UTC")],
      "2026-01-05T00:00:00Z",
      "2026-01-06T00:00:00Z",
    );
    assert.equal(one.length === 1, isBusyStatus(status), status);
  }
});

Deno.test("busyFromEvents: all-day events block the staff member's own days; multi-day and clipping", () => {
  // Answers asked in UTC: all-day events float, written midnight to midnight UTC.
  const allDay = (id: string, from: string, to: string, showAs = "busy") =>
    ev(id, showAs, `${from}T00:00:00.0000000`, `${to}T00:00:00.0000000`, { isAllDay: true }, "UTC");
  const events = [allDay("1", "2026-03-09", "2026-03-10"), allDay("2", "2026-03-12", "2026-03-15", "oof")];
  const range = ["2026-03-08T00:00:00Z", "2026-03-20T00:00:00Z"] as const;
  // In New York (EDT from 8 March 2026) the days start at 04:00 UTC.
  assert.deepEqual(busyFromEvents(events, ...range, "America/New_York"), [
    { start: "2026-03-09T04:00:00Z", end: "2026-03-10T04:00:00Z" },
    { start: "2026-03-12T04:00:00Z", end: "2026-03-15T04:00:00Z" },
  ]);
  // In Auckland (UTC+13) they start the evening before, in UTC.
  assert.deepEqual(busyFromEvents(events, ...range, "Pacific/Auckland"), [
    { start: "2026-03-08T11:00:00Z", end: "2026-03-09T11:00:00Z" },
    { start: "2026-03-11T11:00:00Z", end: "2026-03-14T11:00:00Z" },
  ]);
  // No zone known (or one this runtime lacks): UTC days.
  for (const zone of [undefined, null, "Mars/Olympus_Mons"]) {
    assert.deepEqual(busyFromEvents(events, ...range, zone), [
      { start: "2026-03-09T00:00:00Z", end: "2026-03-10T00:00:00Z" },
      { start: "2026-03-12T00:00:00Z", end: "2026-03-15T00:00:00Z" },
    ]);
  }
  // Even when an answer comes in another zone, the date is the event's own.
  const pacific = ev("3", "busy", "2026-03-09T00:00:00.0000000", "2026-03-10T00:00:00.0000000", {
    isAllDay: true,
  });
  assert.deepEqual(busyFromEvents([pacific], ...range, "Europe/Berlin"), [
    { start: "2026-03-08T23:00:00Z", end: "2026-03-09T23:00:00Z" },
  ]);
  // A multi-day event is clipped to the asked range; a free all-day one blocks nothing.
  assert.deepEqual(
    busyFromEvents(
      [allDay("4", "2026-03-01", "2026-04-01"), allDay("5", "2026-03-09", "2026-03-10", "free")],
      "2026-03-09T09:00:00Z",
      "2026-03-09T17:00:00Z",
      "Europe/Berlin",
    ),
    [{ start: "2026-03-09T09:00:00Z", end: "2026-03-09T17:00:00Z" }],
  );
});

Deno.test("busyFromEvents: an event we cannot place is an error, never free", () => {
  const cases: unknown[] = [
    { id: "x", showAs: "busy" },
    ev("x", "busy", "2026-01-05T09:00:00", "2026-01-05T10:00:00", {}, "Customized Time Zone"),
    ev("x", "busy", "2026-02-30T00:00:00", "2026-03-01T00:00:00", { isAllDay: true }, "UTC"),
    ev("x", "busy", "soon", "later", {}, "UTC"),
  ];
  for (const c of cases) {
    const err = thrown(() =>
      busyFromEvents([c as GraphEvent], "2026-01-05T00:00:00Z", "2026-03-06T00:00:00Z", "Europe/Berlin")
    );
    assert.ok(err instanceof ProviderError && err.kind === "invalid", JSON.stringify(c));
  }
});

Deno.test("schemas: a calendarView page parses, with or without a next link; a malformed one does not", () => {
  const page = {
    "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#users('x')/calendars('c')/calendarView",
    value: [{
      "@odata.etag": 'W/"x"',
      id: "AAMk=",
      showAs: "busy",
      isAllDay: false,
      isCancelled: false,
      start: { dateTime: "2026-01-05T09:00:00.0000000", timeZone: "UTC" },
      end: { dateTime: "2026-01-05T10:00:00.0000000", timeZone: "UTC" },
    }],
    "@odata.nextLink": "https://graph.microsoft.com/v1.0/me/calendars/c/calendarView?$skip=250",
  };
  assert.equal(graphEventsPage.parse(page).value.length, 1);
  assert.equal(graphEventsPage.parse({ value: [] })["@odata.nextLink"], undefined);
  assert.equal(graphEventsPage.safeParse({}).success, false);
  assert.equal(graphEventsPage.safeParse({ value: [{ showAs: "busy" }] }).success, false);
});
