/**
 * The Microsoft identity platform (v2) as we use it (docs/providers/microsoft.md B1 and "Variables"):
 * the deployment's configuration, the tenant-specific endpoints, the scopes, and the issuer rule for
 * ID tokens when one app serves many tenants.
 */
import { z } from "zod";
import { ConfigError } from "../../errors/config-error.ts";

/** The tenant of personal Microsoft accounts: what `tid` says in their tokens (B1.1). */
export const CONSUMER_TENANT_ID = "9188040d-6c67-4c5b-b112-36a304b66dad";

const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const DOMAIN = /^(?=.{4,253}$)([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$/i;

/**
 * `MICROSOFT_TENANT` (B1.1): `common` (work or school and personal accounts), `organizations` (work
 * or school only), `consumers` (personal only), a tenant id (GUID) or a verified domain of one tenant.
 */
export const microsoftTenant = z.string().trim().refine(
  (t) => ["common", "organizations", "consumers"].includes(t) || GUID.test(t) || DOMAIN.test(t),
  "must be common, organizations, consumers, a tenant id (GUID) or a tenant's domain",
).transform((t) => (GUID.test(t) ? t.toLowerCase() : t));

/**
 * The Microsoft variables (docs/configuration.md, docs/providers/microsoft.md "Variables"). The
 * endpoint overrides exist for the local sandbox; production leaves them unset.
 */
export const microsoftEnvSchema = z.object({
  MICROSOFT_CLIENT_ID: z.string().min(1),
  MICROSOFT_CLIENT_SECRET: z.string().min(1),
  MICROSOFT_REDIRECT_URI: z.url(),
  MICROSOFT_TENANT: microsoftTenant.default("common"),
  MICROSOFT_OAUTH_PROMPT: z.enum(["select_account", "consent", "login", "none"]).default("select_account"),
  MICROSOFT_AUTHORITY: z.url().default("https://login.microsoftonline.com"),
  MICROSOFT_GRAPH_API_BASE: z.url().default("https://graph.microsoft.com/v1.0"),
});

/**
 * The scopes every consent asks for (B1.2): refresh tokens, calendars read/write, the account.
 * `profile` puts `preferred_username` in the ID token: the account's sign-in name, which names the
 * account when `email` is not vouched for (providers/microsoft/oauth.ts `microsoftAccountEmail`).
 */
export const MICROSOFT_SCOPES: readonly string[] = Object.freeze([
  "offline_access",
  "Calendars.ReadWrite",
  "User.Read",
  "openid",
  "email",
  "profile",
]);

/** The Microsoft provider's settings, parsed and normalised (no trailing slashes). */
export interface MicrosoftConfig {
  clientId: string;
  clientSecret: string;
  redirectUri: string;
  tenant: string;
  prompt: "select_account" | "consent" | "login" | "none";
  /** e.g. `https://login.microsoftonline.com`. */
  authority: string;
  /** e.g. `https://graph.microsoft.com/v1.0`. */
  graphApiBase: string;
  authorizationEndpoint: string;
  tokenEndpoint: string;
  /** The signing keys of ID tokens for this tenant setting. */
  jwksUri: string;
  scopes: readonly string[];
}

/**
 * Parse the Microsoft variables. Empty strings count as unset.
 * @throws ConfigError naming each bad variable (never its value).
 */
export function parseMicrosoftConfig(env: Record<string, string | undefined>): MicrosoftConfig {
  const input = Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined && v !== ""));
  const parsed = microsoftEnvSchema.safeParse(input);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`);
    throw new ConfigError(`invalid Microsoft configuration: ${problems.join("; ")}`);
  }
  const e = parsed.data;
  const authority = e.MICROSOFT_AUTHORITY.replace(/\/+$/, "");
  const tenantBase = `${authority}/${encodeURIComponent(e.MICROSOFT_TENANT)}`;
  return {
    clientId: e.MICROSOFT_CLIENT_ID,
    clientSecret: e.MICROSOFT_CLIENT_SECRET,
    redirectUri: e.MICROSOFT_REDIRECT_URI,
    tenant: e.MICROSOFT_TENANT,
    prompt: e.MICROSOFT_OAUTH_PROMPT,
    authority,
    graphApiBase: e.MICROSOFT_GRAPH_API_BASE.replace(/\/+$/, ""),
    authorizationEndpoint: `${tenantBase}/oauth2/v2.0/authorize`,
    tokenEndpoint: `${tenantBase}/oauth2/v2.0/token`,
    jwksUri: `${tenantBase}/discovery/v2.0/keys`,
    scopes: MICROSOFT_SCOPES,
  };
}

/**
 * The issuer an ID token of tenant `tid` must carry: `{authority}/{tid}/v2.0` (B1.1). The v2 metadata
 * of `common` / `organizations` / `consumers` publishes the template `.../{tenantid}/v2.0`, so the
 * issuer is only known once the token names its tenant.
 */
export function issuerForTenant(authority: string, tid: string): string {
  return `${authority.replace(/\/+$/, "")}/${tid.toLowerCase()}/v2.0`;
}

/**
 * Whether an ID token's `iss` and `tid` are acceptable for the configured tenant (B1.1):
 * - `tid` is a GUID and `iss` is exactly {@link issuerForTenant} of it (case of the GUID aside);
 * - a tenant id setting accepts only that tenant;
 * - `organizations` refuses the personal-accounts tenant, `consumers` accepts only it;
 * - `common` and a domain setting accept any tenant (for a domain, the tenant-specific endpoints
 *   already keep other tenants out; set the tenant id to pin it here too).
 * The signature, audience, expiry and nonce are checked by the OAuth layer; this is the part the
 * multi-tenant issuer template leaves to us.
 */
export function idTokenIssuerAllowed(
  config: Pick<MicrosoftConfig, "authority" | "tenant">,
  claims: { iss: unknown; tid: unknown },
): boolean {
  const { iss, tid } = claims;
  if (typeof iss !== "string" || typeof tid !== "string" || !GUID.test(tid)) return false;
  // The authority and the /v2.0 suffix must match exactly; only the GUID's case may differ.
  const prefix = `${config.authority.replace(/\/+$/, "")}/`;
  if (!iss.startsWith(prefix) || !iss.endsWith("/v2.0")) return false;
  if (iss.slice(prefix.length, -"/v2.0".length).toLowerCase() !== tid.toLowerCase()) return false;
  const t = tid.toLowerCase();
  if (GUID.test(config.tenant)) return t === config.tenant.toLowerCase();
  if (config.tenant === "organizations") return t !== CONSUMER_TENANT_ID;
  if (config.tenant === "consumers") return t === CONSUMER_TENANT_ID;
  return true;
}

/**
 * RFC 9207 for Microsoft: the identity platform does not add `iss` to the authorization response, so
 * an absent `iss` is accepted; a present one must be an issuer {@link idTokenIssuerAllowed} would
 * accept for the tenant it names (a response from another server is never taken for ours).
 */
export function authorizationResponseIssuerAllowed(
  config: Pick<MicrosoftConfig, "authority" | "tenant">,
  iss: string | null,
): boolean {
  if (iss === null) return true;
  const base = config.authority.replace(/\/+$/, "");
  if (!iss.startsWith(`${base}/`) || !iss.endsWith("/v2.0")) return false;
  const tid = iss.slice(base.length + 1, -"/v2.0".length);
  return idTokenIssuerAllowed(config, { iss, tid });
}

const GRAPH_RESOURCE = "https://graph.microsoft.com/";

/** Graph scopes a granted scope also satisfies (a broader permission covers a narrower one). */
const IMPLIES: Readonly<Record<string, readonly string[]>> = {
  "calendars.readwrite.shared": ["calendars.readwrite", "calendars.read", "calendars.read.shared"],
  "calendars.readwrite": ["calendars.read"],
  "user.readwrite": ["user.read"],
  "user.read.all": ["user.read"],
  "user.readwrite.all": ["user.read", "user.readwrite", "user.read.all"],
};

/**
 * Normalise the token response's `scope` (B1.3): split on spaces, drop the Graph resource prefix
 * (`https://graph.microsoft.com/Calendars.ReadWrite` is `Calendars.ReadWrite`), lowercase, distinct.
 * A URL-encoded value (the documentation's sample) is decoded first.
 */
export function normaliseGrantedScopes(scope: string | undefined): string[] {
  if (!scope) return [];
  const decoded = /%20|%2F|%3A/i.test(scope) ? decodeURIComponent(scope) : scope;
  const out = new Set<string>();
  for (const s of decoded.split(/\s+/).filter(Boolean)) {
    const lower = s.toLowerCase();
    out.add(lower.startsWith(GRAPH_RESOURCE) ? lower.slice(GRAPH_RESOURCE.length) : lower);
  }
  return [...out];
}

/**
 * The Graph permissions the grant must include: the calendar one (the account comes from the ID
 * token; `offline_access` shows as the refresh token itself, not always in `scope`).
 */
export const REQUIRED_GRAPH_SCOPES: readonly string[] = Object.freeze(["Calendars.ReadWrite"]);

/**
 * The required Graph scopes the grant lacks, in the order of `required`.
 * @param granted the token response's `scope` value.
 */
export function missingMicrosoftScopes(
  granted: string | undefined,
  required: readonly string[] = REQUIRED_GRAPH_SCOPES,
): string[] {
  const have = new Set<string>();
  for (const g of normaliseGrantedScopes(granted)) {
    have.add(g);
    for (const implied of Object.hasOwn(IMPLIES, g) ? IMPLIES[g] : []) have.add(implied);
  }
  return required.filter((r) => !have.has(r.toLowerCase()));
}
