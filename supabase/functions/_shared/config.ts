/**
 * Environment configuration, parsed once per isolate with zod.
 *
 * Every secret a function needs is validated at startup; a missing or malformed one raises a
 * {@link ConfigError} whose message names the variable, so a misconfigured deployment fails loudly
 * on its first request instead of half-working. Values never appear in error messages.
 */
import { z } from "zod";
import { ConfigError } from "./errors/config-error.ts";
import { isLoopbackHttp } from "./http-client/transport.ts";
import { configuredProviders, parseProviderEnvs, type ProviderConfigs } from "./providers/registry.ts";

const csv = (v: string) => v.split(/[,\s]+/).map((s) => s.trim()).filter(Boolean);

const base64Key32 = z.string().refine((v) => {
  try {
    return atob(v.replace(/-/g, "+").replace(/_/g, "/")).length === 32;
  } catch {
    return false;
  }
}, "must be 32 random bytes, base64-encoded (openssl rand -base64 32)");

const origin = z.string().refine((v) => {
  try {
    const u = new URL(v);
    return u.origin === v.replace(/\/$/, "");
  } catch {
    return false;
  }
}, "each entry must be an origin such as https://app.example.com");

const postgresUrl = z.string().regex(
  /^postgres(ql)?:\/\/[^\s]+$/,
  "must be a postgres:// connection URL",
);

/** Largest per-isolate pool CALENDAR_DB_POOL_MAX accepts (each isolate holds its own). */
export const DB_POOL_MAX_LIMIT = 20;

const envSchema = z.object({
  SUPABASE_URL: z.url(),
  /** Injected by Supabase; locally DATABASE_URL stands in. Not needed when CALENDAR_DB_URL is set. */
  SUPABASE_DB_URL: z.string().min(1).optional(),
  /**
   * The database URL the functions use, taking precedence over SUPABASE_DB_URL: set it to the
   * project's transaction pooler (Supavisor, port 6543). Our own name, because `supabase secrets
   * set` refuses SUPABASE_* names, so the injected SUPABASE_DB_URL cannot be repointed.
   */
  CALENDAR_DB_URL: postgresUrl.optional(),
  /** Connections per isolate (postgres.js `max`). 1 suits the edge runtime and a transaction pooler. */
  CALENDAR_DB_POOL_MAX: z.coerce.number().int().min(1).max(DB_POOL_MAX_LIMIT).default(1),
  /** Legacy HS256 JWT secret. Optional when asymmetric keys (JWKS) are used. */
  SUPABASE_JWT_SECRET: z.string().min(32).optional(),
  /**
   * The same legacy secret under a name `supabase secrets set` accepts (it skips SUPABASE_* names),
   * for hosted projects that still sign user tokens with the shared secret.
   */
  CALENDAR_JWT_SECRET: z.string().min(32).optional(),
  /**
   * Supabase's secret API keys (`sb_secret_...`), a JSON object of name -> key, injected into hosted
   * functions. A server that presents one as its bearer token (or `apikey`) is the service role.
   */
  SUPABASE_SECRET_KEYS: z.string().optional(),
  /**
   * Inline JWKS, as hosted Supabase injects it (a JSON array of JWKs) or as a key set ({"keys": [...]}).
   * Read by {@link parseJwksEnv}: when unset, empty or unusable the JWKS is fetched from
   * SUPABASE_URL/auth/v1/.well-known/jwks.json (empty or unusable also logs one warning).
   */
  SUPABASE_JWKS: z.string().optional(),
  /**
   * Audiences a user access token may carry (`aud`), comma-separated. Supabase Auth issues
   * "authenticated" unless the project's JWT audience was changed.
   */
  CALENDAR_JWT_AUDIENCE: z.string().default("authenticated"),
  /**
   * Issuers a user access token may carry (`iss`), comma-separated. Default: `${SUPABASE_URL}/auth/v1`
   * when SUPABASE_URL names a real host (see {@link defaultIssuer}); `*` turns the check off.
   */
  CALENDAR_JWT_ISSUER: z.string().optional(),
  /**
   * Where providers deliver push notifications: the calendar-webhook function's public https URL,
   * without the provider route (default `${SUPABASE_URL}/functions/v1/calendar-webhook`).
   */
  CALENDAR_WEBHOOK_URL: z.url().optional(),
  /** Inbound sync's window on a full sync: days before now (the busy cache covers from there). */
  CALENDAR_INBOUND_PAST_DAYS: z.coerce.number().int().min(0).max(365).default(1),
  /** Days after now a full sync reads (the busy cache covers up to there). */
  CALENDAR_INBOUND_FUTURE_DAYS: z.coerce.number().int().min(1).max(1825).default(180),
  /**
   * Our event edited or deleted outside the product: `restore` (default) writes the appointment back
   * and records a conflict; `report` records the conflict only.
   */
  CALENDAR_INBOUND_EXTERNAL_EDITS: z.enum(["restore", "report"]).default("restore"),
  /**
   * Inbound sync (push channels, the busy cache): `on` or `off`. Default: on when the webhook URL is
   * https, or plain http on a loopback host (local development); providers refuse anything else.
   */
  CALENDAR_INBOUND_SYNC: z.enum(["on", "off"]).optional(),
  /** Shared secret pg_cron / the dispatcher present to calendar-sync-worker (besides a service-role JWT). */
  CALENDAR_WORKER_SECRET: z.string().min(32).optional(),

  OAUTH_STATE_SIGNING_SECRET: z.string().min(32, "must be at least 32 characters"),
  TOKEN_ENCRYPTION_KEY: base64Key32,
  TOKEN_ENCRYPTION_KEY_ID: z.string().regex(/^[A-Za-z0-9_-]{1,32}$/).default("k1"),
  /** Retired keys still accepted for decryption: "id:base64key,id2:base64key2". */
  TOKEN_ENCRYPTION_PREVIOUS_KEYS: z.string().default(""),

  CALENDAR_ALLOWED_RETURN_ORIGINS: z.string().default(""),
  CALENDAR_DEFAULT_RETURN_URL: z.url().optional(),
  CALENDAR_EVENT_TITLE: z.string().min(1).max(200).default("ValorWell"),
  CALENDAR_ALLOWED_CORS_ORIGINS: z.string().default("*"),
  /** Per-call timeout for provider HTTP requests, in milliseconds. */
  CALENDAR_PROVIDER_TIMEOUT_MS: z.coerce.number().int().min(100).max(60_000).default(10_000),
  /** Email domains a connected calendar account must belong to (comma list); empty = any. */
  CALENDAR_ALLOWED_EMAIL_DOMAINS: z.string().default(""),
  /**
   * `app` (default): the callback keeps the grant pending until the app confirms it with the
   * initiating user's session (calendar-auth-confirm). `none`: the callback attaches the grant at
   * once, as the seed contract did (a consent link finished in someone else's browser attaches
   * their calendar).
   */
  CALENDAR_CONSENT_CONFIRMATION: z.enum(["app", "none"]).default("app"),
  /** Consent flows one staff member may start in a burst (auth-start's token bucket capacity). */
  CALENDAR_AUTH_START_BURST: z.coerce.number().int().min(1).max(1000).default(10),
  /** Seconds after which one more start is allowed once the burst is used up. */
  CALENDAR_AUTH_START_REFILL_SECONDS: z.coerce.number().int().min(1).max(86_400).default(30),
  /** Seconds a notified change may wait for its sync before availability stops trusting the busy cache. */
  CALENDAR_BUSY_CACHE_MAX_LAG_SECONDS: z.coerce.number().int().min(1).max(86_400).default(120),
  /** Seconds since the last sync after which the busy cache is too old to answer; 0 = always live. */
  CALENDAR_BUSY_CACHE_MAX_AGE_SECONDS: z.coerce.number().int().min(0).max(604_800).default(3600),
});

/**
 * Parsed, typed configuration. Times are not configured here; see each module for its constants.
 * Each registered provider's settings sit under its id (`google`, ...; {@link ProviderConfigs}),
 * present only when the deployment configures that provider.
 */
export interface Config extends ProviderConfigs {
  supabaseUrl: string;
  /** CALENDAR_DB_URL when set, else SUPABASE_DB_URL (DATABASE_URL locally). A secret: never log it. */
  databaseUrl: string;
  /** Connections the isolate's client may open (CALENDAR_DB_POOL_MAX, default 1). */
  databasePoolMax: number;
  jwtSecret?: string;
  /** Secret API keys (`sb_secret_...`) that authenticate the service role; empty when none. */
  secretApiKeys: string[];
  /** The usable shape of SUPABASE_JWKS (see {@link parseJwksEnv}); absent when unset or unusable. */
  jwks?: { keys: Record<string, unknown>[] };
  /**
   * Why SUPABASE_JWKS was set but cannot be used (malformed, empty); tokens are then verified against
   * the remote JWKS and auth.ts logs this once. Never contains the value.
   */
  jwksProblem?: string;
  /** Accepted `aud` values of user access tokens (CALENDAR_JWT_AUDIENCE); never empty. */
  jwtAudiences: string[];
  /**
   * Accepted `iss` values of user access tokens (CALENDAR_JWT_ISSUER, else derived from SUPABASE_URL);
   * undefined when the issuer is not known, and then not checked.
   */
  jwtIssuers?: string[];
  workerSecret?: string;
  /**
   * Base URL of calendar-webhook that channels are registered with (CALENDAR_WEBHOOK_URL, default
   * `${supabaseUrl}/functions/v1/calendar-webhook`), no trailing slash; providers POST to
   * `${webhookUrl}/google`, `${webhookUrl}/microsoft` and `${webhookUrl}/microsoft/lifecycle`.
   */
  webhookUrl: string;
  /**
   * Inbound sync: a full sync reads [now - pastDays, now + futureDays] (days of 24 h); our events
   * changed outside the product are restored or only reported (docs/architecture.md, Inbound sync).
   */
  inbound: { pastDays: number; futureDays: number; externalEdits: "restore" | "report" };
  /**
   * Whether push channels are opened and inbound sync runs (CALENDAR_INBOUND_SYNC, default on when
   * {@link webhookUrl} is https or loopback http). Off: the worker stops the channels it meets.
   */
  inboundSync: boolean;
  stateSigningSecret: string;
  encryption: {
    currentKeyId: string;
    /** key id -> raw 32-byte key */
    keys: Map<string, Uint8Array>;
  };
  allowedReturnOrigins: string[];
  defaultReturnUrl?: string;
  eventTitle: string;
  corsOrigins: string[];
  /** Per-call provider timeout in ms. */
  providerTimeoutMs: number;
  /** Lowercased email domains a connected account must belong to; empty = any domain. */
  allowedEmailDomains: string[];
  /** Who finishes a consent: the app with the initiating user's session (`app`), or the callback (`none`). */
  consentConfirmation: "app" | "none";
  /** auth-start's per-staff token bucket: `burst` starts at once, one more every `refillSeconds` s. */
  authStart: { burst: number; refillSeconds: number };
  /**
   * When availability may answer from the busy cache (calendar_private.busy_cache_state): a pending
   * sync job older than `maxLagSeconds`, or a last sync older than `maxAgeSeconds`, sends it live;
   * `maxAgeSeconds` 0 turns the cache off.
   */
  busyCache: { maxLagSeconds: number; maxAgeSeconds: number };
}

export { ConfigError } from "./errors/config-error.ts";

/**
 * Read SUPABASE_JWKS in the shapes Supabase injects it: a bare JSON array of JWKs (what hosted
 * projects get) or a JSON Web Key Set `{"keys": [...]}` (RFC 7517 section 5). Entries that are not
 * JSON objects are dropped; whether each key can be imported is checked where it is used (auth.ts).
 * @returns `{jwks}` with at least one key, `{problem}` (a sentence without the value) when the
 *   variable is set but empty or malformed, or `{}` when it is unset. Never throws: a bad value must
 *   not take the functions down, they fall back to the remote JWKS instead.
 */
export function parseJwksEnv(raw: string | undefined): {
  jwks?: { keys: Record<string, unknown>[] };
  problem?: string;
} {
  if (raw === undefined) return {};
  if (raw.trim() === "") return { problem: "SUPABASE_JWKS is empty" };
  let value: unknown;
  try {
    value = JSON.parse(raw);
  } catch {
    return { problem: "SUPABASE_JWKS is not valid JSON" };
  }
  const list = Array.isArray(value)
    ? value
    : typeof value === "object" && value !== null && Array.isArray((value as { keys?: unknown }).keys)
    ? (value as { keys: unknown[] }).keys
    : undefined;
  if (!list) {
    return { problem: 'SUPABASE_JWKS is neither a JSON array of keys nor a key set ({"keys": [...]})' };
  }
  const keys = list.filter((k): k is Record<string, unknown> =>
    typeof k === "object" && k !== null && !Array.isArray(k) &&
    typeof (k as { kty?: unknown }).kty === "string"
  );
  if (keys.length === 0) return { problem: "SUPABASE_JWKS holds no JSON Web Key" };
  return { jwks: { keys } };
}

/**
 * The issuer Supabase Auth signs user tokens with, `${SUPABASE_URL}/auth/v1`, when SUPABASE_URL is
 * the URL Auth itself uses: a host name with a dot (`<ref>.supabase.co`, a custom domain) or an IP
 * address. Inside `supabase start` the functions see `http://supabase_kong_<project>:8000` (a Docker
 * service name) while Auth signs with the public `http://127.0.0.1:54321/auth/v1`, so a single-label
 * host (including `localhost`) means "not known": set CALENDAR_JWT_ISSUER there.
 */
export function defaultIssuer(supabaseUrl: string): string | undefined {
  const host = new URL(supabaseUrl).hostname;
  if (!host.includes(".") && !host.includes(":")) return undefined;
  return `${supabaseUrl.replace(/\/$/, "")}/auth/v1`;
}

function decodeKey(b64: string): Uint8Array {
  const bin = atob(b64.replace(/-/g, "+").replace(/_/g, "/"));
  return Uint8Array.from(bin, (c) => c.charCodeAt(0));
}

/**
 * Parse a configuration from an environment record (defaults to `Deno.env`).
 * @throws ConfigError naming every missing or invalid variable.
 */
export function parseConfig(env: Record<string, string | undefined> = Deno.env.toObject()): Config {
  const input = { ...env };
  // Read before empty values are dropped below: an empty SUPABASE_JWKS is reported, not ignored.
  const jwksEnv = parseJwksEnv(env.SUPABASE_JWKS);
  // Supabase injects SUPABASE_DB_URL; the local stack and CI use DATABASE_URL.
  input.SUPABASE_DB_URL ??= env.DATABASE_URL;
  for (const key of Object.keys(input)) if (input[key] === "") delete input[key];
  const parsed = envSchema.safeParse(input);
  const problems = parsed.success ? [] : parsed.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`);
  // Each registered provider reads its own variables (providers/<id>/config.ts); one at least must be set.
  const { configs: providers, problems: providerProblems } = parseProviderEnvs(input);
  problems.push(...providerProblems);
  if (problems.length === 0 && configuredProviders(providers).length === 0) {
    problems.push(
      "no calendar provider is configured: set a provider's client variables (GOOGLE_CLIENT_ID, " +
        "GOOGLE_CLIENT_SECRET and GOOGLE_REDIRECT_URI for Google; see docs/configuration.md)",
    );
  }
  if (!input.CALENDAR_DB_URL && !input.SUPABASE_DB_URL) {
    problems.push("SUPABASE_DB_URL: required (or CALENDAR_DB_URL; DATABASE_URL locally)");
  }
  if (problems.length > 0 || !parsed.success) {
    throw new ConfigError(`invalid configuration: ${problems.join("; ")}`);
  }
  const e = parsed.data;
  const audiences = csv(e.CALENDAR_JWT_AUDIENCE);
  if (audiences.length === 0) {
    throw new ConfigError("invalid configuration: CALENDAR_JWT_AUDIENCE must name at least one audience");
  }
  const supabaseUrl = e.SUPABASE_URL.replace(/\/$/, "");
  let issuers: string[] | undefined;
  if (e.CALENDAR_JWT_ISSUER === undefined) {
    const derived = defaultIssuer(supabaseUrl);
    issuers = derived ? [derived] : undefined;
  } else if (e.CALENDAR_JWT_ISSUER.trim() !== "*") {
    issuers = csv(e.CALENDAR_JWT_ISSUER);
    for (const iss of issuers) {
      if (!z.url().safeParse(iss).success) {
        throw new ConfigError(
          `invalid configuration: CALENDAR_JWT_ISSUER: '${iss}' is not a URL (or use * to skip the check)`,
        );
      }
    }
  }
  let secretApiKeys: string[] = [];
  if (e.SUPABASE_SECRET_KEYS) {
    try {
      const value = JSON.parse(e.SUPABASE_SECRET_KEYS);
      if (typeof value !== "object" || value === null || Array.isArray(value)) {
        throw new Error("not an object");
      }
      secretApiKeys = Object.values(value).filter((k): k is string =>
        typeof k === "string" && k.length >= 20
      );
    } catch {
      throw new ConfigError(
        'invalid configuration: SUPABASE_SECRET_KEYS must be a JSON object of key names to secret keys ({"default": "sb_secret_..."})',
      );
    }
  }
  const keys = new Map<string, Uint8Array>([[e.TOKEN_ENCRYPTION_KEY_ID, decodeKey(e.TOKEN_ENCRYPTION_KEY)]]);
  for (const entry of csv(e.TOKEN_ENCRYPTION_PREVIOUS_KEYS)) {
    const [id, b64] = entry.split(":");
    if (!id || !b64 || !base64Key32.safeParse(b64).success) {
      throw new ConfigError(
        "invalid configuration: TOKEN_ENCRYPTION_PREVIOUS_KEYS entries must be id:base64key (32 bytes)",
      );
    }
    if (!keys.has(id)) keys.set(id, decodeKey(b64));
  }
  const origins = csv(e.CALENDAR_ALLOWED_RETURN_ORIGINS);
  for (const o of origins) {
    if (!origin.safeParse(o).success) {
      throw new ConfigError(
        `invalid configuration: CALENDAR_ALLOWED_RETURN_ORIGINS: '${o}' is not an origin`,
      );
    }
  }
  const webhookUrl = (e.CALENDAR_WEBHOOK_URL ?? `${supabaseUrl}/functions/v1/calendar-webhook`).replace(
    /\/+$/,
    "",
  );
  return {
    supabaseUrl,
    databaseUrl: (e.CALENDAR_DB_URL ?? e.SUPABASE_DB_URL)!,
    databasePoolMax: e.CALENDAR_DB_POOL_MAX,
    jwtSecret: e.SUPABASE_JWT_SECRET ?? e.CALENDAR_JWT_SECRET,
    secretApiKeys,
    jwks: jwksEnv.jwks,
    jwksProblem: jwksEnv.problem,
    jwtAudiences: audiences,
    jwtIssuers: issuers,
    workerSecret: e.CALENDAR_WORKER_SECRET,
    webhookUrl,
    inboundSync: e.CALENDAR_INBOUND_SYNC
      ? e.CALENDAR_INBOUND_SYNC === "on"
      : new URL(webhookUrl).protocol === "https:" || isLoopbackHttp(webhookUrl),
    ...providers,
    inbound: {
      pastDays: e.CALENDAR_INBOUND_PAST_DAYS,
      futureDays: e.CALENDAR_INBOUND_FUTURE_DAYS,
      externalEdits: e.CALENDAR_INBOUND_EXTERNAL_EDITS,
    },
    stateSigningSecret: e.OAUTH_STATE_SIGNING_SECRET,
    encryption: { currentKeyId: e.TOKEN_ENCRYPTION_KEY_ID, keys },
    allowedReturnOrigins: origins.map((o) => o.replace(/\/$/, "")),
    defaultReturnUrl: e.CALENDAR_DEFAULT_RETURN_URL,
    eventTitle: e.CALENDAR_EVENT_TITLE,
    corsOrigins: csv(e.CALENDAR_ALLOWED_CORS_ORIGINS),
    providerTimeoutMs: e.CALENDAR_PROVIDER_TIMEOUT_MS,
    allowedEmailDomains: emailDomains(e.CALENDAR_ALLOWED_EMAIL_DOMAINS),
    consentConfirmation: e.CALENDAR_CONSENT_CONFIRMATION,
    authStart: { burst: e.CALENDAR_AUTH_START_BURST, refillSeconds: e.CALENDAR_AUTH_START_REFILL_SECONDS },
    busyCache: {
      maxLagSeconds: e.CALENDAR_BUSY_CACHE_MAX_LAG_SECONDS,
      maxAgeSeconds: e.CALENDAR_BUSY_CACHE_MAX_AGE_SECONDS,
    },
  };
}

/** CALENDAR_ALLOWED_EMAIL_DOMAINS as lowercased domains. @throws ConfigError for an entry that is not a domain. */
function emailDomains(value: string): string[] {
  const domains = csv(value).map((d) => d.replace(/^@/, "").toLowerCase());
  for (const d of domains) {
    if (!/^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)+$/.test(d)) {
      throw new ConfigError(
        `invalid configuration: CALENDAR_ALLOWED_EMAIL_DOMAINS: '${d}' is not a domain such as clinic.example`,
      );
    }
  }
  return domains;
}

let cached: Config | ConfigError | undefined;

/**
 * The isolate's configuration, parsed on first use and cached (including a failure, so every
 * request of a misconfigured isolate answers the same clear error).
 * @throws ConfigError
 */
export function getConfig(): Config {
  if (cached === undefined) {
    try {
      cached = parseConfig();
    } catch (err) {
      cached = err instanceof ConfigError ? err : new ConfigError(String(err));
    }
  }
  if (cached instanceof ConfigError) throw cached;
  return cached;
}

/** Replace the cached configuration (tests and the local gateway, which host many handlers per process). */
export function setConfig(config: Config | undefined): void {
  cached = config;
}
