/**
 * The zod schemas of the Microsoft answers we read (docs/providers/microsoft.md B1-B7) accept the
 * documented and observed bodies, let unknown fields through, and refuse what would mislead us.
 */
import assert from "node:assert/strict";
import {
  aadstsErrorBody,
  getScheduleResponse,
  graphCalendarsPage,
  graphErrorBody,
  graphEvent,
  microsoftIdTokenClaims,
} from "../../supabase/functions/_shared/providers/microsoft/schemas.ts";

const FIXTURES = new URL("../fixtures/microsoft/", import.meta.url);
const fixture = (path: string) => JSON.parse(Deno.readTextFileSync(new URL(path, FIXTURES)));

Deno.test("graphCalendarsPage: the documentation's list; canEdit and the default calendar; paging link", () => {
  const page = graphCalendarsPage.parse(fixture("calendars-list.json"));
  assert.equal(page.value.length, 1);
  assert.equal(page.value[0].id, "AAMkAGI2TGuLAAA=");
  assert.equal(page.value[0].name, "Calendar");
  assert.equal(page.value[0].canEdit, true);
  assert.equal(page.value[0].owner?.address, "samanthab@contoso.com");
  assert.equal(page["@odata.nextLink"], undefined, "one page: no next link");
  const next = graphCalendarsPage.parse({
    value: [{ id: "AAMkAGI2TGuLAAB=", name: "Shared", isDefaultCalendar: false }],
    "@odata.nextLink": "https://graph.microsoft.com/v1.0/me/calendars?$skip=10",
  });
  assert.equal(next["@odata.nextLink"], "https://graph.microsoft.com/v1.0/me/calendars?$skip=10");
  assert.equal(next.value[0].canEdit, false, "an absent canEdit is read as not writable");
  assert.deepEqual(graphCalendarsPage.parse({}).value, []);
  assert.ok(!graphCalendarsPage.safeParse({ value: [{ name: "no id" }] }).success);
  assert.ok(!graphCalendarsPage.safeParse({ value: [], "@odata.nextLink": "not a url" }).success);
});

Deno.test("getScheduleResponse: items, errors with null items, unknown statuses kept as strings", () => {
  const ok = getScheduleResponse.parse(fixture("get-schedule-response.json"));
  assert.equal(ok.value.length, 2);
  assert.equal(ok.value[1].scheduleItems?.length, 5);
  const failed = getScheduleResponse.parse({
    value: [{
      scheduleId: "x@contoso.com",
      scheduleItems: null,
      error: { responseCode: "5016", message: "m" },
    }],
  });
  assert.equal(failed.value[0].error?.responseCode, "5016");
  const future = getScheduleResponse.parse({
    value: [{
      scheduleId: "x",
      scheduleItems: [{
        status: "focusTime",
        start: { dateTime: "2026-01-05T09:00:00", timeZone: "UTC" },
        end: { dateTime: "2026-01-05T10:00:00", timeZone: "UTC" },
      }],
    }],
  });
  assert.equal(future.value[0].scheduleItems?.[0].status, "focusTime");
  assert.ok(
    !getScheduleResponse.safeParse({ value: [{ scheduleId: "x", scheduleItems: [{ status: "busy" }] }] })
      .success,
  );
});

Deno.test("graphErrorBody / aadstsErrorBody: the fixtures, both innerError spellings", () => {
  for (
    const file of [
      "400-invalidRange",
      "404-ErrorItemNotFound",
      "410-SyncStateNotFound",
      "429-TooManyRequests",
    ]
  ) {
    assert.ok(graphErrorBody.safeParse(fixture(`errors/${file}.json`)).success, file);
  }
  assert.equal(
    graphErrorBody.parse({ error: { code: "", innererror: { code: "x" } } }).error.innererror?.code,
    "x",
  );
  assert.ok(!graphErrorBody.safeParse({ error: "nope" }).success);
  const mfa = aadstsErrorBody.parse(fixture("oauth/error-invalid_grant-50076.json"));
  assert.equal(mfa.suberror, "basic_action");
  assert.deepEqual(mfa.error_codes, [50076]);
  assert.ok(!aadstsErrorBody.safeParse({ error_description: "no error" }).success);
});

Deno.test("graphEvent: the create answer; ids required; an ID token's tenant claims", () => {
  const e = graphEvent.parse(fixture("event-create-response.json"));
  assert.equal(e.changeKey, "/IUUrIl3PkG1JCSsPfU+8wAAGXjEpA==");
  assert.equal(e.isCancelled, false);
  assert.ok(!graphEvent.safeParse({ subject: "no id" }).success);
  const claims = microsoftIdTokenClaims.parse({
    iss: "https://login.microsoftonline.com/72f988bf-86f1-41af-91ab-2d7cd011db47/v2.0",
    tid: "72f988bf-86f1-41af-91ab-2d7cd011db47",
    sub: "AAAAAAAAAAAAAAAAAAAAAIkzqFVrSaSaFHy782bbtaQ",
    oid: "00000000-0000-0000-66f3-3332eca7ea81",
    preferred_username: "staff@contoso.com",
    aud: "00001111-aaaa-2222-bbbb-3333cccc4444",
  });
  assert.equal(claims.preferred_username, "staff@contoso.com");
  assert.ok(!microsoftIdTokenClaims.safeParse({ iss: "x", sub: "y" }).success, "tid is required");
});
