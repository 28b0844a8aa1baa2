/**
 * Graph calendars to the summaries the app lists, and the next-page links we follow
 * (docs/providers/microsoft.md B3), including the link that tries to take the access token elsewhere.
 */
import assert from "node:assert/strict";
import {
  calendarSummaryFrom,
  nextPageUrl,
} from "../../supabase/functions/_shared/providers/microsoft/calendars.ts";
import { graphCalendarsPage } from "../../supabase/functions/_shared/providers/microsoft/schemas.ts";
import { ProviderError, WRITABLE_ACCESS_ROLES } from "../../supabase/functions/_shared/providers/types.ts";

const GRAPH = "https://graph.microsoft.com/v1.0";

Deno.test("calendarSummaryFrom: the documentation's calendar; canEdit decides writability", () => {
  const page = graphCalendarsPage.parse(
    JSON.parse(Deno.readTextFileSync(new URL("../fixtures/microsoft/calendars-list.json", import.meta.url))),
  );
  assert.deepEqual(calendarSummaryFrom(page.value[0]), {
    id: "AAMkAGI2TGuLAAA=",
    summary: "Calendar",
    primary: false,
    access_role: "writer",
  });
  const readOnly = calendarSummaryFrom({ id: "x", name: "Holidays", canEdit: false });
  assert.equal(readOnly.access_role, "reader");
  assert.ok(!WRITABLE_ACCESS_ROLES.includes(readOnly.access_role), "a read-only calendar cannot be selected");
  assert.ok(WRITABLE_ACCESS_ROLES.includes("writer"));
  assert.equal(
    calendarSummaryFrom({ id: "d", name: "Calendar", canEdit: true, isDefaultCalendar: true }).primary,
    true,
  );
});

Deno.test("nextPageUrl: Graph's own links are followed, the last page ends, foreign links are refused", () => {
  assert.equal(nextPageUrl(undefined, GRAPH), undefined);
  assert.equal(
    nextPageUrl(`${GRAPH}/me/calendars?$skip=10`, `${GRAPH}/`)?.href,
    "https://graph.microsoft.com/v1.0/me/calendars?$skip=10",
  );
  assert.equal(
    nextPageUrl(
      "http://127.0.0.1:54400/graph/v1.0/me/calendars?$skiptoken=x",
      "http://127.0.0.1:54400/graph/v1.0",
    )
      ?.searchParams.get("$skiptoken"),
    "x",
  );
  // Attacks: a page whose link would send the bearer token to another host, scheme, port, API
  // version, or through credentials in the URL.
  for (
    const link of [
      "https://evil.example/v1.0/me/calendars",
      "http://graph.microsoft.com/v1.0/me/calendars",
      "https://graph.microsoft.com:8443/v1.0/me/calendars",
      "https://graph.microsoft.com.evil.example/v1.0/me/calendars",
      "https://graph.microsoft.com/beta/me/calendars",
      "https://user:pass@graph.microsoft.com/v1.0/me/calendars",
      "/v1.0/me/calendars",
      "not a url",
    ]
  ) {
    assert.throws(
      () => nextPageUrl(link, GRAPH),
      (e: unknown) =>
        e instanceof ProviderError && e.kind === "invalid" && e.details.reason === "foreign_next_link",
      link,
    );
  }
});
