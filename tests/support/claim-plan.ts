/**
 * The plans PostgreSQL really runs for the worker's claim: a client like the worker's (clientOptions,
 * one connection) with auto_explain loaded in its session, logging every statement's plan, nested
 * ones included (the body of calendar_private.claim_due_rows), as JSON NOTICEs that the probe
 * collects. Shared by tests/integration/claim-plan.test.ts (the claim must read the claim index in
 * order) and the benchmark. Needs a superuser connection (LOAD), as the tests have.
 */
import postgres from "postgres";
import { clientOptions } from "../../supabase/functions/_shared/db/client.ts";
import { type ClaimRequest, claimRows } from "../../supabase/functions/_shared/sync/outbox.ts";

/** One plan node of EXPLAIN (FORMAT JSON), with the fields the checks read. */
export interface PlanNode {
  "Node Type": string;
  "Index Name"?: string;
  "Relation Name"?: string;
  Plans?: PlanNode[];
  [key: string]: unknown;
}

/** A statement's text and the root of its plan, as auto_explain reported it. */
export interface ExecutedPlan {
  query: string;
  plan: PlanNode;
  /** The statement's execution time in the server, ms (auto_explain's `duration`). */
  durationMs: number;
}

/** Every node of a plan tree, depth first. */
export function planNodes(node: PlanNode): PlanNode[] {
  return [node, ...(node.Plans ?? []).flatMap(planNodes)];
}

/** A probe client; `claim` runs claimRows on it and returns the rows and every plan executed. */
export async function claimProbe(url: string) {
  let plans: ExecutedPlan[] = [];
  const sql = postgres(url, {
    ...clientOptions({ max: 1 }),
    onnotice: (notice: { message?: string }) => {
      const text = notice.message ?? "";
      const json = text.indexOf("{");
      if (!text.startsWith("duration:") || json < 0) return;
      const parsed = JSON.parse(text.slice(json)) as { "Query Text": string; Plan: PlanNode };
      const durationMs = Number(/^duration: ([\d.]+) ms/.exec(text)?.[1] ?? NaN);
      plans.push({ query: parsed["Query Text"], plan: parsed.Plan, durationMs });
    },
  } as postgres.Options<Record<string, never>>);
  // Session settings on the probe's single connection (never on the worker's client).
  await sql.unsafe(`load 'auto_explain'`);
  await sql.unsafe(`set auto_explain.log_min_duration = 0`);
  await sql.unsafe(`set auto_explain.log_nested_statements = on`);
  await sql.unsafe(`set auto_explain.log_format = json`);
  await sql.unsafe(`set auto_explain.log_level = notice`);
  return {
    sql,
    async claim(req: ClaimRequest) {
      plans = [];
      const rows = await claimRows(sql, req);
      return { rows, plans: [...plans] };
    },
    end: () => sql.end({ timeout: 5 }),
  };
}
