/**
 * Row types for postgres.js queries, derived from the generated database types, so a query's result
 * type follows the migrations: a renamed or dropped column fails `deno check` once `npm run gen:types`
 * has run (npm test fails until it has).
 *
 * database.types.ts is what `supabase gen types typescript` prints: the JSON shapes PostgREST and
 * supabase-js return (timestamps as ISO strings, int8 as number). postgres.js parses some types
 * differently (timestamps as Date, int8/numeric as string); database.columns.ts lists those columns,
 * generated from the same database, and {@link Row} applies them.
 *
 * ```ts
 * type Connection = Pick<Row<"staff_calendar_connections">, "id" | "token_expires_at">;
 * const rows = await sql<Connection[]>`select id, token_expires_at from public.staff_calendar_connections where id = ${id}`;
 * rows[0].token_expires_at; // Date | null
 * ```
 */
import type { PostgresJsColumns } from "./database.columns.ts";
import type { Database, Tables } from "./database.types.ts";

export type { Database, Json, Tables, TablesInsert, TablesUpdate } from "./database.types.ts";

type PublicSchema = Database["public"];

/** A table or view of the public schema. */
export type RelationName = keyof PublicSchema["Tables"] | keyof PublicSchema["Views"];

type ParsedColumns<T extends RelationName> = T extends keyof PostgresJsColumns ? PostgresJsColumns[T]
  : Record<never, never>;

/**
 * A row of table or view `T` as postgres.js returns it for `select *`: the generated Row type with
 * timestamps as Date and int8/numeric as string; nullability as generated.
 */
export type Row<T extends RelationName> = {
  [K in keyof Tables<T>]: K extends keyof ParsedColumns<T> ? ParsedColumns<T>[K] | Extract<Tables<T>[K], null>
    : Tables<T>[K];
};

/**
 * `R` with some columns narrowed to what the code knows beyond the schema (a text column holding one
 * of a few values, `provider: ProviderId`). Every narrowed type must be assignable to the column's
 * generated type, so a narrowing can never contradict the schema.
 */
export type Narrow<R, N extends { [K in keyof N]: K extends keyof R ? R[K] : never }> =
  & Omit<R, keyof N>
  & N;
