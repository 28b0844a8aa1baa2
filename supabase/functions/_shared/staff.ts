/**
 * Who the caller is in the host app, and what they may touch.
 *
 * A user token's `sub` is mapped to staff rows through `staff.profile_id` (docs/architecture.md,
 * "Functions"); a staff id in a request body is never trusted without that check. Tenant admin
 * status goes through `calendar_private.is_tenant_admin(tenant_id)`, evaluated with the caller's
 * verified claims in `request.jwt.claims` exactly as PostgREST would, so an app that replaces that
 * one SQL function changes who is an admin everywhere.
 */
import type { Caller } from "./auth.ts";
import type { Sql } from "./db/client.ts";
import { HttpError } from "./http.ts";

/** A host-app staff row, reduced to what tenancy checks and availability need. */
export interface StaffRecord {
  id: string;
  tenant_id: string;
  profile_id: string | null;
  /** IANA zone the staff member works in (the seed's default `UTC`). */
  time_zone: string;
}

/** Every staff row of an auth user (normally one). */
export async function staffForUser(sql: Sql, userId: string): Promise<StaffRecord[]> {
  return await sql<StaffRecord[]>`
    select id, tenant_id, profile_id, time_zone from public.staff where profile_id = ${userId} order by id`;
}

/**
 * The signed-in user's own staff row.
 * @throws HttpError 403 `not_staff` when the user is no staff member; 409 `ambiguous_staff` when the
 *   user is staff in several tenants (the host app must give each membership its own login).
 */
export async function requireOwnStaff(sql: Sql, userId: string): Promise<StaffRecord> {
  const rows = await staffForUser(sql, userId);
  if (rows.length === 0) {
    throw new HttpError(403, "not_staff", "the signed-in user is not a staff member of any tenant");
  }
  if (rows.length > 1) {
    throw new HttpError(
      409,
      "ambiguous_staff",
      "the signed-in user is a staff member in several tenants; a calendar belongs to one staff record",
    );
  }
  return rows[0];
}

/** A staff row by id, or null. */
export async function findStaff(sql: Sql, staffId: string): Promise<StaffRecord | null> {
  const [row] = await sql<StaffRecord[]>`
    select id, tenant_id, profile_id, time_zone from public.staff where id = ${staffId}`;
  return row ?? null;
}

/** @throws HttpError 404 `staff_not_found` when no staff member has this id. */
export async function requireStaff(sql: Sql, staffId: string): Promise<StaffRecord> {
  const staff = await findStaff(sql, staffId);
  if (!staff) throw new HttpError(404, "staff_not_found", "no staff member has this staff_id");
  return staff;
}

/**
 * Whether a signed-in user administers a tenant, by `calendar_private.is_tenant_admin` evaluated with
 * the user's verified claims (transaction-local `request.jwt.claims`).
 */
export async function isTenantAdmin(
  sql: Sql,
  caller: Extract<Caller, { kind: "user" }>,
  tenantId: string,
): Promise<boolean> {
  return await sql.begin(async (tx) => {
    await tx`select set_config('request.jwt.claims', ${JSON.stringify(caller.claims)}, true)`;
    const [row] = await tx<{ admin: boolean }[]>`
      select coalesce(calendar_private.is_tenant_admin(${tenantId}::uuid), false) as admin`;
    return row.admin;
  });
}

/**
 * A staff member whose calendar data (busy times) the caller may read: any staff of the caller's own
 * tenant(s), or anyone for the service role. One statement either way: availability answers from the
 * busy cache in a few milliseconds, and each round trip is a visible share of that.
 * @throws HttpError 403 `not_staff` (user with no staff row), 404 `staff_not_found`, 403
 *   `forbidden_tenant` (staff of another tenant), checked in that order.
 */
export async function authorizeTenantRead(sql: Sql, caller: Caller, staffId: string): Promise<StaffRecord> {
  if (caller.kind === "service") return await requireStaff(sql, staffId);
  const [row] = await sql<(Partial<StaffRecord> & { caller_is_staff: boolean; same_tenant: boolean })[]>`
    select t.id, t.tenant_id, t.profile_id, t.time_zone,
      exists (select 1 from public.staff m where m.profile_id = ${caller.userId}) as caller_is_staff,
      exists (
        select 1 from public.staff m where m.profile_id = ${caller.userId} and m.tenant_id = t.tenant_id
      ) as same_tenant
    from (select ${staffId}::uuid as id) q
    left join public.staff t on t.id = q.id`;
  const { caller_is_staff, same_tenant, ...target } = row;
  if (!caller_is_staff) {
    throw new HttpError(403, "not_staff", "the signed-in user is not a staff member of any tenant");
  }
  if (!target.id) throw new HttpError(404, "staff_not_found", "no staff member has this staff_id");
  if (!same_tenant) {
    throw new HttpError(403, "forbidden_tenant", "this staff member belongs to another tenant");
  }
  return target as StaffRecord;
}

/**
 * A staff member whose connection the caller may manage (disconnect): the caller's own staff row
 * (when `staffId` is omitted or names it), or any staff of a tenant the caller administers.
 * @throws HttpError 403 `not_staff`, 409 `ambiguous_staff` (no staffId and several rows),
 *   404 `staff_not_found`, 403 `forbidden_tenant` (another tenant), 403 `forbidden` (same tenant,
 *   not an admin).
 */
export async function authorizeStaffManage(
  sql: Sql,
  caller: Extract<Caller, { kind: "user" }>,
  staffId?: string,
): Promise<StaffRecord> {
  if (!staffId) return await requireOwnStaff(sql, caller.userId);
  const mine = await staffForUser(sql, caller.userId);
  if (mine.length === 0) {
    throw new HttpError(403, "not_staff", "the signed-in user is not a staff member of any tenant");
  }
  const target = await requireStaff(sql, staffId);
  if (mine.some((s) => s.id === target.id)) return target;
  if (!mine.some((s) => s.tenant_id === target.tenant_id)) {
    throw new HttpError(403, "forbidden_tenant", "this staff member belongs to another tenant");
  }
  if (!(await isTenantAdmin(sql, caller, target.tenant_id))) {
    throw new HttpError(403, "forbidden", "only a tenant admin may manage another staff member's calendar");
  }
  return target;
}
