/**
 * One Graph v1.0 call with the staff member's token (docs/providers/microsoft.md B2): JSON in and out,
 * the per-request timeout, and every non-2xx answer classified by ./errors.ts. Shared by the calendar
 * API and inbound sync.
 */
import { type JsonAnswer, requestJson } from "../../http-client/json-request.ts";
import { type HttpOptions, requireSecureUrl } from "../../http-client/transport.ts";
import { classifyGraphResponse } from "./errors.ts";

/** What a call may add: a JSON body, a `Prefer` header, and what a 404 would mean. */
export interface GraphCallOptions {
  body?: unknown;
  prefer?: string;
  resource?: "calendar" | "event";
}

/** Graph at one base URL. */
export class GraphClient {
  /** The base URL without a trailing slash, e.g. `https://graph.microsoft.com/v1.0`. */
  readonly base: string;
  readonly #http: HttpOptions;

  /**
   * @param graphApiBase the configured base.
   * @param options `fetch` for tests; `timeoutMs` per request (default 10 000 ms).
   * @throws ProviderError `invalid` when the base is plain http on a non-loopback host.
   */
  constructor(graphApiBase: string, options: HttpOptions = {}) {
    requireSecureUrl(graphApiBase, "MICROSOFT_GRAPH_API_BASE");
    this.base = graphApiBase.replace(/\/+$/, "");
    this.#http = options;
  }

  /** The absolute URL of a path under the base (`/me/calendars`). */
  url(path: string): URL {
    return new URL(`${this.base}${path}`);
  }

  /**
   * One call. @returns the 2xx answer. @throws ProviderError as classified by ./errors.ts, or
   * `transient` for a timeout or network failure.
   */
  async call(
    token: string,
    method: "GET" | "POST" | "PATCH" | "DELETE",
    url: URL,
    operation: string,
    opts: GraphCallOptions = {},
  ): Promise<JsonAnswer> {
    const headers: Record<string, string> = { authorization: `Bearer ${token}` };
    if (opts.prefer) headers.prefer = opts.prefer;
    const answer = await requestJson(
      { method, url, headers, ...(opts.body !== undefined ? { body: opts.body } : {}) },
      `Microsoft Graph ${operation}`,
      this.#http,
    );
    if (answer.status < 200 || answer.status >= 300) {
      throw classifyGraphResponse(answer.status, answer.body, answer.headers, operation, {
        ...(opts.resource ? { resource: opts.resource } : {}),
      });
    }
    return answer;
  }
}
