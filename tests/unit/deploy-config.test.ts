/**
 * What `supabase functions deploy` reads: every function folder has a `[functions.<name>]` table in
 * supabase/config.toml, and every bare import under supabase/functions resolves through the shared
 * import map, pinned to exactly the versions deno.json (and so the tests) use.
 */
import assert from "node:assert/strict";
import { parse } from "smol-toml";

const root = new URL("../../", import.meta.url);
const read = (path: string) => Deno.readTextFileSync(new URL(path, root));

const config = parse(read("supabase/config.toml")) as {
  functions: Record<string, { verify_jwt: boolean; import_map?: string }>;
};
const importMap = JSON.parse(read("supabase/functions/import_map.json")) as {
  imports: Record<string, string>;
};
const denoJson = JSON.parse(read("deno.json")) as { imports: Record<string, string> };

function* sourceFiles(dir: URL): Generator<URL> {
  for (const entry of Deno.readDirSync(dir)) {
    const url = new URL(entry.name + (entry.isDirectory ? "/" : ""), dir);
    if (entry.isDirectory) yield* sourceFiles(url);
    else if (entry.name.endsWith(".ts")) yield url;
  }
}

Deno.test("deploy config: every function folder is configured, with verify_jwt and the shared import map", () => {
  const folders = [...Deno.readDirSync(new URL("supabase/functions/", root))]
    .filter((e) => e.isDirectory && !e.name.startsWith("_")).map((e) => e.name).sort();
  assert.deepEqual(Object.keys(config.functions).sort(), folders);
  for (const [name, fn] of Object.entries(config.functions)) {
    assert.equal(typeof fn.verify_jwt, "boolean", `${name}: verify_jwt`);
    assert.equal(fn.import_map, "./functions/import_map.json", `${name}: import_map`);
    Deno.statSync(new URL(`supabase/functions/${name}/index.ts`, root));
  }
});

Deno.test("deploy config: the import map pins npm: packages identical to deno.json, and covers every bare import", () => {
  for (const [name, target] of Object.entries(importMap.imports)) {
    assert.match(target, /^npm:(@[^/]+\/)?[^@]+@\d+\.\d+\.\d+/, `${name} is pinned from npm`);
    assert.equal(target, denoJson.imports[name], `${name} matches deno.json`);
  }
  const bare = new Set<string>();
  for (const file of sourceFiles(new URL("supabase/functions/", root))) {
    for (const m of Deno.readTextFileSync(file).matchAll(/(?:from|import)\s*\(?\s*"([^"]+)"/g)) {
      const spec = m[1];
      if (!spec.startsWith(".") && !spec.startsWith("node:")) bare.add(spec);
    }
  }
  assert.ok(bare.size > 0);
  for (const spec of bare) {
    assert.ok(spec in importMap.imports, `${spec} is in supabase/functions/import_map.json`);
  }
});
