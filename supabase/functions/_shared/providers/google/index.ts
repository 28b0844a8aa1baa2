/**
 * The Google Calendar provider module. Callers normally use `providerFor("google", config)` from
 * ../registry.ts; the parts are exported for tests and for code that needs one piece alone.
 */
export { FREEBUSY_MAX_CALENDARS, FREEBUSY_MAX_WINDOW_DAYS, GoogleCalendarApi } from "./calendar-api.ts";
export { type GoogleConfig, googleEnvSchema, parseGoogleEnv } from "./config.ts";
export { googleDefinition } from "./definition.ts";
export { GOOGLE_ISSUER, GoogleOAuth, type GoogleOAuthConfig } from "./oauth.ts";
export {
  CALENDAR_LIST_PAGE_SIZE,
  type FreeBusyRequest,
  GoogleCalendarClient,
  type GoogleEventBody,
} from "./calendar-client.ts";
export { appointmentOfEventId, eventIdFor, GOOGLE_EVENT_ID } from "./event-id.ts";
export {
  externalEventFromGoogle,
  GOOGLE_CHANGES_FIELDS,
  GOOGLE_CHANNEL_MAX_TTL_SECONDS,
  GoogleInboundApi,
} from "./inbound.ts";
export { classifyGoogleResponse, googleErrorReason, isUsageLimitReason } from "./errors.ts";
export { GOOGLE_CALENDAR_FULL, missingGoogleScopes, scopeSatisfies } from "./scopes.ts";
