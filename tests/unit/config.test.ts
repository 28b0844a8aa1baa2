/**
 * Environment parsing: defaults, required secrets named in the error (never their values), key and
 * origin formats, and the DATABASE_URL fallback the local stack uses.
 */
import assert from "node:assert/strict";
import { ConfigError, parseConfig } from "../../supabase/functions/_shared/config.ts";

const KEY = btoa(String.fromCharCode(...new Uint8Array(32).fill(7)));
const KEY2 = btoa(String.fromCharCode(...new Uint8Array(32).fill(8)));

function env(over: Record<string, string | undefined> = {}): Record<string, string | undefined> {
  return {
    SUPABASE_URL: "http://127.0.0.1:54321/",
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

function rejects(over: Record<string, string | undefined>, pattern: RegExp): ConfigError {
  let caught: unknown;
  try {
    parseConfig(env(over));
  } catch (err) {
    caught = err;
  }
  assert.ok(caught instanceof ConfigError, `expected ConfigError for ${JSON.stringify(Object.keys(over))}`);
  assert.match(caught.message, pattern);
  return caught;
}

Deno.test("config: a minimal environment gets Google's endpoints, offline consent and the default scopes", () => {
  const c = parseConfig(env());
  assert.equal(c.supabaseUrl, "http://127.0.0.1:54321");
  assert.equal(c.google!.authorizationEndpoint, "https://accounts.google.com/o/oauth2/v2/auth");
  assert.equal(c.google!.tokenEndpoint, "https://oauth2.googleapis.com/token");
  assert.equal(c.google!.revocationEndpoint, "https://oauth2.googleapis.com/revoke");
  assert.equal(c.google!.calendarApiBase, "https://www.googleapis.com/calendar/v3");
  assert.equal(c.google!.accessType, "offline");
  assert.equal(c.google!.prompt, "consent");
  assert.ok(c.google!.scopes.includes("https://www.googleapis.com/auth/calendar.events"));
  assert.ok(c.google!.scopes.includes("https://www.googleapis.com/auth/calendar.freebusy"));
  assert.equal(c.eventTitle, "ValorWell");
  assert.equal(c.encryption.currentKeyId, "k1");
  assert.equal(c.encryption.keys.get("k1")?.length, 32);
  assert.deepEqual(c.allowedReturnOrigins, []);
  assert.equal(c.defaultReturnUrl, undefined);
  assert.equal(c.providerTimeoutMs, 10_000);
});

Deno.test("config: a missing secret is named, and its siblings' values never appear", () => {
  for (
    const name of [
      "GOOGLE_CLIENT_ID",
      "GOOGLE_CLIENT_SECRET",
      "OAUTH_STATE_SIGNING_SECRET",
      "TOKEN_ENCRYPTION_KEY",
    ]
  ) {
    const err = rejects({ [name]: undefined }, new RegExp(name));
    assert.ok(!err.message.includes("GOCSPX-fake"));
    assert.ok(!err.message.includes(KEY));
  }
});

Deno.test("config: Google is optional, but some provider must be configured", () => {
  const none = {
    GOOGLE_CLIENT_ID: undefined,
    GOOGLE_CLIENT_SECRET: undefined,
    GOOGLE_REDIRECT_URI: undefined,
  };
  const err = rejects(none, /no calendar provider is configured/);
  assert.match(err.message, /GOOGLE_CLIENT_ID/);
  // Google's optional variables alone do not turn Google on.
  rejects({ ...none, GOOGLE_SCOPES: "https://www.googleapis.com/auth/calendar" }, /no calendar provider/);
  // Half a Google client is a mistake named variable by variable.
  const half = rejects(
    { GOOGLE_CLIENT_SECRET: undefined, GOOGLE_REDIRECT_URI: undefined },
    /GOOGLE_CLIENT_SECRET/,
  );
  assert.match(half.message, /GOOGLE_REDIRECT_URI/);
  assert.ok(!half.message.includes("client.apps.googleusercontent.com"));
});

Deno.test("config: empty strings count as missing (an unset secret in a .env file)", () => {
  rejects({ GOOGLE_CLIENT_SECRET: "" }, /GOOGLE_CLIENT_SECRET/);
});

Deno.test("config: DATABASE_URL stands in for SUPABASE_DB_URL", () => {
  const c = parseConfig(env({ SUPABASE_DB_URL: undefined, DATABASE_URL: "postgres://x@localhost/y" }));
  assert.equal(c.databaseUrl, "postgres://x@localhost/y");
  rejects({ SUPABASE_DB_URL: undefined }, /SUPABASE_DB_URL/);
});

Deno.test("config: the token key must be 32 bytes of base64, and the message says how to make one", () => {
  const short = btoa("too short");
  const err = rejects({ TOKEN_ENCRYPTION_KEY: short }, /TOKEN_ENCRYPTION_KEY/);
  assert.match(err.message, /32 random bytes/);
  assert.ok(!err.message.includes(short));
  rejects({ TOKEN_ENCRYPTION_KEY: "!!!not base64!!!" }, /TOKEN_ENCRYPTION_KEY/);
});

Deno.test("config: the state secret needs at least 32 characters", () => {
  rejects({ OAUTH_STATE_SIGNING_SECRET: "short" }, /OAUTH_STATE_SIGNING_SECRET/);
});

Deno.test("config: previous keys are parsed for rotation; malformed entries are refused", () => {
  const c = parseConfig(env({ TOKEN_ENCRYPTION_KEY_ID: "k2", TOKEN_ENCRYPTION_PREVIOUS_KEYS: `k1:${KEY2}` }));
  assert.equal(c.encryption.currentKeyId, "k2");
  assert.deepEqual([...c.encryption.keys.keys()].sort(), ["k1", "k2"]);
  rejects({ TOKEN_ENCRYPTION_PREVIOUS_KEYS: "k0" }, /TOKEN_ENCRYPTION_PREVIOUS_KEYS/);
  rejects({ TOKEN_ENCRYPTION_PREVIOUS_KEYS: `k0:${btoa("short")}` }, /TOKEN_ENCRYPTION_PREVIOUS_KEYS/);
  rejects({ TOKEN_ENCRYPTION_KEY_ID: "has space" }, /TOKEN_ENCRYPTION_KEY_ID/);
});

Deno.test("config: return origins are a list of bare origins; a path or garbage is refused", () => {
  const c = parseConfig(
    env({ CALENDAR_ALLOWED_RETURN_ORIGINS: "https://app.example.com, http://localhost:3000/" }),
  );
  assert.deepEqual(c.allowedReturnOrigins, ["https://app.example.com", "http://localhost:3000"]);
  rejects(
    { CALENDAR_ALLOWED_RETURN_ORIGINS: "https://app.example.com/settings" },
    /CALENDAR_ALLOWED_RETURN_ORIGINS/,
  );
  rejects({ CALENDAR_ALLOWED_RETURN_ORIGINS: "not-a-url" }, /CALENDAR_ALLOWED_RETURN_ORIGINS/);
});

Deno.test("config: scopes and CORS origins split on commas or spaces; prompt and access type are enums", () => {
  const c = parseConfig(env({
    GOOGLE_SCOPES:
      "https://www.googleapis.com/auth/calendar.events  https://www.googleapis.com/auth/calendar.freebusy",
    CALENDAR_ALLOWED_CORS_ORIGINS: "https://a.example.com,https://b.example.com",
  }));
  assert.equal(c.google!.scopes.length, 2);
  assert.deepEqual(c.corsOrigins, ["https://a.example.com", "https://b.example.com"]);
  rejects({ GOOGLE_OAUTH_PROMPT: "always" }, /GOOGLE_OAUTH_PROMPT/);
  rejects({ GOOGLE_OAUTH_ACCESS_TYPE: "forever" }, /GOOGLE_OAUTH_ACCESS_TYPE/);
});

Deno.test("config: endpoint overrides (the sandbox) and the provider timeout bounds", () => {
  const c = parseConfig(env({
    GOOGLE_TOKEN_ENDPOINT: "http://127.0.0.1:54329/google/token",
    GOOGLE_CALENDAR_API_BASE: "http://127.0.0.1:54329/google/calendar/v3/",
    CALENDAR_PROVIDER_TIMEOUT_MS: "2500",
  }));
  assert.equal(c.google!.tokenEndpoint, "http://127.0.0.1:54329/google/token");
  assert.equal(c.google!.calendarApiBase, "http://127.0.0.1:54329/google/calendar/v3");
  assert.equal(c.providerTimeoutMs, 2500);
  rejects({ CALENDAR_PROVIDER_TIMEOUT_MS: "5" }, /CALENDAR_PROVIDER_TIMEOUT_MS/);
  rejects({ GOOGLE_TOKEN_ENDPOINT: "not a url" }, /GOOGLE_TOKEN_ENDPOINT/);
});

Deno.test("config: SUPABASE_JWKS as hosted Supabase injects it (a bare array) or as a key set", () => {
  const key = { kty: "EC", crv: "P-256", x: "x", y: "y", kid: "k1", alg: "ES256" };
  for (const raw of [JSON.stringify([key]), JSON.stringify({ keys: [key] })]) {
    const c = parseConfig(env({ SUPABASE_JWKS: raw }));
    assert.deepEqual(c.jwks, { keys: [key] });
    assert.equal(c.jwksProblem, undefined);
  }
  const unset = parseConfig(env());
  assert.equal(unset.jwks, undefined);
  assert.equal(unset.jwksProblem, undefined, "unset is normal: no warning");
});

Deno.test("config: an empty or malformed SUPABASE_JWKS never fails the configuration; it names the problem", () => {
  const cases: [string, RegExp][] = [
    ["", /empty/],
    ["[]", /no JSON Web Key/],
    ["{}", /neither/],
    ['{"keys": []}', /no JSON Web Key/],
    ["not json {", /not valid JSON/],
    ['"a string"', /neither/],
    ['[{"no": "kty"}, 3]', /no JSON Web Key/],
  ];
  for (const [raw, problem] of cases) {
    const c = parseConfig(env({ SUPABASE_JWKS: raw }));
    assert.equal(c.jwks, undefined, raw);
    assert.match(c.jwksProblem ?? "", problem, raw);
    if (raw.length > 3) assert.ok(!c.jwksProblem!.includes(raw), "the value is never repeated");
  }
});

Deno.test("config: CALENDAR_JWT_AUDIENCE defaults to authenticated and takes a comma-separated list", () => {
  assert.deepEqual(parseConfig(env()).jwtAudiences, ["authenticated"]);
  assert.deepEqual(
    parseConfig(env({ CALENDAR_JWT_AUDIENCE: "authenticated, clinic-app" })).jwtAudiences,
    ["authenticated", "clinic-app"],
  );
  rejects({ CALENDAR_JWT_AUDIENCE: " , " }, /CALENDAR_JWT_AUDIENCE/);
});

Deno.test("config: the user-token issuer comes from SUPABASE_URL when it names a real host; CALENDAR_JWT_ISSUER overrides", () => {
  assert.deepEqual(parseConfig(env()).jwtIssuers, ["http://127.0.0.1:54321/auth/v1"]);
  assert.deepEqual(
    parseConfig(env({ SUPABASE_URL: "https://abcdefghijklmnopqrst.supabase.co" })).jwtIssuers,
    ["https://abcdefghijklmnopqrst.supabase.co/auth/v1"],
  );
  // Inside `supabase start` the functions see the gateway's Docker name, not the URL Auth signs with.
  assert.equal(parseConfig(env({ SUPABASE_URL: "http://supabase_kong_app:8000" })).jwtIssuers, undefined);
  assert.equal(parseConfig(env({ SUPABASE_URL: "http://localhost:54321" })).jwtIssuers, undefined);
  assert.deepEqual(
    parseConfig(env({
      SUPABASE_URL: "http://supabase_kong_app:8000",
      CALENDAR_JWT_ISSUER: "http://127.0.0.1:54321/auth/v1,http://localhost:54321/auth/v1",
    })).jwtIssuers,
    ["http://127.0.0.1:54321/auth/v1", "http://localhost:54321/auth/v1"],
  );
  assert.equal(parseConfig(env({ CALENDAR_JWT_ISSUER: "*" })).jwtIssuers, undefined);
  rejects({ CALENDAR_JWT_ISSUER: "not a url" }, /CALENDAR_JWT_ISSUER/);
});

Deno.test("config: CALENDAR_JWT_SECRET stands in for SUPABASE_JWT_SECRET (hosted secrets cannot start with SUPABASE_)", () => {
  const secret = "calendar-jwt-secret-with-at-least-32-characters";
  assert.equal(
    parseConfig(env({ SUPABASE_JWT_SECRET: undefined, CALENDAR_JWT_SECRET: secret })).jwtSecret,
    secret,
  );
  assert.equal(parseConfig(env({ SUPABASE_JWT_SECRET: undefined })).jwtSecret, undefined);
});

Deno.test("config: SUPABASE_SECRET_KEYS is Supabase's JSON dictionary of secret keys; garbage is refused", () => {
  const keys = parseConfig(env({ SUPABASE_SECRET_KEYS: '{"default":"sb_secret_0123456789abcdefghij"}' }));
  assert.deepEqual(keys.secretApiKeys, ["sb_secret_0123456789abcdefghij"]);
  assert.deepEqual(parseConfig(env()).secretApiKeys, []);
  const err = rejects(
    { SUPABASE_SECRET_KEYS: "sb_secret_not-json" },
    /SUPABASE_SECRET_KEYS must be a JSON object/,
  );
  assert.ok(!err.message.includes("sb_secret_not-json"));
});

Deno.test("config: CALENDAR_WEBHOOK_URL defaults to the calendar-webhook function under SUPABASE_URL", () => {
  assert.equal(parseConfig(env()).webhookUrl, "http://127.0.0.1:54321/functions/v1/calendar-webhook");
  assert.equal(
    parseConfig(env({ CALENDAR_WEBHOOK_URL: "https://hooks.clinic.example/calendar-webhook/" })).webhookUrl,
    "https://hooks.clinic.example/calendar-webhook",
  );
  rejects({ CALENDAR_WEBHOOK_URL: "not a url" }, /CALENDAR_WEBHOOK_URL/);
});

Deno.test("config: CALENDAR_INBOUND_SYNC defaults to on for an https or loopback webhook URL, else off", () => {
  assert.equal(parseConfig(env()).inboundSync, true, "http on loopback (local development)");
  assert.equal(
    parseConfig(env({ CALENDAR_WEBHOOK_URL: "https://hooks.clinic.example/calendar-webhook" })).inboundSync,
    true,
  );
  assert.equal(
    parseConfig(env({ CALENDAR_WEBHOOK_URL: "http://kong:8000/functions/v1/calendar-webhook" })).inboundSync,
    false,
  );
  assert.equal(parseConfig(env({ CALENDAR_INBOUND_SYNC: "off" })).inboundSync, false);
  assert.equal(
    parseConfig(env({ CALENDAR_WEBHOOK_URL: "http://kong:8000/x", CALENDAR_INBOUND_SYNC: "on" })).inboundSync,
    true,
  );
  rejects({ CALENDAR_INBOUND_SYNC: "yes" }, /CALENDAR_INBOUND_SYNC/);
});
