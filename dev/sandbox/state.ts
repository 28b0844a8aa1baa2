/**
 * The sandbox's in-memory world: accounts with their calendars and events, OAuth grants and tokens,
 * pending consents and authorization codes. Everything durable lives in one JSON-able
 * {@link SandboxData} object so it can be saved to and loaded from a state file (persist.ts).
 */
import { newAccessToken, randomBase32hex, rfc3339, sha256Hex } from "./ids.ts";
import { emptyMsData, MicrosoftStore, type MsData } from "./ms-state.ts";

/** Google calendarList access roles, weakest first. */
export const ACCESS_ROLES = ["freeBusyReader", "reader", "writer", "owner"] as const;
/** A calendarList `accessRole`. */
export type AccessRole = typeof ACCESS_ROLES[number];

/** True when `role` is at least `min` (freeBusyReader < reader < writer < owner). */
export const roleAtLeast = (role: AccessRole, min: AccessRole): boolean =>
  ACCESS_ROLES.indexOf(role) >= ACCESS_ROLES.indexOf(min);

/** Google EventDateTime: `date` (all-day, end exclusive) or `dateTime` (RFC 3339), optional IANA zone. */
export interface EventDateTime {
  date?: string;
  dateTime?: string;
  timeZone?: string;
}

/** A Google Calendar event resource exactly as the API returns it (docs/providers/google.md A5). */
export interface EventResource {
  kind: "calendar#event";
  etag: string;
  id: string;
  status: "confirmed" | "tentative" | "cancelled";
  htmlLink: string;
  /** RFC 3339 UTC with ms and Z. */
  created: string;
  updated: string;
  start: EventDateTime;
  end: EventDateTime;
  iCalUID: string;
  sequence: number;
  [field: string]: unknown;
}

/** A stored event: the resource plus the change sequence number incremental sync orders by. */
export interface StoredEvent {
  resource: EventResource;
  changeSeq: number;
}

/** One calendar as seen by one account (the account's calendarList entry plus its events). */
export interface CalendarRecord {
  id: string;
  /** Random per calendar instance, so sync tokens of a deleted-and-recreated calendar stop working. */
  uid: string;
  summary: string;
  description?: string;
  accessRole: AccessRole;
  primary: boolean;
  /** IANA zone all-day events and zone-less date-times are read in. */
  timeZone: string;
  etag: string;
  colorId: string;
  backgroundColor: string;
  /** Bumped to invalidate every sync token issued for this calendar (410 fullSyncRequired). */
  syncGeneration: number;
  events: Record<string, StoredEvent>;
  /**
   * Ids of events purged from this calendar or moved out of it (admin API). Such an id answers 404
   * to get/patch/update/delete, yet stays taken for events.insert (409 duplicate), the strictest
   * reading of Google's per-calendar id uniqueness (docs/providers/google.md A6).
   */
  retiredEventIds?: string[];
  /**
   * An injected per-calendar freeBusy error reason (`internalError`, `notFound`, ...): freeBusy.query
   * answers this calendar with `errors:[{domain:"global",reason}]` and `busy:[]` (A4).
   */
  freeBusyError?: string;
}

/** A Google account: lowercased email and its calendars by id. */
export interface Account {
  email: string;
  /** RFC 3339. */
  createdAt: string;
  calendars: Record<string, CalendarRecord>;
}

/** One authorization (a code exchange's token family): revoking any of its tokens revokes it all (A1.5). */
export interface Grant {
  id: string;
  email: string;
  clientId: string;
  scopes: string[];
  refreshToken?: string;
  revoked: boolean;
  refreshCount: number;
  /** RFC 3339. */
  createdAt: string;
}

/** An issued access token: its grant, the scopes it carries, and when it expires. */
export interface AccessTokenRecord {
  grantId: string;
  scopes: string[];
  /** Epoch ms. */
  expiresAt: number;
}

/** Everything persisted to the state file. */
export interface SandboxData {
  version: 1;
  accounts: Record<string, Account>;
  grants: Record<string, Grant>;
  accessTokens: Record<string, AccessTokenRecord>;
  /** Global event change counter; sync tokens and list page cursors refer to it. */
  changeSeq: number;
  /** Last etag number handed out; etags strictly increase so every write changes them. */
  etagClock: number;
  /** The Microsoft world (ms-state.ts); absent in state files written before it existed. */
  microsoft?: MsData;
}

/** A consent in progress between the authorization endpoint and the decision post (not persisted). */
export interface PendingAuthorization {
  id: string;
  clientId: string;
  redirectUri: string;
  scopes: string[];
  state?: string;
  offline: boolean;
  prompt: string[];
  includeGrantedScopes: boolean;
  codeChallenge?: string;
  codeChallengeMethod?: "S256" | "plain";
  loginHint?: string;
  /** OpenID Connect `nonce` of the request, echoed in the ID token. */
  nonce?: string;
  /** Epoch ms. */
  expiresAt: number;
}

/** An issued authorization code: single use, 10 minutes (A1.2). Not persisted. */
export interface AuthorizationCode {
  clientId: string;
  redirectUri: string;
  email: string;
  scopes: string[];
  offline: boolean;
  forceConsent: boolean;
  codeChallenge?: string;
  codeChallengeMethod?: "S256" | "plain";
  /** OpenID Connect `nonce` of the authorization request, echoed in the ID token. */
  nonce?: string;
  /** Epoch ms. */
  expiresAt: number;
  redeemed: boolean;
}

/** Access tokens live 3599 s, as Google reports in `expires_in` (A1.2). */
export const ACCESS_TOKEN_TTL_S = 3599;
/** Google keeps at most 100 live refresh tokens per account and client; the oldest dies first (A1.6). */
export const MAX_REFRESH_TOKENS_PER_CLIENT = 100;

const HOLIDAYS_ID = "en.usa#holiday@group.v.calendar.google.com";

/** A fresh, empty world. */
export function emptyData(): SandboxData {
  return {
    version: 1,
    accounts: {},
    grants: {},
    accessTokens: {},
    changeSeq: 0,
    etagClock: 0,
    microsoft: emptyMsData(),
  };
}

/** The state plus its indexes. Mutators call {@link SandboxState.changed} so the file gets saved. */
export class SandboxState {
  data: SandboxData;
  readonly pending = new Map<string, PendingAuthorization>();
  readonly codes = new Map<string, AuthorizationCode>();
  private refreshIndex = new Map<string, string>();
  /** Called after every durable change (persist.ts schedules a save). */
  onChange: () => void = () => {};
  /** Called after any change to a calendar's events (push notifications, google-push.ts). */
  onEventChange: (cal: CalendarRecord) => void = () => {};
  /** The Microsoft accounts, grants and events (kept in `data.microsoft`). */
  readonly microsoft: MicrosoftStore;

  constructor(data: SandboxData = emptyData()) {
    this.data = data;
    this.data.microsoft ??= emptyMsData();
    this.microsoft = new MicrosoftStore(() => this.data.microsoft!, () => this.changed());
    this.reindex();
  }

  private reindex(): void {
    this.refreshIndex.clear();
    for (const g of Object.values(this.data.grants)) {
      if (g.refreshToken) this.refreshIndex.set(g.refreshToken, g.id);
    }
  }

  /** Report a durable change (the state file gets saved). */
  changed(): void {
    this.onChange();
  }

  /** Forget everything (accounts, grants, tokens, events, pending consents). */
  reset(): void {
    this.data = emptyData();
    this.pending.clear();
    this.codes.clear();
    this.microsoft.resetTransient();
    this.reindex();
    this.changed();
  }

  /** A new quoted etag, strictly greater than every earlier one (`"1763856000000000"` style). */
  nextEtag(): string {
    this.data.etagClock = Math.max(this.data.etagClock + 1, Date.now() * 1000);
    return `"${this.data.etagClock}"`;
  }

  /** Report a change to `cal`'s events (written, deleted, purged, moved in or out). */
  eventChanged(cal: CalendarRecord): void {
    this.onEventChange(cal);
  }

  /** The next value of the global event change counter. */
  nextChangeSeq(): number {
    return ++this.data.changeSeq;
  }

  // ---- accounts and calendars ----

  /** The account for `email` (case-insensitive), if it exists. */
  account(email: string): Account | undefined {
    return this.data.accounts[email.toLowerCase()];
  }

  /**
   * The account for `email`, created on first use with Google's usual three calendars: the primary
   * (id = email, owner), `team-<hash>@group.calendar.google.com` ("Team", writer) and the US holidays
   * calendar (reader).
   */
  ensureAccount(email: string): Account {
    const key = email.toLowerCase();
    const existing = this.data.accounts[key];
    if (existing) return existing;
    const account: Account = { email: key, createdAt: rfc3339(Date.now()), calendars: {} };
    this.data.accounts[key] = account;
    this.putCalendar(account, { id: key, summary: key, accessRole: "owner", primary: true });
    this.putCalendar(account, {
      id: `team-${sha256Hex(key).slice(0, 12)}@group.calendar.google.com`,
      summary: "Team",
      accessRole: "writer",
    });
    this.putCalendar(account, {
      id: HOLIDAYS_ID,
      summary: "Holidays in United States",
      description: "Holidays and Observances in United States",
      accessRole: "reader",
    });
    this.changed();
    return account;
  }

  /** Add a calendar to an account, or update the summary/role of an existing one. */
  putCalendar(
    account: Account,
    c: {
      id?: string;
      summary: string;
      accessRole?: AccessRole;
      primary?: boolean;
      description?: string;
      /** IANA zone; default UTC. */
      timeZone?: string;
    },
  ): CalendarRecord {
    const id = c.id ?? `${randomBase32hex(26)}@group.calendar.google.com`;
    const existing = account.calendars[id];
    if (existing) {
      existing.summary = c.summary;
      if (c.accessRole && !existing.primary) existing.accessRole = c.accessRole;
      if (c.timeZone) existing.timeZone = c.timeZone;
      existing.etag = this.nextEtag();
      this.changed();
      return existing;
    }
    const colors = ["#9fc6e7", "#d06b64", "#92e1c0", "#ffad46", "#b99aff"];
    const n = Object.keys(account.calendars).length;
    const record: CalendarRecord = {
      id,
      uid: crypto.randomUUID(),
      summary: c.summary,
      ...(c.description ? { description: c.description } : {}),
      accessRole: c.primary ? "owner" : c.accessRole ?? "owner",
      primary: !!c.primary,
      timeZone: c.timeZone ?? "UTC",
      etag: this.nextEtag(),
      colorId: String(n + 14),
      backgroundColor: colors[n % colors.length],
      syncGeneration: 0,
      events: {},
    };
    account.calendars[id] = record;
    this.changed();
    return record;
  }

  /** The account's calendar by id; `primary` is Google's alias for the account's own calendar. */
  calendar(email: string, calendarId: string): CalendarRecord | undefined {
    const account = this.account(email);
    if (!account) return undefined;
    const id = calendarId === "primary" ? account.email : calendarId;
    return account.calendars[id];
  }

  /**
   * Purge an event (what emptying the trash does): it disappears from the calendar, get/patch/delete
   * answer 404, and its id stays taken for inserts. False when the calendar has no such event.
   */
  purgeEvent(cal: CalendarRecord, eventId: string): boolean {
    if (!cal.events[eventId]) return false;
    delete cal.events[eventId];
    cal.retiredEventIds = [...new Set([...(cal.retiredEventIds ?? []), eventId])];
    this.changed();
    this.eventChanged(cal);
    return true;
  }

  /**
   * Move an event to another calendar of the same account, keeping its id (as events.move does): the
   * source then answers 404 for it (its id stays taken there for inserts), the destination holds it.
   * @returns the moved event, or a reason it could not move.
   */
  moveEvent(
    from: CalendarRecord,
    to: CalendarRecord,
    eventId: string,
  ): EventResource | "no_event" | "same_calendar" | "id_taken" {
    const stored = from.events[eventId];
    if (!stored) return "no_event";
    if (from.id === to.id) return "same_calendar";
    if (to.events[eventId] || to.retiredEventIds?.includes(eventId)) return "id_taken";
    delete from.events[eventId];
    from.retiredEventIds = [...new Set([...(from.retiredEventIds ?? []), eventId])];
    const resource = { ...stored.resource, etag: this.nextEtag(), updated: rfc3339(Date.now()) };
    to.events[eventId] = { resource, changeSeq: this.nextChangeSeq() };
    this.changed();
    this.eventChanged(from);
    this.eventChanged(to);
    return resource;
  }

  /** Remove a calendar and its events from the account; false when there was none. */
  deleteCalendar(email: string, calendarId: string): boolean {
    const cal = this.calendar(email, calendarId);
    const account = this.account(email);
    if (!cal || !account) return false;
    delete account.calendars[cal.id];
    this.changed();
    return true;
  }

  // ---- grants and tokens ----

  /** Grants matching the filter, oldest first. */
  grantsFor(filter: { email?: string; clientId?: string }): Grant[] {
    return Object.values(this.data.grants).filter((g) =>
      (!filter.email || g.email === filter.email.toLowerCase()) &&
      (!filter.clientId || g.clientId === filter.clientId)
    );
  }

  /** Record a new grant; enforces the per-client refresh-token limit by revoking the oldest. */
  createGrant(g: { email: string; clientId: string; scopes: string[]; refreshToken?: string }): Grant {
    if (g.refreshToken) {
      const live = this.grantsFor(g).filter((x) => x.refreshToken && !x.revoked);
      for (const old of live.slice(0, Math.max(0, live.length - MAX_REFRESH_TOKENS_PER_CLIENT + 1))) {
        old.revoked = true;
      }
    }
    const grant: Grant = {
      id: crypto.randomUUID(),
      email: g.email.toLowerCase(),
      clientId: g.clientId,
      scopes: g.scopes,
      ...(g.refreshToken ? { refreshToken: g.refreshToken } : {}),
      revoked: false,
      refreshCount: 0,
      createdAt: rfc3339(Date.now()),
    };
    this.data.grants[grant.id] = grant;
    if (grant.refreshToken) this.refreshIndex.set(grant.refreshToken, grant.id);
    this.changed();
    return grant;
  }

  /** The grant a refresh token belongs to (revoked or not). */
  grantByRefreshToken(token: string): Grant | undefined {
    const id = this.refreshIndex.get(token);
    return id ? this.data.grants[id] : undefined;
  }

  /** Issue an access token for a grant (3599 s); also drops long-expired tokens so the file stays small. */
  issueAccessToken(grant: Grant, scopes = grant.scopes): string {
    const now = Date.now();
    for (const [t, rec] of Object.entries(this.data.accessTokens)) {
      if (rec.expiresAt < now - 86_400_000) delete this.data.accessTokens[t];
    }
    const token = newAccessToken();
    this.data.accessTokens[token] = { grantId: grant.id, scopes, expiresAt: now + ACCESS_TOKEN_TTL_S * 1000 };
    this.changed();
    return token;
  }

  /** The record and grant behind an access token, whether or not it is still valid. */
  accessToken(token: string): { record: AccessTokenRecord; grant: Grant } | undefined {
    const record = this.data.accessTokens[token];
    const grant = record && this.data.grants[record.grantId];
    return record && grant ? { record, grant } : undefined;
  }

  /** Revoke a grant: its refresh token and every access token issued under it stop working. */
  revokeGrant(grant: Grant): void {
    grant.revoked = true;
    this.changed();
  }

  /** Expire every access token of the account's grants now; refresh tokens stay valid. */
  expireAccessTokens(email: string): number {
    const ids = new Set(this.grantsFor({ email }).map((g) => g.id));
    let n = 0;
    for (const rec of Object.values(this.data.accessTokens)) {
      if (ids.has(rec.grantId) && rec.expiresAt > Date.now() - 1) {
        rec.expiresAt = Date.now() - 1;
        n++;
      }
    }
    this.changed();
    return n;
  }
}
