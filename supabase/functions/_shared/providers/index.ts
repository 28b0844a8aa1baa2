/**
 * The provider factory: handlers and the sync engine get a {@link CalendarProvider} from here and
 * never import a provider module directly.
 */
import type { Config } from "../config.ts";
import { GoogleProvider } from "./google/provider.ts";
import type { HttpOptions } from "../http-client/transport.ts";
import { type CalendarProvider, ProviderError, type ProviderId } from "./types.ts";

/** Transport options for providers: a `fetch` for tests and a per-request timeout in ms. */
export interface ProviderOptions {
  fetch?: typeof fetch;
  /** Per-request timeout in milliseconds; defaults to `config.providerTimeoutMs` (10 000). */
  timeoutMs?: number;
}

/**
 * The provider for `id`, configured from `config`. Cheap to call (no I/O); build one per request
 * or cache it.
 * @throws ProviderError `invalid` for "microsoft" (not configured yet), an unknown id, or a Google
 *   Calendar API base that is plain http on a non-loopback host.
 */
export function providerFor(
  id: ProviderId,
  config: Pick<Config, "google" | "providerTimeoutMs">,
  options: ProviderOptions = {},
): CalendarProvider {
  const http: HttpOptions = {
    ...(options.fetch ? { fetch: options.fetch } : {}),
    timeoutMs: options.timeoutMs ?? config.providerTimeoutMs,
  };
  switch (id) {
    case "google":
      return new GoogleProvider(config.google, http);
    case "microsoft":
      throw new ProviderError("invalid", "Microsoft is not configured");
    default:
      throw new ProviderError("invalid", `unknown calendar provider '${String(id)}'`);
  }
}

export { ProviderError } from "./types.ts";
export type { CalendarProvider, ProviderErrorKind, ProviderId } from "./types.ts";
