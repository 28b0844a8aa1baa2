/**
 * `npm start` / `npm test` as root from a checkout inside a private directory (mode 0700, like
 * /root): the embedded PostgreSQL runs as the `postgres` user, which cannot reach the checkout, so
 * its data and a copy of its binaries live in a per-checkout directory it can reach
 * (dev/stack/embedded-cluster.ts). This runs a real cluster that way, restarts it (reusing data and
 * binaries), and refuses a state directory someone else planted in the shared parent.
 *
 * Only meaningful as root with a `postgres` system user; skipped otherwise, with a message.
 */
import assert from "node:assert/strict";
import postgres from "postgres";
import {
  ClusterSetupError,
  lookupUser,
  packageInstallDir,
  planFor,
  startCluster,
} from "../../dev/stack/embedded-cluster.ts";

const ROOT = new URL("../../", import.meta.url).pathname;
const isRoot = Deno.uid() === 0;
const pgUser = isRoot ? await lookupUser("postgres") : null;
const ignore = !isRoot || !pgUser;
if (ignore) {
  console.warn(
    `\n*** SKIPPED tests/integration/embedded-root.test.ts: ${
      isRoot ? "no 'postgres' system user" : "not running as root"
    } (it checks the embedded PostgreSQL started by root from a private directory)\n`,
  );
}

function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr as Deno.NetAddr;
  listener.close();
  return port;
}

/** A private directory (0700, root's) holding a "checkout" whose node_modules binaries are the real ones. */
async function privateCheckout(): Promise<{ dir: string; checkout: string; native: string }> {
  const dir = await Deno.makeTempDir({ prefix: "calendar-private-" });
  await Deno.chmod(dir, 0o700);
  const checkout = `${dir}/checkout`;
  await Deno.mkdir(`${checkout}/.local`, { recursive: true });
  // Reached through the private directory, as node_modules inside such a checkout would be.
  await Deno.symlink(packageInstallDir(`${ROOT}node_modules`).dir, `${checkout}/native`);
  return { dir, checkout, native: `${checkout}/native` };
}

/** A parent for the state directory, reachable by everyone (0755), in place of /var/tmp. */
async function stateBase(): Promise<string> {
  const base = await Deno.makeTempDir({ prefix: "calendar-state-" });
  await Deno.chmod(base, 0o755);
  return base;
}

Deno.test({
  name:
    "embedded PostgreSQL as root from a 0700 directory: data and binaries move where postgres can reach them",
  ignore,
  fn: async () => {
    const { dir, checkout, native } = await privateCheckout();
    const base = await stateBase();
    const password = crypto.randomUUID();
    const options = {
      dataDir: `${checkout}/.local/pg`,
      port: freePort(),
      user: "postgres",
      password,
      packageInstallDir: native,
      stateBases: [base],
    };
    try {
      const plan = await planFor(options);
      assert.equal(plan.relocated, true);
      assert.ok(plan.dataDir.startsWith(`${base}/calendar-sync-pg-`), plan.dataDir);
      assert.equal(plan.copyFrom, native);
      assert.deepEqual(plan.runAs, pgUser);

      const query = async (port: number) => {
        const sql = postgres(`postgres://postgres:${password}@127.0.0.1:${port}/postgres`, {
          max: 1,
          onnotice: () => {},
        });
        try {
          const [row] = await sql<{ dir: string; user: string; n: number }[]>`
            select current_setting('data_directory') as dir, current_user as user, 1 + 1 as n`;
          return row;
        } finally {
          await sql.end({ timeout: 5 });
        }
      };

      const first = await startCluster(options);
      try {
        assert.deepEqual(first.plan, plan);
        assert.deepEqual({ ...await query(options.port) }, { dir: plan.dataDir, user: "postgres", n: 2 });
      } finally {
        await first.stop();
      }
      const data = await Deno.stat(plan.dataDir);
      assert.equal(data.uid, pgUser!.uid, "the data directory belongs to postgres");
      assert.equal((data.mode ?? 0) & 0o777, 0o700);
      const copy = await Deno.stat(`${plan.installDir}/bin/postgres`);
      assert.equal(copy.uid, 0, "the copied binaries belong to root");
      assert.equal((copy.mode ?? 0) & 0o022, 0, "and nobody else may change them");
      const copiedAt = (await Deno.stat(`${plan.installDir}/.complete`)).mtime?.getTime();
      assert.equal((await Deno.stat(`${checkout}/.local`)).isDirectory, true);
      assert.equal(
        await Deno.stat(`${checkout}/.local/pg`).then(() => true, () => false),
        false,
        "nothing is created in the unreachable place",
      );

      // A second start (a new port, as after a reboot) reuses the data and the copy.
      const port = freePort();
      const again = await startCluster({ ...options, port });
      try {
        assert.deepEqual(again.plan, plan);
        assert.equal((await query(port)).dir, plan.dataDir);
      } finally {
        await again.stop();
      }
      assert.equal((await Deno.stat(`${plan.installDir}/.complete`)).mtime?.getTime(), copiedAt);
    } finally {
      await Deno.remove(dir, { recursive: true }).catch(() => {});
      await Deno.remove(base, { recursive: true }).catch(() => {});
    }
  },
});

Deno.test({
  name:
    "embedded PostgreSQL as root: a state directory planted by another user in the shared parent is refused",
  ignore,
  fn: async () => {
    const { dir, checkout, native } = await privateCheckout();
    const base = await stateBase();
    await Deno.chmod(base, 0o1777); // shared, like /var/tmp
    const options = {
      dataDir: `${checkout}/.local/pg`,
      port: freePort(),
      user: "postgres",
      password: "unused",
      packageInstallDir: native,
      stateBases: [base],
    };
    try {
      const plan = await planFor(options);
      // Another local user got there first, with binaries of their choosing.
      await Deno.mkdir(`${plan.stateDir}/pgsql-custom/bin`, { recursive: true });
      await Deno.writeTextFile(`${plan.stateDir}/pgsql-custom/.complete`, "planted\n");
      await Deno.chown(plan.stateDir!, pgUser!.uid, pgUser!.gid);
      await assert.rejects(
        () => startCluster(options),
        (err: unknown) => err instanceof ClusterSetupError && /refusing to use/.test(err.message),
      );
      // A symlink to a directory of theirs is refused the same way.
      await Deno.remove(plan.stateDir!, { recursive: true });
      const theirs = await Deno.makeTempDir({ dir: base });
      await Deno.symlink(theirs, plan.stateDir!);
      await assert.rejects(
        () => startCluster(options),
        (err: unknown) => err instanceof ClusterSetupError && /refusing to use/.test(err.message),
      );
    } finally {
      await Deno.remove(dir, { recursive: true }).catch(() => {});
      await Deno.remove(base, { recursive: true }).catch(() => {});
    }
  },
});
