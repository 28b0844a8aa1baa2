/**
 * Which granted Google scopes satisfy which required ones.
 *
 * Google reports the scopes actually granted in the token response's `scope` (granular consent lets
 * a user untick some; docs/providers/google.md A1.2). A required scope is satisfied by itself or by a scope
 * that every method needing it also accepts, per the "Authorization" tables of the Calendar v3
 * reference. The table is deliberately conservative: a pair is listed only where the reference
 * shows the broader scope accepted by every method of the narrower one. In particular
 * `calendar.events` does NOT cover free/busy: freeBusy.query accepts only `calendar`,
 * `calendar.readonly`, `calendar.freebusy` and `calendar.events.freebusy`; and `calendar.freebusy`
 * and `calendar.events.freebusy` are not treated as interchangeable.
 */

const PREFIX = "https://www.googleapis.com/auth/";

/** The full-access scope: covers every Calendar data scope. */
export const GOOGLE_CALENDAR_FULL = `${PREFIX}calendar`;

/** granted scope (short name) -> narrower scopes (short names) it also satisfies. */
const COVERS: Record<string, readonly string[]> = {
  "calendar.readonly": [
    "calendar.calendarlist.readonly",
    "calendar.freebusy",
    "calendar.events.freebusy",
    "calendar.events.readonly",
  ],
  "calendar.events": ["calendar.events.readonly", "calendar.events.owned", "calendar.events.owned.readonly"],
  "calendar.events.owned": ["calendar.events.owned.readonly"],
  "calendar.calendarlist": ["calendar.calendarlist.readonly"],
  "calendar.calendars": ["calendar.calendars.readonly"],
  "calendar.acls": ["calendar.acls.readonly"],
};

/** Google answers the short OpenID scope names with their full URLs in the token response. */
const ALIASES: Record<string, string> = {
  email: `${PREFIX}userinfo.email`,
  profile: `${PREFIX}userinfo.profile`,
};

function canonical(scope: string): string {
  return ALIASES[scope] ?? scope;
}

function short(scope: string): string | null {
  return scope.startsWith(PREFIX) ? scope.slice(PREFIX.length) : null;
}

/** True when the granted scope `granted` satisfies the required scope `required`. */
export function scopeSatisfies(granted: string, required: string): boolean {
  granted = canonical(granted);
  required = canonical(required);
  if (granted === required) return true;
  const g = short(granted);
  const r = short(required);
  if (g === null || r === null) return false;
  // Add-on scopes grant running inside Calendar's UI, not data access; `calendar` does not imply them.
  if (g === "calendar") return r.startsWith("calendar.") && !r.startsWith("calendar.addons.");
  return COVERS[g]?.includes(r) ?? false;
}

/**
 * The required scopes not satisfied by any granted scope, in the order of `required`.
 * @param granted scopes from the token response (full URLs; order and duplicates do not matter).
 * @param required scopes the grant must include (Config.google.scopes).
 */
export function missingGoogleScopes(granted: readonly string[], required: readonly string[]): string[] {
  return required.filter((r) => !granted.some((g) => scopeSatisfies(g, r)));
}

/** The OpenID Connect scopes every consent asks for, so the connected account is always known. */
export const IDENTITY_SCOPES: readonly string[] = Object.freeze(["openid", "email"]);

/**
 * The scopes a consent URL requests: the configured (calendar) scopes followed by
 * {@link IDENTITY_SCOPES}, each once (an identity scope already configured, in short or full form, is
 * not repeated).
 */
export function consentScopes(configured: readonly string[]): string[] {
  const out = [...new Set(configured)];
  for (const s of IDENTITY_SCOPES) {
    if (!out.some((c) => canonical(c) === canonical(s))) out.push(s);
  }
  return out;
}
