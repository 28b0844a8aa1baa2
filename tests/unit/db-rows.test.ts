/**
 * The row types the functions' queries use (supabase/functions/_shared/db/rows.ts), checked where they
 * matter: at type-check time (`deno test` type-checks this file; an `@ts-expect-error` that no longer
 * errors fails it). Runtime agreement with postgres.js is tests/integration/db-rows.test.ts.
 */
import assert from "node:assert/strict";
import type { Database, Narrow, Row, Tables } from "../../supabase/functions/_shared/db/rows.ts";

/** true when A and B are the same type (not merely assignable). */
type Equals<A, B> = (<T>() => T extends A ? 1 : 2) extends (<T>() => T extends B ? 1 : 2) ? true : false;

Deno.test("Row: timestamps are Date, int8 is string, other columns and nullability as generated", () => {
  const checks: [
    Equals<Row<"staff_calendar_connections">["token_expires_at"], Date | null>,
    Equals<Row<"staff_calendar_connections">["created_at"], Date>,
    Equals<Row<"staff_calendar_connections">["granted_scopes"], string[]>,
    Equals<Row<"staff_calendar_connections">["account_email"], string | null>,
    Equals<Row<"calendar_sync_log">["queue_version"], string>,
    Equals<Row<"calendar_sync_log">["retry_count"], number>,
    Equals<Row<"calendar_oauth_states">["expires_at"], Date>,
    Equals<Row<"calendar_sync_status">["oldest_pending_since"], Date | null>,
    // The generated JSON types (supabase-js, PostgREST) are unchanged: ISO strings.
    Equals<Tables<"staff_calendar_connections">["token_expires_at"], string | null>,
    Equals<keyof Row<"calendar_sync_log">, keyof Database["public"]["Tables"]["calendar_sync_log"]["Row"]>,
  ] = [true, true, true, true, true, true, true, true, true, true];
  assert.ok(checks.every(Boolean));
});

Deno.test("Narrow: narrows to a subtype of the column, refuses other types and unknown columns", () => {
  type Conn = Pick<Row<"staff_calendar_connections">, "provider" | "refresh_token_encrypted">;
  type Narrowed = Narrow<Conn, { provider: "google" | "microsoft"; refresh_token_encrypted: string }>;
  const ok: [
    Equals<Narrowed["provider"], "google" | "microsoft">,
    Equals<Narrowed["refresh_token_encrypted"], string>,
  ] = [
    true,
    true,
  ];
  // @ts-expect-error: a number is not a subtype of the text column
  type _WrongType = Narrow<Conn, { provider: number }>;
  // @ts-expect-error: no such column
  type _Unknown = Narrow<Conn, { providr: string }>;
  assert.deepEqual(ok, [true, true]);
});
