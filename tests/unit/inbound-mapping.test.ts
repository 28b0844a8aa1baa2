/**
 * Inbound sync's pure parts, for both providers: provider answers (tests/fixtures) mapped to neutral
 * ExternalEvents that carry timing and nothing else, even when the provider sends titles, bodies,
 * attendees and locations; our own Google event ids decoded; Graph's subscription expiry and URLs.
 */
import assert from "node:assert/strict";
import {
  appointmentOfEventId,
  eventIdFor,
} from "../../supabase/functions/_shared/providers/google/event-id.ts";
import { externalEventFromGoogle } from "../../supabase/functions/_shared/providers/google/inbound.ts";
import {
  googleChannel,
  googleEventsPage,
} from "../../supabase/functions/_shared/providers/google/schemas.ts";
import {
  externalEventFromGraph,
  lifecycleNotificationUrl,
  shorterExpiryLimit,
  subscriptionExpiry,
  subscriptionResource,
} from "../../supabase/functions/_shared/providers/microsoft/inbound.ts";
import {
  graphDeltaPage,
  graphSubscription,
} from "../../supabase/functions/_shared/providers/microsoft/schemas.ts";
import { type ExternalEvent, ProviderError } from "../../supabase/functions/_shared/providers/types.ts";

const fixture = (path: string) =>
  JSON.parse(Deno.readTextFileSync(new URL(`../fixtures/${path}`, import.meta.url)));

/** Words of the fixtures' titles, bodies, attendees and locations: none may survive the mapping. */
const PHI = /Jane|Doe|Diagnosis|Therapy|Room 4|patient|Chapel|samanthab|boss@|offsite|standup|Remote day/i;

function assertNeutral(events: (ExternalEvent | null)[]): void {
  for (const e of events) {
    if (!e) continue;
    assert.deepEqual(Object.keys(e).sort(), [
      "allDay",
      "busy",
      "end",
      "id",
      "idempotencyKey",
      "ourAppointment",
      "seriesId",
      "start",
      "status",
      "version",
    ]);
    assert.doesNotMatch(JSON.stringify(e), PHI);
  }
}

Deno.test("Google: an events.list page with titles, attendees and locations maps to timing only", () => {
  const page = googleEventsPage.parse(fixture("google/events-list-changes.json"));
  assert.equal(page.nextSyncToken, "CPDAlvWDx70CEPDAlvWDx70CGAU=");
  assert.doesNotMatch(
    JSON.stringify(page),
    /Jane|Diagnosis|Room 4|patient@/,
    "the schema drops them already",
  );
  const events = page.items.map((item) => externalEventFromGoogle(item, page.timeZone));
  assertNeutral(events);
  const [timed, deleted, cancelledInstance, allDayFree, declined, tentative] = events;
  assert.deepEqual(timed, {
    id: "go6ijb0b46hlpbu4eeu92njevo",
    status: "confirmed",
    start: "2024-05-03T08:00:00Z",
    end: "2024-05-03T09:00:00Z",
    allDay: false,
    busy: true,
    version: '"3429000000000000"',
    seriesId: null,
    ourAppointment: null,
    idempotencyKey: null,
  });
  assert.deepEqual(
    { status: deleted.status, start: deleted.start, end: deleted.end, busy: deleted.busy },
    { status: "cancelled", start: null, end: null, busy: false },
    "a deleted event comes by id alone and is never busy",
  );
  assert.equal(cancelledInstance.seriesId, "osndfnwejrgnejnsdjfwegjdfr");
  assert.equal(cancelledInstance.busy, false);
  // All-day dates lie in the calendar's zone (Berlin, +02:00 in May); transparent = free.
  assert.deepEqual(
    [allDayFree.start, allDayFree.end, allDayFree.allDay, allDayFree.busy],
    ["2024-05-09T22:00:00Z", "2024-05-10T22:00:00Z", true, false],
  );
  assert.equal(declined.busy, false, "an invitation the account declined does not block");
  assert.equal(declined.seriesId, "osndfnwejrgnejnsdjfwegjdfr");
  assert.equal(tentative.busy, true, "tentative blocks, as in freeBusy");
  assert.equal(tentative.status, "confirmed");
});

Deno.test("Google: all-day events without a calendar zone are UTC days; a live event needs times", () => {
  const day = externalEventFromGoogle({
    id: "abcde",
    start: { date: "2026-03-10" },
    end: { date: "2026-03-12" },
  });
  assert.deepEqual([day.start, day.end], ["2026-03-10T00:00:00Z", "2026-03-12T00:00:00Z"]);
  const unknownZone = externalEventFromGoogle(
    { id: "abcde", start: { date: "2026-03-10" }, end: { date: "2026-03-11" } },
    "Mars/Olympus",
  );
  assert.equal(unknownZone.start, "2026-03-10T00:00:00Z");
  assert.throws(
    () => externalEventFromGoogle({ id: "abcde", status: "confirmed" }),
    (err) => err instanceof ProviderError && err.kind === "transient",
  );
});

Deno.test("Google: our derived event ids name their appointment and generation; others do not", () => {
  const appointmentId = "6ba7b810-9dad-11d1-80b4-00c04fd430c8";
  for (const generation of [0, 1, 31, 32, 1_000_000]) {
    assert.deepEqual(appointmentOfEventId(eventIdFor(appointmentId, generation)), {
      appointmentId,
      eventGeneration: generation,
    });
  }
  const ours = externalEventFromGoogle({
    id: eventIdFor(appointmentId, 2),
    start: { dateTime: "2026-03-10T09:00:00Z" },
    end: { dateTime: "2026-03-10T10:00:00Z" },
  });
  assert.deepEqual(ours.ourAppointment, { appointmentId, eventGeneration: 2 });
  // Google-made ids, instance ids, a non-zero padding bit, a leading-zero generation: not ours.
  for (
    const id of [
      "go6ijb0b46hlpbu4eeu92njevo",
      "osndfnwejrgnejnsdjfwegjdfr_20240506T080000Z",
      `${eventIdFor(appointmentId).slice(0, 25)}1`,
      `${eventIdFor(appointmentId)}0`,
      "short",
    ]
  ) assert.equal(appointmentOfEventId(id), null, id);
});

Deno.test("Google: the watch answer's expiration (int64 as a string or a number) is epoch ms", () => {
  assert.equal(googleChannel.parse(fixture("google/watch-response.json")).expiration, 1426325213000);
  assert.equal(googleChannel.parse({ id: "a", resourceId: "r", expiration: 5 }).expiration, 5);
  assert.equal(googleChannel.safeParse({ id: "a", resourceId: "r", expiration: "soon" }).success, false);
});

Deno.test("Graph: a delta page with subjects, bodies, attendees and locations maps to timing only", () => {
  const page = graphDeltaPage.parse(fixture("microsoft/delta-page.json"));
  assert.ok(page["@odata.deltaLink"]);
  assert.doesNotMatch(
    JSON.stringify(page),
    /Jane|Diagnosis|Chapel|samanthab/,
    "the schema drops them already",
  );
  const events = page.value.map((item) => externalEventFromGraph(item, "Europe/Berlin"));
  assertNeutral(events);
  const [removed, timed, remoteDay, cancelledException, occurrence, master, appointment] = events;
  assert.deepEqual(removed, {
    id: "AAMkADk0MGFkODE3LWE4MmYtNDRhOS04OGQLkRkXbBznTvAADb6ytyAAA=",
    status: "cancelled",
    start: null,
    end: null,
    allDay: false,
    busy: false,
    version: null,
    seriesId: null,
    ourAppointment: null,
    idempotencyKey: null,
  });
  assert.deepEqual(timed, {
    id: "AAMkADj1HvAAA=",
    status: "confirmed",
    start: "2016-12-25T06:00:00Z",
    end: "2016-12-25T07:30:00Z",
    allDay: false,
    busy: true,
    version: 'W/"EZ9r3czxY0m2jz8c45czkwAALZu97w=="',
    seriesId: null,
    ourAppointment: null,
    idempotencyKey: null,
  });
  // All-day on the staff member's days (Berlin, +01:00 in December); working elsewhere is free.
  assert.deepEqual(
    [remoteDay!.start, remoteDay!.end, remoteDay!.allDay, remoteDay!.busy],
    ["2016-12-26T23:00:00Z", "2016-12-27T23:00:00Z", true, false],
  );
  assert.deepEqual(
    [cancelledException!.status, cancelledException!.busy, cancelledException!.seriesId],
    ["cancelled", false, "AAMkADj1MasterAAA="],
  );
  assert.equal(occurrence!.seriesId, "AAMkADj1MasterAAA=");
  assert.equal(master, null, "a series master is skipped: its occurrences are listed");
  assert.equal(appointment!.idempotencyKey, "7E163156-7762-4BEB-A1C6-729EA81755A7");
});

Deno.test("Graph: a page needs exactly the fields it says; an event we cannot place is an error", () => {
  assert.equal(graphDeltaPage.safeParse({ value: [{ subject: "no id" }] }).success, false);
  assert.throws(
    () => externalEventFromGraph({ id: "x", showAs: "busy" }),
    (err) => err instanceof ProviderError && err.kind === "invalid",
  );
  assert.throws(
    () =>
      externalEventFromGraph({
        id: "x",
        start: { dateTime: "2026-01-01T09:00:00", timeZone: "Customized Time Zone" },
        end: { dateTime: "2026-01-01T10:00:00", timeZone: "Customized Time Zone" },
      }),
    (err) => err instanceof ProviderError && err.details.reason === "unknown_time_zone",
  );
});

Deno.test("Graph subscriptions: resource, lifecycle URL, expiry capped, a tenant's lower cap read", () => {
  assert.equal(subscriptionResource("primary"), "me/events");
  assert.equal(subscriptionResource("AAMkAGI2TG93AAA="), "me/calendars/AAMkAGI2TG93AAA=/events");
  assert.equal(
    lifecycleNotificationUrl("https://x.supabase.co/functions/v1/calendar-webhook/microsoft"),
    "https://x.supabase.co/functions/v1/calendar-webhook/microsoft/lifecycle",
  );
  assert.equal(
    lifecycleNotificationUrl("https://h.example/hook/?k=1"),
    "https://h.example/hook/lifecycle?k=1",
    "the query string is kept",
  );
  const now = Date.parse("2026-01-01T00:00:00Z");
  assert.equal(subscriptionExpiry(now, 10_080), "2026-01-07T23:55:00Z", "the maximum less a margin");
  assert.equal(subscriptionExpiry(now, 10_080, 3600), "2026-01-01T01:00:00Z");
  assert.equal(subscriptionExpiry(now, 4_230, 10 * 86_400), "2026-01-03T22:25:00Z");
  assert.throws(() => subscriptionExpiry(now, 10_080, 0), ProviderError);

  const refused = (message: string, status = 400) =>
    new ProviderError("invalid", `Microsoft Graph subscriptions.create failed: HTTP ${status} ${message}`, {
      status,
      reason: "ExtensionError",
    });
  assert.equal(
    shorterExpiryLimit(
      refused("ExtensionError Subscription expiration can only be 4230 minutes in the future."),
      10_080,
    ),
    4_230,
  );
  assert.equal(
    shorterExpiryLimit(refused("ErrorInvalidParameter The expiration is too far ahead."), 10_080),
    4_230,
  );
  assert.equal(
    shorterExpiryLimit(refused("Subscription expiration can only be 10080 minutes in the future."), 10_080),
    undefined,
    "the same limit again is not retried",
  );
  assert.equal(
    shorterExpiryLimit(refused("ValidationError Subscription validation request failed."), 10_080),
    undefined,
  );
  assert.equal(shorterExpiryLimit(new ProviderError("transient", "expiration"), 10_080), undefined);

  const created = graphSubscription.parse(fixture("microsoft/subscription-create-response.json"));
  assert.equal(created.expirationDateTime, "2016-11-20T18:23:45.9356913Z");
});
