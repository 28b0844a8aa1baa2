/**
 * What a provider declares to be registered (./registry.ts): its id, the environment it reads, its
 * scopes, and factories for its OAuth client and its calendar API. Nothing else in the core names a
 * provider.
 */
import type { z } from "zod";
import type { HttpOptions } from "../http-client/transport.ts";
import type { CalendarApi, InboundCalendarApi, ProviderCapabilities, ProviderOAuthClient } from "./types.ts";

/**
 * One provider's registration. `C` is its typed configuration (`Config[id]`).
 */
export interface ProviderDefinition<Id extends string, C> {
  readonly id: Id;
  /** For messages and logs, e.g. `Google`. */
  readonly displayName: string;
  /** Every environment variable the provider reads (docs/configuration.md lists them). */
  readonly envSchema: z.ZodObject;
  /**
   * The provider's configuration from an environment record whose empty values are dropped.
   * @returns no `config` and no `problems` when the deployment does not use this provider;
   *   `problems` naming each missing or invalid variable (never a value) when it is half set.
   */
  parseEnv(env: Record<string, string | undefined>): { config?: C; problems: string[] };
  /** The scopes a grant must include for this configuration. */
  scopes(config: C): readonly string[];
  /** What the provider can do beyond the required interface. */
  readonly capabilities: ProviderCapabilities;
  /**
   * The most provider calls the sync worker keeps in flight for one connected account (a staff
   * member's mailbox) at once, per worker process: the provider's per-account limit, with the reason
   * in its docs/providers page. A positive integer.
   */
  readonly callsPerConnection: number;
  /** The OAuth client for this configuration (no I/O). */
  oauthClient(config: C, http: HttpOptions): ProviderOAuthClient;
  /**
   * The calendar API for this configuration (no I/O).
   * @throws ProviderError `invalid` for a configuration that cannot be used (plain http off loopback).
   */
  calendarApi(config: C, http: HttpOptions): CalendarApi;
  /**
   * Inbound sync for this configuration (no I/O); required when `capabilities.inboundSync` is true.
   * @throws ProviderError `invalid` as {@link calendarApi} does.
   */
  inboundApi?(config: C, http: HttpOptions): InboundCalendarApi;
}
