/**
 * package-lock.json stays installable by `npm ci` on every platform: each optional dependency of a
 * locked package has an entry of its own (npm ci refuses the lock otherwise), the Supabase CLI is
 * pinned exactly with one platform package per platform it supports, and its bin does not shadow
 * deno's. dev/lock-cli-platforms.ts repairs what the first test finds missing.
 */
import assert from "node:assert/strict";
import {
  addCliPlatformEntries,
  CLI_PACKAGE,
  CLI_PLATFORMS,
  missingOptionalEntries,
  type PackageLock,
} from "../../dev/lock-cli-platforms.ts";

const root = new URL("../../", import.meta.url);
const lockText = Deno.readTextFileSync(new URL("package-lock.json", root));
const readLock = () => JSON.parse(lockText) as PackageLock;
const pkg = JSON.parse(Deno.readTextFileSync(new URL("package.json", root))) as {
  devDependencies: Record<string, string>;
};

Deno.test("package-lock: every optional dependency of every locked package has a lock entry", () => {
  assert.deepEqual(
    missingOptionalEntries(readLock()),
    [],
    "npm ci refuses this lock; run `npm run lock:cli-platforms` (dev/lock-cli-platforms.ts)",
  );
});

Deno.test("package-lock: missingOptionalEntries finds a removed platform entry, nested or hoisted", () => {
  const lock = readLock();
  const version = lock.packages["node_modules/supabase"].version!;
  delete lock.packages["node_modules/@supabase/cli-darwin-arm64"];
  assert.deepEqual(missingOptionalEntries(lock), [
    `node_modules/supabase -> @supabase/cli-darwin-arm64@${version}`,
  ]);
  // Installed under the dependent's own node_modules counts as present.
  lock.packages["node_modules/supabase/node_modules/@supabase/cli-darwin-arm64"] = { version };
  assert.deepEqual(missingOptionalEntries(lock), []);
});

Deno.test("package-lock: the supabase CLI is an exact dev dependency, locked at that version", () => {
  const version = pkg.devDependencies[CLI_PACKAGE];
  assert.match(version, /^\d+\.\d+\.\d+$/, "package.json pins supabase exactly");
  const cli = readLock().packages[`node_modules/${CLI_PACKAGE}`];
  assert.equal(cli.version, version);
  assert.equal(cli.dev, true);
});

Deno.test("package-lock: one optional platform package per CLI platform, with the os/cpu/libc it declares", () => {
  const lock = readLock();
  const cli = lock.packages[`node_modules/${CLI_PACKAGE}`];
  const names = Object.keys(cli.optionalDependencies ?? {}).sort();
  assert.deepEqual(names, Object.keys(CLI_PLATFORMS).map((s) => `@supabase/cli-${s}`).sort());
  for (const [suffix, want] of Object.entries(CLI_PLATFORMS)) {
    const entry = lock.packages[`node_modules/@supabase/cli-${suffix}`];
    assert.ok(entry, `@supabase/cli-${suffix} is locked`);
    assert.equal(entry.version, cli.version, `${suffix}: same version as supabase`);
    assert.equal(entry.optional, true, `${suffix}: optional`);
    assert.equal(entry.dev, true, `${suffix}: dev`);
    assert.deepEqual(entry.os, [want.os], `${suffix}: os`);
    assert.deepEqual(entry.cpu, [want.cpu], `${suffix}: cpu`);
    assert.deepEqual(entry.libc, want.libc ? [want.libc] : undefined, `${suffix}: libc`);
  }
});

Deno.test("package-lock: the repair script adds nothing to the committed lock, and restores what was removed", () => {
  const lock = readLock();
  assert.deepEqual(addCliPlatformEntries(lock), []);
  assert.equal(JSON.stringify(lock, null, 2) + "\n", lockText, "the committed lock is in npm's format");

  const removed = readLock();
  const gone = Object.keys(CLI_PLATFORMS).filter((s) => s !== "linux-x64").map((s) =>
    `node_modules/@supabase/cli-${s}`
  );
  for (const path of gone) delete removed.packages[path];
  assert.deepEqual(addCliPlatformEntries(removed).sort(), gone.sort());
  const original = readLock();
  for (const path of gone) {
    const { integrity: _integrity, ...expected } = original.packages[path];
    assert.deepEqual(removed.packages[path], expected, path);
  }
  assert.deepEqual(Object.keys(removed.packages), Object.keys(original.packages), "same key order as npm's");
});

Deno.test("package-lock: no two locked packages install the same bin (supabase does not shadow deno)", () => {
  const owners = new Map<string, string>();
  for (const [path, entry] of Object.entries(readLock().packages)) {
    if (path === "" || path.includes("/node_modules/")) continue; // nested bins are private
    for (const bin of Object.keys((entry.bin ?? {}) as Record<string, string>)) {
      assert.ok(!owners.has(bin), `bin ${bin}: ${owners.get(bin)} and ${path}`);
      owners.set(bin, path);
    }
  }
  assert.equal(owners.get("deno"), "node_modules/deno");
  assert.equal(owners.get("supabase"), "node_modules/supabase");
});
