/**
 * The event bodies we send to Graph (docs/providers/microsoft.md B6, B7): minimal, in the staff
 * member's zone under its Windows name, and with a deterministic `transactionId`.
 */
import assert from "node:assert/strict";
import {
  eventCreateBody,
  eventPatchBody,
  transactionIdFor,
  uuidV5,
} from "../../supabase/functions/_shared/providers/microsoft/event-body.ts";
import { graphEvent } from "../../supabase/functions/_shared/providers/microsoft/schemas.ts";
import { graphDateTimeToInstant } from "../../supabase/functions/_shared/providers/microsoft/time-zones.ts";
import { type EventWrite, ProviderError } from "../../supabase/functions/_shared/providers/types.ts";

const FIXTURES = new URL("../fixtures/microsoft/", import.meta.url);
const fixture = (path: string) => JSON.parse(Deno.readTextFileSync(new URL(path, FIXTURES)));

const APPOINTMENT = "6ba7b810-9dad-11d1-80b4-00c04fd430c8";
const CALENDAR = "AAMkAGI2TGuLAAA=";
const WRITE: EventWrite = {
  calendarId: CALENDAR,
  appointmentId: APPOINTMENT,
  start: "2026-07-01T09:00:00-04:00",
  end: "2026-07-01T09:45:00-04:00",
  title: "Appointment",
  timeZone: "America/New_York",
};

function invalid(fn: () => unknown): ProviderError {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof ProviderError, String(err));
    assert.equal(err.kind, "invalid");
    return err;
  }
  assert.fail("expected a throw");
}

Deno.test("uuidV5: the RFC 9562 algorithm (the DNS namespace vector)", () => {
  assert.equal(
    uuidV5("6ba7b810-9dad-11d1-80b4-00c04fd430c8", "www.example.com"),
    "2ed6657d-e927-568b-95e1-2665a8aea6a2",
  );
});

Deno.test("transactionIdFor: deterministic, GUID-shaped, distinct per generation and calendar", () => {
  const id = transactionIdFor(APPOINTMENT, 0, CALENDAR);
  assert.equal(
    id,
    "29e2269b-3800-51e0-b681-ee45bc8eeb42",
    "fixed forever: a change would duplicate events on retry",
  );
  assert.match(id, /^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  assert.equal(transactionIdFor(APPOINTMENT.toUpperCase(), 0, CALENDAR), id);
  const others = [
    transactionIdFor(APPOINTMENT, 1, CALENDAR),
    transactionIdFor(APPOINTMENT, 2, CALENDAR),
    transactionIdFor(APPOINTMENT, 0, "AAMkAGI2TGuLAAB="),
    transactionIdFor("6ba7b810-9dad-11d1-80b4-00c04fd430c9", 0, CALENDAR),
  ];
  assert.equal(new Set([id, ...others]).size, 5);
  for (const bad of [-1, 1.5, 1_000_001, Number.NaN]) {
    invalid(() => transactionIdFor(APPOINTMENT, bad, CALENDAR));
  }
  invalid(() => transactionIdFor("", 0, CALENDAR));
  invalid(() => transactionIdFor(APPOINTMENT, 0, ""));
});

Deno.test("eventCreateBody: title, times in the staff zone, busy, transactionId, and nothing else", () => {
  const body = eventCreateBody(WRITE);
  assert.deepEqual(body, {
    subject: "Appointment",
    start: { dateTime: "2026-07-01T09:00:00", timeZone: "Eastern Standard Time" },
    end: { dateTime: "2026-07-01T09:45:00", timeZone: "Eastern Standard Time" },
    showAs: "busy",
    transactionId: transactionIdFor(APPOINTMENT, 0, CALENDAR),
  });
  // The times Graph will read back are the instants we were given.
  assert.equal(graphDateTimeToInstant(body.start), "2026-07-01T13:00:00Z");
  assert.equal(graphDateTimeToInstant(body.end), "2026-07-01T13:45:00Z");
  assert.equal(
    eventCreateBody({ ...WRITE, eventGeneration: 3 }).transactionId,
    transactionIdFor(APPOINTMENT, 3, CALENDAR),
  );
  // The documentation's create request carries a body, a location and attendees: ours never does.
  const docs = Object.keys(fixture("event-create-request.json"));
  assert.deepEqual(docs.filter((k) => !(k in body)).sort(), ["attendees", "body", "location"]);
});

Deno.test("eventPatchBody: no transactionId (Graph refuses to change it); zones and fractions", () => {
  const patch = eventPatchBody(WRITE);
  assert.ok(!("transactionId" in patch));
  assert.deepEqual(Object.keys(patch).sort(), ["end", "showAs", "start", "subject"]);
  // Without a zone, or with one that cannot be mapped, the times are written in UTC: still exact.
  for (const timeZone of [null, undefined, "Not/A_Zone", "Antarctica/Troll"]) {
    const p = eventPatchBody({ ...WRITE, timeZone });
    assert.deepEqual(p.start, { dateTime: "2026-07-01T13:00:00", timeZone: "UTC" }, String(timeZone));
  }
  // Europe/Kyiv (a name newer than some libraries' data) maps to FLE Standard Time.
  const kyiv = eventPatchBody({ ...WRITE, timeZone: "Europe/Kyiv" });
  assert.deepEqual(kyiv.start, { dateTime: "2026-07-01T16:00:00", timeZone: "FLE Standard Time" });
  // Milliseconds survive; whole seconds are written without a fraction.
  const ms = eventPatchBody({ ...WRITE, start: "2026-07-01T13:00:00.250Z", timeZone: "UTC" });
  assert.equal(ms.start.dateTime, "2026-07-01T13:00:00.250");
  assert.equal(graphDateTimeToInstant(ms.start), "2026-07-01T13:00:00.250Z");
});

Deno.test("eventPatchBody: bad ranges and titles are refused as invalid", () => {
  invalid(() => eventPatchBody({ ...WRITE, end: WRITE.start }));
  invalid(() => eventPatchBody({ ...WRITE, end: "2026-07-01T08:00:00-04:00" }));
  invalid(() => eventPatchBody({ ...WRITE, start: "2026-07-01T09:00:00" }));
  invalid(() => eventPatchBody({ ...WRITE, title: "  " }));
});

Deno.test("schemas: the documentation's create answer parses; transactionId echoed", () => {
  const parsed = graphEvent.parse(fixture("event-create-response.json"));
  assert.equal(parsed.id, "AAMkAGViNDU7zAAAAA7zAAAZb2ckAAA=");
  assert.equal(parsed.transactionId, "7E163156-7762-4BEB-A1C6-729EA81755A7");
  assert.equal(parsed["@odata.etag"], 'W/"/IUUrIl3PkG1JCSsPfU+8wAAGXjEpA=="');
  assert.equal(parsed.showAs, "busy");
  assert.equal(graphDateTimeToInstant(parsed.start!), "2019-03-15T19:00:00Z");
});
