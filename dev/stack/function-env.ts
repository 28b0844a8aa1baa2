/**
 * The environment the functions run with in the local stack: every variable of
 * supabase/functions/_shared/config.ts, with the Google endpoints pointing at the provider sandbox
 * (dev/sandbox/CONTRACT.md) and the secrets from secrets.ts.
 */
import type { SandboxClientConfig } from "../sandbox/server.ts";
import type { LocalSecrets } from "./secrets.ts";

/** Origins a local app may ask the OAuth callback to return to. */
export const LOCAL_RETURN_ORIGINS = ["http://127.0.0.1:3000", "http://localhost:3000"];

/** Where the callback sends the browser when auth-start had no `return_to`. */
export const LOCAL_DEFAULT_RETURN_URL = "http://127.0.0.1:3000/settings/calendar";

/** The OAuth callback URL of function `name` behind the gateway at `base` (no trailing slash). */
function callbackUrl(base: string, name: "calendar-auth-callback" | "google-calendar-auth-callback"): string {
  return `${base}/functions/v1/${name}`;
}

/**
 * The OAuth client the provider sandbox must register for a stack whose gateway is `supabaseUrl`
 * (no trailing slash needed): the stack's Google client id and secret, and both callbacks (the
 * canonical calendar-auth-callback, which {@link functionEnv} sends as GOOGLE_REDIRECT_URI, and the
 * seed's google-calendar-auth-callback) as redirect URIs, which the sandbox compares exactly.
 */
export function sandboxOAuthClient(supabaseUrl: string, secrets: LocalSecrets): SandboxClientConfig {
  const base = supabaseUrl.replace(/\/$/, "");
  return {
    clientId: secrets.googleClientId,
    clientSecret: secrets.googleClientSecret,
    redirectUris: [
      callbackUrl(base, "calendar-auth-callback"),
      callbackUrl(base, "google-calendar-auth-callback"),
    ],
  };
}

/**
 * The Microsoft app registration the sandbox must know for a stack whose gateway is `supabaseUrl`:
 * the stack's Microsoft client id and secret, and the canonical calendar-auth-callback (what
 * {@link functionEnv} sends as MICROSOFT_REDIRECT_URI) as its one redirect URI.
 */
export function sandboxMicrosoftClient(supabaseUrl: string, secrets: LocalSecrets): SandboxClientConfig {
  return {
    clientId: secrets.microsoftClientId,
    clientSecret: secrets.microsoftClientSecret,
    redirectUris: [callbackUrl(supabaseUrl.replace(/\/$/, ""), "calendar-auth-callback")],
  };
}

/** Which providers a local deployment configures (default both). */
export type LocalProvider = "google" | "microsoft";

/**
 * Build the function environment.
 * - `supabaseUrl`: the gateway's base URL (http://127.0.0.1:PORT, no trailing slash); the OAuth
 *   redirect URI is `${supabaseUrl}/functions/v1/calendar-auth-callback`.
 * - `databaseUrl`: postgres URL, given as both SUPABASE_DB_URL and DATABASE_URL.
 * - `sandboxUrl`: the provider sandbox base URL; Google endpoints live under `/google`, Microsoft's
 *   under `/microsoft` (MICROSOFT_AUTHORITY; tenant `common`, the default).
 * - `providers`: which providers to configure (default both); a left-out one gets no variables.
 * - `extra`: overrides applied last (e.g. GOOGLE_SCOPES, CALENDAR_PROVIDER_TIMEOUT_MS).
 * Values are secrets: never log the result.
 */
export function functionEnv(o: {
  supabaseUrl: string;
  databaseUrl: string;
  sandboxUrl: string;
  secrets: LocalSecrets;
  providers?: readonly LocalProvider[];
  extra?: Record<string, string>;
}): Record<string, string> {
  const base = o.supabaseUrl.replace(/\/$/, "");
  const google = `${o.sandboxUrl.replace(/\/$/, "")}/google`;
  const microsoft = `${o.sandboxUrl.replace(/\/$/, "")}/microsoft`;
  const providers = o.providers ?? ["google", "microsoft"];
  const core = {
    SUPABASE_URL: base,
    SUPABASE_DB_URL: o.databaseUrl,
    DATABASE_URL: o.databaseUrl,
    SUPABASE_JWT_SECRET: o.secrets.jwtSecret,
    CALENDAR_WORKER_SECRET: o.secrets.workerSecret,
  };
  const googleEnv = {
    GOOGLE_CLIENT_ID: o.secrets.googleClientId,
    GOOGLE_CLIENT_SECRET: o.secrets.googleClientSecret,
    GOOGLE_REDIRECT_URI: callbackUrl(base, "calendar-auth-callback"),
    GOOGLE_AUTHORIZATION_ENDPOINT: `${google}/o/oauth2/v2/auth`,
    GOOGLE_TOKEN_ENDPOINT: `${google}/token`,
    GOOGLE_REVOCATION_ENDPOINT: `${google}/revoke`,
    GOOGLE_CALENDAR_API_BASE: `${google}/calendar/v3`,
    GOOGLE_OAUTH_ISSUER: google,
    GOOGLE_JWKS_URI: `${google}/oauth2/v3/certs`,
    // The sandbox sends RFC 9207 `iss` on every authorization response, so demand it.
    GOOGLE_OAUTH_ISS_PARAMETER: "required",
  };
  const microsoftEnv = {
    MICROSOFT_CLIENT_ID: o.secrets.microsoftClientId,
    MICROSOFT_CLIENT_SECRET: o.secrets.microsoftClientSecret,
    MICROSOFT_REDIRECT_URI: callbackUrl(base, "calendar-auth-callback"),
    MICROSOFT_AUTHORITY: microsoft,
    MICROSOFT_GRAPH_API_BASE: `${microsoft}/graph/v1.0`,
  };
  return {
    ...core,
    ...(providers.includes("google") ? googleEnv : {}),
    ...(providers.includes("microsoft") ? microsoftEnv : {}),
    OAUTH_STATE_SIGNING_SECRET: o.secrets.stateSigningSecret,
    TOKEN_ENCRYPTION_KEY: o.secrets.tokenEncryptionKey,
    TOKEN_ENCRYPTION_KEY_ID: "k1",
    CALENDAR_ALLOWED_RETURN_ORIGINS: LOCAL_RETURN_ORIGINS.join(","),
    CALENDAR_DEFAULT_RETURN_URL: LOCAL_DEFAULT_RETURN_URL,
    CALENDAR_ALLOWED_CORS_ORIGINS: "*",
    ...o.extra,
  };
}
