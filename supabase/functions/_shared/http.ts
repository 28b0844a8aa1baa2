/**
 * HTTP plumbing shared by every function: JSON responses, the error envelope, CORS, request ids,
 * body parsing with zod, and the wrapper that turns thrown errors into envelopes.
 *
 * Error envelope (docs/architecture.md, "Contracts"):
 * `{"error": {"code": "snake_case", "message": "..."}, "request_id": "..."}`.
 */
import { z } from "zod";
import { ConfigError } from "./config.ts";
import { DomainError } from "./errors/domain-error.ts";
import { httpAnswerFor } from "./errors/http-answers.ts";

/** Largest request body accepted, in bytes. Bodies here are a few ids and timestamps. */
export const MAX_BODY_BYTES = 16 * 1024;

/** An error that maps to an HTTP answer. `code` is snake_case and stable; `message` is for developers. */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
    this.name = "HttpError";
  }
}

/** Per-request context handed to handlers. */
export interface RequestContext {
  requestId: string;
  /** Structured log line: ids and codes only, never tokens, codes, secrets or patient data. */
  log: (event: string, fields?: Record<string, unknown>) => void;
}

export type Handler = (req: Request, ctx: RequestContext) => Promise<Response>;

const CORS_HEADERS = {
  "access-control-allow-headers": "authorization, x-client-info, apikey, content-type, x-request-id",
  "access-control-allow-methods": "GET, POST, OPTIONS",
  "access-control-max-age": "86400",
};

function corsHeaders(req: Request, allowed: string[]): Record<string, string> {
  const origin = req.headers.get("origin");
  if (allowed.includes("*")) return { ...CORS_HEADERS, "access-control-allow-origin": "*" };
  if (origin && allowed.includes(origin)) {
    return { ...CORS_HEADERS, "access-control-allow-origin": origin, vary: "Origin" };
  }
  return {};
}

/** A JSON response with the request id header. */
export function json(body: unknown, status = 200, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { "content-type": "application/json; charset=utf-8", ...headers },
  });
}

/** The error envelope as a Response. */
export function errorResponse(
  status: number,
  code: string,
  message: string,
  requestId: string,
  headers: Record<string, string> = {},
): Response {
  return json({ error: { code, message }, request_id: requestId }, status, headers);
}

/** Summarise zod issues in one sentence a developer can act on, e.g. "time_min: Required; extra: unknown key". */
export function summariseIssues(error: z.ZodError): string {
  return error.issues
    .slice(0, 5)
    .map((i) => {
      const path = i.path.length ? i.path.join(".") : "body";
      if (i.code === "unrecognized_keys") return `${path}: unknown field(s) ${i.keys.join(", ")}`;
      return `${path}: ${i.message}`;
    })
    .join("; ");
}

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
 * The query-string rule of every function that takes a JSON body: no query parameters besides
 * {@link PLATFORM_QUERY_PARAMS} (they would be silently ignored otherwise, and a parameter a
 * client believes it sent must not be dropped). GET input is validated strictly by its schema
 * (request-input.ts); only the OAuth callback reads a query it does not control.
 * @throws HttpError 400 `invalid_request`, 414 `uri_too_long`
 */
export function refuseQuery(req: Request): void {
  const keys = Object.keys(queryRecord(new URL(req.url)));
  if (keys.length > 0) {
    throw new HttpError(
      400,
      "invalid_request",
      `send parameters in the JSON body, not the query string (${keys.slice(0, 5).join(", ")})`,
    );
  }
}

/**
 * Read and validate a JSON body. The request must carry no query parameters ({@link refuseQuery}).
 * `opts.maxBytes` raises the body limit for a caller that sends more than ids and timestamps (a
 * provider's batched notifications); default {@link MAX_BODY_BYTES}.
 * @throws HttpError 415 when the content type is not JSON, 413 when over the limit, 400
 *   `invalid_json` for malformed JSON, 400 `invalid_request` when the schema rejects it or a query
 *   string is present, 400 `incomplete_body` when the client goes away mid-body.
 */
export async function readJson<T extends z.ZodType>(
  req: Request,
  schema: T,
  opts: { maxBytes?: number } = {},
): Promise<z.infer<T>> {
  refuseQuery(req);
  const maxBytes = opts.maxBytes ?? MAX_BODY_BYTES;
  const type = req.headers.get("content-type") ?? "";
  const declared = Number(req.headers.get("content-length") ?? "0");
  if (declared > maxBytes) {
    throw new HttpError(413, "payload_too_large", `request body must be at most ${maxBytes} bytes`);
  }
  const raw = await readLimited(req, maxBytes);
  let value: unknown = {};
  if (raw.trim() !== "") {
    if (!/^application\/(.+\+)?json\b/i.test(type)) {
      throw new HttpError(415, "unsupported_media_type", "send the body as application/json");
    }
    try {
      value = JSON.parse(raw);
    } catch {
      throw new HttpError(400, "invalid_json", "request body is not valid JSON");
    }
  }
  return parseInput(schema, value);
}

/** Validate already-decoded input (query parameters, JSON) against a schema. @throws HttpError 400 */
export function parseInput<T extends z.ZodType>(schema: T, value: unknown): z.infer<T> {
  const result = schema.safeParse(value);
  if (!result.success) throw new HttpError(400, "invalid_request", summariseIssues(result.error));
  return result.data;
}

/**
 * Thrown when the body stream fails: the only source of a request body is the client's
 * connection, so a read error means the client sent a truncated body or went away (RFC 9112
 * section 7.1: a chunked body that ends early is incomplete). A client error, never a 500.
 */
export class IncompleteBodyError extends HttpError {
  constructor() {
    super(400, "incomplete_body", "the request body ended before it was complete (the connection closed)");
    this.name = "IncompleteBodyError";
  }
}

async function readLimited(req: Request, maxBytes: number): Promise<string> {
  if (!req.body) return "";
  const reader = req.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    let chunk: ReadableStreamReadResult<Uint8Array>;
    try {
      chunk = await reader.read();
    } catch {
      throw new IncompleteBodyError();
    }
    const { done, value } = chunk;
    if (done) break;
    size += value.byteLength;
    if (size > maxBytes) {
      await reader.cancel();
      throw new HttpError(413, "payload_too_large", `request body must be at most ${maxBytes} bytes`);
    }
    chunks.push(value);
  }
  const all = new Uint8Array(size);
  let offset = 0;
  for (const c of chunks) {
    all.set(c, offset);
    offset += c.byteLength;
  }
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(all);
  } catch {
    throw new HttpError(400, "invalid_json", "request body is not valid UTF-8");
  }
}

/** @throws HttpError 405 unless the request uses one of `methods`. */
export function requireMethod(req: Request, ...methods: string[]): void {
  if (!methods.includes(req.method)) {
    throw new HttpError(405, "method_not_allowed", `use ${methods.join(" or ")}`, {
      allow: [...methods, "OPTIONS"].join(", "),
    });
  }
}

const REQUEST_ID = /^[A-Za-z0-9._:-]{8,128}$/;

/**
 * Wrap a handler with the shared contract: request id, CORS preflight and headers, and errors
 * mapped to the envelope (HttpError as is, DomainError through the one table of
 * errors/http-answers.ts, ConfigError as 500 `server_misconfigured`, anything else as 500
 * `internal_error` with the detail only in the log).
 */
export function withHttp(handler: Handler, opts: { corsOrigins?: () => string[] } = {}) {
  return async (req: Request): Promise<Response> => {
    const incoming = req.headers.get("x-request-id");
    const requestId = incoming && REQUEST_ID.test(incoming) ? incoming : crypto.randomUUID();
    const log = (event: string, fields: Record<string, unknown> = {}) =>
      console.log(JSON.stringify({ level: "info", event, request_id: requestId, ...fields }));
    let cors: Record<string, string> = {};
    try {
      cors = corsHeaders(req, opts.corsOrigins?.() ?? ["*"]);
    } catch {
      cors = {};
    }
    const finish = (res: Response) => {
      const headers = new Headers(res.headers);
      headers.set("x-request-id", requestId);
      for (const [k, v] of Object.entries(cors)) headers.set(k, v);
      return new Response(res.body, { status: res.status, statusText: res.statusText, headers });
    };
    if (req.method === "OPTIONS") return finish(new Response(null, { status: 204 }));
    try {
      return finish(await handler(req, { requestId, log }));
    } catch (thrown) {
      let err = thrown;
      if (err instanceof DomainError) {
        const answer = httpAnswerFor(err);
        err = new HttpError(answer.status, answer.code, answer.message, answer.headers);
      }
      if (err instanceof HttpError) {
        if (err.status >= 500) log("request_failed", { status: err.status, code: err.code });
        // Nobody is left to read the answer; note it at info level (a client's doing, not ours).
        if (err instanceof IncompleteBodyError || req.signal.aborted) {
          log("client_aborted", { code: err.code });
        }
        return finish(errorResponse(err.status, err.code, err.message, requestId, err.headers));
      }
      if (err instanceof ConfigError) {
        console.error(
          JSON.stringify({
            level: "error",
            event: "config_error",
            request_id: requestId,
            message: err.message,
          }),
        );
        return finish(errorResponse(500, "server_misconfigured", err.message, requestId));
      }
      console.error(JSON.stringify({
        level: "error",
        event: "unhandled_error",
        request_id: requestId,
        name: (err as Error)?.name,
        message: (err as Error)?.message,
      }));
      return finish(
        errorResponse(500, "internal_error", "unexpected error; see the function logs", requestId),
      );
    }
  };
}
