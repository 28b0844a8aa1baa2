/**
 * Request input for functions that accept both GET (query string) and POST (JSON body), validated
 * with the same zod schema either way, plus the response headers every private answer carries.
 */
import type { z } from "zod";
import { HttpError, MAX_BODY_BYTES, parseInput, readJson } from "./http.ts";

/** Headers for answers that carry per-user data: never cached by a browser or a proxy. */
export const NO_STORE = { "cache-control": "no-store" } as const;

/**
 * Query parameters that clients add for the platform, not for the function: supabase-js
 * `functions.invoke(name, {region})` appends `forceFunctionRegion=<region>` to every call, POST
 * included. They are dropped before validation so an app that pins a region is not refused.
 */
export const PLATFORM_QUERY_PARAMS: ReadonlySet<string> = new Set(["forceFunctionRegion"]);

/**
 * The query parameters as a record of strings, without {@link PLATFORM_QUERY_PARAMS}.
 * @throws HttpError 414 `uri_too_long` when the query exceeds {@link MAX_BODY_BYTES}; 400
 *   `invalid_request` when a parameter is repeated (`?a=1&a=2` is ambiguous, so it is refused).
 */
export function queryRecord(url: URL): Record<string, string> {
  if (url.search.length > MAX_BODY_BYTES) {
    throw new HttpError(414, "uri_too_long", `the query string must be at most ${MAX_BODY_BYTES} bytes`);
  }
  const out: Record<string, string> = {};
  for (const [key, value] of url.searchParams) {
    if (PLATFORM_QUERY_PARAMS.has(key)) continue;
    if (Object.hasOwn(out, key)) throw new HttpError(400, "invalid_request", `${key}: given more than once`);
    out[key] = value;
  }
  return out;
}

/**
 * Validate a GET's query parameters or a POST's JSON body against `schema`. A POST must not also
 * carry query parameters (they would be silently ignored otherwise).
 * @throws HttpError 400 `invalid_json` / `invalid_request`, 413 `payload_too_large`, 414
 *   `uri_too_long`, 415 `unsupported_media_type` (see http.ts readJson).
 */
export async function readQueryOrJson<T extends z.ZodType>(req: Request, schema: T): Promise<z.infer<T>> {
  const query = queryRecord(new URL(req.url));
  if (req.method === "GET" || req.method === "HEAD") return parseInput(schema, query);
  const keys = Object.keys(query);
  if (keys.length > 0) {
    throw new HttpError(
      400,
      "invalid_request",
      `send parameters in the JSON body, not the query string (${keys.slice(0, 5).join(", ")})`,
    );
  }
  return await readJson(req, schema);
}
