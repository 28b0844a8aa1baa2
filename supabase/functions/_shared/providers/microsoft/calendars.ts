/**
 * Graph calendars as the product sees them (docs/providers/microsoft.md B3): the summary the app
 * lists, and the paging links we may follow.
 */
import { type CalendarSummary, ProviderError } from "../types.ts";
import type { GraphCalendar } from "./schemas.ts";

/**
 * A Graph calendar as a {@link CalendarSummary}. Graph has no access roles, only `canEdit`: a calendar
 * we may write to is `writer`, any other `reader` (so the writable-roles check refuses it). The
 * default calendar is `primary`; its id is the real one, there is no alias.
 */
export function calendarSummaryFrom(calendar: GraphCalendar): CalendarSummary {
  return {
    id: calendar.id,
    summary: calendar.name,
    primary: calendar.isDefaultCalendar === true,
    access_role: calendar.canEdit ? "writer" : "reader",
  };
}

/**
 * The next page to read after a list answer, or undefined on the last page (B3). Graph's
 * `@odata.nextLink` is an absolute URL; we follow it only when it stays under our Graph base (same
 * origin and path prefix), because the request carries the staff member's access token: an answer
 * must never steer that token to another host.
 *
 * @param nextLink the page's `@odata.nextLink`, if any.
 * @param graphApiBase the configured base, e.g. `https://graph.microsoft.com/v1.0`.
 * @throws ProviderError `invalid` (reason `foreign_next_link`) for a link outside the base.
 */
export function nextPageUrl(nextLink: string | undefined, graphApiBase: string): URL | undefined {
  if (nextLink === undefined) return undefined;
  const base = new URL(`${graphApiBase.replace(/\/+$/, "")}/`);
  let next: URL;
  try {
    next = new URL(nextLink);
  } catch {
    next = new URL("invalid:");
  }
  if (
    next.origin !== base.origin || !next.pathname.startsWith(base.pathname) || next.username || next.password
  ) {
    throw new ProviderError("invalid", "Microsoft Graph answered a next-page link outside its base URL", {
      reason: "foreign_next_link",
    });
  }
  return next;
}
