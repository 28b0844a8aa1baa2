/**
 * Response assertions shared by the integration tests: reading a JSON body with a readable failure,
 * and checking the functions' error envelope `{"error":{"code","message"},"request_id"}`
 * (supabase/functions/_shared/http.ts).
 */
import assert from "node:assert/strict";

/** A function's error answer as parsed; other fields are kept so a test can check they are absent. */
export interface ErrorEnvelope {
  error?: { code?: unknown; message?: unknown };
  request_id?: unknown;
  [field: string]: unknown;
}

/**
 * Read `res`'s body as JSON (consumes it).
 * @throws Error naming the status and the start of the body when it is not JSON.
 */
export async function json<T = Record<string, unknown>>(res: Response): Promise<T> {
  const text = await res.text();
  try {
    return JSON.parse(text) as T;
  } catch {
    throw new Error(`expected JSON, got ${res.status}: ${text.slice(0, 300)}`);
  }
}

/**
 * Assert that `res` answers `status` with the error envelope: string `error.code`, string
 * `error.message`, string `request_id`, and `error.code === code` when `code` is given. Consumes the body.
 * @returns the parsed body.
 * @throws AssertionError on any mismatch; Error when the body is not JSON.
 */
export async function assertEnvelope(res: Response, status: number, code?: string): Promise<ErrorEnvelope> {
  const body = await json<ErrorEnvelope>(res);
  assert.equal(res.status, status, `expected ${status}, got ${res.status}: ${JSON.stringify(body)}`);
  assert.equal(typeof body.error?.code, "string", "error envelope has a code");
  assert.equal(typeof body.error?.message, "string", "error envelope has a message");
  assert.equal(typeof body.request_id, "string", "error envelope has a request_id");
  if (code) assert.equal(body.error?.code, code);
  return body;
}

/**
 * Await `promise`, which must reject with an instance of `type` (e.g. ProviderError, HttpError).
 * @returns that error, for assertions on its fields.
 * @throws AssertionError when the promise resolves or rejects with anything else.
 */
export async function rejectedWith<E extends Error>(
  // deno-lint-ignore no-explicit-any
  type: abstract new (...args: any[]) => E,
  promise: Promise<unknown>,
): Promise<E> {
  try {
    await promise;
  } catch (err) {
    assert.ok(err instanceof type, `expected ${type.name}, got ${err}`);
    return err;
  }
  assert.fail("expected a rejection");
}
