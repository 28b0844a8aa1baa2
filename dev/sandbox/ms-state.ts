/**
 * The Microsoft half of the sandbox's world (persisted in the state file next to Google's): tenants'
 * users with their mailbox time zone and calendars, Outlook events, OAuth grants whose refresh tokens
 * rotate on every use, access tokens, and the per-mailbox `transactionId` index that makes creates
 * idempotent (CONTRACT.md, "Microsoft").
 */
import { base64url, randomBase64url, sha256Hex } from "./ids.ts";

/** A calendar's owner as Graph reports it. */
export interface MsEmailAddress {
  name: string;
  address: string;
}

/** A date-time as the client sent it: local wall clock (no offset) and the zone name it used. */
export interface MsDateTime {
  dateTime: string;
  timeZone: string;
}

/** A stored Outlook event. Times are kept as instants; all-day events as dates (floating). */
export interface MsEvent {
  id: string;
  calendarId: string;
  transactionId?: string;
  subject: string;
  body: { contentType: "text" | "html"; content: string };
  showAs: "free" | "tentative" | "busy" | "oof" | "workingElsewhere" | "unknown";
  isAllDay: boolean;
  /** A meeting its organizer cancelled, still in this calendar (admin-set; Graph creates never are). */
  isCancelled?: boolean;
  /** Epoch ms of the start/end for timed events. */
  startMs: number;
  endMs: number;
  /** `yyyy-mm-dd` for all-day events (end exclusive). */
  startDate?: string;
  endDate?: string;
  /** The zone names the client used (`originalStartTimeZone` / `originalEndTimeZone`). */
  startZone: string;
  endZone: string;
  location: string;
  sensitivity: "normal" | "personal" | "private" | "confidential";
  importance: "low" | "normal" | "high";
  categories: string[];
  isReminderOn: boolean;
  reminderMinutesBeforeStart: number;
  attendees: unknown[];
  /** The organizer (the mailbox owner for events created through Graph). */
  organizer?: MsEmailAddress;
  changeKey: string;
  iCalUId: string;
  /** RFC 3339 UTC with 7 fractional digits. */
  createdDateTime: string;
  lastModifiedDateTime: string;
  /** Set when deleted through Graph (kept for the admin API's includeDeleted listing). */
  deletedAt?: string;
  /** Value of the mailbox change counter at the last change (calendarView/delta; absent = before it). */
  changeSeq?: number;
  /** Value of the change counter when the event was created. */
  createdSeq?: number;
  /** A series master's recurrence (ms-series.ts). */
  recurrence?: {
    pattern: { type: string; interval: number; [k: string]: unknown };
    range: { type: string; startDate: string; recurrenceTimeZone?: string; [k: string]: unknown };
  };
  /** For an occurrence or exception: its master's id, its original start (epoch ms) and its kind. */
  seriesMasterId?: string;
  originalStartMs?: number;
  occurrenceType?: "occurrence" | "exception";
}

/** A Graph change notification's `changeType`. */
export type MsChangeType = "created" | "updated" | "deleted";

/** One calendar of a user (default, shared or read-only). */
export interface MsCalendar {
  id: string;
  name: string;
  color: string;
  hexColor: string;
  isDefaultCalendar: boolean;
  canEdit: boolean;
  canShare: boolean;
  canViewPrivateItems: boolean;
  isRemovable: boolean;
  owner: MsEmailAddress;
  changeKey: string;
  events: Record<string, MsEvent>;
  /** Bumped to invalidate every delta token of this calendar (410 SyncStateNotFound). */
  syncGeneration?: number;
}

/** A per-schedule error getSchedule reports for this user (admin-injected), e.g. `5016` no mailbox. */
export interface MsScheduleError {
  responseCode: string;
  message: string;
}

/** A work/school account in a tenant. */
export interface MsAccount {
  /** Lowercased UPN / mail. */
  email: string;
  displayName: string;
  /** Object id (GUID), stable per account. */
  oid: string;
  tenantId: string;
  /** The tenant's verified domain (the email's domain unless set). */
  tenantDomain: string;
  /** Mailbox time zone (Windows or IANA name), shown in getSchedule's workingHours. */
  timeZone: string;
  createdAt: string;
  calendars: Record<string, MsCalendar>;
  /** transactionId -> event id (per mailbox). */
  transactionIds: Record<string, string>;
  scheduleError?: MsScheduleError;
}

/** Why a grant stopped working, and the AADSTS answer a refresh then gets. */
export type MsRevocation = "admin" | "password_change" | "consent_revoked" | "inactivity" | "mfa_required";

/** One consent's token family: the newest refresh token and every one it replaced. */
export interface MsGrant {
  id: string;
  email: string;
  clientId: string;
  /** Canonical short names (`Calendars.ReadWrite`, `offline_access`, `openid`, ...). */
  scopes: string[];
  refreshToken?: string;
  rotatedRefreshTokens: string[];
  revoked?: MsRevocation;
  refreshCount: number;
  /** Presentations of an already rotated refresh token. */
  reuseCount: number;
  createdAt: string;
}

/** An issued Graph access token. */
export interface MsAccessToken {
  grantId: string;
  scopes: string[];
  /** Epoch ms. */
  expiresAt: number;
}

/** Everything Microsoft the state file holds. */
export interface MsData {
  accounts: Record<string, MsAccount>;
  grants: Record<string, MsGrant>;
  accessTokens: Record<string, MsAccessToken>;
  /** Event change counter (calendarView/delta tokens refer to it); absent in older state files. */
  changeSeq?: number;
}

/** An issued authorization code (single use, 10 minutes; not persisted). */
export interface MsAuthorizationCode {
  clientId: string;
  redirectUri: string;
  email: string;
  scopes: string[];
  codeChallenge: string;
  nonce?: string;
  tenant: string;
  expiresAt: number;
  redeemed: boolean;
}

/** A consent page waiting for its decision (not persisted). */
export interface MsPendingAuthorization {
  id: string;
  tenant: string;
  clientId: string;
  redirectUri: string;
  scopes: string[];
  state?: string;
  codeChallenge: string;
  nonce?: string;
  loginHint?: string;
  responseMode: "query" | "form_post" | "fragment";
  expiresAt: number;
}

/**
 * What the token endpoint does with a refresh token that was already rotated away:
 * `reject` (default): 400 invalid_grant AADSTS70000, the newest token keeps working;
 * `revoke_grant`: the same answer, and the whole grant is revoked (OAuth 2.1 reuse detection);
 * `allow`: accepted, as Entra documents ("refresh tokens aren't revoked when used").
 */
export type RefreshReuseMode = "reject" | "revoke_grant" | "allow";

/** A fresh, empty Microsoft world. */
export const emptyMsData = (): MsData => ({ accounts: {}, grants: {}, accessTokens: {} });

/** A GUID derived from a string (stable tenant and object ids). */
export function stableGuid(seed: string): string {
  const h = sha256Hex(seed);
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-a${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

/** An Outlook-looking item id (`AAMkAG…=`), URL-safe base64. */
export const newOutlookId = (): string => `AAMkAG${randomBase64url(42)}AAA=`;
/** A change key (base64, 16 bytes + counter). */
export const newChangeKey = (): string =>
  btoa(String.fromCharCode(...crypto.getRandomValues(new Uint8Array(21))));
/** RFC 3339 UTC with 7 fractional digits, as Graph writes createdDateTime. */
export const graphTimestamp = (ms: number): string => new Date(ms).toISOString().replace("Z", "0000Z");

/** Access tokens: opaque (Graph tokens must be treated as opaque, B1.3). */
export const newMsAccessToken = (): string => `EwB${randomBase64url(90)}`;
/** Refresh tokens in the visible `0.A` form of Entra's. */
export const newMsRefreshToken = (): string => `0.AV${randomBase64url(96)}`;
/** Authorization codes in the visible `0.A` form. */
export const newMsAuthorizationCode = (): string => `0.AXo${randomBase64url(64)}`;

/** Operations on the Microsoft data (mutators report changes so the state file is saved). */
export class MicrosoftStore {
  readonly pending = new Map<string, MsPendingAuthorization>();
  readonly codes = new Map<string, MsAuthorizationCode>();
  refreshReuse: RefreshReuseMode = "reject";
  /** Called after every event change (change notifications, ms-subscriptions.ts). */
  onEventChange: (cal: MsCalendar, ev: MsEvent, changeType: MsChangeType) => void = () => {};
  /** Server-driven paging: at most this many events per calendarView page, whatever `$top` asks. */
  calendarViewMaxPageSize: number | undefined = undefined;
  private refreshIndex = new Map<string, string>();

  constructor(private readonly data: () => MsData, private readonly changed: () => void) {
    this.reindex();
  }

  /** Rebuild the refresh-token index (after load or reset) and clear transient state. */
  reindex(): void {
    this.refreshIndex.clear();
    for (const g of Object.values(this.data().grants)) {
      if (g.refreshToken) this.refreshIndex.set(g.refreshToken, g.id);
      for (const t of g.rotatedRefreshTokens) this.refreshIndex.set(t, g.id);
    }
  }

  /** Forget pending consents, codes and settings (the data itself is reset by SandboxState). */
  resetTransient(): void {
    this.pending.clear();
    this.codes.clear();
    this.refreshReuse = "reject";
    this.calendarViewMaxPageSize = undefined;
    this.reindex();
  }

  /** The account for `email` (case-insensitive). */
  account(email: string): MsAccount | undefined {
    return this.data().accounts[email.toLowerCase()];
  }

  /**
   * The account for `email`, created on first use in the tenant of its domain, with Outlook's usual
   * calendars: "Calendar" (default, editable), "Birthdays" and "United States holidays" (read-only).
   */
  ensureAccount(
    email: string,
    o: { displayName?: string; tenantId?: string; tenantDomain?: string; timeZone?: string } = {},
  ): MsAccount {
    const key = email.toLowerCase();
    const existing = this.data().accounts[key];
    if (existing) {
      if (o.displayName) existing.displayName = o.displayName;
      if (o.timeZone) existing.timeZone = o.timeZone;
      if (o.tenantId) existing.tenantId = o.tenantId;
      if (o.tenantDomain) existing.tenantDomain = o.tenantDomain;
      this.changed();
      return existing;
    }
    const domain = o.tenantDomain ?? key.split("@")[1];
    const local = key.split("@")[0];
    const account: MsAccount = {
      email: key,
      displayName: o.displayName ??
        local.split(/[._-]/).map((p) => p.charAt(0).toUpperCase() + p.slice(1)).join(" "),
      oid: stableGuid(`oid:${key}`),
      tenantId: o.tenantId ?? stableGuid(`tenant:${domain}`),
      tenantDomain: domain,
      timeZone: o.timeZone ?? "UTC",
      createdAt: new Date().toISOString(),
      calendars: {},
      transactionIds: {},
    };
    this.data().accounts[key] = account;
    const self = { name: account.displayName, address: key };
    this.putCalendar(account, { name: "Calendar", isDefaultCalendar: true, canEdit: true, owner: self });
    this.putCalendar(account, { name: "Birthdays", canEdit: false, owner: self });
    this.putCalendar(account, {
      name: "United States holidays",
      canEdit: false,
      owner: { name: "United States holidays", address: "" },
    });
    this.changed();
    return account;
  }

  /** Add a calendar (or update name/canEdit/owner of the one with `id`). */
  putCalendar(
    account: MsAccount,
    c: { id?: string; name: string; canEdit?: boolean; isDefaultCalendar?: boolean; owner?: MsEmailAddress },
  ): MsCalendar {
    const existing = c.id ? account.calendars[c.id] : undefined;
    if (existing) {
      existing.name = c.name;
      if (c.canEdit !== undefined && !existing.isDefaultCalendar) existing.canEdit = c.canEdit;
      if (c.owner) existing.owner = c.owner;
      existing.changeKey = newChangeKey();
      this.changed();
      return existing;
    }
    const colors = ["auto", "lightBlue", "lightGreen", "lightOrange", "lightGray", "lightYellow"];
    const n = Object.keys(account.calendars).length;
    const owner = c.owner ?? { name: account.displayName, address: account.email };
    const cal: MsCalendar = {
      id: c.id ?? `AAMkAG${base64url(sha256Hex(`${account.email}:${crypto.randomUUID()}`).slice(0, 30))}AAA=`,
      name: c.name,
      color: colors[n % colors.length],
      hexColor: "",
      isDefaultCalendar: !!c.isDefaultCalendar,
      canEdit: c.isDefaultCalendar ? true : c.canEdit ?? true,
      canShare: owner.address === account.email,
      canViewPrivateItems: owner.address === account.email,
      isRemovable: !c.isDefaultCalendar,
      owner,
      changeKey: newChangeKey(),
      events: {},
    };
    account.calendars[cal.id] = cal;
    this.changed();
    return cal;
  }

  /** The account's default calendar. */
  defaultCalendar(account: MsAccount): MsCalendar {
    return Object.values(account.calendars).find((c) => c.isDefaultCalendar)!;
  }

  /** A calendar by id, `default` standing for the default calendar (admin API convenience only). */
  calendar(account: MsAccount, id: string): MsCalendar | undefined {
    return id === "default" ? this.defaultCalendar(account) : account.calendars[id];
  }

  /**
   * Record a change to `ev` (already applied): it gets the next change sequence number, which
   * calendarView/delta orders by, and change notifications go out.
   */
  eventChanged(cal: MsCalendar, ev: MsEvent, changeType: MsChangeType): void {
    const d = this.data();
    ev.changeSeq = d.changeSeq = (d.changeSeq ?? 0) + 1;
    if (changeType === "created") ev.createdSeq = ev.changeSeq;
    this.changed();
    this.onEventChange(cal, ev, changeType);
  }

  /** The current value of the event change counter. */
  changeSeq(): number {
    return this.data().changeSeq ?? 0;
  }

  /** The account a calendar belongs to. */
  ownerOf(cal: MsCalendar): MsAccount | undefined {
    return Object.values(this.data().accounts).find((a) => a.calendars[cal.id] === cal);
  }

  /** The live (not deleted) event with this id in any of the account's calendars. */
  findEvent(account: MsAccount, id: string): MsEvent | undefined {
    for (const cal of Object.values(account.calendars)) {
      const ev = cal.events[id];
      if (ev && !ev.deletedAt) return ev;
    }
    return undefined;
  }

  // ---- grants and tokens ----

  /** Grants matching the filter, oldest first. */
  grantsFor(filter: { email?: string; clientId?: string }): MsGrant[] {
    return Object.values(this.data().grants).filter((g) =>
      (!filter.email || g.email === filter.email.toLowerCase()) &&
      (!filter.clientId || g.clientId === filter.clientId)
    );
  }

  /** Record a new grant with its first refresh token (when `offline_access` was granted). */
  createGrant(g: { email: string; clientId: string; scopes: string[]; refreshToken?: string }): MsGrant {
    const grant: MsGrant = {
      id: crypto.randomUUID(),
      email: g.email.toLowerCase(),
      clientId: g.clientId,
      scopes: g.scopes,
      ...(g.refreshToken ? { refreshToken: g.refreshToken } : {}),
      rotatedRefreshTokens: [],
      refreshCount: 0,
      reuseCount: 0,
      createdAt: new Date().toISOString(),
    };
    this.data().grants[grant.id] = grant;
    if (grant.refreshToken) this.refreshIndex.set(grant.refreshToken, grant.id);
    this.changed();
    return grant;
  }

  /** The grant a refresh token belongs to, and whether it is the grant's newest token. */
  grantByRefreshToken(token: string): { grant: MsGrant; current: boolean } | undefined {
    const id = this.refreshIndex.get(token);
    const grant = id ? this.data().grants[id] : undefined;
    return grant ? { grant, current: grant.refreshToken === token } : undefined;
  }

  /** Replace the grant's refresh token with a new one (the old one is remembered as rotated). */
  rotate(grant: MsGrant): string {
    const next = newMsRefreshToken();
    if (grant.refreshToken) grant.rotatedRefreshTokens.push(grant.refreshToken);
    grant.refreshToken = next;
    grant.refreshCount++;
    this.refreshIndex.set(next, grant.id);
    this.changed();
    return next;
  }

  /** Issue an access token living `ttlS` seconds; drops tokens expired over a day ago. */
  issueAccessToken(grant: MsGrant, scopes: string[], ttlS: number): string {
    const now = Date.now();
    const tokens = this.data().accessTokens;
    for (const [t, rec] of Object.entries(tokens)) if (rec.expiresAt < now - 86_400_000) delete tokens[t];
    const token = newMsAccessToken();
    tokens[token] = { grantId: grant.id, scopes, expiresAt: now + ttlS * 1000 };
    this.changed();
    return token;
  }

  /** The record and grant behind an access token, valid or not. */
  accessToken(token: string): { record: MsAccessToken; grant: MsGrant } | undefined {
    const record = this.data().accessTokens[token];
    const grant = record && this.data().grants[record.grantId];
    return record && grant ? { record, grant } : undefined;
  }

  /** Revoke a grant for `reason`; its tokens stop working. */
  revokeGrant(grant: MsGrant, reason: MsRevocation): void {
    grant.revoked = reason;
    this.changed();
  }

  /** Expire the account's access tokens now; refresh tokens keep working. */
  expireAccessTokens(email: string): number {
    const ids = new Set(this.grantsFor({ email }).map((g) => g.id));
    let n = 0;
    for (const rec of Object.values(this.data().accessTokens)) {
      if (ids.has(rec.grantId) && rec.expiresAt > Date.now() - 1) {
        rec.expiresAt = Date.now() - 1;
        n++;
      }
    }
    this.changed();
    return n;
  }
}
