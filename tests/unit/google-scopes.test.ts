import assert from "node:assert/strict";
import {
  consentScopes,
  IDENTITY_SCOPES,
  missingGoogleScopes,
  scopeSatisfies,
} from "../../supabase/functions/_shared/providers/google/scopes.ts";
import { parseScopeString } from "../../supabase/functions/_shared/oauth/scopes.ts";
import { GoogleOAuth } from "../../supabase/functions/_shared/providers/google/oauth.ts";

const S = (name: string) => `https://www.googleapis.com/auth/${name}`;
const DEFAULT_REQUIRED = [S("calendar.events"), S("calendar.freebusy"), S("calendar.calendarlist.readonly")];

Deno.test("missingGoogleScopes: everything granted exactly", () => {
  assert.deepEqual(missingGoogleScopes([...DEFAULT_REQUIRED].reverse(), DEFAULT_REQUIRED), []);
});

Deno.test("missingGoogleScopes: an unticked scope is reported, in required order", () => {
  assert.deepEqual(missingGoogleScopes([S("calendar.events")], DEFAULT_REQUIRED), [
    S("calendar.freebusy"),
    S("calendar.calendarlist.readonly"),
  ]);
  assert.deepEqual(missingGoogleScopes([], DEFAULT_REQUIRED), DEFAULT_REQUIRED);
});

Deno.test("missingGoogleScopes: the full calendar scope covers everything", () => {
  assert.deepEqual(missingGoogleScopes([S("calendar")], DEFAULT_REQUIRED), []);
  assert.ok(scopeSatisfies(S("calendar"), S("calendar.events.owned")));
  assert.ok(
    !scopeSatisfies(S("calendar"), S("calendar.addons.execute")),
    "add-on scopes are not data scopes",
  );
  assert.ok(!scopeSatisfies(S("calendar"), S("drive")), "only Calendar scopes");
});

Deno.test("missingGoogleScopes: calendar.readonly covers the read scopes but not writing events", () => {
  assert.deepEqual(missingGoogleScopes([S("calendar.readonly")], DEFAULT_REQUIRED), [S("calendar.events")]);
  assert.ok(scopeSatisfies(S("calendar.readonly"), S("calendar.events.freebusy")));
  assert.ok(scopeSatisfies(S("calendar.readonly"), S("calendar.events.readonly")));
});

Deno.test("missingGoogleScopes: conservative where the reference does not show coverage", () => {
  // freeBusy.query does not accept calendar.events (reference: calendar, calendar.readonly,
  // calendar.freebusy, calendar.events.freebusy).
  assert.ok(!scopeSatisfies(S("calendar.events"), S("calendar.freebusy")));
  assert.ok(!scopeSatisfies(S("calendar.events"), S("calendar.events.freebusy")));
  assert.ok(!scopeSatisfies(S("calendar.events"), S("calendar.calendarlist.readonly")));
  assert.ok(!scopeSatisfies(S("calendar.events.freebusy"), S("calendar.freebusy")));
  assert.ok(!scopeSatisfies(S("calendar.freebusy"), S("calendar.events.freebusy")));
  assert.ok(!scopeSatisfies(S("calendar.calendarlist.readonly"), S("calendar.calendarlist")));
  assert.ok(!scopeSatisfies(S("calendar.events.readonly"), S("calendar.events")));
  assert.ok(!scopeSatisfies(S("calendar.readonly"), S("calendar")));
  // A narrower scope never satisfies a broader one, and a look-alike prefix does not count.
  assert.ok(!scopeSatisfies(S("calendar.events.owned"), S("calendar.events")));
  assert.ok(!scopeSatisfies("https://example.com/auth/calendar", S("calendar.events")));
  assert.ok(scopeSatisfies(S("calendar.calendarlist"), S("calendar.calendarlist.readonly")));
});

Deno.test("missingGoogleScopes: short OpenID names match the URLs Google answers with", () => {
  assert.deepEqual(
    missingGoogleScopes(["openid", S("userinfo.email"), S("calendar")], [
      "openid",
      "email",
      ...DEFAULT_REQUIRED,
    ]),
    [],
  );
  assert.deepEqual(missingGoogleScopes([S("calendar")], ["email"]), ["email"]);
});

Deno.test("parseScopeString: space-delimited, duplicates and extra spaces removed", () => {
  assert.deepEqual(parseScopeString(` ${S("calendar")}  ${S("calendar.events")} ${S("calendar")} `), [
    S("calendar"),
    S("calendar.events"),
  ]);
  assert.deepEqual(parseScopeString(""), []);
});

Deno.test("GoogleOAuth.missingScopes uses the configured scopes", () => {
  const provider = new GoogleOAuth({
    clientId: "id",
    clientSecret: "secret",
    redirectUri: "https://app.example.com/cb",
    scopes: DEFAULT_REQUIRED,
    prompt: "consent",
    accessType: "offline",
    authorizationEndpoint: "https://accounts.google.com/o/oauth2/v2/auth",
    tokenEndpoint: "https://oauth2.googleapis.com/token",
    revocationEndpoint: "https://oauth2.googleapis.com/revoke",
    issuer: "https://accounts.google.com",
    jwksUri: "https://www.googleapis.com/oauth2/v3/certs",
    issParameter: "optional",
  });
  assert.deepEqual(provider.requiredScopes, DEFAULT_REQUIRED);
  assert.deepEqual(provider.missingScopes([S("calendar.events"), S("calendar.readonly")]), []);
  assert.deepEqual(provider.missingScopes([S("calendar.events")]), DEFAULT_REQUIRED.slice(1));
});

Deno.test("consentScopes: configured scopes, then openid and email once each", () => {
  assert.deepEqual(consentScopes(DEFAULT_REQUIRED), [...DEFAULT_REQUIRED, "openid", "email"]);
  assert.deepEqual(consentScopes([S("calendar"), "openid", S("userinfo.email"), S("calendar")]), [
    S("calendar"),
    "openid",
    S("userinfo.email"),
  ]);
  assert.deepEqual([...IDENTITY_SCOPES], ["openid", "email"]);
});
