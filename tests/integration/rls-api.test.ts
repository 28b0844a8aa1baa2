/**
 * Row level security and column grants on real rows written by the functions (connect, sync), with
 * queries run the way PostgREST runs them: inside a transaction, `set local role authenticated`
 * (or anon) and the caller's claims in `request.jwt.claims` (PostgREST sets them with
 * `set_config('request.jwt.claims', ..., true)`, i.e. `set local`). Every transaction is rolled back.
 */
import assert from "node:assert/strict";
import type postgres from "postgres";
import { startTestStack, type TestStack, type TestStaff } from "../support/stack.ts";

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const DAY0 = Math.floor(Date.now() / DAY) * DAY + 2 * DAY;

/** Carries a transaction's result out of `sql.begin` while forcing a rollback. */
class Rollback<T> extends Error {
  constructor(readonly value: T) {
    super("rollback");
  }
}

type Who = { role: "anon" } | { role: "authenticated"; staff: TestStaff };

/** Run `fn` as PostgREST would for `who`, then roll everything back. @returns fn's result. */
async function as<T>(
  stack: TestStack,
  who: Who,
  fn: (tx: postgres.TransactionSql) => Promise<T>,
): Promise<T> {
  try {
    await stack.sql.begin(async (tx) => {
      await tx.unsafe(`set local role ${who.role}`);
      const claims = who.role === "anon"
        ? { role: "anon" }
        : { sub: who.staff.profileId, role: "authenticated", email: who.staff.email };
      await tx`select set_config('request.jwt.claims', ${JSON.stringify(claims)}, true)`;
      throw new Rollback(await fn(tx));
    });
  } catch (err) {
    if (err instanceof Rollback) return err.value as T;
    throw err;
  }
  throw new Error("unreachable: the transaction always rolls back");
}

/** The SQLSTATE `fn` fails with as `who` (e.g. 42501 insufficient_privilege), or "ok". */
async function sqlState(
  stack: TestStack,
  who: Who,
  fn: (tx: postgres.TransactionSql) => Promise<unknown>,
): Promise<string> {
  try {
    await as(stack, who, fn);
    return "ok";
  } catch (err) {
    return (err as { code?: string }).code ?? String(err);
  }
}

const PUBLIC_COLUMNS = [
  "id",
  "tenant_id",
  "staff_id",
  "provider",
  "token_expires_at",
  "selected_calendar_id",
  "connection_status",
  "granted_scopes",
  "account_email",
  "last_sync_at",
  "last_error",
  "connected_at",
  "created_at",
  "updated_at",
];

Deno.test("RLS and grants as PostgREST applies them, on rows written by the functions", async (t) => {
  const stack = await startTestStack();
  try {
    const clinicA = await stack.createTenant("Clinic A");
    const clinicB = await stack.createTenant("Clinic B");
    const alice = await stack.createStaff({ tenantId: clinicA });
    const carol = await stack.createStaff({ tenantId: clinicA });
    const admin = await stack.createStaff({ tenantId: clinicA, role: "admin" });
    const bob = await stack.createStaff({ tenantId: clinicB });
    for (const staff of [alice, carol, bob]) {
      const { location } = await stack.connect(staff);
      assert.match(location, /calendar_status=connected/, `connect ${staff.email}`);
    }
    const apptAlice = await stack.createAppointment({
      tenantId: clinicA,
      staffId: alice.id,
      startsAt: new Date(DAY0 + 9 * HOUR).toISOString(),
      endsAt: new Date(DAY0 + 10 * HOUR).toISOString(),
    });
    const apptBob = await stack.createAppointment({
      tenantId: clinicB,
      staffId: bob.id,
      startsAt: new Date(DAY0 + 9 * HOUR).toISOString(),
      endsAt: new Date(DAY0 + 10 * HOUR).toISOString(),
    });
    for (const id of [apptAlice, apptBob]) {
      const res = await stack.invoke("calendar-sync-appointment", {
        jwt: stack.serviceRoleJwt,
        body: { appointment_id: id },
      });
      assert.equal(res.status, 200, await res.text());
    }
    const asAlice: Who = { role: "authenticated", staff: alice };

    await t.step("the functions stored tokens as ciphertext only", async () => {
      const rows = await stack.sql<{ access_token_encrypted: string; refresh_token_encrypted: string }[]>`
        select access_token_encrypted, refresh_token_encrypted from public.staff_calendar_connections`;
      assert.equal(rows.length, 3);
      for (const row of rows) {
        for (const value of [row.access_token_encrypted, row.refresh_token_encrypted]) {
          assert.match(value, /^v1\.k1\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/);
          assert.ok(!value.includes("ya29.") && !value.includes("1//"), "no plaintext token");
        }
      }
    });

    await t.step("a staff member reads their own connection's non-secret columns", async () => {
      const rows = await as(
        stack,
        asAlice,
        (tx) => tx`select ${tx(PUBLIC_COLUMNS)} from public.staff_calendar_connections`,
      );
      assert.equal(rows.length, 1);
      assert.equal(rows[0].staff_id, alice.id);
      assert.equal(rows[0].tenant_id, clinicA);
      assert.equal(rows[0].connection_status, "connected");
      assert.equal(rows[0].selected_calendar_id, "primary");
      assert.ok(
        (rows[0].granted_scopes as string[]).includes("https://www.googleapis.com/auth/calendar.events"),
      );
    });

    await t.step("selecting a token column (or *) is permission denied", async () => {
      for (const column of ["access_token_encrypted", "refresh_token_encrypted"]) {
        assert.equal(
          await sqlState(
            stack,
            asAlice,
            (tx) =>
              tx`select ${tx(column)} from public.staff_calendar_connections where staff_id = ${alice.id}`,
          ),
          "42501",
          column,
        );
      }
      assert.equal(
        await sqlState(stack, asAlice, (tx) => tx`select * from public.staff_calendar_connections`),
        "42501",
      );
    });

    await t.step(
      "another staff member's row and other tenants' rows are invisible (a tenant admin reads the tenant's)",
      async () => {
        const seen = await as(
          stack,
          asAlice,
          (tx) => tx<{ staff_id: string }[]>`select staff_id from public.staff_calendar_connections`,
        );
        assert.deepEqual(seen.map((r) => r.staff_id), [alice.id]);
        for (const other of [carol, bob]) {
          const rows: { id: string }[] = await as(
            stack,
            asAlice,
            (tx) =>
              tx<
                { id: string }[]
              >`select id from public.staff_calendar_connections where staff_id = ${other.id}`,
          );
          assert.equal(rows.length, 0, `${other.email}'s connection is invisible to alice`);
        }
        const bobSees = await as(
          stack,
          { role: "authenticated", staff: bob },
          (tx) => tx<{ staff_id: string }[]>`select staff_id from public.staff_calendar_connections`,
        );
        assert.deepEqual(bobSees.map((r) => r.staff_id), [bob.id]);
        // A tenant admin reads the tenant's connections (non-secret columns), never another tenant's,
        // and may not choose a colleague's calendar.
        const asAdmin: Who = { role: "authenticated", staff: admin };
        const adminSees = await as(
          stack,
          asAdmin,
          (tx) => tx<{ staff_id: string }[]>`select staff_id from public.staff_calendar_connections`,
        );
        assert.deepEqual(adminSees.map((r) => r.staff_id).sort(), [alice.id, carol.id].sort());
        assert.equal(
          await sqlState(
            stack,
            asAdmin,
            (tx) =>
              tx`update public.staff_calendar_connections set selected_calendar_id = 'x'
              where staff_id = ${alice.id}`,
          ),
          "42501",
        );
        assert.equal(
          await sqlState(
            stack,
            asAdmin,
            (tx) => tx`select refresh_token_encrypted from public.staff_calendar_connections`,
          ),
          "42501",
        );
      },
    );

    await t.step("no column is updatable through the API, not even selected_calendar_id", async () => {
      // Choosing a calendar goes through calendar-select-calendar, which checks it is writable.
      const denied: [string, (tx: postgres.TransactionSql) => Promise<unknown>][] = [
        [
          "selected_calendar_id (own row)",
          (tx) =>
            tx`update public.staff_calendar_connections set selected_calendar_id = 'team@example.com'
            where staff_id = ${alice.id}`,
        ],
        [
          "selected_calendar_id (others' rows)",
          (tx) =>
            tx`update public.staff_calendar_connections set selected_calendar_id = 'x'
            where staff_id in (${carol.id}, ${bob.id})`,
        ],
        [
          "connection_status",
          (tx) =>
            tx`update public.staff_calendar_connections set connection_status = 'disconnected'
            where staff_id = ${alice.id}`,
        ],
        [
          "access_token_encrypted",
          (tx) =>
            tx`update public.staff_calendar_connections set access_token_encrypted = 'v1.k1.a.b'
            where staff_id = ${alice.id}`,
        ],
        [
          "staff_id",
          (tx) =>
            tx`update public.staff_calendar_connections set staff_id = ${carol.id} where staff_id = ${alice.id}`,
        ],
        ["insert", (tx) =>
          tx`insert into public.staff_calendar_connections (tenant_id, staff_id, provider)
            values (${clinicA}, ${alice.id}, 'microsoft')`],
        ["delete", (tx) => tx`delete from public.staff_calendar_connections where staff_id = ${alice.id}`],
      ];
      for (const [what, fn] of denied) {
        assert.equal(await sqlState(stack, asAlice, fn), "42501", what);
      }
      const [row] = await stack.sql`select selected_calendar_id, connection_status
        from public.staff_calendar_connections where staff_id = ${alice.id}`;
      assert.deepEqual(row, { selected_calendar_id: "primary", connection_status: "connected" });
    });

    await t.step("calendar_oauth_states is unreadable for authenticated and anon", async () => {
      const [{ n }] = await stack.sql<
        { n: number }[]
      >`select count(*)::int as n from public.calendar_oauth_states`;
      assert.ok(n >= 3, "auth-start wrote state rows");
      for (const who of [asAlice, { role: "anon" } as Who]) {
        assert.equal(
          await sqlState(stack, who, (tx) => tx`select id, nonce from public.calendar_oauth_states`),
          "42501",
          who.role,
        );
        assert.equal(
          await sqlState(stack, who, (tx) => tx`select count(*) from public.calendar_oauth_states`),
          "42501",
          who.role,
        );
      }
    });

    await t.step(
      "the sync log: own rows for staff, the tenant's for its admin, nothing across tenants, no writes",
      async () => {
        const mine = await as(
          stack,
          asAlice,
          (tx) => tx<{ appointment_id: string }[]>`select appointment_id from public.calendar_sync_log`,
        );
        assert.deepEqual(mine.map((r) => r.appointment_id), [apptAlice]);
        const carolSees = await as(
          stack,
          { role: "authenticated", staff: carol },
          (tx) => tx`select id from public.calendar_sync_log`,
        );
        assert.equal(carolSees.length, 0);
        const adminSees = await as(
          stack,
          { role: "authenticated", staff: admin },
          (tx) => tx<{ appointment_id: string }[]>`select appointment_id from public.calendar_sync_log`,
        );
        assert.deepEqual(adminSees.map((r) => r.appointment_id), [apptAlice]);
        assert.equal(
          await sqlState(
            stack,
            asAlice,
            (tx) =>
              tx`update public.calendar_sync_log set sync_status = 'synced' where staff_id = ${alice.id}`,
          ),
          "42501",
        );
      },
    );

    await t.step("anon sees nothing of the calendar tables", async () => {
      for (const table of ["staff_calendar_connections", "calendar_sync_log", "calendar_oauth_states"]) {
        const state = await sqlState(
          stack,
          { role: "anon" },
          (tx) => tx`select id from ${tx("public." + table)}`,
        );
        assert.equal(state, "42501", table);
      }
    });
  } finally {
    await stack.close();
  }
});
