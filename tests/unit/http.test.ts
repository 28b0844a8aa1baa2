/**
 * The HTTP contract (http.ts, request-input.ts, errors/http-answers.ts): the error envelope, request ids,
 * CORS preflight, body limits and parsing, method checks, and the one table from domain errors
 * (provider failures included) to HTTP answers.
 */
import assert from "node:assert/strict";
import { z } from "zod";
import { ConfigError } from "../../supabase/functions/_shared/config.ts";
import {
  HttpError,
  MAX_BODY_BYTES,
  readJson,
  requireMethod,
  summariseIssues,
  withHttp,
} from "../../supabase/functions/_shared/http.ts";
import { DomainError, ProviderError } from "../../supabase/functions/_shared/errors/domain-error.ts";
import { HTTP_ANSWERS, httpAnswerFor } from "../../supabase/functions/_shared/errors/http-answers.ts";
import { queryRecord, readQueryOrJson } from "../../supabase/functions/_shared/request-input.ts";
import { rejectedWith } from "../support/assertions.ts";

const schema = z.strictObject({ staff_id: z.string(), count: z.number().int().optional() });

function post(
  body: BodyInit | null,
  headers: Record<string, string> = { "content-type": "application/json" },
) {
  return new Request("http://fn.test/x", { method: "POST", body, headers });
}

/** Capture console output while `fn` runs. */
async function captureLogs(fn: () => Promise<void>): Promise<string> {
  const lines: string[] = [];
  const { log, error } = console;
  console.log = (...a: unknown[]) => lines.push(a.join(" "));
  console.error = (...a: unknown[]) => lines.push(a.join(" "));
  try {
    await fn();
  } finally {
    console.log = log;
    console.error = error;
  }
  return lines.join("\n");
}

Deno.test("http: HttpError becomes the envelope with its status, headers and the request id", async () => {
  const handler = withHttp(() =>
    Promise.reject(new HttpError(429, "rate_limited", "slow down", { "retry-after": "7" }))
  );
  const res = await handler(new Request("http://fn.test/", { headers: { "x-request-id": "req-12345678" } }));
  assert.equal(res.status, 429);
  assert.equal(res.headers.get("retry-after"), "7");
  assert.equal(res.headers.get("x-request-id"), "req-12345678");
  assert.match(res.headers.get("content-type") ?? "", /application\/json/);
  assert.deepEqual(await res.json(), {
    error: { code: "rate_limited", message: "slow down" },
    request_id: "req-12345678",
  });
});

Deno.test("http: an unexpected error is a 500 internal_error without its detail; the detail goes to the log", async () => {
  const handler = withHttp(() => Promise.reject(new Error("connection to 10.0.0.5 refused")));
  let res!: Response;
  const logs = await captureLogs(async () => {
    res = await handler(new Request("http://fn.test/"));
  });
  assert.equal(res.status, 500);
  const body = await res.json();
  assert.equal(body.error.code, "internal_error");
  assert.ok(!JSON.stringify(body).includes("10.0.0.5"));
  assert.match(logs, /10\.0\.0\.5/);
  assert.match(logs, new RegExp(body.request_id));
});

Deno.test("http: a configuration error is a 500 server_misconfigured naming the variable", async () => {
  const handler = withHttp(() =>
    Promise.reject(new ConfigError("invalid configuration: GOOGLE_CLIENT_ID: Required"))
  );
  let res!: Response;
  await captureLogs(async () => {
    res = await handler(new Request("http://fn.test/"));
  });
  assert.equal(res.status, 500);
  const body = await res.json();
  assert.equal(body.error.code, "server_misconfigured");
  assert.match(body.error.message, /GOOGLE_CLIENT_ID/);
});

Deno.test("http: a malformed or hostile x-request-id is replaced by a fresh uuid", async () => {
  const handler = withHttp(() => Promise.resolve(new Response("ok")));
  for (const bad of ["short", "has spaces in it!", "x".repeat(200), "<script>alert(1)</script>"]) {
    const res = await handler(new Request("http://fn.test/", { headers: { "x-request-id": bad } }));
    assert.match(res.headers.get("x-request-id") ?? "", /^[0-9a-f-]{36}$/);
  }
});

Deno.test("http: CORS preflight is answered without running the handler; allowed origins only", async () => {
  let ran = false;
  const handler = withHttp(() => {
    ran = true;
    return Promise.resolve(new Response("ok"));
  }, { corsOrigins: () => ["https://app.example.com"] });
  const ok = await handler(
    new Request("http://fn.test/", { method: "OPTIONS", headers: { origin: "https://app.example.com" } }),
  );
  assert.equal(ok.status, 204);
  assert.equal(ok.headers.get("access-control-allow-origin"), "https://app.example.com");
  assert.match(ok.headers.get("access-control-allow-headers") ?? "", /authorization/);
  assert.match(ok.headers.get("access-control-allow-headers") ?? "", /apikey/);
  const other = await handler(
    new Request("http://fn.test/", { method: "OPTIONS", headers: { origin: "https://evil.example" } }),
  );
  assert.equal(other.headers.get("access-control-allow-origin"), null);
  assert.equal(ran, false);
});

Deno.test("http: requireMethod answers 405 with an Allow header", () => {
  assert.doesNotThrow(() => requireMethod(new Request("http://fn.test/", { method: "POST" }), "POST"));
  try {
    requireMethod(new Request("http://fn.test/", { method: "DELETE" }), "GET", "POST");
    assert.fail("expected 405");
  } catch (err) {
    assert.ok(err instanceof HttpError);
    assert.equal(err.status, 405);
    assert.equal(err.code, "method_not_allowed");
    assert.equal(err.headers.allow, "GET, POST, OPTIONS");
  }
});

Deno.test("http: readJson accepts a valid body and an empty one (validated as {})", async () => {
  assert.deepEqual(await readJson(post(JSON.stringify({ staff_id: "s" })), schema), { staff_id: "s" });
  assert.deepEqual(await readJson(post(null), z.strictObject({})), {});
  assert.deepEqual(
    await readJson(post('{"staff_id":"s"}', { "content-type": "application/vnd.api+json" }), schema),
    { staff_id: "s" },
  );
});

Deno.test("http: malformed JSON is 400 invalid_json; invalid UTF-8 too", async () => {
  for (const body of ["{", "{'a':1}", "undefined", '{"a":1}}']) {
    const err = await rejectedWith(HttpError, readJson(post(body), schema));
    assert.equal(err.status, 400);
    assert.equal(err.code, "invalid_json");
  }
  const err = await rejectedWith(HttpError, readJson(post(new Uint8Array([0x7b, 0xff, 0xfe, 0x7d])), schema));
  assert.equal(err.code, "invalid_json");
});

Deno.test("http: extra, missing and mistyped fields are 400 invalid_request naming the field", async () => {
  const extra = await rejectedWith(
    HttpError,
    readJson(post(JSON.stringify({ staff_id: "s", admin: true })), schema),
  );
  assert.equal(extra.code, "invalid_request");
  assert.match(extra.message, /unknown field\(s\) admin/);
  const missing = await rejectedWith(HttpError, readJson(post("{}"), schema));
  assert.match(missing.message, /staff_id/);
  const typed = await rejectedWith(HttpError, readJson(post(JSON.stringify({ staff_id: 5 })), schema));
  assert.match(typed.message, /staff_id/);
  const array = await rejectedWith(HttpError, readJson(post("[1,2]"), schema));
  assert.equal(array.code, "invalid_request");
});

Deno.test("http: a body over the limit is 413, whether declared or streamed", async () => {
  const big = JSON.stringify({ staff_id: "x".repeat(MAX_BODY_BYTES) });
  const declared = await rejectedWith(HttpError, readJson(post(big), schema));
  assert.equal(declared.status, 413);
  assert.equal(declared.code, "payload_too_large");
  // A chunked body with no content-length is cut off while reading.
  const stream = new ReadableStream<Uint8Array>({
    start(controller) {
      for (let i = 0; i < 40; i++) controller.enqueue(new TextEncoder().encode("x".repeat(1024)));
      controller.close();
    },
  });
  const streamed = await rejectedWith(HttpError, readJson(post(stream), schema));
  assert.equal(streamed.status, 413);
});

Deno.test("http: a non-JSON content type is 415", async () => {
  const err = await rejectedWith(
    HttpError,
    readJson(post("staff_id=s", { "content-type": "application/x-www-form-urlencoded" }), schema),
  );
  assert.equal(err.status, 415);
  assert.equal(err.code, "unsupported_media_type");
});

Deno.test("http: summariseIssues keeps at most five issues in one sentence", () => {
  const wide = z.strictObject(Object.fromEntries(Array.from({ length: 8 }, (_, i) => [`f${i}`, z.string()])));
  const result = wide.safeParse({});
  assert.equal(result.success, false);
  const text = summariseIssues(result.error!);
  assert.equal(text.split("; ").length, 5);
});

Deno.test("request-input: GET validates the query string; repeated parameters are refused", async () => {
  const s = z.strictObject({ return_to: z.string().optional() });
  assert.deepEqual(await readQueryOrJson(new Request("http://fn.test/?return_to=https%3A%2F%2Fa.b"), s), {
    return_to: "https://a.b",
  });
  const extra = await rejectedWith(HttpError, readQueryOrJson(new Request("http://fn.test/?staff_id=1"), s));
  assert.equal(extra.code, "invalid_request");
  assert.throws(
    () => queryRecord(new URL("http://fn.test/?a=1&a=2")),
    (e: HttpError) => e.code === "invalid_request",
  );
  assert.throws(
    () => queryRecord(new URL(`http://fn.test/?a=${"x".repeat(MAX_BODY_BYTES)}`)),
    (e: HttpError) => e.status === 414,
  );
});

Deno.test("request-input: POST reads JSON and refuses parameters smuggled in the query string", async () => {
  const s = z.strictObject({ staff_id: z.string().optional() });
  assert.deepEqual(await readQueryOrJson(post('{"staff_id":"a"}'), s), { staff_id: "a" });
  const smuggled = new Request("http://fn.test/x?staff_id=b", {
    method: "POST",
    body: "{}",
    headers: { "content-type": "application/json" },
  });
  const err = await rejectedWith(HttpError, readQueryOrJson(smuggled, s));
  assert.equal(err.code, "invalid_request");
  assert.match(err.message, /staff_id/);
});

Deno.test("http-answers: every ProviderError kind maps to its documented status and code", () => {
  const cases: [ProviderError, number, string][] = [
    [new ProviderError("auth", "x"), 409, "needs_reconnect"],
    [new ProviderError("insufficient_scope", "x"), 409, "insufficient_scope"],
    [new ProviderError("not_found", "x"), 409, "calendar_not_found"],
    [new ProviderError("gone", "x"), 409, "calendar_not_found"],
    [new ProviderError("rate_limited", "x"), 429, "rate_limited"],
    [new ProviderError("transient", "x"), 503, "provider_unavailable"],
    [new ProviderError("conflict", "x", { status: 409 }), 502, "provider_error"],
    [new ProviderError("invalid", "x", { status: 400 }), 502, "provider_error"],
    [new ProviderError("cursor_expired", "x", { status: 410 }), 502, "provider_error"],
  ];
  for (const [err, status, code] of cases) {
    const http = httpAnswerFor(err);
    assert.equal(http.status, status, err.kind);
    assert.equal(http.code, code, err.kind);
    assert.ok(http.status >= 400 && http.status !== 500);
  }
});

Deno.test("http-answers: Retry-After is whole seconds, rounded up, at least 1; defaults when unknown", () => {
  assert.equal(
    httpAnswerFor(new ProviderError("rate_limited", "x", { retryAfterMs: 7000 }))
      .headers["retry-after"],
    "7",
  );
  assert.equal(
    httpAnswerFor(new ProviderError("rate_limited", "x", { retryAfterMs: 7001 }))
      .headers["retry-after"],
    "8",
  );
  assert.equal(
    httpAnswerFor(new ProviderError("rate_limited", "x", { retryAfterMs: 0 })).headers["retry-after"],
    "1",
  );
  assert.equal(httpAnswerFor(new ProviderError("rate_limited", "x")).headers["retry-after"], "30");
  assert.equal(httpAnswerFor(new ProviderError("transient", "x")).headers["retry-after"], "5");
});

Deno.test("http-answers: our own connection codes keep their message; withHttp answers every DomainError from the table", async () => {
  assert.deepEqual(Object.keys(HTTP_ANSWERS).sort(), [
    "auth",
    "conflict",
    "cursor_expired",
    "gone",
    "insufficient_scope",
    "invalid",
    "needs_reconnect",
    "not_connected",
    "not_found",
    "provider_not_configured",
    "rate_limited",
    "transient",
  ]);
  const answer = httpAnswerFor(new DomainError("not_connected", "no calendar here"));
  assert.deepEqual(answer, { status: 409, code: "not_connected", message: "no calendar here", headers: {} });
  const cases: [DomainError, number, string, string | null][] = [
    [new DomainError("needs_reconnect", "grant is dead"), 409, "needs_reconnect", null],
    [new DomainError("provider_not_configured", "no such provider"), 400, "provider_not_configured", null],
    [new ProviderError("rate_limited", "x", { retryAfterMs: 2_500 }), 429, "rate_limited", "3"],
  ];
  for (const [err, status, code, retryAfter] of cases) {
    const res = await withHttp(() => Promise.reject(err))(new Request("http://x/f", { method: "POST" }));
    assert.equal(res.status, status, err.code);
    const body = await res.json();
    assert.equal(body.error.code, code);
    assert.equal(res.headers.get("retry-after"), retryAfter);
  }
});

Deno.test("http: readJson refuses any query parameter except the platform's (one rule for JSON-body functions)", async () => {
  const schema = z.strictObject({});
  const post = (query: string) =>
    new Request(`http://fn.test/f${query}`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: "{}",
    });
  for (const query of ["?x=1", "?staff_id=a", "?forceFunctionRegion=eu-west-1&x=1", "?a=1&a=2"]) {
    await assert.rejects(
      readJson(post(query), schema),
      (err: HttpError) => err.status === 400 && err.code === "invalid_request",
      query,
    );
  }
  assert.deepEqual(await readJson(post(""), schema), {});
  assert.deepEqual(await readJson(post("?forceFunctionRegion=eu-west-1"), schema), {});
});

Deno.test("http: a body stream that fails mid-read (client gone) is 400 incomplete_body, logged at info, never a 500", async () => {
  const body = new ReadableStream<Uint8Array>({
    start(controller) {
      controller.enqueue(new TextEncoder().encode('{"a":'));
      controller.error(new TypeError("connection closed before message completed"));
    },
  });
  const req = () =>
    new Request("http://fn.test/f", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body,
    });
  await assert.rejects(
    readJson(req(), z.object({})),
    (err: HttpError) => err.status === 400 && err.code === "incomplete_body",
  );
  const lines: string[] = [];
  const [log, error] = [console.log, console.error];
  console.log = console.error = (...args: unknown[]) => void lines.push(args.map(String).join(" "));
  let res: Response;
  try {
    const stream = new ReadableStream<Uint8Array>({ start: (c) => c.error(new Error("reset")) });
    res = await withHttp(async (r) => {
      await readJson(r, z.object({}));
      return new Response("unreachable");
    })(
      new Request("http://fn.test/f", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: stream,
      }),
    );
  } finally {
    [console.log, console.error] = [log, error];
  }
  assert.equal(res.status, 400);
  assert.equal((await res.json()).error.code, "incomplete_body");
  assert.ok(lines.every((l) => JSON.parse(l).level === "info"), lines.join("\n"));
  assert.ok(lines.some((l) => JSON.parse(l).event === "client_aborted"));
});
