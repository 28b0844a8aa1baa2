/**
 * The provider-neutral core of 20261130000100_calendar_sync_neutral_core.sql, from the functions' side
 * and across an upgrade:
 * - a database an earlier release left (google_* columns written, a staff member with two active
 *   connections) upgrades to the neutral names with every value kept, the seed's names still readable,
 *   one active connection kept, the other disconnected; applying the migration again changes nothing;
 * - connecting a second provider while one is active is a 409 `other_provider_connected` that changes
 *   nothing; after a disconnect it works, and findConnection / countDue / claimRows follow the new one
 *   (rows of the old provider are never claimed).
 */
import assert from "node:assert/strict";
import postgres from "postgres";
import { applyMigrations, createScratchDatabase } from "../../dev/stack/database.ts";
import { parseConfig } from "../../supabase/functions/_shared/config.ts";
import {
  connectionProblem,
  findConnection,
  storeGrant,
} from "../../supabase/functions/_shared/connections.ts";
import { createSql } from "../../supabase/functions/_shared/db/client.ts";
import { HttpError } from "../../supabase/functions/_shared/http.ts";
import { flowIdHash } from "../../supabase/functions/_shared/oauth-state.ts";
import type { ProviderId } from "../../supabase/functions/_shared/providers/types.ts";
import { confirmPendingGrant, storePendingGrant } from "../../supabase/functions/_shared/pending-grants.ts";
import { syncAppointmentNow } from "../../supabase/functions/_shared/sync/appointment.ts";
import { getWorkerOptions } from "../../supabase/functions/_shared/sync/options.ts";
import { claimRows, countDue } from "../../supabase/functions/_shared/sync/outbox.ts";

/** A second provider as the schema allows it; its TypeScript provider is not registered yet. */
const MICROSOFT = "microsoft" as ProviderId;

const MIGRATION = "20261130000100";
const MIGRATION_FILE = new URL(
  "../../supabase/migrations/20261130000100_calendar_sync_neutral_core.sql",
  import.meta.url,
);

function testConfig() {
  return parseConfig({
    SUPABASE_URL: "http://127.0.0.1:54321/",
    SUPABASE_DB_URL: "postgres://postgres@127.0.0.1:5432/unused",
    SUPABASE_JWT_SECRET: "super-secret-jwt-token-with-at-least-32-characters-long",
    GOOGLE_CLIENT_ID: "client.apps.googleusercontent.com",
    GOOGLE_CLIENT_SECRET: "GOCSPX-fake",
    GOOGLE_REDIRECT_URI: "http://127.0.0.1:54321/functions/v1/calendar-auth-callback",
    OAUTH_STATE_SIGNING_SECRET: "state-signing-secret-of-at-least-32-chars!!",
    TOKEN_ENCRYPTION_KEY: btoa(String.fromCharCode(...new Uint8Array(32).fill(7))),
  });
}

Deno.test("neutral core upgrade: google_* values move to event_id / calendar_id, one active connection stays", async () => {
  const id = () => crypto.randomUUID();
  const tenant = id(), alice = id(), bob = id();
  const a1 = id(), a2 = id(), a3 = id();
  const db = await createScratchDatabase("neutral_upgrade", {
    beforeMigrations: async (url) => {
      await applyMigrations(url, { before: MIGRATION });
      const sql = postgres(url, { max: 1, onnotice: () => {} });
      try {
        await sql`insert into public.tenants (id, name) values (${tenant}, 'Clinic')`;
        await sql`insert into public.staff (id, tenant_id) values (${alice}, ${tenant}), (${bob}, ${tenant})`;
        // Before: nothing stopped a staff member from having a Google and a Microsoft connection.
        await sql`insert into public.staff_calendar_connections
            (tenant_id, staff_id, provider, access_token_encrypted, refresh_token_encrypted, connection_status,
             updated_at)
          values (${tenant}, ${alice}, 'google', 'v1.g.a', 'v1.g.r', 'connected', now() - interval '1 day'),
                 (${tenant}, ${alice}, 'microsoft', 'v1.m.a', 'v1.m.r', 'connected', now()),
                 (${tenant}, ${bob}, 'google', 'v1.b.a', 'v1.b.r', 'connected', now())`;
        await sql`insert into public.calendar_sync_log (tenant_id, appointment_key, staff_id, provider,
            google_event_id, google_calendar_id, event_etag, sync_status, lease_owner, lease_expires_at)
          values (${tenant}, ${a1}, ${alice}, 'google', 'g1', 'primary', '"e1"', 'synced', null, null),
                 (${tenant}, ${a2}, ${alice}, 'google', 'g2', 'primary', null, 'pending', 'w1',
                  now() + interval '1 hour'),
                 (${tenant}, ${a3}, ${alice}, 'microsoft', 'm3', 'AAMkcal', null, 'synced', null, null),
                 (${tenant}, ${a1}, ${bob}, 'google', 'b1', 'bob@example.com', null, 'synced', null, null)`;
      } finally {
        await sql.end({ timeout: 5 });
      }
    },
  });
  const sql = postgres(db.url, { max: 1, onnotice: () => {} });
  try {
    const rows = () =>
      sql`select appointment_key, staff_id, provider, event_id, calendar_id, google_event_id, google_calendar_id,
          event_etag from public.calendar_sync_log order by staff_id = ${alice} desc, event_id`;
    const expected = [
      // alice's Google connection was superseded: its rows not held by a worker are dropped, the
      // leased one stays for its worker to finish (as calendar-disconnect does).
      [a2, alice, "google", "g2", "primary", "g2", "primary", null],
      [a3, alice, "microsoft", "m3", "AAMkcal", "m3", "AAMkcal", null],
      [a1, bob, "google", "b1", "bob@example.com", "b1", "bob@example.com", null],
    ];
    assert.deepEqual((await rows()).map((r) => Object.values(r)), expected);

    const connections = () =>
      sql`select staff_id, provider, connection_status, access_token_encrypted, refresh_token_encrypted,
          last_error is not null as noted
        from public.staff_calendar_connections order by staff_id = ${alice} desc, provider`;
    const expectedConnections = [
      [alice, "google", "disconnected", null, null, true],
      [alice, "microsoft", "connected", "v1.m.a", "v1.m.r", false],
      [bob, "google", "connected", "v1.b.a", "v1.b.r", false],
    ];
    assert.deepEqual((await connections()).map((r) => Object.values(r)), expectedConnections);

    // Applying the migration again (a re-run deploy) changes nothing.
    await sql.unsafe(await Deno.readTextFile(MIGRATION_FILE));
    assert.deepEqual((await rows()).map((r) => Object.values(r)), expected);
    assert.deepEqual((await connections()).map((r) => Object.values(r)), expectedConnections);
  } finally {
    await sql.end({ timeout: 5 });
    await db.drop();
  }
});

Deno.test("neutral core: one active connection per staff member, as the functions see it", async (t) => {
  const db = await createScratchDatabase("neutral_core");
  const sql = createSql(db.url, { max: 2 });
  const config = testConfig();
  try {
    const [{ id: tenantId }] = await sql`insert into public.tenants (name) values ('Clinic') returning id`;
    const [{ id: otherTenant }] = await sql`insert into public.tenants (name) values ('Other') returning id`;
    const userId = crypto.randomUUID();
    const [{ id: staffId }] = await sql`
      insert into public.staff (tenant_id, profile_id) values (${tenantId}, ${userId}) returning id`;
    const owner = { tenantId, staffId };
    const tokens = (accountEmail: string) => ({
      accessToken: `access-${crypto.randomUUID()}`,
      refreshToken: `refresh-${crypto.randomUUID()}`,
      expiresAt: new Date(Date.now() + 3600_000),
      scopes: ["calendar"],
      accountEmail,
    });
    await storeGrant(sql, config, { ...owner, provider: "google" }, tokens("s@gmail.test"));
    const [appointment] = await sql`insert into public.appointments (tenant_id, staff_id, starts_at, ends_at)
      values (${tenantId}, ${staffId}, now() + interval '1 day', now() + interval '1 day 1 hour') returning id`;

    await t.step("the active connection is found, workable; under another tenant it is not", async () => {
      const conn = await findConnection(sql, owner);
      assert.equal(conn?.provider, "google");
      assert.equal(conn?.workable, true);
      assert.equal(connectionProblem(conn), null);
      assert.equal(await findConnection(sql, { tenantId: otherTenant, staffId }), null);
      assert.equal(connectionProblem(await findConnection(sql, owner, MICROSOFT)), "not_connected");
      assert.equal(await countDue(sql), 1);
    });

    await t.step("connecting Microsoft while Google is active is refused and changes nothing", async () => {
      const before = await sql`select * from public.staff_calendar_connections order by provider`;
      await assert.rejects(
        storeGrant(sql, config, { ...owner, provider: MICROSOFT }, tokens("s@outlook.test")),
        (err) => err instanceof HttpError && err.status === 409 && err.code === "other_provider_connected",
      );
      assert.deepEqual(await sql`select * from public.staff_calendar_connections order by provider`, before);
    });

    await t.step("a confirmed Microsoft grant is refused the same way, and goes to be revoked", async () => {
      const flowId = "f".repeat(43);
      const pending = await storePendingGrant(sql, config, {
        nonce: crypto.randomUUID(),
        tenantId,
        staffId,
        provider: MICROSOFT,
        returnTo: null,
        codeVerifier: "v".repeat(43),
        initiatedBy: userId,
        flowSecretHash: await flowIdHash(flowId),
        oidcNonce: "n",
      }, tokens("s@outlook.test"));
      const outcome = await confirmPendingGrant(sql, config, { pendingId: pending.id, userId, flowId });
      assert.equal(outcome.kind, "refused");
      assert.equal(outcome.kind === "refused" && outcome.reason, "other_provider_connected");
      assert.ok(outcome.kind === "refused" && outcome.revoke, "the new grant is handed back for revocation");
      assert.equal((await sql`select 1 from public.calendar_pending_grants`).length, 0);
      assert.equal((await findConnection(sql, owner))?.provider, "google");
    });

    await t.step("a needs_reconnect connection is active but not workable: its rows wait", async () => {
      await sql`update public.staff_calendar_connections set connection_status = 'needs_reconnect'
        where staff_id = ${staffId}`;
      const conn = await findConnection(sql, owner);
      assert.equal(conn?.workable, false);
      assert.equal(connectionProblem(conn), "needs_reconnect");
      assert.equal(await countDue(sql), 0);
      assert.equal((await claimRows(sql, { owner: "t", limit: 10, leaseMs: 60_000 })).length, 0);
    });

    await t.step("syncing the appointment now is about the active provider's row only", async () => {
      await sql`insert into public.calendar_sync_log (tenant_id, appointment_id, appointment_key, staff_id,
          provider, event_id, calendar_id, sync_status)
        values (${tenantId}, ${appointment.id}, ${appointment.id}, ${staffId}, 'microsoft', 'm1', 'AAMk', 'synced')`;
      const results = await syncAppointmentNow(
        {
          sql,
          config,
          options: getWorkerOptions(),
          provider: () => {
            throw new Error("no provider call: the active connection needs a reconnect");
          },
        },
        appointment.id,
        tenantId,
      );
      const [google] = await sql`select id from public.calendar_sync_log
        where appointment_key = ${appointment.id} and provider = 'google'`;
      assert.deepEqual(results.map((r) => [r.rowId, r.outcome]), [[google.id, null]]);
      await sql`delete from public.calendar_sync_log where provider = 'microsoft'`;
    });

    await t.step("after a disconnect Microsoft connects; only its rows are claimed", async () => {
      await sql`update public.staff_calendar_connections set connection_status = 'disconnected',
        access_token_encrypted = null, refresh_token_encrypted = null where staff_id = ${staffId}`;
      await storeGrant(sql, config, { ...owner, provider: MICROSOFT }, tokens("s@outlook.test"));
      const queued = await sql`select calendar_private.enqueue_staff_backfill(${staffId}::uuid) as n`;
      assert.equal(queued[0].n, 1);
      assert.equal((await findConnection(sql, owner))?.provider, "microsoft");
      assert.equal(await findConnection(sql, owner, "google"), null);
      const rows = await sql`select provider, sync_status from public.calendar_sync_log
        where appointment_key = ${appointment.id} order by provider`;
      assert.deepEqual(rows.map((r) => [r.provider, r.sync_status]), [["google", "pending"], [
        "microsoft",
        "pending",
      ]]);
      assert.equal(await countDue(sql), 1);
      const claimed = await claimRows(sql, { owner: "t", limit: 10, leaseMs: 60_000 });
      assert.deepEqual(claimed.map((r) => [r.provider, r.event_id, r.calendar_id]), [[
        "microsoft",
        null,
        null,
      ]]);
    });
  } finally {
    await sql.end({ timeout: 5 });
    await db.drop();
  }
});
