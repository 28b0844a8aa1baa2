/**
 * Transport options and rules shared by every provider's OAuth and API clients: a per-request
 * timeout, an injectable fetch (tests), and plain HTTP only on loopback.
 */
import { ProviderError } from "../errors/domain-error.ts";

const LOOPBACK = new Set(["127.0.0.1", "localhost", "[::1]", "::1"]);

/**
 * Whether plain HTTP may be used for `url`: only on a loopback host (the local sandbox). Any other
 * http:// URL is refused, so tokens and secrets never cross a network in clear text.
 */
export function isLoopbackHttp(url: string | URL): boolean {
  const u = typeof url === "string" ? new URL(url) : url;
  return u.protocol === "http:" && LOOPBACK.has(u.hostname);
}

/**
 * Refuse a base URL that is neither https nor plain http on loopback.
 * @param what the setting's name for the message, e.g. `GOOGLE_CALENDAR_API_BASE`.
 * @throws ProviderError `invalid` when the URL would send tokens in clear text over a network.
 */
export function requireSecureUrl(url: string | URL, what: string): URL {
  const u = typeof url === "string" ? new URL(url) : url;
  if (u.protocol !== "https:" && !isLoopbackHttp(u)) {
    throw new ProviderError("invalid", `${what} must use https (http only on loopback)`);
  }
  return u;
}

/** Options shared by every OAuth and API client. */
export interface HttpOptions {
  /** fetch implementation (tests); defaults to the global fetch. */
  fetch?: typeof fetch;
  /** Per-request timeout in milliseconds; default {@link DEFAULT_TIMEOUT_MS}. */
  timeoutMs?: number;
}

/** Default per-request timeout in milliseconds. */
export const DEFAULT_TIMEOUT_MS = 10_000;
