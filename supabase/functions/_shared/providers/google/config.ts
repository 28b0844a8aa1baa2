/**
 * The Google provider's configuration: the GOOGLE_* variables it reads (docs/configuration.md) and
 * their typed form. Google is configured when any of its client variables is set; then all three
 * (client id, secret, redirect URI) are required and every problem is named.
 */
import { z } from "zod";

const DEFAULT_GOOGLE_SCOPES = [
  "https://www.googleapis.com/auth/calendar.events",
  "https://www.googleapis.com/auth/calendar.freebusy",
  "https://www.googleapis.com/auth/calendar.calendarlist.readonly",
].join(" ");

const csv = (v: string) => v.split(/[,\s]+/).map((s) => s.trim()).filter(Boolean);

/** The variables whose presence means "this deployment uses Google". */
export const GOOGLE_CLIENT_VARIABLES = [
  "GOOGLE_CLIENT_ID",
  "GOOGLE_CLIENT_SECRET",
  "GOOGLE_REDIRECT_URI",
] as const;

/** Every environment variable the Google provider reads, with its default. */
export const googleEnvSchema = z.object({
  GOOGLE_CLIENT_ID: z.string().min(1),
  GOOGLE_CLIENT_SECRET: z.string().min(1),
  GOOGLE_REDIRECT_URI: z.url(),
  GOOGLE_SCOPES: z.string().default(DEFAULT_GOOGLE_SCOPES),
  GOOGLE_OAUTH_PROMPT: z.enum(["consent", "select_account", "none", "consent select_account"]).default(
    "consent",
  ),
  GOOGLE_OAUTH_ACCESS_TYPE: z.enum(["offline", "online"]).default("offline"),
  GOOGLE_AUTHORIZATION_ENDPOINT: z.url().default("https://accounts.google.com/o/oauth2/v2/auth"),
  GOOGLE_TOKEN_ENDPOINT: z.url().default("https://oauth2.googleapis.com/token"),
  GOOGLE_REVOCATION_ENDPOINT: z.url().default("https://oauth2.googleapis.com/revoke"),
  GOOGLE_CALENDAR_API_BASE: z.url().default("https://www.googleapis.com/calendar/v3"),
  /** The authorization server's issuer identifier: ID tokens' `iss` and RFC 9207's `iss` parameter. */
  GOOGLE_OAUTH_ISSUER: z.url().default("https://accounts.google.com"),
  /** The issuer's JWK Set, which signs its ID tokens. */
  GOOGLE_JWKS_URI: z.url().default("https://www.googleapis.com/oauth2/v3/certs"),
  /** RFC 9207 `iss` in the authorization response: checked when present (optional) or demanded (required). */
  GOOGLE_OAUTH_ISS_PARAMETER: z.enum(["optional", "required"]).default("optional"),
});

/** Google's client, endpoints and consent parameters (Config.google). */
export interface GoogleConfig {
  clientId: string;
  clientSecret: string;
  redirectUri: string;
  /** Scopes requested at consent, space-delimited in the request; each is required in the grant. */
  scopes: string[];
  prompt: string;
  accessType: "offline" | "online";
  authorizationEndpoint: string;
  tokenEndpoint: string;
  revocationEndpoint: string;
  /** Calendar API base URL without a trailing slash. */
  calendarApiBase: string;
  /** Issuer identifier (ID token `iss`, RFC 9207 `iss` parameter). */
  issuer: string;
  /** JWK Set URL of the issuer's ID-token signing keys. */
  jwksUri: string;
  /** Whether the authorization response must carry `iss` (RFC 9207) or it is checked only when present. */
  issParameter: "optional" | "required";
}

/**
 * Google's configuration from an environment record whose empty values are already dropped.
 * @returns `config` undefined when no client variable is set (Google not used); otherwise the
 *   config, or `problems` naming each missing or invalid variable (never its value).
 */
export function parseGoogleEnv(env: Record<string, string | undefined>): {
  config?: GoogleConfig;
  problems: string[];
} {
  if (!GOOGLE_CLIENT_VARIABLES.some((name) => env[name] !== undefined)) return { problems: [] };
  const parsed = googleEnvSchema.safeParse(env);
  if (!parsed.success) {
    return { problems: parsed.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`) };
  }
  const e = parsed.data;
  return {
    problems: [],
    config: {
      clientId: e.GOOGLE_CLIENT_ID,
      clientSecret: e.GOOGLE_CLIENT_SECRET,
      redirectUri: e.GOOGLE_REDIRECT_URI,
      scopes: csv(e.GOOGLE_SCOPES),
      prompt: e.GOOGLE_OAUTH_PROMPT,
      accessType: e.GOOGLE_OAUTH_ACCESS_TYPE,
      authorizationEndpoint: e.GOOGLE_AUTHORIZATION_ENDPOINT,
      tokenEndpoint: e.GOOGLE_TOKEN_ENDPOINT,
      revocationEndpoint: e.GOOGLE_REVOCATION_ENDPOINT,
      calendarApiBase: e.GOOGLE_CALENDAR_API_BASE.replace(/\/$/, ""),
      issuer: e.GOOGLE_OAUTH_ISSUER,
      jwksUri: e.GOOGLE_JWKS_URI,
      issParameter: e.GOOGLE_OAUTH_ISS_PARAMETER,
    },
  };
}
