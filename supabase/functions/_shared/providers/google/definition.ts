/** The Google provider's registration (../registry.ts). */
import type { ProviderDefinition } from "../definition.ts";
import { type GoogleConfig, googleEnvSchema, parseGoogleEnv } from "./config.ts";
import { GoogleOAuth } from "./oauth.ts";
import { GoogleCalendarApi } from "./calendar-api.ts";
import { GoogleInboundApi } from "./inbound.ts";

/** Google Calendar v3 with Google's OAuth 2.0 / OpenID Connect (docs/providers/google.md). */
export const googleDefinition: ProviderDefinition<"google", GoogleConfig> = {
  id: "google",
  displayName: "Google",
  envSchema: googleEnvSchema,
  parseEnv: parseGoogleEnv,
  scopes: (config) => config.scopes,
  capabilities: Object.freeze({
    inboundSync: true,
    batch: false,
    tokenRevocation: true,
    refreshTokenRotation: false,
    eventLookupByAppointment: true,
  }),
  // Google limits each user by rate, not concurrency (A2.2): 2 calls in flight at a few hundred ms
  // each stay under the per-user quota with room for the same user's availability reads.
  callsPerConnection: 2,
  oauthClient: (config, http) => new GoogleOAuth(config, http),
  calendarApi: (config, http) => new GoogleCalendarApi(config, http),
  inboundApi: (config, http) => new GoogleInboundApi(config, http),
};
