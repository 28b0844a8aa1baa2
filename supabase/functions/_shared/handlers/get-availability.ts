/**
 * `calendar-get-availability` (and the seed's `google-calendar-get-availability`): when a staff
 * member is busy, from their selected calendar, for offering open slots.
 *
 * Gateway verify_jwt is off; the caller is verified here (auth.ts `authenticate`). Callers: a
 * signed-in user who is staff of the same tenant as the staff member asked about, or the service
 * role (server-side callers: a secret API key in `apikey` or as the bearer token, or the legacy
 * service_role JWT).
 *
 * Input, POST JSON (unknown fields refused):
 * `{staff_id: uuid, time_min: ISO 8601 with offset, time_max: ISO 8601 with offset}`; time_max after
 * time_min; at most 62 days; starting at most 366 days ago and ending at most 732 days ahead.
 *
 * Output 200: `{busy: [{start, end}], source: "cache" | "live", as_of}`: half-open intervals in ISO
 * 8601 UTC (`...Z`), clipped to the window, sorted and merged. Nothing else about events is ever
 * returned. `source` says whether the busy cache answered (its channel healthy and current, the window
 * inside what it covers: calendar_private.busy_cache_state) or the provider did; `as_of` (ISO 8601
 * UTC) is the cache's last sync, or when the live read began. Both are additive to the seed's `{busy}`.
 *
 * Errors: 401 `missing_authorization` / `invalid_token`; 403 `forbidden_role` (anon key),
 * `not_staff`, `forbidden_tenant`; 404 `staff_not_found`; 409 `not_connected`, `needs_reconnect`,
 * `calendar_not_found` (the selected calendar is gone: never reported as free), `insufficient_scope`;
 * 429 `rate_limited` with Retry-After; 503 `provider_unavailable`; 502 `provider_error`;
 * 400 `invalid_json`, `invalid_request`, `invalid_range`, `range_too_long`, `range_out_of_bounds`;
 * 405; 413; 415.
 */
import { z } from "zod";
import { authenticate } from "../auth.ts";
import { checkWindow, readAvailability } from "../availability.ts";
import { getSql } from "../db/client.ts";
import { json, requireMethod } from "../http.ts";
import { NO_STORE, readQueryOrJson } from "../request-input.ts";
import type { FunctionHandler } from "../serve.ts";
import { authorizeTenantRead } from "../staff.ts";

const instant = z.iso.datetime({ offset: true, error: "must be an ISO 8601 instant with an offset" });

const inputSchema = z.strictObject({
  staff_id: z.guid({ error: "must be a staff id (uuid)" }),
  time_min: instant,
  time_max: instant,
});

export const getAvailability: FunctionHandler = async (req, ctx) => {
  requireMethod(req, "POST");
  const { config } = ctx;
  const caller = await authenticate(req, config);
  const input = await readQueryOrJson(req, inputSchema);
  const window = checkWindow(input.time_min, input.time_max);
  const sql = getSql(config);
  const staff = await authorizeTenantRead(sql, caller, input.staff_id);
  const { busy, source, asOf, cacheMiss } = await readAvailability(
    { sql, config },
    { tenantId: staff.tenant_id, staffId: staff.id },
    window,
    staff.time_zone,
  );
  ctx.log("availability_read", {
    staff_id: staff.id,
    caller: caller.kind,
    intervals: busy.length,
    source,
    cache_miss: cacheMiss,
  });
  return json({ busy, source, as_of: asOf }, 200, NO_STORE);
};
