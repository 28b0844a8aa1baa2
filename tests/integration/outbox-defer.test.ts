/**
 * A rate-limited account's deferral (sync/outbox.ts deferStaff) never waits for a sync row another
 * transaction holds: it used to lock all the account's pending rows in one update, in no particular
 * order, and deadlocked with an app's appointment update re-queuing some of them (or a disconnect,
 * or another slot's deferral); PostgreSQL then failed one of them, possibly the app's statement.
 */
import assert from "node:assert/strict";
import postgres from "postgres";
import { deferStaff } from "../../supabase/functions/_shared/sync/outbox.ts";
import { startTestStack } from "../support/stack.ts";

Deno.test("deferStaff defers the rows it can lock and skips one another transaction holds, without waiting", async () => {
  const stack = await startTestStack();
  // The holder and the deferring worker, each on its own connection; a wait ends in an error.
  const holder = postgres(stack.dbUrl, { max: 1, onnotice: () => {} });
  const worker = postgres(stack.dbUrl, { max: 1, onnotice: () => {}, connection: { lock_timeout: 5000 } });
  try {
    const tenantId = await stack.createTenant("Deferral clinic");
    const staff = await stack.createStaff({ tenantId });
    await stack.connect(staff, { provider: "google" });
    const start = Date.now() + 2 * 86_400_000;
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) {
      ids.push(
        await stack.createAppointment({
          tenantId,
          staffId: staff.id,
          startsAt: new Date(start + i * 3_600_000).toISOString(),
          endsAt: new Date(start + i * 3_600_000 + 1_800_000).toISOString(),
        }),
      );
    }
    const notBefore = new Date(Date.now() + 3_600_000);
    await holder.begin(async (tx) => {
      await tx`select id from public.calendar_sync_log where appointment_key = ${ids[0]} for update`;
      await deferStaff(worker, staff.id, "google", notBefore);
    });
    const rows = await stack.sql<{ appointment_key: string; deferred: boolean }[]>`
      select appointment_key, next_attempt_at >= ${notBefore} as deferred from public.calendar_sync_log
      where staff_id = ${staff.id} and sync_status = 'pending'`;
    assert.deepEqual(
      Object.fromEntries(rows.map((r) => [r.appointment_key, r.deferred])),
      { [ids[0]]: false, [ids[1]]: true, [ids[2]]: true },
    );
  } finally {
    await holder.end({ timeout: 5 });
    await worker.end({ timeout: 5 });
    await stack.close();
  }
});
