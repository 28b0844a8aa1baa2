/**
 * Transport options and rules shared by the Google OAuth and Calendar clients.
 */

const LOOPBACK = new Set(["127.0.0.1", "localhost", "[::1]", "::1"]);

/**
 * Whether plain HTTP may be used for `url`: only on a loopback host (the local sandbox). Any other
 * http:// URL is refused, so tokens and secrets never cross a network in clear text.
 */
export function isLoopbackHttp(url: string | URL): boolean {
  const u = typeof url === "string" ? new URL(url) : url;
  return u.protocol === "http:" && LOOPBACK.has(u.hostname);
}

/** Options shared by the OAuth client and the Calendar client. */
export interface GoogleHttpOptions {
  /** fetch implementation (tests); defaults to the global fetch. */
  fetch?: typeof fetch;
  /** Per-request timeout in milliseconds; default 10 000. */
  timeoutMs?: number;
}

/** Default per-request timeout in milliseconds. */
export const DEFAULT_TIMEOUT_MS = 10_000;
