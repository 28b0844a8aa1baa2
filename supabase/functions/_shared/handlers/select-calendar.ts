/**
 * `calendar-select-calendar`: the signed-in staff member chooses the calendar their appointments
 * are written to and their busy times are read from.
 *
 * Only a calendar the connected account can write to may be chosen: its access role is read live
 * from the provider (Google calendarList.get) at the moment of choosing, since shares change at any
 * time and a list the app fetched earlier may be stale. `owner` and `writer` are accepted; a
 * `reader` or `freeBusyReader` calendar, or one not in the account's list, is refused and nothing
 * changes. This replaces the bare column grant on `selected_calendar_id` (revoked in migration
 * 20261129000400), which let any value through.
 *
 * Gateway verify_jwt is on, and the JWT is verified here again. The connection is the caller's own
 * (staff.profile_id = sub); no request field can name another staff member. Choosing another
 * calendar re-queues the staff member's work by the connection trigger (events move to the new
 * calendar; rows dead-lettered with `calendar_not_found` run again), and the push channel moves with
 * it: a new channel on the chosen calendar, the old one stopped (channel jobs, inbound/channels.ts).
 *
 * Input: POST JSON `{calendar_id: string}` (1-1024 characters, no control characters; `primary`
 * names the account's own calendar and is stored as given). Unknown fields, and query parameters on
 * the POST, are refused.
 *
 * Output 200: `{selected_calendar_id, changed, calendar: {id, summary, primary, access_role,
 * time_zone}}`; `changed` is false when it was already the selected calendar; `time_zone` is the
 * calendar's IANA zone or null.
 *
 * Errors: 401 `missing_authorization` / `invalid_token`; 403 `forbidden_role`, `user_required`,
 * `not_staff`, `calendar_not_writable` (the account may only read it); 404 `calendar_not_found` (not
 * in the account's calendar list); 409 `ambiguous_staff`, `not_connected`, `needs_reconnect`,
 * `insufficient_scope`; 429 `rate_limited` (Retry-After); 503 `provider_unavailable`; 502
 * `provider_error`; 400 `invalid_json` / `invalid_request`; 405; 413; 415.
 */
import { z } from "zod";
import { authenticateUser } from "../auth.ts";
import { requireConnection, withAccessToken } from "../connections.ts";
import { getSql } from "../db/client.ts";
import { requestChannel } from "../inbound/channels.ts";
import { HttpError, json, requireMethod } from "../http.ts";
import { providerFor } from "../providers/registry.ts";
import { type CalendarDetails, ProviderError, WRITABLE_ACCESS_ROLES } from "../providers/types.ts";
import { NO_STORE, readQueryOrJson } from "../request-input.ts";
import type { FunctionHandler } from "../serve.ts";
import { requireOwnStaff } from "../staff.ts";

/** True when the text has an ASCII control character (C0 or DEL): never part of a calendar id. */
const hasControl = (text: string) =>
  [...text].some((c) => c.charCodeAt(0) < 0x20 || c.charCodeAt(0) === 0x7f);

const inputSchema = z.strictObject({
  calendar_id: z.string().min(1).max(1024).refine((v) => !hasControl(v), {
    error: "must not contain control characters",
  }),
});

export const selectCalendar: FunctionHandler = async (req, ctx) => {
  requireMethod(req, "POST");
  const { config } = ctx;
  const caller = await authenticateUser(req, config);
  const input = await readQueryOrJson(req, inputSchema);
  const calendarId = input.calendar_id;
  const sql = getSql(config);
  const staff = await requireOwnStaff(sql, caller.userId);
  const connection = await requireConnection(sql, { tenantId: staff.tenant_id, staffId: staff.id });
  const provider = providerFor(connection.provider, config);
  let calendar: CalendarDetails;
  try {
    calendar = await withAccessToken({ sql, config, provider }, connection, async (token) => {
      try {
        return await provider.getCalendar(token, calendarId);
      } catch (err) {
        if (err instanceof ProviderError && err.code === "not_found") throw new CalendarNotListed();
        throw err;
      }
    });
  } catch (err) {
    if (!(err instanceof CalendarNotListed)) throw err;
    throw new HttpError(
      404,
      "calendar_not_found",
      "the connected account has no such calendar in its calendar list; choose one that calendar-list-calendars returns",
    );
  }
  if (!WRITABLE_ACCESS_ROLES.includes(calendar.access_role)) {
    ctx.log("calendar_select_refused", { staff_id: staff.id, access_role: calendar.access_role });
    throw new HttpError(
      403,
      "calendar_not_writable",
      `the connected account has '${calendar.access_role}' access to this calendar and cannot add events ` +
        `to it; choose a calendar with 'owner' or 'writer' access`,
    );
  }
  // Only a connection still workable may change; the trigger re-queues the staff member's work.
  const updated = await sql<{ id: string }[]>`
    update public.staff_calendar_connections c set selected_calendar_id = ${calendarId}, updated_at = now()
    where c.id = ${connection.id} and c.staff_id = ${staff.id} and calendar_private.connection_is_workable(c)
    returning c.id`;
  if (updated.length === 0) {
    throw new HttpError(409, "not_connected", "the calendar connection changed meanwhile; connect it again");
  }
  const changed = connection.selected_calendar_id !== calendarId;
  // The push channel follows the calendar: one on the new calendar, the old one stopped (a job each).
  await requestChannel(sql, config, {
    connectionId: connection.id,
    provider: connection.provider,
    replace: false,
  });
  ctx.log("calendar_selected", { staff_id: staff.id, access_role: calendar.access_role, changed });
  return json(
    {
      selected_calendar_id: calendarId,
      changed,
      calendar: {
        id: calendar.id,
        summary: calendar.summary,
        primary: calendar.primary,
        access_role: calendar.access_role,
        time_zone: calendar.time_zone,
      },
    },
    200,
    NO_STORE,
  );
};

/** Internal: the provider does not list the calendar (kept apart from the generic 409 mapping). */
class CalendarNotListed extends Error {
  constructor() {
    super("calendar not in the account's list");
    this.name = "CalendarNotListed";
  }
}
