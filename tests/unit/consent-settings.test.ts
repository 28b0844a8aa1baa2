/**
 * The consent settings of config.ts (issuer, JWK Set, RFC 9207 `iss`, allowed email domains,
 * confirmation mode) and the email-domain rule of id-token.ts.
 */
import assert from "node:assert/strict";
import { ConfigError, parseConfig } from "../../supabase/functions/_shared/config.ts";
import { emailDomainAllowed } from "../../supabase/functions/_shared/id-token.ts";

const KEY = btoa(String.fromCharCode(...new Uint8Array(32).fill(7)));

function env(over: Record<string, string | undefined> = {}): Record<string, string | undefined> {
  return {
    SUPABASE_URL: "http://127.0.0.1:54321",
    SUPABASE_DB_URL: "postgres://postgres@127.0.0.1:5432/app",
    SUPABASE_JWT_SECRET: "super-secret-jwt-token-with-at-least-32-characters-long",
    GOOGLE_CLIENT_ID: "client.apps.googleusercontent.com",
    GOOGLE_CLIENT_SECRET: "GOCSPX-fake",
    GOOGLE_REDIRECT_URI: "http://127.0.0.1:54321/functions/v1/calendar-auth-callback",
    OAUTH_STATE_SIGNING_SECRET: "state-signing-secret-of-at-least-32-chars!!",
    TOKEN_ENCRYPTION_KEY: KEY,
    ...over,
  };
}

Deno.test("consent settings: defaults are Google's issuer and keys, iss optional, any domain, app confirmation", () => {
  const c = parseConfig(env());
  assert.equal(c.google!.issuer, "https://accounts.google.com");
  assert.equal(c.google!.jwksUri, "https://www.googleapis.com/oauth2/v3/certs");
  assert.equal(c.google!.issParameter, "optional");
  assert.deepEqual(c.allowedEmailDomains, []);
  assert.equal(c.consentConfirmation, "app");
  assert.deepEqual(c.authStart, { burst: 10, refillSeconds: 30 });
});

Deno.test("consent settings: another authorization server, domains normalised, the seed's one-step mode", () => {
  const c = parseConfig(env({
    GOOGLE_OAUTH_ISSUER: "https://login.example.org/realms/clinic",
    GOOGLE_JWKS_URI: "https://login.example.org/realms/clinic/certs",
    GOOGLE_OAUTH_ISS_PARAMETER: "required",
    CALENDAR_ALLOWED_EMAIL_DOMAINS: " Clinic.Example, @branch.clinic.example ",
    CALENDAR_CONSENT_CONFIRMATION: "none",
    CALENDAR_AUTH_START_BURST: "3",
    CALENDAR_AUTH_START_REFILL_SECONDS: "120",
  }));
  assert.deepEqual(c.authStart, { burst: 3, refillSeconds: 120 });
  assert.equal(c.google!.issuer, "https://login.example.org/realms/clinic");
  assert.equal(c.google!.jwksUri, "https://login.example.org/realms/clinic/certs");
  assert.equal(c.google!.issParameter, "required");
  assert.deepEqual(c.allowedEmailDomains, ["clinic.example", "branch.clinic.example"]);
  assert.equal(c.consentConfirmation, "none");
});

Deno.test("consent settings: malformed values are configuration errors naming the variable", () => {
  const cases: [Record<string, string>, RegExp][] = [
    [{ CALENDAR_ALLOWED_EMAIL_DOMAINS: "clinic" }, /CALENDAR_ALLOWED_EMAIL_DOMAINS/],
    [{ CALENDAR_ALLOWED_EMAIL_DOMAINS: "*.clinic.example" }, /CALENDAR_ALLOWED_EMAIL_DOMAINS/],
    [{ CALENDAR_ALLOWED_EMAIL_DOMAINS: "user@clinic.example" }, /CALENDAR_ALLOWED_EMAIL_DOMAINS/],
    [{ GOOGLE_OAUTH_ISSUER: "accounts.google.com" }, /GOOGLE_OAUTH_ISSUER/],
    [{ GOOGLE_JWKS_URI: "not a url" }, /GOOGLE_JWKS_URI/],
    [{ GOOGLE_OAUTH_ISS_PARAMETER: "sometimes" }, /GOOGLE_OAUTH_ISS_PARAMETER/],
    [{ CALENDAR_CONSENT_CONFIRMATION: "off" }, /CALENDAR_CONSENT_CONFIRMATION/],
    [{ CALENDAR_AUTH_START_BURST: "0" }, /CALENDAR_AUTH_START_BURST/],
    [{ CALENDAR_AUTH_START_REFILL_SECONDS: "soon" }, /CALENDAR_AUTH_START_REFILL_SECONDS/],
  ];
  for (const [over, pattern] of cases) {
    assert.throws(() => parseConfig(env(over)), (err: unknown) => {
      assert.ok(err instanceof ConfigError, JSON.stringify(over));
      assert.match(err.message, pattern);
      return true;
    });
  }
});

Deno.test("emailDomainAllowed: exact domains, case-insensitive; look-alikes and subdomains refused", () => {
  const allowed = ["clinic.example"];
  assert.equal(emailDomainAllowed("dr@clinic.example", allowed), true);
  assert.equal(emailDomainAllowed("Dr@CLINIC.Example", allowed), true);
  for (
    const email of [
      "dr@sub.clinic.example",
      "dr@clinic.example.evil.test",
      "dr@evilclinic.example",
      "clinic.example@evil.test",
      "dr@clinic.example@evil.test",
      "@clinic.example",
      "no-at-sign",
    ]
  ) {
    assert.equal(emailDomainAllowed(email, allowed), false, email);
  }
  assert.equal(emailDomainAllowed("anyone@anywhere.example", []), true, "no list: every domain");
});
