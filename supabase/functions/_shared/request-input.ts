/**
 * Request input for functions that accept both GET (query string) and POST (JSON body), validated
 * with the same zod schema either way, plus the response headers every private answer carries.
 */
import type { z } from "zod";
import { parseInput, queryRecord, readJson } from "./http.ts";

/** Headers for answers that carry per-user data: never cached by a browser or a proxy. */
export const NO_STORE = { "cache-control": "no-store" } as const;

export { PLATFORM_QUERY_PARAMS, queryRecord } from "./http.ts";

/**
 * Validate a GET's query parameters or a POST's JSON body against `schema` (a strict zod object,
 * so an unknown query parameter is refused). A POST must not also carry query parameters (http.ts
 * refuseQuery, the rule every JSON-body function shares).
 * @throws HttpError 400 `invalid_json` / `invalid_request`, 413 `payload_too_large`, 414
 *   `uri_too_long`, 415 `unsupported_media_type` (see http.ts readJson).
 */
export async function readQueryOrJson<T extends z.ZodType>(req: Request, schema: T): Promise<z.infer<T>> {
  if (req.method === "GET" || req.method === "HEAD") return parseInput(schema, queryRecord(new URL(req.url)));
  return await readJson(req, schema);
}
