/**
 * Completes package-lock.json with the Supabase CLI's platform packages (`deno run -A
 * dev/lock-cli-platforms.ts`, or `npm run lock:cli-platforms`; run it after every `npm i` that changes
 * the `supabase` version).
 *
 * Why: the `supabase` npm package brings its binary through optional dependencies, one per platform
 * (`@supabase/cli-linux-x64`, `-darwin-arm64`, ...). npm writes a lock entry only for those its registry
 * serves; a registry mirror that carries just the current machine's package leaves the others out, and
 * `npm ci` then refuses the lock ("Missing: @supabase/cli-darwin-arm64@ from lock file"). This adds the
 * missing entries the way npm writes them for a foreign platform: version, registry tarball URL, `dev`
 * and `optional`, and the os / cpu / libc each package declares, so npm skips them on other machines.
 * No integrity is written (none can be computed without the tarball); npm fills it on the machine that
 * installs one. Entries already present are left as they are; a second run changes nothing.
 */

/** The subset of a lockfile v3 this script reads and writes. */
export interface PackageLock {
  lockfileVersion: number;
  packages: Record<string, LockEntry>;
  [key: string]: unknown;
}

/** One `packages` entry of package-lock.json. */
export interface LockEntry {
  version?: string;
  resolved?: string;
  integrity?: string;
  dev?: boolean;
  optional?: boolean;
  os?: string[];
  cpu?: string[];
  libc?: string[];
  optionalDependencies?: Record<string, string>;
  [key: string]: unknown;
}

/** The package whose platform packages this script locks. */
export const CLI_PACKAGE = "supabase";

/**
 * os / cpu / libc of each `@supabase/cli-<suffix>` package, as their package.json files declare them
 * (node's `process.platform` / `process.arch` names; `windows-*` is `win32`).
 */
export const CLI_PLATFORMS: Record<string, { os: string; cpu: string; libc?: "glibc" | "musl" }> = {
  "darwin-arm64": { os: "darwin", cpu: "arm64" },
  "darwin-x64": { os: "darwin", cpu: "x64" },
  "linux-arm64": { os: "linux", cpu: "arm64", libc: "glibc" },
  "linux-arm64-musl": { os: "linux", cpu: "arm64", libc: "musl" },
  "linux-x64": { os: "linux", cpu: "x64", libc: "glibc" },
  "linux-x64-musl": { os: "linux", cpu: "x64", libc: "musl" },
  "windows-arm64": { os: "win32", cpu: "arm64" },
  "windows-x64": { os: "win32", cpu: "x64" },
};

const REGISTRY = "https://registry.npmjs.org";

/**
 * Every optional dependency of every locked package that has no entry of its own, as
 * `<dependent> -> <name>@<range>`. npm ci refuses a lock for which this list is not empty.
 */
export function missingOptionalEntries(lock: PackageLock): string[] {
  const missing: string[] = [];
  for (const [path, entry] of Object.entries(lock.packages)) {
    for (const [name, range] of Object.entries(entry.optionalDependencies ?? {})) {
      // npm resolves from the dependent's own node_modules up to the root's.
      const candidates = [`node_modules/${name}`];
      for (
        let base = path;
        base !== "";
        base = base.slice(0, Math.max(0, base.lastIndexOf("/node_modules/")))
      ) {
        candidates.push(`${base}/node_modules/${name}`);
      }
      if (!candidates.some((c) => c in lock.packages)) {
        missing.push(`${path || "(root)"} -> ${name}@${range}`);
      }
    }
  }
  return missing;
}

/** The entry npm writes for `@supabase/cli-<suffix>@<version>` installed on another platform. */
export function cliPlatformEntry(suffix: string, version: string, dev: boolean): LockEntry {
  const platform = CLI_PLATFORMS[suffix];
  if (!platform) throw new Error(`unknown Supabase CLI platform package @supabase/cli-${suffix}`);
  const entry: LockEntry = {
    version,
    resolved: `${REGISTRY}/@supabase/cli-${suffix}/-/cli-${suffix}-${version}.tgz`,
    cpu: [platform.cpu],
  };
  if (dev) entry.dev = true;
  if (platform.libc) entry.libc = [platform.libc];
  entry.license = "MIT";
  entry.optional = true;
  entry.os = [platform.os];
  return entry;
}

/**
 * Adds the missing `node_modules/@supabase/cli-*` entries of the locked `supabase` package to `lock`
 * (in place), each at its sorted position.
 * @returns the package paths added (empty when the lock was complete or has no `supabase`).
 * @throws Error when `supabase` names a platform package {@link CLI_PLATFORMS} does not know, or pins a
 *   range instead of an exact version (its platform packages are always pinned to its own version).
 */
export function addCliPlatformEntries(lock: PackageLock): string[] {
  const cli = lock.packages[`node_modules/${CLI_PACKAGE}`];
  if (!cli) return [];
  const added: Record<string, LockEntry> = {};
  for (const [name, version] of Object.entries(cli.optionalDependencies ?? {})) {
    const path = `node_modules/${name}`;
    if (path in lock.packages) continue;
    const suffix = /^@supabase\/cli-(.+)$/.exec(name)?.[1];
    if (!suffix) throw new Error(`${CLI_PACKAGE}: unexpected optional dependency ${name}`);
    if (!/^\d+\.\d+\.\d+(-[\w.]+)?$/.test(version)) {
      throw new Error(`${CLI_PACKAGE}: ${name}@${version} is not an exact version`);
    }
    added[path] = cliPlatformEntry(suffix, version, cli.dev === true);
  }
  const paths = Object.keys(added);
  if (paths.length === 0) return [];
  // Insert each before the first existing key that sorts after it; existing order stays untouched.
  const merged: Record<string, LockEntry> = {};
  const pending = [...paths].sort();
  for (const [key, entry] of Object.entries(lock.packages)) {
    while (key !== "" && pending.length > 0 && pending[0] < key) {
      const p = pending.shift()!;
      merged[p] = added[p];
    }
    merged[key] = entry;
  }
  for (const p of pending) merged[p] = added[p];
  lock.packages = merged;
  return paths;
}

if (import.meta.main) {
  const file = new URL("../package-lock.json", import.meta.url);
  const lock = JSON.parse(await Deno.readTextFile(file)) as PackageLock;
  const added = addCliPlatformEntries(lock);
  if (added.length > 0) {
    // npm's own format: two-space indentation and a final newline.
    await Deno.writeTextFile(file, JSON.stringify(lock, null, 2) + "\n");
    console.log(`package-lock.json: added ${added.join(", ")}`);
  } else {
    console.log("package-lock.json: every Supabase CLI platform package is locked already");
  }
  const missing = missingOptionalEntries(lock);
  if (missing.length > 0) {
    console.error(`still missing (npm ci will refuse the lock):\n  ${missing.join("\n  ")}`);
    Deno.exit(1);
  }
}
