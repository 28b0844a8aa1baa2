/**
 * The test harness itself (tests/support/stack.ts, dev/stack/*): the scratch database is migrated
 * and recorded like the Supabase CLI, the bootstrap gives plain PostgreSQL Supabase's auth helpers,
 * the gateway process applies config.toml's verify_jwt before a function runs, and the whole OAuth
 * redirect flow through the sandbox ends in a connected, encrypted connection the functions can use.
 */
import assert from "node:assert/strict";
import { parseConfig } from "../../supabase/functions/_shared/config.ts";
import { connectionTokenBinding, decryptToken } from "../../supabase/functions/_shared/crypto.ts";
import { applyMigrations, migrationFiles } from "../../dev/stack/database.ts";
import { mintJwt } from "../../dev/stack/jwt.ts";
import { startTestStack } from "../support/stack.ts";

Deno.test("local stack: database, gateway and the OAuth redirect flow work end to end", async (t) => {
  const stack = await startTestStack();
  try {
    await t.step("every migration is recorded once in supabase_migrations.schema_migrations", async () => {
      const expected = (await migrationFiles()).map((f) => f.version);
      assert.ok(expected.length >= 1);
      const rows = await stack.sql<{ version: string; name: string; n: number }[]>`
        select version, name, coalesce(array_length(statements, 1), 0) as n
        from supabase_migrations.schema_migrations order by version`;
      assert.deepEqual(rows.map((r) => r.version), expected);
      for (const r of rows) {
        assert.ok(r.name.length > 0);
        assert.equal(r.n, 1);
      }
      assert.deepEqual(await applyMigrations(stack.dbUrl), [], "a second run applies nothing");
    });

    await t.step(
      "auth.uid(), auth.role() and auth.jwt() read request.jwt.claims as on Supabase",
      async () => {
        const sub = crypto.randomUUID();
        const claims = JSON.stringify({ sub, role: "authenticated", email: "a@example.com" });
        const [row] = await stack.sql.begin(async (tx) => {
          await tx`set local role authenticated`;
          await tx`select set_config('request.jwt.claims', ${claims}, true)`;
          return await tx`
          select auth.uid() as uid, auth.role() as role, auth.jwt() ->> 'email' as email, current_user as usr`;
        });
        assert.deepEqual(
          { ...row },
          { uid: sub, role: "authenticated", email: "a@example.com", usr: "authenticated" },
        );
        const [none] = await stack.sql`select auth.uid() as uid`;
        assert.equal(none.uid, null, "no claims, no user");
      },
    );

    await t.step("verify_jwt = true: the gateway answers 401 without or with a bad JWT", async () => {
      const missing = await stack.invoke("calendar-list-calendars", { jwt: null });
      assert.equal(missing.status, 401);
      assert.deepEqual(await missing.json(), { code: 401, message: "Missing authorization header" });

      const foreign = await mintJwt("another-secret-that-is-at-least-32-characters", {
        role: "authenticated",
        sub: crypto.randomUUID(),
      });
      const bad = await stack.invoke("calendar-list-calendars", { jwt: foreign });
      assert.equal(bad.status, 401);
      assert.deepEqual(await bad.json(), { code: 401, message: "Invalid JWT" });

      const expired = await mintJwt(stack.secrets.jwtSecret, {
        role: "authenticated",
        sub: crypto.randomUUID(),
        expiresInSeconds: -60,
      });
      const old = await stack.invoke("calendar-disconnect", { jwt: expired });
      assert.equal(old.status, 401);
      assert.deepEqual(await old.json(), { code: 401, message: "Invalid JWT" });

      // A valid project JWT passes the gateway whatever its role; the function then decides.
      const anon = await stack.invoke("calendar-list-calendars");
      assert.equal(anon.status, 403);
      assert.equal((await anon.json()).error.code, "forbidden_role");
    });

    await t.step("verify_jwt = false: the request reaches the function, which checks identity", async () => {
      const res = await stack.invoke("calendar-auth-start", { jwt: null, body: {} });
      assert.equal(res.status, 401);
      const body = await res.json();
      assert.equal(body.error.code, "missing_authorization", "the function's envelope, not the gateway's");
      assert.ok(body.request_id);
    });

    await t.step("preflight and unknown functions", async () => {
      const pre = await stack.invoke("calendar-list-calendars", {
        method: "OPTIONS",
        jwt: null,
        headers: { origin: "http://127.0.0.1:3000", "access-control-request-method": "POST" },
      });
      await pre.body?.cancel();
      assert.ok(pre.status === 200 || pre.status === 204, `preflight status ${pre.status}`);
      assert.ok(pre.headers.get("access-control-allow-origin"));
      const unknown = await stack.invoke("no-such-function");
      assert.equal(unknown.status, 404);
      assert.equal((await unknown.json()).message, "Requested function was not found");
    });

    const staff = await stack.createStaff({});

    await t.step("connect() runs the redirect flow and stores encrypted tokens", async () => {
      const { location, response } = await stack.connect(staff, { returnTo: "http://127.0.0.1:3000/after" });
      assert.equal(response.status, 302);
      const back = new URL(location);
      assert.equal(back.origin + back.pathname, "http://127.0.0.1:3000/after");
      assert.equal(back.searchParams.get("calendar_status"), "connected");

      const [conn] = await stack.sql`
        select tenant_id, staff_id, provider, connection_status, access_token_encrypted,
               refresh_token_encrypted, account_email
        from public.staff_calendar_connections where staff_id = ${staff.id}`;
      assert.equal(conn.connection_status, "connected");
      const config = parseConfig(stack.env);
      for (const field of ["access_token", "refresh_token"] as const) {
        const stored = conn[`${field}_encrypted`] as string;
        assert.match(stored, /^v1\.k1\./, `${field} is an envelope`);
        const plain = await decryptToken(
          stored,
          connectionTokenBinding(conn as never, field),
          config.encryption,
        );
        assert.ok(plain.length > 0);
        assert.ok(!stored.includes(plain), `${field} is not stored in plaintext`);
      }
    });

    await t.step("list-calendars works with the staff JWT after connecting", async () => {
      const res = await stack.invoke("calendar-list-calendars", { jwt: staff.jwt });
      const body = await res.json();
      assert.equal(res.status, 200, JSON.stringify(body));
      const primary = body.find((c: { primary: boolean }) => c.primary);
      assert.equal(primary?.id, staff.email);
      assert.equal(primary?.access_role, "owner");
      const calls = await stack.sandbox.calls();
      assert.ok((calls.byEndpoint["calendarList.list"] ?? 0) >= 1);
    });

    await t.step(
      "connect() through the seed's google-calendar-* names reaches the same handlers",
      async () => {
        const other = await stack.createStaff({ tenantId: staff.tenantId });
        const { location, response } = await stack.connect(other, { functionPrefix: "google-calendar" });
        assert.equal(response.status, 302);
        assert.equal(new URL(location).searchParams.get("calendar_status"), "connected");
        const res = await stack.invoke("google-calendar-list-calendars", { jwt: other.jwt });
        const body = await res.json();
        assert.equal(res.status, 200, JSON.stringify(body));
        assert.ok(body.some((c: { id: string; primary: boolean }) => c.primary && c.id === other.email));
      },
    );
  } catch (err) {
    console.error(stack.gatewayLogs().slice(-30).join("\n"));
    throw err;
  } finally {
    await stack.close();
  }
});
