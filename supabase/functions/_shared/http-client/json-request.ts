/**
 * One JSON request to a provider API with a per-request timeout: the answer's status, headers and
 * parsed body, or a classified transport failure. Classifying a non-2xx answer is the provider's
 * job (its error envelope and reasons differ); this module knows no provider.
 */
import { classifyTransportError } from "./transport-errors.ts";
import { DEFAULT_TIMEOUT_MS, type HttpOptions } from "./transport.ts";

/** A request: method, absolute URL, headers, and a JSON body (serialised here) when given. */
export interface JsonRequest {
  method: "GET" | "POST" | "PATCH" | "PUT" | "DELETE";
  url: URL;
  headers?: Record<string, string>;
  /** Sent as `application/json` when not undefined. */
  body?: unknown;
}

/** The provider's answer: status, headers, and the body parsed as JSON (undefined when empty or not JSON). */
export interface JsonAnswer {
  status: number;
  headers: Headers;
  body: unknown;
}

/**
 * Send `req` and read the whole answer (any status).
 * @param label names the call in transport-failure messages, e.g. `Google events.insert`.
 * @throws ProviderError `transient` on a timeout (after `options.timeoutMs`, default 10 000 ms), an
 *   abort or a network error; never for an HTTP status.
 */
export async function requestJson(
  req: JsonRequest,
  label: string,
  options: HttpOptions = {},
): Promise<JsonAnswer> {
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const fetchFn = options.fetch ?? fetch;
  const headers: Record<string, string> = { accept: "application/json", ...req.headers };
  if (req.body !== undefined) headers["content-type"] = "application/json";
  let status: number;
  let responseHeaders: Headers;
  let text: string;
  try {
    const res = await fetchFn(req.url, {
      method: req.method,
      headers,
      body: req.body === undefined ? undefined : JSON.stringify(req.body),
      signal: AbortSignal.timeout(timeoutMs),
    });
    status = res.status;
    responseHeaders = res.headers;
    text = await res.text();
  } catch (err) {
    throw classifyTransportError(err, label, timeoutMs);
  }
  let body: unknown = undefined;
  if (text) {
    try {
      body = JSON.parse(text);
    } catch {
      body = undefined;
    }
  }
  return { status, headers: responseHeaders, body };
}
