/**
 * The Microsoft part of the admin API, under `/_admin/microsoft` (CONTRACT.md "Microsoft admin API"):
 * accounts (tenant, mailbox time zone, calendars with canEdit/owner), busy items added directly,
 * event listings including deleted ones, grant revocation with a reason, token expiry, the refresh-token
 * reuse mode, calendarView's server page size, and the MailboxConcurrency report.
 */
import { z } from "zod";
import { AdminError, jsonResponse } from "./errors.ts";
import { GraphError } from "./ms-errors.ts";
import { handleMsInboundAdmin } from "./inbound-admin.ts";
import { adminInsertEvent, eventView } from "./ms-graph.ts";
import type { MsAccount, MsCalendar } from "./ms-state.ts";
import { resolveZone, UTC_ZONE } from "./ms-zones.ts";
import type { SandboxRuntime } from "./runtime.ts";

const email = z.string().trim().regex(/^[^\s@/]+@[^\s@/]+$/, "must be an email address")
  .transform((e) => e.toLowerCase());
const zone = z.string().min(1).refine((z) => !!resolveZone(z), "must be a Windows or IANA time zone");
const owner = z.strictObject({ name: z.string(), address: z.string() });

const accountBody = z.strictObject({
  email,
  displayName: z.string().min(1).optional(),
  tenantId: z.string().regex(
    /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i,
    "must be a GUID",
  ).transform((t) => t.toLowerCase()).optional(),
  tenantDomain: z.string().min(1).transform((t) => t.toLowerCase()).optional(),
  timeZone: zone.optional(),
  calendars: z.array(z.strictObject({
    id: z.string().min(1).optional(),
    name: z.string().min(1),
    canEdit: z.boolean().optional(),
    owner: owner.optional(),
  })).optional(),
});
const accountPatch = z.strictObject({
  displayName: z.string().min(1).optional(),
  timeZone: zone.optional(),
  scheduleError: z.strictObject({ responseCode: z.string().min(1), message: z.string().min(1) }).nullable()
    .optional(),
});
const calendarPatch = z.strictObject({
  name: z.string().min(1).optional(),
  canEdit: z.boolean().optional(),
  owner: owner.optional(),
});
const dtz = z.strictObject({ dateTime: z.string().min(1), timeZone: z.string().min(1) });
const eventBody = z.strictObject({
  subject: z.string().optional(),
  start: dtz,
  end: dtz,
  isAllDay: z.boolean().optional(),
  showAs: z.enum(["free", "tentative", "busy", "oof", "workingElsewhere", "unknown"]).optional(),
  isCancelled: z.boolean().optional(),
  /** Graph's recurrence resource: a series master (ms-series.ts). */
  recurrence: z.unknown().optional(),
});
const revokeBody = z.strictObject({
  email,
  reason: z.enum(["admin", "password_change", "consent_revoked", "inactivity", "mfa_required"]).default(
    "admin",
  ),
});
const emailBody = z.strictObject({ email });
const settingsBody = z.strictObject({
  refreshTokenReuse: z.enum(["reject", "revoke_grant", "allow"]).optional(),
  calendarViewMaxPageSize: z.number().int().positive().nullable().optional(),
});

const ok = (body: unknown = { ok: true }) => jsonResponse(body);

async function readJson<T extends z.ZodType>(req: Request, schema: T): Promise<z.infer<T>> {
  let raw: unknown;
  try {
    const text = await req.text();
    raw = text ? JSON.parse(text) : {};
  } catch {
    throw new AdminError(400, "invalid_json", "The request body is not valid JSON");
  }
  const parsed = schema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new AdminError(400, "invalid_request", `${issue.path.join(".") || "body"}: ${issue.message}`);
  }
  return parsed.data;
}

function calendarAdminView(c: MsCalendar) {
  return {
    id: c.id,
    name: c.name,
    isDefaultCalendar: c.isDefaultCalendar,
    canEdit: c.canEdit,
    owner: c.owner,
  };
}

function accountView(a: MsAccount) {
  return {
    email: a.email,
    displayName: a.displayName,
    oid: a.oid,
    tenantId: a.tenantId,
    tenantDomain: a.tenantDomain,
    timeZone: a.timeZone,
    ...(a.scheduleError ? { scheduleError: a.scheduleError } : {}),
    calendars: Object.values(a.calendars).map(calendarAdminView),
  };
}

/**
 * Handle `/_admin/microsoft/**` (`seg` = path segments after `microsoft`, decoded).
 * @throws AdminError 404 for unknown routes/accounts/calendars, 400 for invalid input.
 */
export async function handleMicrosoftAdmin(
  sb: SandboxRuntime,
  req: Request,
  url: URL,
  seg: string[],
): Promise<Response> {
  const ms = sb.state.microsoft;
  const accountOf = (e: string) => {
    const a = ms.account(e);
    if (!a) throw new AdminError(404, "not_found", `No Microsoft sandbox account ${e}`);
    return a;
  };
  const calendarOf = (e: string, id: string) => {
    const cal = ms.calendar(accountOf(e), id);
    if (!cal) throw new AdminError(404, "not_found", `Account ${e} has no calendar ${id}`);
    return cal;
  };
  const settingsView = () => ({
    refreshTokenReuse: ms.refreshReuse,
    calendarViewMaxPageSize: ms.calendarViewMaxPageSize ?? null,
  });
  const route = `${req.method} ${
    seg.map((s, i) => (seg[0] === "accounts" && (i === 1 || i === 3) ? "*" : s)).join("/")
  }`;
  switch (route) {
    case "POST accounts": {
      const b = await readJson(req, accountBody);
      const a = ms.ensureAccount(b.email, b);
      for (const c of b.calendars ?? []) ms.putCalendar(a, c);
      return ok(accountView(a));
    }
    case "GET accounts/*":
      return ok(accountView(accountOf(seg[1])));
    case "PATCH accounts/*": {
      const a = accountOf(seg[1]);
      const b = await readJson(req, accountPatch);
      if (b.displayName) a.displayName = b.displayName;
      if (b.timeZone) a.timeZone = b.timeZone;
      if (b.scheduleError === null) delete a.scheduleError;
      else if (b.scheduleError) a.scheduleError = b.scheduleError;
      sb.state.changed();
      return ok(accountView(a));
    }
    case "PATCH accounts/*/calendars/*": {
      const cal = calendarOf(seg[1], seg[3]);
      const b = await readJson(req, calendarPatch);
      if (b.canEdit !== undefined && cal.isDefaultCalendar && !b.canEdit) {
        throw new AdminError(400, "invalid_request", "the default calendar is always editable");
      }
      ms.putCalendar(accountOf(seg[1]), {
        id: cal.id,
        name: b.name ?? cal.name,
        canEdit: b.canEdit,
        owner: b.owner,
      });
      return ok(calendarAdminView(cal));
    }
    case "DELETE accounts/*/calendars/*": {
      const cal = calendarOf(seg[1], seg[3]);
      if (cal.isDefaultCalendar) {
        throw new AdminError(400, "invalid_request", "the default calendar cannot be deleted");
      }
      delete accountOf(seg[1]).calendars[cal.id];
      sb.state.changed();
      return ok();
    }
    case "GET accounts/*/calendars/*/events": {
      const cal = calendarOf(seg[1], seg[3]);
      const includeDeleted = url.searchParams.get("includeDeleted") === "true";
      // In UTC, as documented (and as a Graph read without `Prefer: outlook.timezone` answers), not in
      // the zones the event was written with.
      const items = Object.values(cal.events).filter((e) => includeDeleted || !e.deletedAt).map((e) => ({
        ...eventView(e, UTC_ZONE, url.origin),
        ...(e.deletedAt ? { deletedAt: e.deletedAt } : {}),
      }));
      return ok({ items });
    }
    case "POST accounts/*/calendars/*/events": {
      const cal = calendarOf(seg[1], seg[3]);
      const b = await readJson(req, eventBody);
      try {
        return ok(eventView(adminInsertEvent(sb, cal, b), undefined, url.origin));
      } catch (err) {
        if (err instanceof GraphError) throw new AdminError(400, "invalid_request", err.message);
        throw err;
      }
    }
    case "POST grants/revoke": {
      const b = await readJson(req, revokeBody);
      const grants = ms.grantsFor({ email: b.email }).filter((g) => !g.revoked);
      for (const g of grants) ms.revokeGrant(g, b.reason);
      return ok({ revoked: grants.length });
    }
    case "POST tokens/expire":
      return ok({ expired: ms.expireAccessTokens((await readJson(req, emailBody)).email) });
    case "GET grants": {
      const filter = url.searchParams.get("email");
      return ok({
        grants: ms.grantsFor(filter ? { email: filter } : {}).map((g) => ({
          email: g.email,
          clientId: g.clientId,
          scopes: g.scopes,
          revoked: g.revoked ?? null,
          hasRefreshToken: !!g.refreshToken,
          refreshCount: g.refreshCount,
          rotatedRefreshTokens: g.rotatedRefreshTokens.length,
          reuseCount: g.reuseCount,
          createdAt: g.createdAt,
        })),
      });
    }
    case "POST settings": {
      const b = await readJson(req, settingsBody);
      if (b.refreshTokenReuse) ms.refreshReuse = b.refreshTokenReuse;
      if (b.calendarViewMaxPageSize !== undefined) {
        ms.calendarViewMaxPageSize = b.calendarViewMaxPageSize ?? undefined;
      }
      return ok(settingsView());
    }
    case "GET settings":
      return ok(settingsView());
    case "GET concurrency":
      return ok(sb.mailboxes.report());
    case "POST concurrency/reset":
      sb.mailboxes.reset();
      return ok();
  }
  const inboundAnswer = await handleMsInboundAdmin(sb, req, url, seg);
  if (inboundAnswer) return inboundAnswer;
  throw new AdminError(404, "not_found", `No admin route for ${req.method} ${url.pathname}`);
}
