/**
 * Tunables of the outbox worker, read once from the environment with zod (all optional; the
 * defaults suit the Supabase edge runtime). Times are milliseconds.
 *
 * | variable                        | default | meaning                                                   |
 * |---------------------------------|---------|-----------------------------------------------------------|
 * | CALENDAR_SYNC_CONCURRENCY       | 16      | provider calls in flight per worker invocation; each      |
 * |                                 |         | mailbox also gets at most its provider's per-connection   |
 * |                                 |         | limit (sync/pacing.ts: Microsoft 3, Google 2)             |
 * | CALENDAR_SYNC_RETRY_BUDGET_HOURS| 24      | how long a row keeps retrying after its first failure     |
 * |                                 |         | before it is `failed` (dead letter); 0.1 to 168 (7 days), |
 * |                                 |         | fractions allowed. Time, not attempts: hours of rate      |
 * |                                 |         | limiting or an outage never dead-letter a row             |
 * | CALENDAR_SYNC_LEASE_MS          | 120000  | how long a claim holds a row; a crashed worker's rows are |
 * |                                 |         | claimable again after it. Keep it above the longest row   |
 * |                                 |         | (about 6 x CALENDAR_PROVIDER_TIMEOUT_MS)                  |
 * | CALENDAR_SYNC_BACKOFF_BASE_MS   | 2000    | first retry delay bound (full jitter: uniform 0..bound)   |
 * | CALENDAR_SYNC_BACKOFF_CAP_MS    | 900000  | largest retry delay bound (15 min)                        |
 * | CALENDAR_SYNC_RETRY_AFTER_MAX_MS| 3600000 | largest Retry-After honoured (1 h)                        |
 * | CALENDAR_SYNC_MAX_RUN_MS        | 25000   | a worker invocation stops claiming after this long, so it |
 * |                                 |         | fits the edge runtime's wall clock; rows in flight finish |
 * | CALENDAR_SYNC_MAX_RUN_ROWS      | 100     | a worker invocation claims at most this many rows, so it  |
 * |                                 |         | fits the edge runtime's CPU-time limit (2 s per request   |
 * |                                 |         | on hosted Supabase; a row costs a few ms of CPU). When    |
 * |                                 |         | rows remain, the run kicks the next one itself            |
 */
import { z } from "zod";
import { ConfigError } from "../config.ts";

/** Worker tunables; see the table above. */
export interface WorkerOptions {
  concurrency: number;
  /** How long a row keeps retrying after its first failure before it is dead-lettered, in ms. */
  retryBudgetMs: number;
  leaseMs: number;
  backoffBaseMs: number;
  backoffCapMs: number;
  retryAfterMaxMs: number;
  maxRunMs: number;
  /** Rows one invocation claims at most (CALENDAR_SYNC_MAX_RUN_ROWS). */
  maxRunRows: number;
}

/** Retry budget bounds in hours: the default (a day), and the documented range (6 minutes to 7 days). */
export const DEFAULT_BUDGET_HOURS = 24;
export const MIN_BUDGET_HOURS = 0.1;
export const MAX_BUDGET_HOURS = 168;

/** Replaced by CALENDAR_SYNC_RETRY_BUDGET_HOURS; set, it is ignored with one warning. */
const RETIRED = "CALENDAR_SYNC_MAX_ATTEMPTS";

const int = (min: number, max: number, fallback: number) =>
  z.coerce.number().int().min(min).max(max).default(fallback);

const schema = z.object({
  CALENDAR_SYNC_CONCURRENCY: int(1, 64, 16),
  CALENDAR_SYNC_RETRY_BUDGET_HOURS: z.coerce.number().min(MIN_BUDGET_HOURS).max(MAX_BUDGET_HOURS)
    .default(DEFAULT_BUDGET_HOURS),
  CALENDAR_SYNC_LEASE_MS: int(500, 3_600_000, 120_000),
  CALENDAR_SYNC_BACKOFF_BASE_MS: int(1, 600_000, 2_000),
  CALENDAR_SYNC_BACKOFF_CAP_MS: int(1, 86_400_000, 900_000),
  CALENDAR_SYNC_RETRY_AFTER_MAX_MS: int(0, 86_400_000, 3_600_000),
  CALENDAR_SYNC_MAX_RUN_MS: int(100, 3_600_000, 25_000),
  CALENDAR_SYNC_MAX_RUN_ROWS: int(1, 100_000, 100),
});

/** The defaults (what an environment without any CALENDAR_SYNC_* variable gives). */
export const DEFAULT_WORKER_OPTIONS: Readonly<WorkerOptions> = Object.freeze(parseWorkerOptions({}));

/**
 * Parse worker options from an environment record (defaults to `Deno.env`). Empty strings count
 * as unset.
 * @throws ConfigError naming the variable when one is not an integer in range.
 */
export function parseWorkerOptions(
  env: Record<string, string | undefined> = Deno.env.toObject(),
): WorkerOptions {
  const input: Record<string, string> = {};
  for (const key of Object.keys(schema.shape)) {
    const value = env[key];
    if (value !== undefined && value !== "") input[key] = value;
  }
  const parsed = schema.safeParse(input);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`);
    throw new ConfigError(`invalid configuration: ${problems.join("; ")}`);
  }
  const e = parsed.data;
  return {
    concurrency: e.CALENDAR_SYNC_CONCURRENCY,
    retryBudgetMs: Math.round(e.CALENDAR_SYNC_RETRY_BUDGET_HOURS * 3_600_000),
    leaseMs: e.CALENDAR_SYNC_LEASE_MS,
    backoffBaseMs: e.CALENDAR_SYNC_BACKOFF_BASE_MS,
    backoffCapMs: Math.max(e.CALENDAR_SYNC_BACKOFF_CAP_MS, e.CALENDAR_SYNC_BACKOFF_BASE_MS),
    retryAfterMaxMs: e.CALENDAR_SYNC_RETRY_AFTER_MAX_MS,
    maxRunMs: e.CALENDAR_SYNC_MAX_RUN_MS,
    maxRunRows: e.CALENDAR_SYNC_MAX_RUN_ROWS,
  };
}

let cached: WorkerOptions | undefined;

/**
 * The isolate's worker options, parsed on first use.
 * @throws ConfigError when a CALENDAR_SYNC_* variable is malformed.
 */
export function getWorkerOptions(): WorkerOptions {
  if (cached) return cached;
  cached = parseWorkerOptions();
  if (Deno.env.get(RETIRED)) {
    console.warn(JSON.stringify({
      level: "warn",
      event: "config_variable_ignored",
      variable: RETIRED,
      message: "retries are bounded by time now: set CALENDAR_SYNC_RETRY_BUDGET_HOURS instead",
    }));
  }
  return cached;
}
