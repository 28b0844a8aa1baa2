/**
 * Supabase JWT verification in code (auth.ts): legacy HS256 with the JWT secret, asymmetric keys
 * from a JWKS, roles, the claim rules (exp, aud, iss), the header forms of secret API keys, and
 * every way a token can be wrong. Tokens are minted the way Supabase Auth mints them.
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
import { parseJwksEnv } from "../../supabase/functions/_shared/config.ts";
import { resetJwksCache } from "../../supabase/functions/_shared/jwks.ts";
import type { Config } from "../../supabase/functions/_shared/config.ts";
import { HttpError } from "../../supabase/functions/_shared/http.ts";

const SECRET = "super-secret-jwt-token-with-at-least-32-characters-long";
const USER = "2f1d7a52-6a3e-4f41-9c7e-3b8f0f5c9a11";
const URL_ = "http://127.0.0.1:1";
const ISSUER = `${URL_}/auth/v1`;
/** What Supabase Auth puts in a user's access token besides `sub`, `iat` and `exp`. */
const USER_CLAIMS = { role: "authenticated", aud: "authenticated", iss: ISSUER };

const { publicKey, privateKey } = await jose.generateKeyPair("ES256", { extractable: true });
const jwk = { ...(await jose.exportJWK(publicKey)), kid: "key-1", alg: "ES256", use: "sig" };

function config(over: Partial<Config> = {}): Config {
  return {
    supabaseUrl: URL_,
    jwtSecret: SECRET,
    jwks: { keys: [jwk as unknown as Record<string, unknown>] },
    secretApiKeys: [],
    jwtAudiences: ["authenticated"],
    jwtIssuers: [ISSUER],
    ...over,
  } as Config;
}

async function hs256(claims: jose.JWTPayload, secret = SECRET, exp: string | number = "1h"): Promise<string> {
  return await new jose.SignJWT(claims).setProtectedHeader({ alg: "HS256", typ: "JWT" }).setIssuedAt()
    .setExpirationTime(exp).sign(new TextEncoder().encode(secret));
}

async function es256(claims: jose.JWTPayload, kid = "key-1", key: CryptoKey = privateKey): Promise<string> {
  return await new jose.SignJWT(claims).setProtectedHeader({ alg: "ES256", kid }).setIssuedAt()
    .setExpirationTime("1h").sign(key);
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
  const caller = await authenticate(bearer(await hs256({ ...USER_CLAIMS, sub: USER })), config());
  assert.equal(caller.kind, "user");
  assert.equal(caller.kind === "user" && caller.userId, USER);
});

Deno.test("auth: an ES256 token is checked against the JWKS", async () => {
  const caller = await authenticate(bearer(await es256({ ...USER_CLAIMS, sub: USER })), config());
  assert.equal(caller.kind, "user");
  await rejectsWith(
    authenticate(bearer(await es256({ ...USER_CLAIMS, sub: USER }, "unknown-kid")), config()),
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
    authenticate(bearer(await hs256({ ...USER_CLAIMS, sub: "not-a-uuid" })), config()),
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
      await hs256({ ...USER_CLAIMS, sub: USER }, "another-secret-that-is-also-32-chars-long"),
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
  const token = await hs256({ ...USER_CLAIMS, sub: USER });
  const [h, , s] = token.split(".");
  const forged = btoa(JSON.stringify({ sub: USER, role: "service_role", exp: 9999999999 })).replace(/=+$/, "")
    .replace(/\+/g, "-").replace(/\//g, "_");
  await rejectsWith(verifyJwt(`${h}.${forged}.${s}`, config()), 401, "invalid_token");
});

Deno.test("auth: alg none and HS256 without a configured secret are refused", async () => {
  const none = new jose.UnsecuredJWT({ sub: USER, role: "service_role" }).setExpirationTime("1h").encode();
  await rejectsWith(verifyJwt(none, config()), 401, "invalid_token");
  await rejectsWith(
    verifyJwt(await hs256({ ...USER_CLAIMS, sub: USER }), config({ jwtSecret: undefined })),
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

// ---- Claim rules: exp, aud, iss (attacks that must fail) ---------------------------------------

async function hs256NoExp(claims: jose.JWTPayload): Promise<string> {
  return await new jose.SignJWT(claims).setProtectedHeader({ alg: "HS256", typ: "JWT" }).setIssuedAt()
    .sign(new TextEncoder().encode(SECRET));
}

Deno.test("auth: a correctly signed token without exp is 401, whatever its role", async () => {
  await rejectsWith(
    authenticate(bearer(await hs256NoExp({ ...USER_CLAIMS, sub: USER })), config()),
    401,
    "invalid_token",
  );
  await rejectsWith(
    authenticate(bearer(await hs256NoExp({ iss: "supabase", role: "service_role" })), config()),
    401,
    "invalid_token",
  );
});

Deno.test("auth: a user token for another audience, or without aud, is 401", async () => {
  for (const aud of ["anon", "service_role", "https://other.example", ["other", "x"]]) {
    await rejectsWith(
      authenticate(bearer(await hs256({ ...USER_CLAIMS, aud, sub: USER })), config()),
      401,
      "invalid_token",
    );
  }
  const { aud: _aud, ...noAud } = USER_CLAIMS;
  await rejectsWith(
    authenticate(bearer(await hs256({ ...noAud, sub: USER })), config()),
    401,
    "invalid_token",
  );
  // An array that includes the accepted audience is accepted (RFC 7519 section 4.1.3).
  const listed = await authenticate(
    bearer(await hs256({ ...USER_CLAIMS, aud: ["x", "authenticated"], sub: USER })),
    config(),
  );
  assert.equal(listed.kind, "user");
});

Deno.test("auth: CALENDAR_JWT_AUDIENCE replaces the default audience list", async () => {
  const c = config({ jwtAudiences: ["clinic-app", "clinic-admin"] });
  const token = await hs256({ ...USER_CLAIMS, aud: "clinic-admin", sub: USER });
  assert.equal((await authenticate(bearer(token), c)).kind, "user");
  await rejectsWith(
    authenticate(bearer(await hs256({ ...USER_CLAIMS, sub: USER })), c),
    401,
    "invalid_token",
  );
});

Deno.test("auth: a user token from another project's issuer, or without iss, is 401 when the issuer is known", async () => {
  for (const iss of ["https://evil.supabase.co/auth/v1", `${URL_}/auth/v1/`, "supabase", ""]) {
    await rejectsWith(
      authenticate(bearer(await hs256({ ...USER_CLAIMS, iss, sub: USER })), config()),
      401,
      "invalid_token",
    );
  }
  const { iss: _iss, ...noIss } = USER_CLAIMS;
  await rejectsWith(
    authenticate(bearer(await hs256({ ...noIss, sub: USER })), config()),
    401,
    "invalid_token",
  );
  // Unknown issuer (e.g. inside `supabase start`): iss is not checked, aud and exp still are.
  const open = config({ jwtIssuers: undefined });
  const foreign = await hs256({ ...USER_CLAIMS, iss: "http://127.0.0.1:54321/auth/v1", sub: USER });
  assert.equal((await authenticate(bearer(foreign), open)).kind, "user");
});

Deno.test("auth: a legacy service_role key as Supabase issues it (iss supabase, ref, no aud) is the service role", async () => {
  const hosted = await hs256(
    { iss: "supabase", ref: "abcdefghijklmnopqrst", role: "service_role" },
    SECRET,
    "10y",
  );
  const caller = await authenticate(bearer(hosted), config());
  assert.equal(caller.kind, "service");
  assert.equal(caller.kind === "service" && caller.via, "service_role_jwt");
  const demo = await hs256({ iss: "supabase-demo", role: "service_role" }, SECRET, "10y");
  assert.equal((await authenticate(bearer(demo), config())).kind, "service");
  // The legacy anon key is a valid token of the wrong role.
  const anon = await hs256({ iss: "supabase", ref: "abcdefghijklmnopqrst", role: "anon" }, SECRET, "10y");
  await rejectsWith(authenticate(bearer(anon), config()), 403, "forbidden_role");
});

// ---- Secret API keys in both header forms --------------------------------------------------------

const SECRET_KEY = "sb_secret_0123456789abcdefghijklmnop";
const PUBLISHABLE = "sb_publishable_0123456789abcdefghijklm";

function withHeaders(headers: Record<string, string>): Request {
  return new Request("http://fn.test/", { headers });
}

Deno.test("auth: a secret key is the service role in apikey, as a bearer token, or both", async () => {
  const c = config({ secretApiKeys: [SECRET_KEY] });
  for (
    const headers of [
      { apikey: SECRET_KEY },
      { authorization: `Bearer ${SECRET_KEY}` },
      { apikey: SECRET_KEY, authorization: `Bearer ${SECRET_KEY}` },
      // supabase-js with a secret key and the publishable key as apikey: the bearer decides.
      { apikey: PUBLISHABLE, authorization: `Bearer ${SECRET_KEY}` },
    ] as Record<string, string>[]
  ) {
    const caller = await authenticate(withHeaders(headers), c);
    assert.equal(caller.kind, "service", JSON.stringify(Object.keys(headers)));
    assert.equal(caller.kind === "service" && caller.via, "secret_api_key");
  }
});

Deno.test("auth: a wrong secret key, a publishable key or the worker secret elsewhere than the worker are refused", async () => {
  const c = config({ secretApiKeys: [SECRET_KEY], workerSecret: "w".repeat(40) });
  const wrong = `${SECRET_KEY.slice(0, -1)}X`;
  await rejectsWith(authenticate(withHeaders({ apikey: wrong }), c), 401, "invalid_token");
  await rejectsWith(authenticate(withHeaders({ authorization: `Bearer ${wrong}` }), c), 401, "invalid_token");
  // A wrong bearer is not rescued by a right apikey: the bearer decides.
  await rejectsWith(
    authenticate(withHeaders({ apikey: SECRET_KEY, authorization: `Bearer ${wrong}` }), c),
    401,
    "invalid_token",
  );
  await rejectsWith(authenticate(withHeaders({ apikey: PUBLISHABLE }), c), 403, "forbidden_role");
  await rejectsWith(
    authenticate(withHeaders({ authorization: `Bearer ${PUBLISHABLE}` }), c),
    403,
    "forbidden_role",
  );
  await rejectsWith(
    authenticate(withHeaders({ apikey: PUBLISHABLE, authorization: `Bearer ${PUBLISHABLE}` }), c),
    403,
    "forbidden_role",
  );
  // No secret keys configured: a well-formed secret key is just unknown.
  await rejectsWith(authenticate(withHeaders({ apikey: SECRET_KEY }), config()), 401, "invalid_token");
  // The worker secret counts only where the caller asks for it (calendar-sync-worker).
  await rejectsWith(authenticate(withHeaders({ apikey: "w".repeat(40) }), c), 401, "missing_authorization");
  await rejectsWith(
    authenticate(withHeaders({ authorization: `Bearer ${"w".repeat(40)}` }), c),
    401,
    "invalid_token",
  );
  const workerForms: Record<string, string>[] = [
    { apikey: "w".repeat(40) },
    { authorization: `Bearer ${"w".repeat(40)}` },
  ];
  for (const headers of workerForms) {
    const worker = await authenticate(withHeaders(headers), c, { workerSecret: true });
    assert.equal(worker.kind === "service" && worker.via, "worker_secret");
  }
  await rejectsWith(authenticate(withHeaders({}), c), 401, "missing_authorization");
});

Deno.test("auth: a user's JWT with the secret key as apikey acts as the user, not the service role", async () => {
  const c = config({ secretApiKeys: [SECRET_KEY] });
  const caller = await authenticate(
    withHeaders({
      apikey: SECRET_KEY,
      authorization: `Bearer ${await hs256({ ...USER_CLAIMS, sub: USER })}`,
    }),
    c,
  );
  assert.equal(caller.kind, "user");
});

// ---- SUPABASE_JWKS shapes and the remote fallback -------------------------------------------------

/** A project's JWKS endpoint on a random port, serving `keys`; counts its requests. */
function jwksServer(keys: unknown[]) {
  let hits = 0;
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, (req) => {
    if (new URL(req.url).pathname !== "/auth/v1/.well-known/jwks.json") {
      return new Response(null, { status: 404 });
    }
    hits++;
    return Response.json({ keys });
  });
  const url = `http://127.0.0.1:${(server.addr as Deno.NetAddr).port}`;
  return { url, hits: () => hits, close: () => server.shutdown() };
}

/** Run `fn` capturing console.warn lines. */
async function captureWarnings(fn: () => Promise<void>): Promise<string[]> {
  const lines: string[] = [];
  const original = console.warn;
  console.warn = (...args: unknown[]) => void lines.push(args.map(String).join(" "));
  try {
    await fn();
  } finally {
    console.warn = original;
  }
  return lines;
}

Deno.test("auth: SUPABASE_JWKS as a bare array (hosted) and as a key set both verify ES256 tokens", async () => {
  resetJwksCache();
  for (const raw of [JSON.stringify([jwk]), JSON.stringify({ keys: [jwk] })]) {
    const parsed = parseJwksEnv(raw);
    assert.equal(parsed.problem, undefined);
    const c = config({ jwks: parsed.jwks, supabaseUrl: "http://127.0.0.1:1" });
    const warnings = await captureWarnings(async () => {
      const caller = await authenticate(bearer(await es256({ ...USER_CLAIMS, sub: USER })), c);
      assert.equal(caller.kind, "user");
    });
    assert.deepEqual(warnings, []);
  }
});

Deno.test("auth: an empty or malformed SUPABASE_JWKS falls back to the remote JWKS with one warning per isolate", async () => {
  const remote = jwksServer([jwk]);
  try {
    for (const raw of ["", "   ", "[]", "{}", '{"keys": []}', "not json", '{"keys": "x"}', "[1, null, []]"]) {
      resetJwksCache();
      const parsed = parseJwksEnv(raw);
      assert.equal(parsed.jwks, undefined, raw);
      assert.ok(parsed.problem && !parsed.problem.includes(raw.trim() || "\u0000"), raw);
      const c = config({
        jwks: parsed.jwks,
        jwksProblem: parsed.problem,
        supabaseUrl: remote.url,
        jwtIssuers: [`${remote.url}/auth/v1`],
      });
      const token = await es256({ ...USER_CLAIMS, iss: `${remote.url}/auth/v1`, sub: USER });
      const warnings = await captureWarnings(async () => {
        for (let i = 0; i < 5; i++) assert.equal((await authenticate(bearer(token), c)).kind, "user", raw);
      });
      assert.equal(warnings.length, 1, `${JSON.stringify(raw)}: ${warnings.join("\n")}`);
      const line = JSON.parse(warnings[0]);
      assert.equal(line.level, "warn");
      assert.equal(line.event, "jwks_fallback");
      assert.equal(line.using, `${remote.url}/auth/v1/.well-known/jwks.json`);
    }
    assert.ok(remote.hits() >= 1);
  } finally {
    await remote.close();
  }
});

Deno.test("auth: keys jose cannot import are skipped; none usable means the remote JWKS, one warning", async () => {
  const remote = jwksServer([jwk]);
  const broken = [
    { kty: "EC", crv: "P-256", x: "not-base64url!", y: "??", kid: "key-1" },
    { kty: "RSA", n: "AQAB", kid: "key-1" },
    { kty: "EC", crv: "P-999", x: "AA", y: "AA", kid: "key-1" },
    { kty: "banana", kid: "key-1" },
  ];
  try {
    resetJwksCache();
    const c = config({
      jwks: parseJwksEnv(JSON.stringify(broken)).jwks,
      supabaseUrl: remote.url,
      jwtIssuers: [`${remote.url}/auth/v1`],
    });
    const token = await es256({ ...USER_CLAIMS, iss: `${remote.url}/auth/v1`, sub: USER });
    const warnings = await captureWarnings(async () => {
      for (let i = 0; i < 3; i++) assert.equal((await authenticate(bearer(token), c)).kind, "user");
    });
    assert.equal(warnings.length, 1, warnings.join("\n"));
    assert.equal(JSON.parse(warnings[0]).event, "jwks_fallback");

    // One usable key among broken ones: the inline set is used (no remote call), one warning.
    resetJwksCache();
    const before = remote.hits();
    const mixed = config({ jwks: { keys: [...broken.slice(1), jwk] as Record<string, unknown>[] } });
    const mixedWarnings = await captureWarnings(async () => {
      for (let i = 0; i < 3; i++) {
        assert.equal(
          (await authenticate(bearer(await es256({ ...USER_CLAIMS, sub: USER })), mixed)).kind,
          "user",
        );
      }
    });
    assert.equal(mixedWarnings.length, 1, mixedWarnings.join("\n"));
    assert.equal(JSON.parse(mixedWarnings[0]).event, "jwks_key_skipped");
    assert.equal(remote.hits(), before);
  } finally {
    await remote.close();
  }
});

Deno.test("auth: a private JWK in SUPABASE_JWKS is used only for its public part; a token from another key fails", async () => {
  resetJwksCache();
  const privateJwk = { ...(await jose.exportJWK(privateKey)), kid: "key-1", alg: "ES256" };
  const c = config({ jwks: { keys: [privateJwk as unknown as Record<string, unknown>] } });
  assert.equal((await authenticate(bearer(await es256({ ...USER_CLAIMS, sub: USER })), c)).kind, "user");
  const other = await jose.generateKeyPair("ES256", { extractable: true });
  await rejectsWith(
    authenticate(bearer(await es256({ ...USER_CLAIMS, sub: USER }, "key-1", other.privateKey)), c),
    401,
    "invalid_token",
  );
});

Deno.test("auth: an HS256 key in SUPABASE_JWKS verifies tokens with its kid; a forged kid does not", async () => {
  resetJwksCache();
  const k = jose.base64url.encode(crypto.getRandomValues(new Uint8Array(32)));
  const c = config({
    jwtSecret: undefined,
    jwks: { keys: [{ kty: "oct", kid: "hs-1", alg: "HS256", k }, jwk] },
  });
  const sign = (kid: string, key: Uint8Array) =>
    new jose.SignJWT({ ...USER_CLAIMS, sub: USER }).setProtectedHeader({ alg: "HS256", kid }).setIssuedAt()
      .setExpirationTime("1h").sign(key);
  assert.equal((await authenticate(bearer(await sign("hs-1", jose.base64url.decode(k))), c)).kind, "user");
  await rejectsWith(
    authenticate(bearer(await sign("hs-2", jose.base64url.decode(k))), c),
    401,
    "invalid_token",
  );
  await rejectsWith(
    authenticate(bearer(await sign("hs-1", new TextEncoder().encode(SECRET))), c),
    401,
    "invalid_token",
  );
});
