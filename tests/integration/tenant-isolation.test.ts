/**
 * Tenant isolation as an attacker tries it (issue 7): a signed-in user of tenant A writes
 * appointments naming a staff member of tenant B, the way the app lets them (SQL as PostgREST runs
 * it: `set local role authenticated` and the user's claims, the app's RLS applying), with a worker
 * process draining the outbox in the background and real HTTP to the functions.
 *
 * - On host tables the app created (tests/fixtures/app-host-tables.sql, applied before the
 *   migrations, with no composite key), the inserts succeed, and still: 0 provider calls, 0 events
 *   on B's calendar (also after B reconnects and the backfill runs), 0 sync rows, and nothing of
 *   tenant B's (calendar ids, sync rows, status lines) readable by tenant A through the status view,
 *   calendar_sync_log, staff_calendar_connections, list-calendars, get-availability,
 *   sync-appointment or disconnect. The migrations leave the app's grants, RLS, policies and
 *   constraints exactly as they were.
 * - On the host tables this project creates, the composite foreign key refuses the inserts.
 * - Upgrading a database where an earlier release already queued (and wrote) such an appointment
 *   for B: the migration hands the row to B's tenant as a delete, and the worker removes the event.
 *
 * "0 provider calls" is measured without timing: the sandbox's call counters for one ordinary
 * appointment of tenant A, synced by the same worker, are the same with and without the attack
 * in front of it (the worker processes rows in order of due time, so the attack's rows would have
 * been handled first).
 */
import assert from "node:assert/strict";
import postgres from "postgres";
import { eventIdFor } from "../../supabase/functions/_shared/providers/google/event-id.ts";
import { assertEnvelope } from "../support/assertions.ts";
import { waitFor } from "../support/poll.ts";
import { applyMigrations } from "../../dev/stack/database.ts";
import { startTestStack, type TestStack, type TestStaff } from "../support/stack.ts";
import { spawnWorker, type WorkerProcess } from "../support/workers.ts";

const HOUR = 3_600_000;
const APP_TABLES = new URL("../fixtures/app-host-tables.sql", import.meta.url);
const ATTACK_SIZE = 200;

/** A future slot: day `d` from tomorrow at hour `h` (UTC), one hour long. */
function slot(d: number, h: number): { startsAt: string; endsAt: string } {
  const base = new Date();
  base.setUTCHours(0, 0, 0, 0);
  const start = base.getTime() + (d + 1) * 24 * HOUR + h * HOUR;
  return { startsAt: new Date(start).toISOString(), endsAt: new Date(start + HOUR).toISOString() };
}

/** Run `fn` as PostgREST runs a request of `staff` (role authenticated, their claims), committed. */
async function asUser<T>(
  stack: TestStack,
  staff: TestStaff,
  fn: (tx: postgres.TransactionSql) => Promise<T>,
): Promise<T> {
  return await stack.sql.begin(async (tx) => {
    await tx.unsafe("set local role authenticated");
    await tx`select set_config('request.jwt.claims', ${
      JSON.stringify({ sub: staff.profileId, role: "authenticated", email: staff.email })
    }, true)`;
    return await fn(tx);
  }) as T;
}

/** Grants, RLS, policies, constraints and comments of the host tables, for before/after comparison. */
async function hostTableState(sql: postgres.Sql): Promise<unknown> {
  return await sql`
    select c.relname::text as name, c.relacl::text[] as acl, c.relrowsecurity as rls,
      c.relforcerowsecurity as force_rls, obj_description(c.oid, 'pg_class') as comment,
      (select array_agg(p.policyname || ' ' || p.cmd || ' ' || p.roles::text || ' ' || coalesce(p.qual, '') ||
         ' ' || coalesce(p.with_check, '') order by p.policyname)
       from pg_policies p where p.schemaname = 'public' and p.tablename = c.relname) as policies,
      (select array_agg(k.conname || ' ' || pg_get_constraintdef(k.oid) order by k.conname)
       from pg_constraint k where k.conrelid = c.oid) as constraints,
      (select array_agg(a.attname || ' ' || a.attacl::text order by a.attname)
       from pg_attribute a where a.attrelid = c.oid and a.attacl is not null) as column_acl
    from pg_class c
    where c.oid in ('public.tenants'::regclass, 'public.staff'::regclass, 'public.appointments'::regclass)
    order by c.relname`;
}

/** The sandbox's per-endpoint call counts while `fn` runs (counters reset first). */
async function callsDuring(stack: TestStack, fn: () => Promise<void>): Promise<Record<string, number>> {
  await stack.sandbox.resetCalls();
  await fn();
  return (await stack.sandbox.calls()).byEndpoint;
}

Deno.test("attack: tenant A names tenant B's staff on appointments in an app's own tables", async (t) => {
  let before: unknown;
  const stack = await startTestStack({
    // The attack is measured in outbox provider calls: inbound sync (on by default) would add channel
    // watches and the reads of our own writes' notifications, at times the background worker decides.
    env: { CALENDAR_INBOUND_SYNC: "off" },
    beforeMigrations: async (url) => {
      const sql = postgres(url, { max: 1, onnotice: () => {} });
      try {
        await sql.unsafe(await Deno.readTextFile(APP_TABLES));
        before = await hostTableState(sql);
      } finally {
        await sql.end({ timeout: 5 });
      }
    },
  });
  let worker: WorkerProcess | undefined;
  try {
    const clinicA = await stack.createTenant("Clinic A");
    const clinicB = await stack.createTenant("Clinic B");
    const mallory = await stack.createStaff({ tenantId: clinicA });
    const adminA = await stack.createStaff({ tenantId: clinicA, role: "admin" });
    const alice = await stack.createStaff({ tenantId: clinicA });
    const bob = await stack.createStaff({ tenantId: clinicB });
    for (const staff of [alice, bob]) {
      assert.match((await stack.connect(staff)).location, /calendar_status=connected/);
    }
    worker = await spawnWorker({ env: stack.env, name: "tenant", extra: { WORKER_IDLE_MS: "20" } });
    /** Everything tenant B owns that must never show up on tenant A's side. */
    const secretsOfB = [bob.email, bob.id];
    const leaksB = (text: string) => secretsOfB.filter((s) => text.includes(s));

    /** An ordinary appointment of Alice's, synced by the worker: the yardstick of provider calls. */
    let hour = 8;
    const syncAlice = async () => {
      const times = slot(1, hour++);
      const id = await stack.createAppointment({ tenantId: clinicA, staffId: alice.id, ...times });
      await waitFor(
        `Alice's appointment ${id} on her calendar`,
        async () => (await stack.sandbox.events(alice.email)).some((e) => e.id === eventIdFor(id)),
        Boolean,
      );
      await waitFor(
        `Alice's row of ${id} settled`,
        async () =>
          (await stack.sql`select sync_status from public.calendar_sync_log where appointment_key = ${id}`)[0]
            ?.sync_status,
        (s) => s === "synced",
      );
    };

    await t.step(
      "the migrations left the app's grants, RLS, policies and constraints as they were",
      async () => {
        assert.deepEqual(await hostTableState(stack.sql), before);
        const [row] = await stack.sql`select calendar_private.host_tables_are_ours() as ours`;
        assert.equal(row.ours, false, "the app's tables are not taken for ours");
      },
    );

    const yardstick = await callsDuring(stack, syncAlice);
    assert.ok(
      (yardstick["events.insert"] ?? 0) >= 1,
      `the yardstick wrote an event: ${JSON.stringify(yardstick)}`,
    );
    let attackIds: string[] = [];

    await t.step(
      `${ATTACK_SIZE} appointments naming B's staff member make 0 provider calls and 0 events`,
      async () => {
        const calls = await callsDuring(stack, async () => {
          attackIds = await asUser(stack, mallory, async (tx) => {
            const rows = await tx<{ id: string }[]>`
            insert into public.appointments (tenant_id, staff_id, starts_at, ends_at)
            select ${clinicA}, ${bob.id}, now() + g * interval '1 hour', now() + g * interval '1 hour' + interval '30 minutes'
            from generate_series(1, ${ATTACK_SIZE}) g
            returning id`;
            return rows.map((r) => r.id);
          });
          assert.equal(attackIds.length, ATTACK_SIZE, "the app's RLS let the inserts through");
          // Moving and cancelling them is the same attack through the update path.
          await asUser(
            stack,
            mallory,
            (tx) =>
              tx`update public.appointments set starts_at = starts_at + interval '5 minutes',
              ends_at = ends_at + interval '5 minutes'
            where id = any(${attackIds}::uuid[])`,
          );
          await asUser(
            stack,
            mallory,
            (tx) =>
              tx`update public.appointments set status = 'cancelled' where id = any(${
                attackIds.slice(0, 20)
              }::uuid[])`,
          );
          await syncAlice();
        });
        assert.deepEqual(calls, yardstick, "the attack added no provider call to one ordinary sync");
        const { recent } = await stack.sandbox.admin<{ recent: { email?: string }[] }>(
          "GET",
          "/_admin/calls",
        );
        assert.equal(recent.filter((c) => c.email === bob.email).length, 0, "no call for B's account");
        assert.deepEqual(
          await stack.sandbox.events(bob.email, bob.email, true),
          [],
          "no event ever reached B",
        );
        const [log] = await stack.sql`
        select count(*)::int as n from public.calendar_sync_log
        where staff_id = ${bob.id} or appointment_key = any(${attackIds}::uuid[])`;
        assert.equal(log.n, 0, "no sync row for the attack");
      },
    );

    await t.step("calendar-sync-appointment on those appointments is refused, whoever asks", async () => {
      const calls = await callsDuring(stack, async () => {
        for (const jwt of [mallory.jwt, adminA.jwt, stack.serviceRoleJwt]) {
          for (const id of attackIds.slice(15, 25)) {
            const res = await stack.invoke("calendar-sync-appointment", {
              jwt,
              body: { appointment_id: id },
            });
            const body = await assertEnvelope(res, 422, "staff_not_in_tenant");
            assert.deepEqual(leaksB(JSON.stringify(body)), []);
          }
        }
        const res = await stack.invoke("google-calendar-sync-appointment", {
          jwt: mallory.jwt,
          body: { appointment_id: attackIds[30], action: "create" },
        });
        await assertEnvelope(res, 422, "staff_not_in_tenant");
      });
      assert.deepEqual(calls, {}, "no provider call");
      const [log] = await stack.sql`
        select count(*)::int as n from public.calendar_sync_log where staff_id = ${bob.id}`;
      assert.equal(log.n, 0);
    });

    await t.step("B reconnecting (the backfill) still puts none of them on B's calendar", async () => {
      assert.match((await stack.connect(bob)).location, /calendar_status=connected/);
      await syncAlice(); // the worker has drained whatever the backfill queued before this
      assert.deepEqual(await stack.sandbox.events(bob.email, bob.email, true), []);
      const [log] = await stack.sql`
        select count(*)::int as n from public.calendar_sync_log where staff_id = ${bob.id}`;
      assert.equal(log.n, 0, "the backfill queued nothing for B");
    });

    await t.step(
      "tenant A reads nothing of B's through the status view, the sync log or connections",
      async () => {
        for (const reader of [mallory, adminA, alice]) {
          const seen = await asUser(stack, reader, async (tx) => ({
            status: await tx`select * from public.calendar_sync_status`,
            log: await tx`select * from public.calendar_sync_log`,
            connections: await tx`
            select id, tenant_id, staff_id, provider, selected_calendar_id, connection_status, account_email,
              last_error from public.staff_calendar_connections`,
          }));
          const text = JSON.stringify(seen);
          assert.deepEqual(leaksB(text), [], `${reader.email} sees nothing of B`);
          assert.ok(!text.includes(clinicB), `${reader.email} sees no row of tenant B`);
        }
      },
    );

    await t.step("tenant A reads nothing of B's through the functions", async () => {
      const answers: [string, Response, number, string?][] = [
        [
          "list-calendars (attacker)",
          await stack.invoke("calendar-list-calendars", { jwt: mallory.jwt }),
          409,
        ],
        ["list-calendars (Alice)", await stack.invoke("calendar-list-calendars", { jwt: alice.jwt }), 200],
        [
          "get-availability of B's staff (attacker)",
          await stack.invoke("calendar-get-availability", {
            jwt: mallory.jwt,
            body: { staff_id: bob.id, time_min: slot(0, 0).startsAt, time_max: slot(3, 0).startsAt },
          }),
          403,
          "forbidden_tenant",
        ],
        [
          "get-availability of B's staff (A's admin)",
          await stack.invoke("calendar-get-availability", {
            jwt: adminA.jwt,
            body: { staff_id: bob.id, time_min: slot(0, 0).startsAt, time_max: slot(3, 0).startsAt },
          }),
          403,
          "forbidden_tenant",
        ],
        [
          "disconnect B's staff (A's admin)",
          await stack.invoke("calendar-disconnect", { jwt: adminA.jwt, body: { staff_id: bob.id } }),
          403,
          "forbidden_tenant",
        ],
        [
          "disconnect B's staff (attacker)",
          await stack.invoke("calendar-disconnect", { jwt: mallory.jwt, body: { staff_id: bob.id } }),
          403,
          "forbidden_tenant",
        ],
      ];
      for (const [what, res, status, code] of answers) {
        const text = await res.text();
        assert.equal(res.status, status, `${what}: ${text}`);
        if (code) assert.equal(JSON.parse(text).error.code, code, what);
        assert.deepEqual(leaksB(text), [], `${what} shows nothing of B`);
      }
      const [conn] = await stack.sql`
        select connection_status from public.staff_calendar_connections where staff_id = ${bob.id}`;
      assert.equal(conn.connection_status, "connected", "B's connection is untouched");
    });
  } finally {
    await worker?.stop();
    await stack.close();
  }
});

Deno.test("attack: on the host tables this project creates, the composite key refuses the appointment", async () => {
  const stack = await startTestStack();
  try {
    const clinicA = await stack.createTenant("Clinic A");
    const clinicB = await stack.createTenant("Clinic B");
    const mallory = await stack.createStaff({ tenantId: clinicA });
    const bob = await stack.createStaff({ tenantId: clinicB });
    assert.match((await stack.connect(bob)).location, /calendar_status=connected/);
    const [row] = await stack.sql`select calendar_private.host_tables_are_ours() as ours`;
    assert.equal(row.ours, true);
    await stack.sandbox.resetCalls();
    const times = slot(0, 9);
    await assert.rejects(
      asUser(
        stack,
        mallory,
        (tx) =>
          tx`insert into public.appointments (tenant_id, staff_id, starts_at, ends_at)
          select ${clinicA}, ${bob.id}, ${times.startsAt}, ${times.endsAt} from generate_series(1, ${ATTACK_SIZE})`,
      ),
      (err: { code?: string; constraint_name?: string }) =>
        err.code === "23503" && err.constraint_name === "appointments_tenant_id_staff_id_fkey",
    );
    // Re-pointing one of A's own appointments at B's staff member is refused the same way.
    const own = await stack.createAppointment({ tenantId: clinicA, staffId: mallory.id, ...times });
    await assert.rejects(
      asUser(
        stack,
        mallory,
        (tx) => tx`update public.appointments set staff_id = ${bob.id} where id = ${own}`,
      ),
      (err: { code?: string }) => err.code === "23503",
    );
    const [counts] = await stack.sql`
      select (select count(*)::int from public.appointments where staff_id = ${bob.id}) as appointments,
        (select count(*)::int from public.calendar_sync_log where staff_id = ${bob.id}) as rows`;
    assert.deepEqual({ ...counts }, { appointments: 0, rows: 0 });
    assert.equal((await stack.sandbox.calls()).total, 0, "no provider call");
    assert.deepEqual(await stack.sandbox.events(bob.email, bob.email, true), []);
  } finally {
    await stack.close();
  }
});

Deno.test("upgrade: a row an earlier release queued across tenants goes back to B and its event is deleted", async () => {
  const id = () => crypto.randomUUID();
  const tenantA = id(), tenantB = id(), bobUser = id(), bobStaff = id(), mallory = id(), appointment = id();
  const bobEmail = `bob-${id().slice(0, 8)}@example.com`;
  const times = slot(1, 10);
  const stack = await startTestStack({
    beforeMigrations: async (url) => {
      // The database as the release before the tenant-isolation migration left it, after the attack.
      await applyMigrations(url, { before: "20261129000200" });
      const sql = postgres(url, { max: 1, onnotice: () => {} });
      try {
        await sql`insert into public.tenants (id, name) values (${tenantA}, 'Clinic A'), (${tenantB}, 'Clinic B')`;
        await sql`insert into auth.users (id, email) values (${bobUser}, ${bobEmail})`;
        await sql`insert into public.staff (id, tenant_id, profile_id, email) values
          (${bobStaff}, ${tenantB}, ${bobUser}, ${bobEmail}), (${mallory}, ${tenantA}, null, null)`;
        await sql`insert into public.staff_calendar_connections (tenant_id, staff_id, refresh_token_encrypted)
          values (${tenantB}, ${bobStaff}, 'v1.k1.old.old')`;
        await sql`insert into public.appointments (id, tenant_id, staff_id, starts_at, ends_at)
          values (${appointment}, ${tenantA}, ${bobStaff}, ${times.startsAt}, ${times.endsAt})`;
        // What the earlier worker recorded after writing the event onto B's calendar.
        const updated =
          await sql`update public.calendar_sync_log set sync_status = 'synced', desired_action = null,
            pending_since = null, next_attempt_at = null, google_event_id = ${eventIdFor(appointment)},
            google_calendar_id = ${bobEmail}
          where appointment_key = ${appointment} and staff_id = ${bobStaff} and tenant_id = ${tenantA}`;
        assert.equal(updated.count, 1, "the earlier release queued the appointment for B under tenant A");
      } finally {
        await sql.end({ timeout: 5 });
      }
    },
  });
  let worker: WorkerProcess | undefined;
  try {
    const [row] = await stack.sql`
      select tenant_id, sync_status, desired_action from public.calendar_sync_log where appointment_key = ${appointment}`;
    assert.deepEqual({ ...row }, { tenant_id: tenantB, sync_status: "pending", desired_action: "delete" });
    const [fk] = await stack.sql`
      select convalidated from pg_constraint where conname = 'appointments_tenant_id_staff_id_fkey'`;
    assert.equal(fk?.convalidated, false, "the key is added, checking new rows, without failing the deploy");

    await stack.sandbox.admin("POST", "/_admin/accounts", { email: bobEmail });
    await stack.sandbox.admin(
      "POST",
      `/_admin/accounts/${encodeURIComponent(bobEmail)}/calendars/${encodeURIComponent(bobEmail)}/events`,
      { id: eventIdFor(appointment), start: times.startsAt, end: times.endsAt, summary: "ValorWell" },
    );
    assert.equal((await stack.sandbox.events(bobEmail)).length, 1, "the intruding event is on B's calendar");
    const bob: TestStaff = {
      id: bobStaff,
      tenantId: tenantB,
      profileId: bobUser,
      email: bobEmail,
      jwt: await stack.userJwt(bobUser, { email: bobEmail }),
    };
    assert.match((await stack.connect(bob)).location, /calendar_status=connected/);
    worker = await spawnWorker({ env: stack.env, name: "upgrade", extra: { WORKER_IDLE_MS: "20" } });
    const after = await waitFor(
      "the remediated row settled",
      async () =>
        (await stack.sql`
          select sync_status, event_id from public.calendar_sync_log where appointment_key = ${appointment}`)[
          0
        ],
      (r) => r?.sync_status !== "pending",
    );
    assert.deepEqual({ ...after }, { sync_status: "synced", event_id: null });
    const live = (await stack.sandbox.events(bobEmail)).filter((e) => e.status !== "cancelled");
    assert.deepEqual(live, [], "the intruding event is gone from B's calendar");
  } finally {
    await worker?.stop();
    await stack.close();
  }
});
