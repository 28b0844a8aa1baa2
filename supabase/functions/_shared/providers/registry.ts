/**
 * The provider registry: every provider the deployment can use, keyed by the id stored in
 * `staff_calendar_connections.provider`. `ProviderId` is derived from it, and `providerFor` is the one
 * way handlers and the sync engine get a provider. Registering a provider = one entry here plus its
 * settings in `Config` (through {@link ProviderConfigs}).
 */
import type { Config } from "../config.ts";
import { DomainError } from "../errors/domain-error.ts";
import type { HttpOptions } from "../http-client/transport.ts";
import type { ProviderDefinition } from "./definition.ts";
import { googleDefinition } from "./google/definition.ts";
import { microsoftDefinition } from "./microsoft/definition.ts";
import type { CalendarApi, CalendarProvider, InboundCalendarApi, ProviderOAuthClient } from "./types.ts";

/** The registered providers. */
export const PROVIDERS = Object.freeze({ google: googleDefinition, microsoft: microsoftDefinition });

/** A registered provider's id. */
export type ProviderId = keyof typeof PROVIDERS;

type ConfigOf<D> = D extends ProviderDefinition<string, infer C> ? C : never;

/** Each registered provider's settings, present only where the deployment configures it. */
export type ProviderConfigs = { [K in ProviderId]?: ConfigOf<(typeof PROVIDERS)[K]> };

/**
 * Every provider name the product knows: the values `staff_calendar_connections.provider` may hold.
 * A known name that is not registered or not configured is refused with `provider_not_configured`.
 */
export const KNOWN_PROVIDER_NAMES = ["google", "microsoft"] as const;

/** Whether `id` names a registered provider. */
export function isProviderId(id: string): id is ProviderId {
  return Object.hasOwn(PROVIDERS, id);
}

/**
 * The most calls the sync worker keeps in flight for one connection of provider `id` (its
 * definition's `callsPerConnection`); 1 for a name that is not registered (such a row makes no call).
 */
export function callsPerConnection(id: string): number {
  return isProviderId(id) ? PROVIDERS[id].callsPerConnection : 1;
}

/** The largest {@link callsPerConnection} of the registered providers. */
export const MAX_CALLS_PER_CONNECTION = Math.max(
  ...Object.values(PROVIDERS).map((def) => def.callsPerConnection),
);

/** Transport options for providers: a `fetch` for tests and a per-request timeout in ms. */
export interface ProviderOptions {
  fetch?: typeof fetch;
  /** Per-request timeout in milliseconds; defaults to `config.providerTimeoutMs` (10 000). */
  timeoutMs?: number;
}

/**
 * Read every registered provider's settings from the environment (empty values already dropped).
 * @returns the configured providers' settings and the problems found (each names its variable).
 */
export function parseProviderEnvs(env: Record<string, string | undefined>): {
  configs: ProviderConfigs;
  problems: string[];
} {
  const configs: Record<string, unknown> = {};
  const problems: string[] = [];
  for (const def of Object.values(PROVIDERS)) {
    const parsed = def.parseEnv(env);
    problems.push(...parsed.problems);
    if (parsed.config) configs[def.id] = parsed.config;
  }
  return { configs: configs as ProviderConfigs, problems };
}

/** The ids of the providers this deployment configures. */
export function configuredProviders(config: ProviderConfigs): ProviderId[] {
  return (Object.keys(PROVIDERS) as ProviderId[]).filter((id) => config[id] !== undefined);
}

/**
 * The provider `id`, configured from `config`: its OAuth client and calendar API behind one
 * {@link CalendarProvider}. Cheap to call (no I/O); build one per request or cache it.
 * @throws DomainError `provider_not_configured` for a provider that is unknown, not registered, or
 *   not configured on this deployment; ProviderError `invalid` for a configuration that cannot be
 *   used (a Calendar API base that is plain http on a non-loopback host).
 */
export function providerFor(
  id: string,
  config: ProviderConfigs & Pick<Config, "providerTimeoutMs">,
  options: ProviderOptions = {},
): CalendarProvider {
  if (!isProviderId(id)) {
    throw new DomainError(
      "provider_not_configured",
      `the ${id} provider is not available on this deployment; use one of: ${
        configuredProviders(config).join(", ")
      }`,
    );
  }
  // Each definition takes its own config; the id pairs them, which TypeScript cannot follow here.
  const def = PROVIDERS[id] as ProviderDefinition<ProviderId, unknown>;
  const settings: unknown = config[id];
  if (!settings) {
    throw new DomainError(
      "provider_not_configured",
      `the ${id} provider is not configured on this deployment; use one of: ${
        configuredProviders(config).join(", ")
      }`,
    );
  }
  const http: HttpOptions = {
    ...(options.fetch ? { fetch: options.fetch } : {}),
    timeoutMs: options.timeoutMs ?? config.providerTimeoutMs,
  };
  let inbound: InboundCalendarApi | undefined;
  if (def.capabilities.inboundSync) {
    if (!def.inboundApi) throw new Error(`provider ${id} declares inboundSync without an inbound API`);
    inbound = def.inboundApi(settings, http);
  }
  return composeProvider(
    def.id,
    def.capabilities,
    def.oauthClient(settings, http),
    def.calendarApi(settings, http),
    inbound,
  );
}

/** One object delegating each method to the half that owns it; `inbound` as the provider built it. */
function composeProvider(
  id: ProviderId,
  capabilities: CalendarProvider["capabilities"],
  oauth: ProviderOAuthClient,
  calendar: CalendarApi,
  inbound: InboundCalendarApi | undefined,
): CalendarProvider {
  return Object.freeze(
    {
      id,
      capabilities,
      requiredScopes: oauth.requiredScopes,
      authorizationUrl: (req) => oauth.authorizationUrl(req),
      exchangeCode: (args) => oauth.exchangeCode(args),
      issuerMatches: (url) => oauth.issuerMatches(url),
      refresh: (token) => oauth.refresh(token),
      revoke: (token) => oauth.revoke(token),
      missingScopes: (granted) => oauth.missingScopes(granted),
      listCalendars: (token) => calendar.listCalendars(token),
      getCalendar: (token, calendarId) => calendar.getCalendar(token, calendarId),
      busy: (token, args) => calendar.busy(token, args),
      upsertEvent: (token, write) => calendar.upsertEvent(token, write),
      findAppointmentEvent: (token, ref) => calendar.findAppointmentEvent(token, ref),
      deleteAppointmentEvent: (token, ref) => calendar.deleteAppointmentEvent(token, ref),
      deleteEvent: (token, args) => calendar.deleteEvent(token, args),
      ...(inbound ? { inbound } : {}),
    } satisfies CalendarProvider,
  );
}
