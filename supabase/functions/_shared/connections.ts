/**
 * Staff calendar connections: lookup, storing tokens, and access tokens that are refreshed
 * single-flight across processes (docs/decisions.md decision 8).
 *
 * Refresh holds a row lock (`SELECT ... FOR UPDATE`) on the connection, re-reads it, refreshes only
 * if still due, and stores both tokens in the same transaction, so twenty concurrent callers with an
 * expired token cause exactly one refresh and a rotated refresh token (Microsoft) is never lost.
 * An `invalid_grant` marks the connection `needs_reconnect`; the caller gets a 409.
 */
import type { Config } from "./config.ts";
import { connectionTokenBinding, DecryptionError, decryptToken, encryptToken } from "./crypto.ts";
import type { Sql, TransactionSql } from "./db/client.ts";
import type { Narrow, Row } from "./db/rows.ts";
import { DomainError } from "./errors/domain-error.ts";
import { HttpError } from "./http.ts";
import { type CalendarProvider, ProviderError, type ProviderId, type TokenSet } from "./providers/types.ts";

/** Refresh when the access token expires within this many milliseconds. */
export const REFRESH_MARGIN_MS = 2 * 60 * 1000;

/**
 * A connection row ({@link COLUMNS} of the generated row type) with its token columns still
 * encrypted. Times are Date objects (timestamptz).
 */
export type ConnectionRow =
  & Narrow<
    Pick<Row<"staff_calendar_connections">, (typeof COLUMNS)[number]>,
    { provider: ProviderId; connection_status: "connected" | "needs_reconnect" | "disconnected" }
  >
  & {
    /** Sync work may run on it: calendar_private.connection_is_workable, evaluated by the database. */
    workable: boolean;
  };

const COLUMNS = [
  "id",
  "tenant_id",
  "staff_id",
  "provider",
  "access_token_encrypted",
  "refresh_token_encrypted",
  "token_expires_at",
  "selected_calendar_id",
  "connection_status",
  "granted_scopes",
  "account_email",
] as const;

/**
 * The select list of a connection row `c`: {@link COLUMNS} and `workable`, which the database decides
 * (calendar_private.connection_is_workable, migration 20261130000100), so TypeScript never restates it.
 */
function connectionColumns(sql: Sql | TransactionSql) {
  return sql`${
    sql(COLUMNS.map((col) => `c.${col}`))
  }, calendar_private.connection_is_workable(c) as workable`;
}

/**
 * The select list of a connection row `c` with every column renamed `<prefix><column>` (and
 * `<prefix>workable`), for a statement that reads a connection beside other rows (the worker's
 * claim); {@link connectionFromPrefixed} turns such a result row back into a {@link ConnectionRow}.
 */
export function prefixedConnectionColumns(sql: Sql | TransactionSql, prefix: string) {
  return sql.unsafe(
    [
      ...COLUMNS.map((col) => `c.${col} as ${prefix}${col}`),
      `calendar_private.connection_is_workable(c) as ${prefix}workable`,
    ]
      .join(", "),
  );
}

/**
 * The connection in a result row selected with {@link prefixedConnectionColumns}, or null when the
 * row carries none (`<prefix>id` is null: no active connection of that provider).
 */
export function connectionFromPrefixed(row: Record<string, unknown>, prefix: string): ConnectionRow | null {
  if (row[`${prefix}id`] === null || row[`${prefix}id`] === undefined) return null;
  const conn: Record<string, unknown> = { workable: row[`${prefix}workable`] };
  for (const col of COLUMNS) conn[col] = row[`${prefix}${col}`];
  return conn as ConnectionRow;
}

/**
 * Whose connection: a staff member and the tenant it must belong to. Every lookup matches both, so a
 * staff id that reached us through another tenant's data (an appointment naming a staff member of
 * another tenant) never finds that staff member's calendar.
 */
export interface ConnectionOwner {
  tenantId: string;
  staffId: string;
}

/**
 * The staff member's active connection in the tenant (connected or needs_reconnect; at most one, by
 * the schema), read through calendar_private.active_connection so tenant and staff both match; or
 * null when there is none, or when `provider` is given and the active connection is another one.
 */
export async function findConnection(
  sql: Sql,
  owner: ConnectionOwner,
  provider?: ProviderId,
): Promise<ConnectionRow | null> {
  const rows = await sql<ConnectionRow[]>`
    select ${connectionColumns(sql)}
    from calendar_private.active_connection(${owner.tenantId}::uuid, ${owner.staffId}::uuid) c
    ${provider ? sql`where c.provider = ${provider}` : sql``}`;
  return rows[0] ?? null;
}

/**
 * Why no work can run on a connection found by {@link findConnection}: `not_connected` (none, or one
 * without a refresh token), `needs_reconnect` (the grant was revoked or expired), or null when it is
 * workable.
 */
export function connectionProblem(conn: ConnectionRow | null): "not_connected" | "needs_reconnect" | null {
  if (!conn) return "not_connected";
  if (conn.workable) return null;
  return conn.connection_status === "needs_reconnect" ? "needs_reconnect" : "not_connected";
}

/**
 * The staff member's workable connection in the tenant.
 * @throws DomainError `not_connected` when there is none (or it was disconnected), 409
 *   `needs_reconnect` when the grant was revoked or lacks a scope.
 */
export async function requireConnection(
  sql: Sql,
  owner: ConnectionOwner,
  provider?: ProviderId,
): Promise<ConnectionRow> {
  const conn = await findConnection(sql, owner, provider);
  const problem = connectionProblem(conn);
  if (problem === "not_connected" || !conn) {
    throw new DomainError("not_connected", "this staff member has not connected a calendar");
  }
  if (problem === "needs_reconnect") {
    throw new DomainError(
      "needs_reconnect",
      "the calendar grant was revoked or expired; the staff member must connect the calendar again",
    );
  }
  return conn;
}

/**
 * Store a fresh grant for a staff member: encrypt the tokens and upsert the connection as
 * `connected` with `selected_calendar_id` 'primary' (kept when reconnecting the same provider).
 * When the provider sent no refresh token (Google after an earlier consent without
 * prompt=consent), the stored one is kept only if the connection is still `connected`; a
 * `needs_reconnect` row's refresh token is known to be dead and is never revived.
 * @returns the connection id.
 * @throws HttpError 409 `other_provider_connected` when the staff member's active connection is of
 *   another provider (one active connection per staff member; disconnect that one first), 409
 *   `missing_refresh_token` when there is no usable refresh token; either way the caller
 *   must roll back (auth-callback runs this in a transaction) and should revoke the new grant so
 *   the next consent issues a refresh token.
 */
export async function storeGrant(
  sql: Sql,
  config: Config,
  who: { tenantId: string; staffId: string; provider: ProviderId },
  tokens: TokenSet,
): Promise<string> {
  // Checked first so that a caller's transaction stays usable for its refusal; the unique index
  // still decides a race (the catch below).
  await refuseOtherProvider(sql, who, who.provider);
  const key = { tenant_id: who.tenantId, staff_id: who.staffId, provider: who.provider };
  const access = await encryptToken(
    tokens.accessToken,
    connectionTokenBinding(key, "access_token"),
    config.encryption,
  );
  const refresh = tokens.refreshToken
    ? await encryptToken(tokens.refreshToken, connectionTokenBinding(key, "refresh_token"), config.encryption)
    : null;
  const rows = await sql<Pick<Row<"staff_calendar_connections">, "id" | "refresh_token_encrypted">[]>`
    insert into public.staff_calendar_connections as c (
      tenant_id, staff_id, provider, access_token_encrypted, refresh_token_encrypted, token_expires_at,
      selected_calendar_id, connection_status, granted_scopes, account_email, last_error, connected_at
    ) values (
      ${who.tenantId}, ${who.staffId}, ${who.provider}, ${access}, ${refresh}, ${tokens.expiresAt},
      'primary', 'connected', ${tokens.scopes}, ${tokens.accountEmail ?? null}, null, now()
    )
    on conflict (tenant_id, staff_id, provider) do update set
      access_token_encrypted = excluded.access_token_encrypted,
      -- Keep the stored refresh token only while the connection is workable: a needs_reconnect
      -- row's token was refused (invalid_grant) or cannot be decrypted, and reviving it would mark
      -- the connection connected until the next refresh fails.
      refresh_token_encrypted = coalesce(
        excluded.refresh_token_encrypted,
        case when calendar_private.connection_is_workable(c) then c.refresh_token_encrypted end
      ),
      token_expires_at = excluded.token_expires_at,
      -- A reconnect keeps the chosen calendar; a connection that was no longer active starts over.
      selected_calendar_id = case when calendar_private.connection_is_active(c.connection_status)
                                  then c.selected_calendar_id else 'primary' end,
      connection_status = 'connected',
      granted_scopes = excluded.granted_scopes,
      account_email = coalesce(excluded.account_email, c.account_email),
      last_error = null,
      connected_at = now()
    returning id, refresh_token_encrypted`.catch((err) => {
    // The schema allows one active connection per staff member (staff_calendar_connections_one_active_key).
    if (isUniqueViolation(err, "staff_calendar_connections_one_active_key")) throw otherProviderConnected();
    throw err;
  });
  if (!rows[0].refresh_token_encrypted) {
    // Google sends a refresh token only on the first offline consent; without one we cannot work
    // offline. Leave the row unusable rather than pretend.
    await sql`update public.staff_calendar_connections set connection_status = 'needs_reconnect',
      last_error = 'no refresh token was granted; reconnect with prompt=consent' where id = ${rows[0].id}`;
    throw new HttpError(
      409,
      "missing_refresh_token",
      "the provider granted no refresh token; set GOOGLE_OAUTH_PROMPT=consent and connect again",
    );
  }
  return rows[0].id;
}

/**
 * Refuse to connect `provider` while the staff member's active connection (in the tenant) is of
 * another provider: a staff member has one active connection (staff_calendar_connections_one_active_key),
 * so switching provider goes through calendar-disconnect first.
 * @throws HttpError 409 `other_provider_connected`.
 */
export async function refuseOtherProvider(
  sql: Sql | TransactionSql,
  owner: ConnectionOwner,
  provider: ProviderId,
): Promise<void> {
  const [other] = await sql<{ provider: string }[]>`
    select c.provider from calendar_private.active_connection(${owner.tenantId}::uuid, ${owner.staffId}::uuid) c
    where c.provider <> ${provider}`;
  if (other) throw otherProviderConnected();
}

function otherProviderConnected(): HttpError {
  return new HttpError(
    409,
    "other_provider_connected",
    "this staff member is connected to another calendar provider; disconnect it before connecting this one",
  );
}

function isUniqueViolation(err: unknown, constraint: string): boolean {
  const e = err as { code?: unknown; constraint_name?: unknown } | null;
  return e?.code === "23505" && e.constraint_name === constraint;
}

/** Mark a connection as needing reconnect, with a reason safe to show (no token material). */
export async function markNeedsReconnect(sql: Sql, connectionId: string, reason: string): Promise<void> {
  await sql`update public.staff_calendar_connections
    set connection_status = 'needs_reconnect', last_error = ${reason.slice(0, 500)}
    where id = ${connectionId} and connection_status = 'connected'`;
}

async function decryptColumn(
  conn: Pick<ConnectionRow, "tenant_id" | "staff_id" | "provider">,
  field: "access_token" | "refresh_token",
  envelope: string,
  config: Config,
): Promise<string> {
  return await decryptToken(envelope, connectionTokenBinding(conn, field), config.encryption);
}

/**
 * Refresh under the row lock unless another process already did.
 * @param force refresh even if not due (the provider rejected the current access token); skipped
 *   when the stored access token changed since `seenAccess` (someone else refreshed meanwhile).
 * @returns the current plaintext access token and its stored envelope.
 * @throws DomainError `needs_reconnect` when the grant is gone; ProviderError for other failures.
 */
async function refreshLocked(
  sql: Sql,
  config: Config,
  provider: CalendarProvider,
  connectionId: string,
  opts: { force: boolean; seenAccess?: string | null },
): Promise<{ access: string; envelope: string }> {
  let reconnectReason: string | undefined;
  const token = await sql.begin(async (tx) => {
    const [row] = await tx<ConnectionRow[]>`
      select ${connectionColumns(tx)} from public.staff_calendar_connections c
      where c.id = ${connectionId} for update`;
    if (!row || !row.workable || !row.refresh_token_encrypted) {
      throw new DomainError("needs_reconnect", "the calendar connection is no longer active; connect again");
    }
    const due = !row.token_expires_at || row.token_expires_at.getTime() - Date.now() <= REFRESH_MARGIN_MS;
    const changed = opts.seenAccess !== undefined && row.access_token_encrypted !== opts.seenAccess;
    if (row.access_token_encrypted && !due && (!opts.force || changed)) {
      const access = await decryptColumn(row, "access_token", row.access_token_encrypted, config);
      return { access, envelope: row.access_token_encrypted };
    }
    let tokens: TokenSet;
    try {
      const refreshToken = await decryptColumn(row, "refresh_token", row.refresh_token_encrypted, config);
      tokens = await provider.refresh(refreshToken);
    } catch (err) {
      if (err instanceof DecryptionError) {
        reconnectReason = "stored token could not be decrypted (key rotated away?); reconnect required";
        await tx`update public.staff_calendar_connections set connection_status = 'needs_reconnect',
          last_error = ${reconnectReason} where id = ${connectionId}`;
        return null;
      }
      if (err instanceof ProviderError && err.kind === "auth") {
        reconnectReason = `refresh refused by ${row.provider} (${
          err.details.reason ?? "invalid_grant"
        }); reconnect required`;
        await tx`update public.staff_calendar_connections set connection_status = 'needs_reconnect',
          last_error = ${reconnectReason} where id = ${connectionId}`;
        return null;
      }
      throw err;
    }
    const access = await encryptToken(
      tokens.accessToken,
      connectionTokenBinding(row, "access_token"),
      config.encryption,
    );
    const refresh = tokens.refreshToken
      ? await encryptToken(
        tokens.refreshToken,
        connectionTokenBinding(row, "refresh_token"),
        config.encryption,
      )
      : row.refresh_token_encrypted;
    await tx`update public.staff_calendar_connections set
      access_token_encrypted = ${access}, refresh_token_encrypted = ${refresh},
      token_expires_at = ${tokens.expiresAt}, last_error = null
      where id = ${connectionId}`;
    return { access: tokens.accessToken, envelope: access };
  });
  if (token === null) {
    throw new DomainError("needs_reconnect", reconnectReason ?? "reconnect required");
  }
  return token;
}

/**
 * Run `fn` with a valid access token for the connection. Refreshes first when the token expires
 * within {@link REFRESH_MARGIN_MS}; if the provider still answers 401 (kind `auth`), refreshes once
 * more and retries; a second 401 marks the connection `needs_reconnect`.
 * @throws DomainError `needs_reconnect`, or whatever `fn` throws (ProviderError).
 */
export async function withAccessToken<T>(
  deps: { sql: Sql; config: Config; provider: CalendarProvider },
  conn: ConnectionRow,
  fn: (accessToken: string) => Promise<T>,
): Promise<T> {
  const { sql, config, provider } = deps;
  const due = !conn.token_expires_at || conn.token_expires_at.getTime() - Date.now() <= REFRESH_MARGIN_MS;
  let current: { access: string; envelope: string };
  if (due || !conn.access_token_encrypted) {
    current = await refreshLocked(sql, config, provider, conn.id, { force: false });
  } else {
    try {
      const access = await decryptColumn(conn, "access_token", conn.access_token_encrypted, config);
      current = { access, envelope: conn.access_token_encrypted };
    } catch {
      current = await refreshLocked(sql, config, provider, conn.id, { force: true });
    }
  }
  try {
    return await fn(current.access);
  } catch (err) {
    if (!(err instanceof ProviderError && err.kind === "auth")) throw err;
  }
  // The provider rejected a token we believed valid (revoked access token, clock skew): refresh
  // once, unless another process already replaced the token we used.
  current = await refreshLocked(sql, config, provider, conn.id, {
    force: true,
    seenAccess: current.envelope,
  });
  try {
    return await fn(current.access);
  } catch (err) {
    if (err instanceof ProviderError && err.kind === "auth") {
      const reason = `${conn.provider} rejected a freshly refreshed access token; reconnect required`;
      await markNeedsReconnect(sql, conn.id, reason);
      throw new DomainError("needs_reconnect", reason);
    }
    throw err;
  }
}
