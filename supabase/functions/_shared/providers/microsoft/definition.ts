/** The Microsoft provider's registration (../registry.ts). */
import { ConfigError } from "../../errors/config-error.ts";
import type { ProviderDefinition } from "../definition.ts";
import { MicrosoftCalendarApi } from "./calendar-api.ts";
import { MicrosoftInboundApi } from "./inbound.ts";
import { MicrosoftOAuth } from "./oauth.ts";
import { type MicrosoftConfig, microsoftEnvSchema, parseMicrosoftConfig } from "./oauth-config.ts";

/** The variables whose presence means "this deployment uses Microsoft". */
export const MICROSOFT_CLIENT_VARIABLES = [
  "MICROSOFT_CLIENT_ID",
  "MICROSOFT_CLIENT_SECRET",
  "MICROSOFT_REDIRECT_URI",
] as const;

/**
 * Microsoft's configuration from an environment record whose empty values are already dropped.
 * @returns no `config` when no client variable is set (Microsoft not used); otherwise the config,
 *   or `problems` naming each missing or invalid variable (never its value).
 */
export function parseMicrosoftEnv(env: Record<string, string | undefined>): {
  config?: MicrosoftConfig;
  problems: string[];
} {
  if (!MICROSOFT_CLIENT_VARIABLES.some((name) => env[name] !== undefined)) return { problems: [] };
  try {
    return { config: parseMicrosoftConfig(env), problems: [] };
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    return { problems: [err.message] };
  }
}

/** Microsoft Graph v1.0 with the Microsoft identity platform v2 (docs/providers/microsoft.md). */
export const microsoftDefinition: ProviderDefinition<"microsoft", MicrosoftConfig> = {
  id: "microsoft",
  displayName: "Microsoft",
  envSchema: microsoftEnvSchema,
  parseEnv: parseMicrosoftEnv,
  scopes: (config) => config.scopes,
  capabilities: Object.freeze({
    inboundSync: true,
    batch: false,
    tokenRevocation: false,
    refreshTokenRotation: true,
    eventLookupByAppointment: false,
  }),
  // Outlook allows 4 concurrent requests per app and mailbox; a 5th answers 429 MailboxConcurrency (B2.2).
  // The sync keeps one free for the product's interactive calls to the same mailbox (availability,
  // calendar list), which a burst (a reconnect's backfill, while the staff member is in the app) would
  // otherwise get refused.
  callsPerConnection: 3,
  oauthClient: (config, http) => new MicrosoftOAuth(config, http),
  calendarApi: (config, http) => new MicrosoftCalendarApi(config, http),
  inboundApi: (config, http) => new MicrosoftInboundApi(config, http),
};
