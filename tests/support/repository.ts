/**
 * The repository as a set of files, and the rule that it stands on its own: no file reads or cites a
 * path outside it. Used by tests/unit/repository.test.ts and tests/unit/docs.test.ts.
 */
import { dirname, normalize, posix } from "node:path";

/** The repository root as a file URL (with a trailing slash). */
export const ROOT = new URL("../../", import.meta.url);

/**
 * The repository's files as root-relative POSIX paths, sorted: what `git ls-files` tracks plus new
 * files git does not ignore, minus files deleted from the working tree. Outside a git checkout (an
 * unpacked archive) it walks the tree instead, skipping `.git` and what .gitignore names.
 */
export function repositoryFiles(): string[] {
  let names: string[];
  try {
    const out = new Deno.Command("git", {
      args: ["ls-files", "-z", "--cached", "--others", "--exclude-standard"],
      cwd: ROOT,
      stdout: "piped",
      stderr: "null",
    }).outputSync();
    if (!out.success) throw new Error("not a git checkout");
    names = new TextDecoder().decode(out.stdout).split("\0").filter(Boolean);
  } catch {
    names = walk("", ignoredBy(Deno.readTextFileSync(new URL(".gitignore", ROOT))));
  }
  return [...new Set(names)].filter((name) => {
    try {
      return Deno.statSync(new URL(name, ROOT)).isFile;
    } catch {
      return false;
    }
  }).sort();
}

/** A matcher for the simple .gitignore patterns this repository uses (`dir/`, `*.ext`, `path`). */
function ignoredBy(gitignore: string): (path: string) => boolean {
  const patterns = gitignore.split("\n").map((l) => l.trim()).filter((l) => l && !l.startsWith("#"));
  return (path) =>
    path === ".git" || patterns.some((p) => {
      const bare = p.replace(/^\//, "").replace(/\/$/, "");
      if (bare.startsWith("*.")) return path.endsWith(bare.slice(1));
      return bare.includes("/") ? path === bare : posix.basename(path) === bare;
    });
}

function walk(dir: string, ignored: (path: string) => boolean): string[] {
  const files: string[] = [];
  for (const entry of Deno.readDirSync(new URL(dir || ".", ROOT))) {
    const path = dir ? `${dir}/${entry.name}` : entry.name;
    if (ignored(path)) continue;
    if (entry.isDirectory) files.push(...walk(path, ignored));
    else if (entry.isFile) files.push(path);
  }
  return files;
}

/** A file's text, or undefined for a binary file (one with a NUL byte). */
export function readText(path: string): string | undefined {
  const bytes = Deno.readFileSync(new URL(path, ROOT));
  if (bytes.includes(0)) return undefined;
  return new TextDecoder().decode(bytes);
}

/** One place a file mentions something outside the repository. */
export interface OutsideMention {
  /** 1-based line number. */
  line: number;
  /** The path as written. */
  path: string;
  /** Why it counts as outside. */
  why: string;
}

/**
 * Absolute paths a script may legitimately use: the Debian layout of PostgreSQL and pgbouncer that
 * `.ci/run` and the test helpers work with, system binaries, and the system temporary directory.
 * Prefixes, matched on whole path segments.
 */
export const ALLOWED_ABSOLUTE_PREFIXES: readonly string[] = [
  "/etc/postgresql",
  "/etc/postgresql-common",
  "/etc/pgbouncer",
  "/usr/lib/postgresql",
  "/usr/share/postgresql",
  "/usr/include/postgresql",
  "/var/run/postgresql",
  "/var/run/pgbouncer",
  "/var/log/postgresql",
  "/var/log/pgbouncer",
  "/var/lib/postgresql",
  "/usr/bin",
  "/usr/sbin",
  "/usr/local/bin",
  "/tmp",
  "/var/tmp",
];

/**
 * Files whose absolute paths are made-up examples, not locations on a machine: tests of pure
 * path-planning functions, which read and write nothing at those paths.
 */
export const EXAMPLE_PATH_FILES: readonly string[] = ["tests/unit/embedded-cluster.test.ts"];

/**
 * Relative paths that leave the repository on purpose: `.ci/run` builds pg_net and Vault from a
 * `shared/vendor` directory beside the checkout when one is there (it is optional; see docs/development.md).
 */
export const ALLOWED_ESCAPES: readonly { file: string; prefix: string }[] = [
  // Spelled in parts so that this file does not itself mention the path.
  { file: ".ci/run", prefix: ["..", "shared", "vendor"].join("/") },
];

/** Top-level directories of a machine (not of this repository) that a path may point into. */
const MACHINE_ROOTS = [
  "work",
  "root",
  "home",
  "Users",
  "mnt",
  "srv",
  "opt",
  "var",
  "etc",
  "usr",
  "tmp",
  "private",
  "Volumes",
  "workspace",
  "workspaces",
  "builds",
];
const PATH_CHARS = String.raw`[^\s"'\x60()\[\]<>{},;|*$]`;
/** An absolute path into one of {@link MACHINE_ROOTS}, not part of a URL or of a longer path. */
const ABSOLUTE = new RegExp(
  String.raw`(?<![\w.\-/:~$}\]\\])/(?:${MACHINE_ROOTS.join("|")})/${PATH_CHARS}*`,
  "g",
);
/** A Windows user directory (drive letter, then Users), also with escaped backslashes. */
const WINDOWS = /\b[A-Za-z]:(?:\\\\|\\|\/)(?:Users|home|Documents and Settings)\b/gi;
/** A relative path that climbs (starts with one or more parent-directory steps). */
const CLIMBING = new RegExp(String.raw`(?<![\w.])(?:\.\./)+${PATH_CHARS}*`, "g");
/** A Markdown document named by file name or relative path (not inside a URL). */
const MARKDOWN_NAME = /(?<![\w./\-])((?:[\w.\-]+\/)*[\w.\-]+\.md)\b/g;

function lineOf(text: string, index: number): number {
  let line = 1;
  for (let i = 0; i < index; i++) if (text.charCodeAt(i) === 10) line++;
  return line;
}

function withinSegments(path: string, prefix: string): boolean {
  return path === prefix || path.startsWith(prefix.endsWith("/") ? prefix : `${prefix}/`);
}

/** Whether `path`, written in `file`, is one of {@link ALLOWED_ESCAPES}, as written or as resolved. */
function allowedEscape(file: string, path: string): boolean {
  const resolved = normalize(posix.join(dirname(file), path));
  return ALLOWED_ESCAPES.some((a) =>
    a.file === file && (withinSegments(path, a.prefix) || withinSegments(resolved, a.prefix))
  );
}

/**
 * Every mention in `text` (the content of repository file `file`) of a path outside the repository:
 * an absolute path into a machine directory (work, root, a user's home, a Windows user directory ...)
 * other than {@link ALLOWED_ABSOLUTE_PREFIXES}; a relative path that climbs out of the
 * repository, or climbs to nothing in it (then it means the working directory's parent), other than
 * {@link ALLOWED_ESCAPES}; and a Markdown document that is not in the repository (a design note kept
 * elsewhere). `files` is the repository's file list ({@link repositoryFiles}).
 */
export function outsideMentions(file: string, text: string, files: readonly string[]): OutsideMention[] {
  const found: OutsideMention[] = [];
  const exists = (path: string) => {
    const clean = path.replace(/\/+$/, "");
    return clean === "" || clean === "." || files.some((f) => withinSegments(f, clean));
  };
  const basenames = new Set(files.map((f) => posix.basename(f)));

  for (const m of EXAMPLE_PATH_FILES.includes(file) ? [] : text.matchAll(ABSOLUTE)) {
    const path = m[0].replace(/[.:]+$/, "");
    if (ALLOWED_ABSOLUTE_PREFIXES.some((p) => withinSegments(path, p))) continue;
    found.push({ line: lineOf(text, m.index), path, why: "absolute path on a machine" });
  }
  for (const m of text.matchAll(WINDOWS)) {
    found.push({ line: lineOf(text, m.index), path: m[0], why: "absolute Windows path" });
  }
  for (const m of text.matchAll(CLIMBING)) {
    const path = m[0].replace(/[.:]+$/, "");
    if (allowedEscape(file, path)) continue;
    const resolved = normalize(posix.join(dirname(file), path));
    if (resolved.startsWith("..")) {
      found.push({ line: lineOf(text, m.index), path, why: "climbs out of the repository" });
    } else if (!exists(resolved)) {
      found.push({
        line: lineOf(text, m.index),
        path,
        why: "climbs to nothing in the repository (outside it, from the repository root)",
      });
    }
  }
  for (const m of text.matchAll(MARKDOWN_NAME)) {
    const path = m[1];
    const fromFile = normalize(posix.join(dirname(file), path));
    if (exists(path) || exists(fromFile) || (!path.includes("/") && basenames.has(path))) continue;
    if (allowedEscape(file, path)) continue;
    found.push({ line: lineOf(text, m.index), path, why: "names a document that is not in the repository" });
  }
  return found;
}
