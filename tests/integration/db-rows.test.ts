/**
 * The generated postgres.js column map (supabase/functions/_shared/db/database.columns.ts, which
 * db/rows.ts applies to the generated Row types) says what the functions' own client really returns:
 * rows of the connection, sync log and OAuth state tables with every column set, read with `select *`
 * through createSql (the functions' client options), give Date exactly where the map says Date, string
 * where it says string, and no Date or bigint anywhere else.
 */
import assert from "node:assert/strict";
import { createScratchDatabase } from "../../dev/stack/database.ts";
import { createSql } from "../../supabase/functions/_shared/db/client.ts";

const COLUMNS_FILE = new URL("../../supabase/functions/_shared/db/database.columns.ts", import.meta.url);

/** relation -> column -> TypeScript type, read from the generated file. */
function parsedColumns(): Map<string, Map<string, string>> {
  const map = new Map<string, Map<string, string>>();
  let current: Map<string, string> | undefined;
  for (const line of Deno.readTextFileSync(COLUMNS_FILE).split("\n")) {
    const relation = /^ {2}"([^"]+)": \{$/.exec(line);
    if (relation) map.set(relation[1], current = new Map());
    const column = /^ {4}"([^"]+)": ([^;]+);$/.exec(line);
    if (column && current) current.set(column[1], column[2]);
  }
  return map;
}

Deno.test("db rows: postgres.js returns Date and string exactly where database.columns.ts says", async () => {
  const db = await createScratchDatabase("db_rows");
  const sql = createSql(db.url, { max: 1 });
  try {
    const [{ id: tenantId }] = await sql`insert into public.tenants (name) values ('Clinic') returning id`;
    const [{ id: staffId }] = await sql`
      insert into public.staff (tenant_id, email, profile_id) values (${tenantId}, 's@example.com', gen_random_uuid())
      returning id`;
    const now = sql`now()`;
    await sql`
      insert into public.staff_calendar_connections (tenant_id, staff_id, access_token_encrypted,
        refresh_token_encrypted, token_expires_at, granted_scopes, account_email, last_sync_at, last_error,
        connected_at)
      values (${tenantId}, ${staffId}, 'v1.a', 'v1.r', ${now}, '{openid}', 's@example.com', ${now}, 'none',
        ${now})`;
    await sql`
      insert into public.calendar_oauth_states (nonce, tenant_id, staff_id, code_verifier_encrypted, return_to,
        expires_at, consumed_at, initiated_by, flow_secret_hash)
      values ('n', ${tenantId}, ${staffId}, 'v1.v', 'https://app.example/', ${now}, ${now}, gen_random_uuid(),
        'hash')`;
    await sql`
      insert into public.calendar_sync_log (tenant_id, appointment_key, staff_id, event_id,
        calendar_id, event_etag, desired_action, next_attempt_at, lease_owner, lease_expires_at,
        pending_since, last_synced_at, error_message, last_error_code, queue_version, first_failure_at)
      values (${tenantId}, gen_random_uuid(), ${staffId}, 'e', 'c', 'etag', 'upsert', ${now}, 'w', ${now},
        ${now}, ${now}, 'm', 'x', 9007199254740993, ${now})`;

    const map = parsedColumns();
    const relations = ["staff_calendar_connections", "calendar_oauth_states", "calendar_sync_log"];
    for (const relation of relations) {
      const expected = map.get(relation);
      assert.ok(expected, `database.columns.ts lists ${relation}`);
      const [row] = await sql.unsafe(`select * from public.${relation}`);
      for (const [column, value] of Object.entries(row)) {
        // appointment_id stays null: the row is not tied to an appointment here.
        if (column === "appointment_id") continue;
        assert.notEqual(value, null, `${relation}.${column} is set, so its runtime type is checked`);
        const type = expected.get(column);
        if (type === "Date") assert.ok(value instanceof Date, `${relation}.${column} is a Date`);
        else if (type === "string") assert.equal(typeof value, "string", `${relation}.${column} is a string`);
        else {
          assert.equal(type, undefined, `${relation}.${column}: ${type} is checked here`);
          assert.ok(!(value instanceof Date), `${relation}.${column} is not a Date`);
          assert.notEqual(typeof value, "bigint", `${relation}.${column} is not a bigint`);
        }
      }
      for (const column of expected.keys()) assert.ok(column in row, `${relation}.${column} exists`);
    }
    const [log] = await sql`select queue_version from public.calendar_sync_log`;
    assert.equal(log.queue_version, "9007199254740993", "int8 as string keeps every digit");
  } finally {
    await sql.end({ timeout: 5 });
    await db.drop();
  }
});
