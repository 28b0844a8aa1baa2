/**
 * The local stack's secrets and JWTs (dev/stack): generated secrets satisfy the functions' config
 * schema, the secrets file is created once and reused, and minted tokens are what auth.ts accepts.
 */
import assert from "node:assert/strict";
import * as jose from "jose";
import { authenticate } from "../../supabase/functions/_shared/auth.ts";
import { parseConfig } from "../../supabase/functions/_shared/config.ts";
import { functionEnv } from "../../dev/stack/function-env.ts";
import { mintJwt } from "../../dev/stack/jwt.ts";
import { generateSecrets, loadOrCreateSecrets } from "../../dev/stack/secrets.ts";

const secrets = generateSecrets();
const env = functionEnv({
  supabaseUrl: "http://127.0.0.1:54321",
  databaseUrl: "postgres://postgres@127.0.0.1:5432/postgres",
  sandboxUrl: "http://127.0.0.1:54329",
  secrets,
});

function bearer(token: string): Request {
  return new Request("http://fn.test/", { headers: { authorization: `Bearer ${token}` } });
}

Deno.test("local stack: the function env parses, with Google endpoints at the sandbox", () => {
  const config = parseConfig(env);
  assert.equal(config.google!.redirectUri, "http://127.0.0.1:54321/functions/v1/calendar-auth-callback");
  assert.equal(config.google!.tokenEndpoint, "http://127.0.0.1:54329/google/token");
  assert.equal(config.google!.calendarApiBase, "http://127.0.0.1:54329/google/calendar/v3");
  assert.ok(config.allowedReturnOrigins.includes("http://localhost:3000"));
  assert.ok(config.allowedReturnOrigins.includes("http://127.0.0.1:3000"));
  assert.equal(config.encryption.keys.get("k1")?.length, 32);
  assert.notDeepEqual(generateSecrets(), secrets, "fresh secrets every time");
});

Deno.test("local stack: minted tokens are Supabase-shaped and accepted by auth.ts", async () => {
  const config = parseConfig(env);
  const sub = crypto.randomUUID();
  const user = await mintJwt(secrets.jwtSecret, { role: "authenticated", sub, email: "u@example.com" });
  const claims = jose.decodeJwt(user);
  assert.equal(claims.aud, "authenticated");
  assert.equal(claims.iss, "http://127.0.0.1:54321/auth/v1");
  assert.equal(claims.email, "u@example.com");
  assert.equal((claims.exp ?? 0) - (claims.iat ?? 0), 3600);
  const caller = await authenticate(bearer(user), config);
  assert.equal(caller.kind === "user" && caller.userId, sub);

  const service = await mintJwt(secrets.jwtSecret, { role: "service_role" });
  assert.deepEqual(
    {
      iss: jose.decodeJwt(service).iss,
      role: jose.decodeJwt(service).role,
      sub: jose.decodeJwt(service).sub,
    },
    { iss: "supabase-demo", role: "service_role", sub: undefined },
  );
  assert.equal((await authenticate(bearer(service), config)).kind, "service");

  const expired = await mintJwt(secrets.jwtSecret, { role: "authenticated", sub, expiresInSeconds: -10 });
  await assert.rejects(authenticate(bearer(expired), config), /expired/);
});

Deno.test("local stack: secrets.json is created once (mode 0600) and reused; a broken one is refused", async () => {
  const dir = await Deno.makeTempDir({ prefix: "cs_secrets_" });
  try {
    const first = await loadOrCreateSecrets(dir);
    assert.deepEqual(await loadOrCreateSecrets(dir), first);
    assert.equal((await Deno.stat(`${dir}/secrets.json`)).mode! & 0o777, 0o600);
    await Deno.writeTextFile(`${dir}/secrets.json`, JSON.stringify({ ...first, jwtSecret: undefined }));
    await assert.rejects(loadOrCreateSecrets(dir), /lacks a secret/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
