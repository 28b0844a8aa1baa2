/**
 * `calendar-list-calendars` (and the seed's `google-calendar-list-calendars`): the calendars of the
 * signed-in staff member's own connected account, for choosing where appointments go.
 *
 * Gateway verify_jwt is on, and the JWT is verified here again (tenancy is decided in code). The
 * connection is the caller's own (staff.profile_id = sub); no request field can name another staff
 * member. The access token is refreshed first when it expires within 2 minutes, under a row lock so
 * concurrent calls refresh once (connections.ts).
 *
 * Input: GET, or POST with an empty body or `{}` (any field is refused).
 *
 * Output 200, the same for both names: a JSON array `[{id, summary, primary, access_role}]`
 * (`primary` boolean; `access_role` Google's accessRole: freeBusyReader | reader | writer | owner),
 * in the provider's order. Decision: the canonical name keeps the seed's bare array rather than an
 * object, because issue #2 and docs/api.md fix `[{id, summary, primary, access_role}]` for
 * `calendar-list-calendars` too, and one shape for both names means one handler with no routing on
 * the URL. The calendar currently used for sync and availability is readable by the app as
 * `staff_calendar_connections.selected_calendar_id` (granted to `authenticated` under RLS); it is
 * changed through `calendar-select-calendar`, which accepts only `owner` and `writer` calendars.
 *
 * Errors: 401 `missing_authorization` / `invalid_token`; 403 `forbidden_role`, `user_required`,
 * `not_staff`; 409 `ambiguous_staff`, `not_connected`, `needs_reconnect`, `insufficient_scope`;
 * 429 `rate_limited` (Retry-After); 503 `provider_unavailable`; 502 `provider_error`; 400
 * `invalid_json` / `invalid_request`; 405; 413; 415.
 */
import { z } from "zod";
import { authenticateUser } from "../auth.ts";
import { requireConnection, withAccessToken } from "../connections.ts";
import { getSql } from "../db/client.ts";
import { json, requireMethod } from "../http.ts";
import { providerFor } from "../providers/registry.ts";
import type { CalendarSummary } from "../providers/types.ts";
import { NO_STORE, readQueryOrJson } from "../request-input.ts";
import type { FunctionHandler } from "../serve.ts";
import { requireOwnStaff } from "../staff.ts";

export const listCalendars: FunctionHandler = async (req, ctx) => {
  requireMethod(req, "GET", "POST");
  const { config } = ctx;
  const caller = await authenticateUser(req, config);
  await readQueryOrJson(req, z.strictObject({}));
  const sql = getSql(config);
  const staff = await requireOwnStaff(sql, caller.userId);
  const connection = await requireConnection(sql, { tenantId: staff.tenant_id, staffId: staff.id });
  const provider = providerFor(connection.provider, config);
  const calendars = await withAccessToken(
    { sql, config, provider },
    connection,
    (token) => provider.listCalendars(token),
  );
  const body: CalendarSummary[] = calendars.map((c) => ({
    id: c.id,
    summary: c.summary,
    primary: c.primary,
    access_role: c.access_role,
  }));
  ctx.log("calendars_listed", { staff_id: staff.id, count: body.length });
  return json(body, 200, NO_STORE);
};
