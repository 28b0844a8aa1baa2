/**
 * The functions' database settings: CALENDAR_DB_URL (the transaction pooler) takes precedence over
 * SUPABASE_DB_URL and DATABASE_URL, the per-isolate pool defaults to one connection, and the client
 * never uses named prepared statements.
 */
import assert from "node:assert/strict";
import { ConfigError, DB_POOL_MAX_LIMIT, parseConfig } from "../../supabase/functions/_shared/config.ts";
import {
  clientOptions,
  closeSql,
  createSql,
  DEFAULT_POOL_MAX,
  getSql,
} from "../../supabase/functions/_shared/db/client.ts";

const KEY = btoa(String.fromCharCode(...new Uint8Array(32).fill(7)));
const DIRECT = "postgres://postgres:direct-pw@db.example.supabase.co:5432/postgres";
const POOLER = "postgres://postgres.ref:pooler-pw@aws-0-eu-west-1.pooler.supabase.com:6543/postgres";

function env(over: Record<string, string | undefined> = {}): Record<string, string | undefined> {
  return {
    SUPABASE_URL: "http://127.0.0.1:54321",
    SUPABASE_DB_URL: DIRECT,
    SUPABASE_JWT_SECRET: "super-secret-jwt-token-with-at-least-32-characters-long",
    GOOGLE_CLIENT_ID: "client.apps.googleusercontent.com",
    GOOGLE_CLIENT_SECRET: "GOCSPX-fake",
    GOOGLE_REDIRECT_URI: "http://127.0.0.1:54321/functions/v1/calendar-auth-callback",
    OAUTH_STATE_SIGNING_SECRET: "state-signing-secret-of-at-least-32-chars!!",
    TOKEN_ENCRYPTION_KEY: KEY,
    ...over,
  };
}

function configError(over: Record<string, string | undefined>): ConfigError {
  try {
    parseConfig(env(over));
  } catch (err) {
    assert.ok(err instanceof ConfigError, String(err));
    return err;
  }
  assert.fail(`expected a ConfigError for ${JSON.stringify(Object.keys(over))}`);
}

Deno.test("db config: without CALENDAR_DB_URL the functions use SUPABASE_DB_URL with a pool of 1", () => {
  const c = parseConfig(env());
  assert.equal(c.databaseUrl, DIRECT);
  assert.equal(c.databasePoolMax, 1);
});

Deno.test("db config: CALENDAR_DB_URL takes precedence over SUPABASE_DB_URL and DATABASE_URL", () => {
  assert.equal(parseConfig(env({ CALENDAR_DB_URL: POOLER })).databaseUrl, POOLER);
  assert.equal(
    parseConfig(env({ SUPABASE_DB_URL: undefined, DATABASE_URL: DIRECT, CALENDAR_DB_URL: POOLER }))
      .databaseUrl,
    POOLER,
  );
  // Alone it is enough (a self-hosted deployment that injects no SUPABASE_DB_URL).
  assert.equal(parseConfig(env({ SUPABASE_DB_URL: undefined, CALENDAR_DB_URL: POOLER })).databaseUrl, POOLER);
  // An empty value counts as unset, as for every variable.
  assert.equal(parseConfig(env({ CALENDAR_DB_URL: "" })).databaseUrl, DIRECT);
});

Deno.test("db config: no database URL at all is named in the error, with the alternatives", () => {
  const err = configError({
    SUPABASE_DB_URL: undefined,
    DATABASE_URL: undefined,
    CALENDAR_DB_URL: undefined,
  });
  assert.match(err.message, /SUPABASE_DB_URL: required \(or CALENDAR_DB_URL; DATABASE_URL locally\)/);
  // Reported together with the other problems, not one at a time.
  const both = configError({ SUPABASE_DB_URL: undefined, GOOGLE_CLIENT_ID: undefined });
  assert.match(both.message, /GOOGLE_CLIENT_ID/);
  assert.match(both.message, /SUPABASE_DB_URL/);
});

Deno.test("db config: a CALENDAR_DB_URL that is not a postgres URL is refused without echoing it", () => {
  for (
    const bad of ["https://aws-0.pooler.supabase.com:6543/postgres", "pooler-pw", "postgres://has space@x/y"]
  ) {
    const err = configError({ CALENDAR_DB_URL: bad });
    assert.match(err.message, /CALENDAR_DB_URL: must be a postgres:\/\/ connection URL/);
    assert.ok(!err.message.includes(bad), "the value (it may hold a password) is never echoed");
  }
  assert.equal(
    parseConfig(env({ CALENDAR_DB_URL: "postgresql://u:p@127.0.0.1:6432/db?sslmode=require" })).databaseUrl,
    "postgresql://u:p@127.0.0.1:6432/db?sslmode=require",
  );
});

Deno.test("db config: CALENDAR_DB_POOL_MAX sets the per-isolate pool within 1..limit", () => {
  assert.equal(parseConfig(env({ CALENDAR_DB_POOL_MAX: "3" })).databasePoolMax, 3);
  assert.equal(
    parseConfig(env({ CALENDAR_DB_POOL_MAX: String(DB_POOL_MAX_LIMIT) })).databasePoolMax,
    DB_POOL_MAX_LIMIT,
  );
  for (const bad of ["0", "-1", "1.5", "many", String(DB_POOL_MAX_LIMIT + 1)]) {
    assert.match(configError({ CALENDAR_DB_POOL_MAX: bad }).message, /CALENDAR_DB_POOL_MAX/);
  }
});

Deno.test("db client: no prepared statements, one connection by default, the configured pool otherwise", async () => {
  assert.equal(DEFAULT_POOL_MAX, 1);
  assert.equal(clientOptions().prepare, false);
  assert.equal(clientOptions().max, 1);
  assert.equal(clientOptions({ max: 4 }).max, 4);
  // The clients below never connect: postgres.js opens connections on the first query only.
  const url = "postgres://u:p@127.0.0.1:9/none";
  try {
    const shared = getSql(parseConfig(env({ CALENDAR_DB_URL: url })));
    assert.equal(shared.options.prepare, false);
    assert.equal(shared.options.max, 1);
    assert.equal(getSql({ databaseUrl: url, databasePoolMax: 1 }), shared, "one client per isolate");
    const bigger = getSql({ databaseUrl: url, databasePoolMax: 2 });
    assert.notEqual(bigger, shared);
    assert.equal(bigger.options.max, 2);
    const own = createSql(url);
    assert.equal(own.options.max, 1);
    assert.equal(own.options.prepare, false);
    await own.end({ timeout: 0 });
  } finally {
    await closeSql();
  }
});
