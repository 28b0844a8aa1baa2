/**
 * docs/configuration.md documents exactly the environment variables the functions read (their zod
 * schemas and direct reads under supabase/functions/), and supabase/functions/.env.example lists every
 * one a deployer sets. A failure names the variable and says what to add or remove.
 */
import assert from "node:assert/strict";
import { ConfigError, parseConfig } from "../../supabase/functions/_shared/config.ts";
import { parseWorkerOptions } from "../../supabase/functions/_shared/sync/options.ts";
import { variablesInEnvFile, variablesInTables, variablesReadBy } from "../support/env-vars.ts";
import { readText, repositoryFiles } from "../support/repository.ts";

const TABLE = "docs/configuration.md";
const ENV_EXAMPLE = "supabase/functions/.env.example";

/** Variable -> the source files under supabase/functions that read it. */
function variablesInCode(): Map<string, string[]> {
  const readers = new Map<string, string[]>();
  for (const file of repositoryFiles()) {
    if (!file.startsWith("supabase/functions/") || !file.endsWith(".ts")) continue;
    for (const name of variablesReadBy(readText(file) ?? "")) {
      readers.set(name, [...(readers.get(name) ?? []), file]);
    }
  }
  return readers;
}

Deno.test("variablesReadBy: zod schema keys and direct reads, not nested keys, strings or comments", () => {
  const source = `
    const other = { NOT_ENV: 1 };
    const envSchema = z.object({
      SUPABASE_URL: z.url(),
      /** A comment naming FAKE_VAR: z.string() */
      POOL_MAX: z.coerce.number().default(1), // LINE_COMMENT: x
      NESTED: z.object({ INNER_KEY: z.string() }).optional(),
      TEXT: z.string().default("QUOTED_KEY: no"),
      lower_case: z.string(),
    });
    const more = envSchema.extend({ EXTRA_ONE: z.string() });
    input.X ??= env.DATABASE_URL;
    const y = env["OTHER_URL"] ?? Deno.env.get("FROM_DENO");
  `;
  assert.deepEqual(variablesReadBy(source), [
    "DATABASE_URL",
    "EXTRA_ONE",
    "FROM_DENO",
    "INNER_KEY",
    "NESTED",
    "OTHER_URL",
    "POOL_MAX",
    "SUPABASE_URL",
    "TEXT",
  ]);
});

Deno.test("variablesInTables and variablesInEnvFile: rows and lines that name a variable", () => {
  const md = [
    "| variable | required | meaning |",
    "| --- | --- | --- |",
    "| `GOOGLE_CLIENT_ID` | yes | the id |",
    "|  `CALENDAR_SYNC_LEASE_MS`  | no | lease |",
    "| `calendar-sync-worker` | — | a function, not a variable |",
    "Prose naming `NOT_A_ROW` is not a row.",
  ].join("\n");
  assert.deepEqual(variablesInTables(md), ["CALENDAR_SYNC_LEASE_MS", "GOOGLE_CLIENT_ID"]);
  const env =
    "# comment about SOMETHING\nGOOGLE_CLIENT_ID=x\n# GOOGLE_TOKEN_ENDPOINT=https://x\nEMPTY_ONE=\n";
  assert.deepEqual(variablesInEnvFile(env), ["EMPTY_ONE", "GOOGLE_CLIENT_ID", "GOOGLE_TOKEN_ENDPOINT"]);
});

Deno.test("variablesReadBy agrees with what the parsers really read", () => {
  const read = new Set<string>();
  const spy = new Proxy({} as Record<string, string | undefined>, {
    get: (_target, key) => {
      if (typeof key === "string") read.add(key);
      return undefined;
    },
  });
  parseWorkerOptions(spy);
  const options = variablesReadBy(readText("supabase/functions/_shared/sync/options.ts") ?? "");
  assert.deepEqual([...read].sort(), options, "sync/options.ts: the scanner sees every variable it reads");

  // The core's variables, and each provider's (providers/<id>/config.ts, registered in providers/registry.ts).
  const config = [
    "supabase/functions/_shared/config.ts",
    ...repositoryFiles().filter((f) =>
      /^supabase\/functions\/_shared\/providers\/[^/]+\/config\.ts$/.test(f)
    ),
  ].flatMap((file) => variablesReadBy(readText(file) ?? ""));
  const error = (() => {
    try {
      parseConfig({});
    } catch (err) {
      return err;
    }
  })();
  assert.ok(error instanceof ConfigError);
  const required = [...error.message.matchAll(/([A-Z][A-Z0-9_]+):/g)].map((m) => m[1]);
  assert.ok(required.length >= 4, error.message);
  for (const name of required) {
    assert.ok(config.includes(name), `config.ts requires ${name}; the scanner missed it`);
  }
  // With the core set and no provider, the error names the provider variables to set.
  const core = {
    SUPABASE_URL: "http://127.0.0.1:54321",
    SUPABASE_DB_URL: "postgres://x@127.0.0.1/y",
    OAUTH_STATE_SIGNING_SECRET: "s".repeat(32),
    TOKEN_ENCRYPTION_KEY: btoa(String.fromCharCode(...new Uint8Array(32))),
  };
  const noProvider = (() => {
    try {
      parseConfig(core);
    } catch (err) {
      return err;
    }
  })();
  assert.ok(noProvider instanceof ConfigError);
  for (const name of ["GOOGLE_CLIENT_ID", "GOOGLE_CLIENT_SECRET", "GOOGLE_REDIRECT_URI"]) {
    assert.ok(noProvider.message.includes(name), noProvider.message);
    assert.ok(config.includes(name), `the scanner misses ${name}`);
  }
});

Deno.test("docs/configuration.md has one row for every variable the functions read, and no other", () => {
  const code = variablesInCode();
  const documented = new Set(variablesInTables(readText(TABLE) ?? ""));
  const missing = [...code.keys()].filter((name) => !documented.has(name)).sort();
  const extra = [...documented].filter((name) => !code.has(name)).sort();
  assert.deepEqual(
    missing,
    [],
    `${TABLE} lacks a row for ${missing.join(", ")}. Add to its table, one per variable:\n` +
      missing.map((name) =>
        `| \`${name}\` | yes/no | default | meaning (read by ${code.get(name)!.join(", ")}) |`
      ).join("\n"),
  );
  assert.deepEqual(
    extra,
    [],
    `${TABLE} documents ${extra.join(", ")}, which no code under supabase/functions reads: remove the row`,
  );
});

Deno.test("supabase/functions/.env.example lists every variable a deployer sets, and only those", () => {
  const code = variablesInCode();
  const table = readText(TABLE) ?? "";
  // Rows whose default says the platform provides the value are not the deployer's to set.
  const provided = new Set(
    table.split("\n").filter((line) => /provided by/i.test(line)).flatMap((line) => variablesInTables(line)),
  );
  assert.ok(provided.has("SUPABASE_URL"), `${TABLE}: SUPABASE_URL is marked "provided by Supabase"`);
  const listed = new Set(variablesInEnvFile(readText(ENV_EXAMPLE) ?? ""));
  const missing = [...code.keys()].filter((name) => !provided.has(name) && !listed.has(name)).sort();
  const unknown = [...listed].filter((name) => !code.has(name)).sort();
  assert.deepEqual(
    missing,
    [],
    `${ENV_EXAMPLE} lacks ${missing.join(", ")}: add a one-line comment and \`NAME=example\` (or ` +
      "`# NAME=default` when optional) for each",
  );
  assert.deepEqual(unknown, [], `${ENV_EXAMPLE} lists ${unknown.join(", ")}, which no function reads`);
});
