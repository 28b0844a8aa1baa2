/**
 * Supabase's new API keys through real HTTP and the gateway process: a secret key (`sb_secret_...`,
 * SUPABASE_SECRET_KEYS) is the service role for every server-side caller (calendar-sync-worker,
 * its kick and the sweep; calendar-sync-appointment; calendar-get-availability) in the `apikey`
 * header, as a bearer token, or both. A wrong key and a publishable key (`sb_publishable_...`) are
 * refused; user-only functions refuse a secret key; user JWTs minted for another audience or
 * issuer, or without `exp`, are 401.
 */
import assert from "node:assert/strict";
import { createClient, FunctionsHttpError } from "@supabase/supabase-js";
import * as jose from "jose";
import { eventIdFor } from "../../supabase/functions/_shared/providers/google/event-id.ts";
import { assertEnvelope, json } from "../support/assertions.ts";
import { startTestStack } from "../support/stack.ts";

const SECRET_KEY = `sb_secret_${crypto.randomUUID().replaceAll("-", "")}`;
const OLD_SECRET_KEY = `sb_secret_${crypto.randomUUID().replaceAll("-", "")}`;
const PUBLISHABLE_KEY = `sb_publishable_${crypto.randomUUID().replaceAll("-", "")}`;
const HOUR = 3_600_000;
const DAY0 = Math.floor(Date.now() / (24 * HOUR)) * 24 * HOUR + 3 * 24 * HOUR;
const iso = (ms: number) => new Date(ms).toISOString();

/** The header forms a server-side caller may use, and the headers they send (no default apikey). */
const SERVICE_FORMS: [string, (key: string) => Record<string, string>][] = [
  ["apikey only", (key) => ({ apikey: key })],
  ["bearer only", (key) => ({ authorization: `Bearer ${key}` })],
  ["apikey and bearer", (key) => ({ apikey: key, authorization: `Bearer ${key}` })],
];

Deno.test("secret API keys: every server-side caller, every header form, through the gateway", async (t) => {
  const stack = await startTestStack({
    env: {
      // Supabase's shape: a JSON object of key name -> key; two keys while one is rotated out.
      SUPABASE_SECRET_KEYS: JSON.stringify({ default: SECRET_KEY, rotating: OLD_SECRET_KEY }),
    },
  });
  /** POST to a function with exactly `headers` (no anon apikey or bearer added). */
  const post = (name: string, headers: Record<string, string>, body: unknown = {}) =>
    fetch(`${stack.functionsUrl}/${name}`, {
      method: "POST",
      headers: { "content-type": "application/json", ...headers },
      body: JSON.stringify(body),
      redirect: "manual",
    });
  try {
    const tenant = await stack.createTenant();
    const alice = await stack.createStaff({ tenantId: tenant });
    const { location } = await stack.connect(alice);
    assert.match(location, /calendar_status=connected/);
    const window = { staff_id: alice.id, time_min: iso(DAY0), time_max: iso(DAY0 + 24 * HOUR) };

    for (const [form, headers] of SERVICE_FORMS) {
      await t.step(
        `${form}: the worker, sync-appointment and get-availability accept the secret key`,
        async () => {
          const worker = await post("calendar-sync-worker", headers(SECRET_KEY));
          const summary = await json<Record<string, number>>(worker);
          assert.equal(worker.status, 200, JSON.stringify(summary));
          assert.equal(typeof summary.claimed, "number");

          const appointment = await stack.createAppointment({
            tenantId: tenant,
            staffId: alice.id,
            startsAt: iso(DAY0 + 9 * HOUR),
            endsAt: iso(DAY0 + 10 * HOUR),
          });
          const sync = await post("calendar-sync-appointment", headers(SECRET_KEY), {
            appointment_id: appointment,
          });
          const synced = await json(sync);
          assert.equal(sync.status, 200, JSON.stringify(synced));
          const events = await stack.sandbox.events(alice.email);
          assert.ok(events.some((e) => e.id === eventIdFor(appointment)), "the event is on the calendar");

          const busy = await post("calendar-get-availability", headers(OLD_SECRET_KEY), window);
          const busyBody = await json(busy);
          assert.equal(busy.status, 200, JSON.stringify(busyBody));
          assert.ok(Array.isArray(busyBody.busy), "busy intervals");
        },
      );
    }

    await t.step(
      "the kick's form (pg_net: bearer + JSON content type) and the worker secret in either header",
      async () => {
        for (
          const headers of [
            { authorization: `Bearer ${SECRET_KEY}` },
            { authorization: `Bearer ${stack.secrets.workerSecret}` },
            { apikey: stack.secrets.workerSecret },
          ] as Record<string, string>[]
        ) {
          const res = await post("calendar-sync-worker", headers);
          assert.equal(res.status, 200, await res.text());
        }
      },
    );

    await t.step("supabase-js createClient(url, secret key) invokes the server-side functions", async () => {
      const baseUrl = stack.functionsUrl.replace(/\/functions\/v1$/, "");
      const options = { auth: { persistSession: false, autoRefreshToken: false, detectSessionInUrl: false } };
      const server = createClient(baseUrl, SECRET_KEY, options);
      const worker = await server.functions.invoke("calendar-sync-worker", { body: {} });
      assert.equal(worker.error, null, String(worker.error));
      assert.equal(typeof worker.data.claimed, "number");
      const busy = await server.functions.invoke("calendar-get-availability", { body: window });
      assert.equal(busy.error, null, String(busy.error));
      assert.ok(Array.isArray(busy.data.busy));
      // The same call with the publishable key (what a browser holds) is refused.
      const browser = createClient(baseUrl, PUBLISHABLE_KEY, options);
      const refused = await browser.functions.invoke("calendar-get-availability", { body: window });
      assert.ok(refused.error instanceof FunctionsHttpError);
      assert.equal(refused.error.context.status, 403);
      await refused.error.context.body?.cancel();
    });

    await t.step(
      "a wrong secret key is 401 in either header; a right apikey does not rescue a wrong bearer",
      async () => {
        const wrong = `${SECRET_KEY.slice(0, -2)}zz`;
        for (
          const name of ["calendar-sync-worker", "calendar-sync-appointment", "calendar-get-availability"]
        ) {
          const body = name === "calendar-get-availability"
            ? window
            : name === "calendar-sync-appointment"
            ? { appointment_id: crypto.randomUUID() }
            : {};
          for (const [form, headers] of SERVICE_FORMS) {
            const res = await post(name, headers(wrong), body);
            await assertEnvelope(res, 401, "invalid_token").catch((err) => {
              throw new Error(`${name} ${form}: ${err.message}`);
            });
          }
          await assertEnvelope(
            await post(name, { apikey: SECRET_KEY, authorization: `Bearer ${wrong}` }, body),
            401,
            "invalid_token",
          );
        }
      },
    );

    await t.step("a publishable key is never the service role", async () => {
      for (const [form, headers] of SERVICE_FORMS) {
        for (
          const name of ["calendar-sync-worker", "calendar-sync-appointment", "calendar-get-availability"]
        ) {
          const body = name === "calendar-get-availability"
            ? window
            : name === "calendar-sync-appointment"
            ? { appointment_id: crypto.randomUUID() }
            : {};
          const res = await post(name, headers(PUBLISHABLE_KEY), body);
          await assertEnvelope(res, 403, "forbidden_role").catch((err) => {
            throw new Error(`${name} ${form}: ${err.message}`);
          });
        }
      }
    });

    await t.step("user-only functions refuse a secret key; verify_jwt functions never see one", async () => {
      // verify_jwt = false: the function itself refuses the service role.
      await assertEnvelope(await post("calendar-auth-start", { apikey: SECRET_KEY }), 403, "user_required");
      // verify_jwt = true: the platform's check accepts JWTs only, so an API key stops at the gateway.
      for (const name of ["calendar-list-calendars", "google-calendar-sync-appointment"]) {
        const res = await post(name, { apikey: SECRET_KEY, authorization: `Bearer ${SECRET_KEY}` });
        assert.equal(res.status, 401);
        assert.deepEqual(await res.json(), { code: 401, message: "Invalid JWT" });
      }
    });

    await t.step(
      "a user's JWT with the secret key as apikey acts as the user (tenant rules apply)",
      async () => {
        const stranger = await stack.createStaff({});
        const res = await post("calendar-get-availability", {
          apikey: SECRET_KEY,
          authorization: `Bearer ${stranger.jwt}`,
        }, window);
        await assertEnvelope(res, 403);
      },
    );

    await t.step("user JWTs: no exp, another audience or another issuer are 401 (attacks)", async () => {
      const key = new TextEncoder().encode(stack.secrets.jwtSecret);
      const issuer = `${stack.env.SUPABASE_URL}/auth/v1`;
      const base = { sub: alice.profileId, role: "authenticated", aud: "authenticated", iss: issuer };
      const sign = (claims: jose.JWTPayload, exp = true) => {
        const jwt = new jose.SignJWT(claims).setProtectedHeader({ alg: "HS256", typ: "JWT" }).setIssuedAt();
        return (exp ? jwt.setExpirationTime("1h") : jwt).sign(key);
      };
      const good = await stack.invoke("calendar-get-availability", { jwt: await sign(base), body: window });
      assert.equal(good.status, 200, await good.text());
      const attacks: [string, string][] = [
        ["no exp", await sign(base, false)],
        ["aud anon", await sign({ ...base, aud: "anon" })],
        ["aud of another app", await sign({ ...base, aud: "https://other.example" })],
        ["no aud", await sign({ sub: base.sub, role: base.role, iss: issuer })],
        ["another project's issuer", await sign({ ...base, iss: "https://attacker.supabase.co/auth/v1" })],
        ["no iss", await sign({ sub: base.sub, role: base.role, aud: base.aud })],
      ];
      for (const [label, jwt] of attacks) {
        for (
          const name of ["calendar-get-availability", "calendar-sync-appointment", "calendar-auth-start"]
        ) {
          const body = name === "calendar-get-availability"
            ? window
            : name === "calendar-sync-appointment"
            ? { appointment_id: crypto.randomUUID() }
            : {};
          await assertEnvelope(await stack.invoke(name, { jwt, body }), 401, "invalid_token").catch((err) => {
            throw new Error(`${name} ${label}: ${err.message}`);
          });
        }
      }
      // The legacy service_role key as Supabase issues it (iss "supabase", ref, no aud) is accepted.
      const legacy = await sign({ iss: "supabase", ref: "abcdefghijklmnopqrst", role: "service_role" });
      const ok = await stack.invoke("calendar-get-availability", { jwt: legacy, body: window });
      assert.equal(ok.status, 200, await ok.text());
    });
  } finally {
    await stack.close();
  }
});
