/**
 * Supabase JWT verification in code (auth.ts): legacy HS256 with the JWT secret, asymmetric keys
 * from a JWKS, roles, and every way a token can be wrong.
 */
import assert from "node:assert/strict";
import * as jose from "jose";
import {
  authenticate,
  authenticateUser,
  bearerToken,
  timingSafeEqual,
  verifyJwt,
} from "../../supabase/functions/_shared/auth.ts";
import type { Config } from "../../supabase/functions/_shared/config.ts";
import { HttpError } from "../../supabase/functions/_shared/http.ts";

const SECRET = "super-secret-jwt-token-with-at-least-32-characters-long";
const USER = "2f1d7a52-6a3e-4f41-9c7e-3b8f0f5c9a11";

const { publicKey, privateKey } = await jose.generateKeyPair("ES256", { extractable: true });
const jwk = { ...(await jose.exportJWK(publicKey)), kid: "key-1", alg: "ES256", use: "sig" };

function config(over: Partial<Config> = {}): Config {
  return {
    supabaseUrl: "http://127.0.0.1:1",
    jwtSecret: SECRET,
    jwks: { keys: [jwk as unknown as Record<string, unknown>] },
    secretApiKeys: [],
    ...over,
  } as Config;
}

async function hs256(claims: jose.JWTPayload, secret = SECRET, exp: string | number = "1h"): Promise<string> {
  return await new jose.SignJWT(claims).setProtectedHeader({ alg: "HS256", typ: "JWT" }).setIssuedAt()
    .setExpirationTime(exp).sign(new TextEncoder().encode(secret));
}

async function es256(claims: jose.JWTPayload, kid = "key-1"): Promise<string> {
  return await new jose.SignJWT(claims).setProtectedHeader({ alg: "ES256", kid }).setIssuedAt()
    .setExpirationTime("1h").sign(privateKey);
}

function bearer(token: string): Request {
  return new Request("http://fn.test/", { headers: { authorization: `Bearer ${token}` } });
}

async function rejectsWith(promise: Promise<unknown>, status: number, code: string) {
  await assert.rejects(promise, (err: unknown) => {
    assert.ok(err instanceof HttpError, `expected HttpError, got ${err}`);
    assert.equal(err.status, status);
    assert.equal(err.code, code);
    return true;
  });
}

Deno.test("auth: a legacy HS256 user token authenticates as that user", async () => {
  const caller = await authenticate(bearer(await hs256({ sub: USER, role: "authenticated" })), config());
  assert.equal(caller.kind, "user");
  assert.equal(caller.kind === "user" && caller.userId, USER);
});

Deno.test("auth: an ES256 token is checked against the JWKS", async () => {
  const caller = await authenticate(bearer(await es256({ sub: USER, role: "authenticated" })), config());
  assert.equal(caller.kind, "user");
  await rejectsWith(
    authenticate(bearer(await es256({ sub: USER, role: "authenticated" }, "unknown-kid")), config()),
    401,
    "invalid_token",
  );
});

Deno.test("auth: the service role is recognised; authenticateUser refuses it", async () => {
  const token = await hs256({ role: "service_role" });
  assert.equal((await authenticate(bearer(token), config())).kind, "service");
  await rejectsWith(authenticateUser(bearer(token), config()), 403, "user_required");
});

Deno.test("auth: the anon key and tokens without a uuid sub are 403 forbidden_role", async () => {
  await rejectsWith(authenticate(bearer(await hs256({ role: "anon" })), config()), 403, "forbidden_role");
  await rejectsWith(
    authenticate(bearer(await hs256({ role: "authenticated", sub: "not-a-uuid" })), config()),
    403,
    "forbidden_role",
  );
  await rejectsWith(
    authenticate(bearer(await hs256({ role: "supabase_admin", sub: USER })), config()),
    403,
    "forbidden_role",
  );
});

Deno.test("auth: a forged signature, an expired token and garbage are 401 invalid_token", async () => {
  await rejectsWith(
    verifyJwt(
      await hs256({ sub: USER, role: "authenticated" }, "another-secret-that-is-also-32-chars-long"),
      config(),
    ),
    401,
    "invalid_token",
  );
  const expired = await hs256(
    { sub: USER, role: "authenticated" },
    SECRET,
    Math.floor(Date.now() / 1000) - 60,
  );
  await assert.rejects(
    verifyJwt(expired, config()),
    (err: HttpError) => err.status === 401 && /expired/.test(err.message),
  );
  await rejectsWith(verifyJwt("not.a.jwt", config()), 401, "invalid_token");
  await rejectsWith(verifyJwt("garbage", config()), 401, "invalid_token");
});

Deno.test("auth: a payload edited after signing is refused", async () => {
  const token = await hs256({ sub: USER, role: "authenticated" });
  const [h, , s] = token.split(".");
  const forged = btoa(JSON.stringify({ sub: USER, role: "service_role", exp: 9999999999 })).replace(/=+$/, "")
    .replace(/\+/g, "-").replace(/\//g, "_");
  await rejectsWith(verifyJwt(`${h}.${forged}.${s}`, config()), 401, "invalid_token");
});

Deno.test("auth: alg none and HS256 without a configured secret are refused", async () => {
  const none = new jose.UnsecuredJWT({ sub: USER, role: "service_role" }).setExpirationTime("1h").encode();
  await rejectsWith(verifyJwt(none, config()), 401, "invalid_token");
  await rejectsWith(
    verifyJwt(await hs256({ sub: USER, role: "authenticated" }), config({ jwtSecret: undefined })),
    401,
    "invalid_token",
  );
});

Deno.test("auth: an HS256 token signed with the public JWK as secret (key confusion) is refused", async () => {
  const confused = await hs256({ sub: USER, role: "service_role" }, JSON.stringify(jwk));
  await rejectsWith(verifyJwt(confused, config({ jwtSecret: undefined })), 401, "invalid_token");
});

Deno.test("auth: a missing or malformed Authorization header is 401 missing_authorization", () => {
  for (const header of [undefined, "", "Bearer", "Basic dXNlcjpwYXNz", "Bearer two tokens", "Bearer\t"]) {
    const req = new Request(
      "http://fn.test/",
      header === undefined ? {} : { headers: { authorization: header } },
    );
    assert.throws(
      () => bearerToken(req),
      (err: HttpError) => err.status === 401 && err.code === "missing_authorization",
    );
  }
  assert.equal(
    bearerToken(new Request("http://fn.test/", { headers: { authorization: "bearer abc.def.ghi" } })),
    "abc.def.ghi",
  );
});

Deno.test("auth: timingSafeEqual compares content and length", () => {
  assert.equal(timingSafeEqual("worker-secret", "worker-secret"), true);
  assert.equal(timingSafeEqual("worker-secret", "worker-secreT"), false);
  assert.equal(timingSafeEqual("worker-secret", "worker-secret-longer"), false);
  assert.equal(timingSafeEqual("", ""), true);
});

Deno.test("auth: a secret API key (sb_secret_...) is the service role; a near miss is not", async () => {
  const key = "sb_secret_0123456789abcdefghijklmnop";
  const c = config({ secretApiKeys: ["sb_secret_other-key-0123456789abc", key] });
  const caller = await authenticate(bearer(key), c);
  assert.equal(caller.kind, "service");
  await rejectsWith(authenticate(bearer(`${key}x`), c), 401, "invalid_token");
  await rejectsWith(authenticate(bearer(key), config()), 401, "invalid_token");
  await rejectsWith(authenticateUser(bearer(key), c), 403, "user_required");
});
