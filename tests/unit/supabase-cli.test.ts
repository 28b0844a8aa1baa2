/**
 * The pieces of the Supabase CLI step that decide pass or fail (dev/supabase-cli.ts): which URL the CLI
 * gets, which of its lines complain about config.toml, and what a migration list after a push must
 * show. The CLI runs themselves are the runner's checks (dev/supabase-cli-checks.ts).
 */
import assert from "node:assert/strict";
import {
  cliDatabaseUrl,
  configComplaints,
  genTypesArgs,
  migrationListProblems,
} from "../../dev/supabase-cli.ts";

Deno.test("cliDatabaseUrl: sslmode=disable for a loopback server only, an explicit sslmode kept", () => {
  assert.equal(
    cliDatabaseUrl("postgres://postgres@127.0.0.1:5432/cs_x"),
    "postgres://postgres@127.0.0.1:5432/cs_x?sslmode=disable",
  );
  assert.equal(
    cliDatabaseUrl("postgres://u:p%40ss@localhost:6543/db"),
    "postgres://u:p%40ss@localhost:6543/db?sslmode=disable",
  );
  assert.equal(
    cliDatabaseUrl("postgres://postgres@127.0.0.1:5432/db?sslmode=require"),
    "postgres://postgres@127.0.0.1:5432/db?sslmode=require",
  );
  const hosted = "postgresql://postgres.abc:pw@aws-0-eu-west-1.pooler.supabase.com:5432/postgres";
  assert.equal(cliDatabaseUrl(hosted), hosted);
});

Deno.test("genTypesArgs: TypeScript for the public schema from the given database", () => {
  assert.deepEqual(genTypesArgs("postgres://postgres@127.0.0.1:5432/db"), [
    "gen",
    "types",
    "typescript",
    "--remote=postgres://postgres@127.0.0.1:5432/db?sslmode=disable",
    "--schema",
    "public",
  ]);
});

Deno.test("configComplaints: the CLI's config.toml warnings and load errors, not its other messages", () => {
  // Lines as Supabase CLI 3.1.0 prints them on stderr.
  const stderr = [
    "Target: custom Postgres (127.0.0.1:5432)",
    "Confirmed by --yes: Apply 4 migrations on custom Postgres (127.0.0.1:5432)",
    "Applying migration 20261123000100_calendar_sync_schema.sql...",
    "WARN: supabase/config.toml has keys this version of the Supabase CLI does not recognize and ignores: " +
    "unknown_key. Check them for typos, remove keys older CLI versions used, or upgrade the CLI if they come " +
    "from a newer version.",
    "Finished supabase db push.",
  ].join("\n");
  assert.equal(configComplaints(stderr).length, 1);
  assert.match(configComplaints(stderr)[0], /unknown_key/);
  assert.deepEqual(configComplaints("failed to load config: Expected boolean\n"), [
    "failed to load config: Expected boolean",
  ]);
  assert.deepEqual(
    configComplaints("Target: custom Postgres (127.0.0.1:5432)\nFinished supabase db push.\n"),
    [],
  );
});

Deno.test("migrationListProblems: every local version applied and nothing else, or each difference named", () => {
  const both = (v: string) => ({ local: v, remote: v });
  assert.deepEqual(migrationListProblems([both("1"), both("2")], ["1", "2"]), []);
  assert.deepEqual(migrationListProblems([both("1"), { local: "2", remote: null }], ["1", "2"]), [
    "2: not applied on the database",
  ]);
  assert.deepEqual(migrationListProblems([both("1"), { local: null, remote: "3" }], ["1"]), [
    "3: applied on the database, no local file",
  ]);
  assert.deepEqual(migrationListProblems([both("1")], ["1", "2"]), ["2: local file not listed"]);
});
