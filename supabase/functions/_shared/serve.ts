/**
 * Glue between a function's thin entry and its handler: configuration parsed once, the HTTP
 * contract from http.ts, and `Deno.serve`. The local gateway uses {@link toFetchHandler} to host
 * every handler in one process.
 */
import { type Config, getConfig } from "./config.ts";
import { type RequestContext, withHttp } from "./http.ts";

/** What a handler receives besides the request. */
export interface FunctionContext extends RequestContext {
  config: Config;
}

/** A function's logic. Throw HttpError for client errors; anything else becomes a logged 500. */
export type FunctionHandler = (req: Request, ctx: FunctionContext) => Promise<Response>;

/** Wrap a handler into a plain fetch handler with config, request id, CORS and the error envelope. */
export function toFetchHandler(handler: FunctionHandler): (req: Request) => Promise<Response> {
  return withHttp(
    (req, ctx) => handler(req, { ...ctx, config: getConfig() }),
    {
      corsOrigins: () => {
        try {
          return getConfig().corsOrigins;
        } catch {
          return [];
        }
      },
    },
  );
}

/** Serve a handler as a Supabase Edge Function. */
export function serve(handler: FunctionHandler): void {
  Deno.serve(toFetchHandler(handler));
}
