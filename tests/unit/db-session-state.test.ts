/**
 * Behind a transaction pooler consecutive transactions of one client may run on different server
 * connections, and a server connection serves other clients next. So the functions' code must keep
 * every piece of state inside one transaction, and with a pool of one connection per isolate
 * (CALENDAR_DB_POOL_MAX's default) code inside `sql.begin(async (tx) => ...)` must never use the
 * outer client: that query would wait for the connection the transaction holds, forever.
 *
 * This scans supabase/functions (and, for what SQL functions run inside our transactions,
 * supabase/migrations) for the constructs that break either rule. tests/integration/pgbouncer.test.ts
 * proves the same end to end through PgBouncer in transaction mode.
 */
import assert from "node:assert/strict";

const ROOT = new URL("../../", import.meta.url);

/** A construct that depends on session state, and why it breaks behind a transaction pooler. */
interface Rule {
  name: string;
  pattern: RegExp;
  /** Also applied to SQL migrations (their functions run inside the functions' transactions). */
  sql: boolean;
}

const RULES: Rule[] = [
  {
    name: "set_config(..., false) (session-wide setting)",
    pattern: /set_config\s*\([^;]*?,\s*false\s*\)/is,
    sql: true,
  },
  {
    name: "session advisory lock (use pg_advisory_xact_lock)",
    pattern: /pg_(try_)?advisory_lock(_shared)?\s*\(/i,
    sql: true,
  },
  { name: "LISTEN (needs a session of its own)", pattern: /\.listen\s*\(|[`'"]\s*listen\s+\w/i, sql: true },
  { name: "temporary table", pattern: /create\s+(global\s+|local\s+)?temp(orary)?\s+table/i, sql: false },
  {
    name: "named prepared statement",
    pattern: /prepare\s*:\s*true|[`'"]\s*prepare\s+\w+\s*(\(|as\b)/i,
    sql: false,
  },
  {
    name: "session SET (use set_config(..., true) or SET LOCAL inside a transaction)",
    pattern:
      /(\b(sql|tx)\s*`|unsafe\(\s*[`'"])\s*set\s+(?!local\b)(session\s+)?(role\b|authorization\b|time\s+zone\b|[a-z_.]+\s*(=|to\b))/i,
    sql: false,
  },
  { name: "reserved connection (sql.reserve)", pattern: /\.reserve\s*\(/, sql: false },
  { name: "cursor WITH HOLD (outlives its transaction)", pattern: /\bwith\s+hold\b/i, sql: false },
];

/** Rule names `source` breaks. */
function sessionStateFindings(source: string, kind: "ts" | "sql"): string[] {
  return RULES.filter((r) => (kind === "ts" || r.sql) && r.pattern.test(source)).map((r) => r.name);
}

/** The text between the brace at `open` and its partner (naive: braces inside strings must balance). */
function block(source: string, open: number): string {
  let depth = 0;
  for (let i = open; i < source.length; i++) {
    if (source[i] === "{") depth++;
    else if (source[i] === "}" && --depth === 0) return source.slice(open + 1, i);
  }
  return source.slice(open + 1);
}

/** `outer.begin([options,] async (tx) => {`: a postgres.js transaction and its opening brace. */
const BEGIN = /\b(\w+)\.begin\s*\(\s*(?:["'][^"']*["']\s*,\s*)?async\s*\(?\s*(\w+)\s*\)?\s*=>\s*\{/g;

/** How many transactions (`x.begin(async (tx) => {`) `source` opens. */
function transactionCount(source: string): number {
  return [...source.matchAll(BEGIN)].length;
}

/**
 * Transactions whose body mentions the outer client (or takes the shared one with getSql): with a
 * pool of 1 such a query waits for the connection its own transaction holds.
 * @returns `outer.begin(tx)` descriptions of the offending transactions.
 */
function outerClientInTransaction(source: string): string[] {
  const found: string[] = [];
  for (const m of source.matchAll(BEGIN)) {
    const [, outer, inner] = m;
    const body = block(source, m.index! + m[0].length - 1);
    if (new RegExp(`\\b${outer}\\b`).test(body) || /\bgetSql\s*\(/.test(body)) {
      found.push(`${outer}.begin(${inner})`);
    }
  }
  return found;
}

async function filesUnder(dir: URL, ext: string): Promise<URL[]> {
  const out: URL[] = [];
  for await (const entry of Deno.readDir(dir)) {
    const url = new URL(entry.name + (entry.isDirectory ? "/" : ""), dir);
    if (entry.isDirectory) out.push(...await filesUnder(url, ext));
    else if (entry.name.endsWith(ext)) out.push(url);
  }
  return out;
}

const rel = (u: URL) => u.pathname.slice(ROOT.pathname.length);

/** A query template: `sql` or `tx` (optionally typed, `sql<Row[]>`), then its backquoted text. */
const QUERY_TEMPLATE = /\b(?:sql|tx)(?:<[^>`]*>)?`/g;
/** The statements a template can start with; anything else (`sql\`\``, `sql\`and x\``) is a fragment. */
const STATEMENT = /^\s*(select|insert|update|delete|with|call|values|begin|commit|rollback)\b/i;

/**
 * Query templates with no bound parameter (`${...}`): postgres.js pipelines the next queued query
 * behind one of these, which a transaction pooler answers to nobody (db/client.ts).
 * @returns the first 60 characters of each offending statement.
 */
function parameterlessQueries(source: string): string[] {
  const found: string[] = [];
  for (const m of source.matchAll(QUERY_TEMPLATE)) {
    const start = m.index! + m[0].length;
    let end = start;
    let bound = false;
    for (; end < source.length && source[end] !== "`"; end++) {
      if (source[end] === "\\") end++;
      else if (source.startsWith("${", end)) bound = true;
    }
    // Query templates never nest backquotes inside `${...}` here, so the first backquote ends it.
    const text = source.slice(start, end);
    if (!bound && STATEMENT.test(text)) found.push(text.trim().slice(0, 60));
  }
  return found;
}

Deno.test("session state: the scan recognises each construct it forbids, and allows the transaction-scoped forms", () => {
  const bad: [string, string][] = [
    ["await tx`select set_config('request.jwt.claims', ${c}, false)`", "set_config"],
    ["await sql`select pg_advisory_lock(42)`", "advisory"],
    ["await sql`select pg_try_advisory_lock_shared(1)`", "advisory"],
    ["await sql.listen('calendar_sync_kick', fn)", "LISTEN"],
    ["await sql`listen calendar_sync_kick`", "LISTEN"],
    ["await sql`create temp table t (id int)`", "temporary"],
    ["await tx`create temporary table t (id int)`", "temporary"],
    ["postgres(url, { prepare: true })", "prepared"],
    ["await sql`prepare q (int) as select $1`", "prepared"],
    ["await sql`set role authenticated`", "session SET"],
    ["await sql`set search_path to public`", "session SET"],
    ["await sql`set session statement_timeout = 1000`", "session SET"],
    ["await sql.unsafe('set time zone utc')", "session SET"],
    ["const r = await sql.reserve()", "reserved"],
    ["await tx`declare c cursor with hold for select 1`", "WITH HOLD"],
  ];
  for (const [source, expected] of bad) {
    const findings = sessionStateFindings(source, "ts");
    assert.ok(findings.some((f) => f.includes(expected)), `not flagged: ${source}`);
  }
  const fine = [
    "await tx`select set_config('request.jwt.claims', ${JSON.stringify(claims)}, true)`",
    "await tx`select pg_advisory_xact_lock(hashtext('x'))`",
    "await tx`set local role authenticated`",
    "await sql`update public.calendar_sync_log\n    set lease_owner = ${owner}`",
    "await tx`update t set x = 1`",
    "postgres(url, { prepare: false })",
  ];
  for (const source of fine) assert.deepEqual(sessionStateFindings(source, "ts"), [], source);
  assert.deepEqual(
    sessionStateFindings("perform set_config('request.jwt.claims', v, false);", "sql").length,
    1,
  );
  assert.deepEqual(sessionStateFindings("create temp table t (id int);", "sql"), []);
});

Deno.test("session state: the scan finds the outer client used inside a transaction", () => {
  const hangs = [
    "await sql.begin(async (tx) => { await tx`select 1`; await sql`select 2`; })",
    "await sql.begin(async (tx) => { await storeGrant(sql, config, who, tokens); })",
    "await db.begin(async tx => { const s = getSql(config); await s`select 1`; })",
    "await sql.begin('read write', async (tx) => { if (x) { await tx`select 1`; } await sql`select 2`; })",
  ];
  for (const source of hangs) assert.equal(outerClientInTransaction(source).length, 1, source);
  const fine = [
    "await sql.begin(async (tx) => { await tx`select 1`; await storeGrant(tx as unknown as Sql, c); })",
    "await sql.begin(async (tx) => { await tx`select 1`; }); await sql`select 2`;",
  ];
  for (const source of fine) assert.deepEqual(outerClientInTransaction(source), [], source);
});

Deno.test("pipelining: the scan finds query templates without a bound parameter", () => {
  const pipelined = [
    "await sql`select calendar_private.count_due() as n`",
    "const [r] = await sql<{ n: number }[]>`\n  select 1 as n`",
    "await tx`update t set x = 1`",
  ];
  for (const source of pipelined) assert.equal(parameterlessQueries(source).length, 1, source);
  const fine = [
    "await sql`select calendar_private.count_due() as n where ${true}`",
    "await sql`select calendar_private.kick_worker(${reason})`",
    "const extra = sql``",
    "const f = sql`and staff_id = any(${ids})`",
    "const g = sql`limit 1`",
  ];
  for (const source of fine) assert.deepEqual(parameterlessQueries(source), [], source);
});

Deno.test("pipelining: every query of the functions binds at least one parameter", async () => {
  const problems: string[] = [];
  for (const file of await filesUnder(new URL("supabase/functions/", ROOT), ".ts")) {
    for (const q of parameterlessQueries(await Deno.readTextFile(file))) {
      problems.push(`${rel(file)}: \`${q}\` binds no parameter (postgres.js pipelines behind it)`);
    }
  }
  assert.deepEqual(problems, []);
});

Deno.test("session state: no function code depends on session state or uses the outer client inside a transaction", async () => {
  const problems: string[] = [];
  const code = await filesUnder(new URL("supabase/functions/", ROOT), ".ts");
  assert.ok(code.length > 20, "the scan found the function sources");
  let transactions = 0;
  for (const file of code) {
    const source = await Deno.readTextFile(file);
    transactions += transactionCount(source);
    for (const f of sessionStateFindings(source, "ts")) problems.push(`${rel(file)}: ${f}`);
    for (const t of outerClientInTransaction(source)) {
      problems.push(
        `${rel(file)}: ${t} uses the outer client inside the transaction (hangs with a pool of 1)`,
      );
    }
  }
  const migrations = await filesUnder(new URL("supabase/migrations/", ROOT), ".sql");
  assert.ok(migrations.length > 0, "the scan found the migrations");
  for (const file of migrations) {
    for (const f of sessionStateFindings(await Deno.readTextFile(file), "sql")) {
      problems.push(`${rel(file)}: ${f}`);
    }
  }
  // Token refresh, disconnect, the callback's store + backfill and the admin check at least.
  assert.ok(transactions >= 4, `the scan saw ${transactions} transactions`);
  assert.deepEqual(problems, []);
});
