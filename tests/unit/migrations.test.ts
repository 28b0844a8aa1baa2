/**
 * The migrations folder as the Supabase CLI reads it: `<version>_<name>.sql`, the version a 14-digit
 * timestamp recorded in supabase_migrations.schema_migrations, so two files sharing a version cannot
 * both be applied (work merged from two branches picks the same next timestamp easily).
 */
import assert from "node:assert/strict";

const DIR = new URL("../../supabase/migrations/", import.meta.url);

Deno.test("every migration has its own 14-digit version", async () => {
  const seen = new Map<string, string>();
  for await (const entry of Deno.readDir(DIR)) {
    if (!entry.isFile || !entry.name.endsWith(".sql")) continue;
    const match = /^(\d{14})_[a-z0-9_]+\.sql$/.exec(entry.name);
    assert.ok(match, `${entry.name}: expected <14-digit version>_<snake_case_name>.sql`);
    const other = seen.get(match[1]);
    assert.equal(other, undefined, `${entry.name} and ${other} share version ${match[1]}: renumber one`);
    seen.set(match[1], entry.name);
  }
  assert.ok(seen.size > 0, "no migrations found");
});
