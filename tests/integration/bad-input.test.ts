/**
 * Bad input for every function, canonical names and the seed's google-calendar-* names, over real
 * HTTP through the gateway process against a scratch Postgres: malformed JSON, missing and extra
 * fields, wrong types, wrong method, missing / forged / expired JWT, huge bodies, unknown ids, other
 * tenants' ids, bad availability windows. Each answers 4xx with the error envelope
 * `{"error":{"code","message"},"request_id"}` (except the gateway's own 401 for verify_jwt=true
 * functions, whose shape is Supabase's) and writes nothing: every table's rows are fingerprinted
 * before and after each case. The OAuth callback is a browser redirect target: its refusals are
 * 302s to the app with `calendar_status=error` (also writing nothing). CORS preflights are answered.
 */
import assert from "node:assert/strict";
import * as jose from "jose";
import { signStateToken } from "../../supabase/functions/_shared/oauth-state.ts";
import { startTestStack, type TestStack } from "../support/stack.ts";

/** A request's payload: JSON `body`, verbatim `rawBody`, or `stream` (chunked, no content-length). */
type Body = {
  body?: unknown;
  rawBody?: string;
  stream?: Uint8Array;
  headers?: Record<string, string>;
  query?: Record<string, string>;
};

/** How a function is called and what its valid and invalid inputs look like. */
interface FunctionCase {
  name: string;
  method: "POST";
  /** supabase/config.toml: the gateway answers 401 itself (Supabase's shape) before the handler. */
  verifyJwt: boolean;
  /** The token that gets past authentication, so the input is what is judged. */
  token: () => string;
  /** A valid body; extra fields are added to it. */
  valid: () => Record<string, unknown>;
  /** Required fields left out (none when every field is optional). */
  missing: Record<string, unknown>[];
  wrongTypes: unknown[];
  /** [label, body, status, code] for unknown ids, other tenants' ids and domain checks. */
  domain: () => [string, Record<string, unknown>, number, string][];
  /** Query parameters on a POST are refused (request-input.ts) rather than ignored (readJson only). */
  refusesQuery: boolean;
  /** Text an answer about another tenant must not contain. */
  secrets?: () => string[];
}

const PAD = "x".repeat(20 * 1024);

async function fingerprint(sql: TestStack["sql"]): Promise<Record<string, string>> {
  const tables = await sql<{ schema: string; name: string }[]>`
    select table_schema as schema, table_name as name from information_schema.tables
    where table_type = 'BASE TABLE'
      and table_schema not in ('pg_catalog', 'information_schema', 'cron', 'net', 'vault')
    order by 1, 2`;
  const parts = tables.map((t) => {
    const id = `"${t.schema.replace(/"/g, '""')}"."${t.name.replace(/"/g, '""')}"`;
    const label = `${t.schema}.${t.name}`.replace(/'/g, "''");
    return `select '${label}' as t, count(*)::text || ':' ||
      md5(coalesce(string_agg(x::text, '|' order by x::text), '')) as h from ${id} x`;
  });
  const rows = await sql.unsafe<{ t: string; h: string }[]>(parts.join(" union all "));
  return Object.fromEntries(rows.map((r) => [r.t, r.h]));
}

Deno.test("every function answers bad input with a 4xx envelope and writes nothing", async (t) => {
  // Google only, so a provider the deployment does not configure can be asked for.
  const stack: TestStack = await startTestStack({ providers: ["google"] });
  const sql = stack.sql;
  try {
    const tenantId = await stack.createTenant("Bad input clinic");
    const otherTenantId = await stack.createTenant("Other clinic");
    const staff = await stack.createStaff({ tenantId });
    const foreign = await stack.createStaff({ tenantId: otherTenantId });
    await stack.connect(staff);
    await stack.connect(foreign);
    const day = 86_400_000;
    const at = (ms: number) => new Date(ms).toISOString();
    const tomorrow = Date.now() + day;
    const appointmentId = await stack.createAppointment({
      tenantId,
      staffId: staff.id,
      startsAt: at(tomorrow),
      endsAt: at(tomorrow + 3_600_000),
    });
    const foreignAppointmentId = await stack.createAppointment({
      tenantId: otherTenantId,
      staffId: foreign.id,
      startsAt: at(tomorrow),
      endsAt: at(tomorrow + 3_600_000),
    });
    const forged = await new jose.SignJWT({
      role: "authenticated",
      sub: staff.profileId,
      aud: "authenticated",
    })
      .setProtectedHeader({ alg: "HS256", typ: "JWT" })
      .setIssuedAt()
      .setExpirationTime("1h")
      .sign(new TextEncoder().encode("not-the-project-secret-but-long-enough-0123456789"));
    const expired = await new jose.SignJWT({
      role: "authenticated",
      sub: staff.profileId,
      aud: "authenticated",
    })
      .setProtectedHeader({ alg: "HS256", typ: "JWT" })
      .setIssuedAt(Math.floor(Date.now() / 1000) - 7200)
      .setExpirationTime(Math.floor(Date.now() / 1000) - 3600)
      .sign(new TextEncoder().encode(stack.secrets.jwtSecret));

    const window = { time_min: at(tomorrow), time_max: at(tomorrow + day) };
    const availability = (name: string): FunctionCase => ({
      name,
      method: "POST",
      verifyJwt: false,
      refusesQuery: true,
      token: () => staff.jwt,
      valid: () => ({ staff_id: staff.id, ...window }),
      missing: [{}, { staff_id: staff.id }, { staff_id: staff.id, time_min: window.time_min }, window],
      wrongTypes: [
        { staff_id: 42, ...window },
        { staff_id: "not-a-uuid", ...window },
        { staff_id: staff.id, time_min: 1764000000, time_max: window.time_max },
        { staff_id: staff.id, time_min: "tomorrow", time_max: window.time_max },
        { staff_id: staff.id, time_min: window.time_min, time_max: ["x"] },
        [],
        "staff",
        null,
      ],
      domain: () => [
        ["unknown staff_id", { staff_id: crypto.randomUUID(), ...window }, 404, "staff_not_found"],
        ["another tenant's staff_id", { staff_id: foreign.id, ...window }, 403, "forbidden_tenant"],
        [
          "time_max before time_min",
          { staff_id: staff.id, time_min: window.time_max, time_max: window.time_min },
          400,
          "invalid_range",
        ],
        [
          "empty window",
          { staff_id: staff.id, time_min: window.time_min, time_max: window.time_min },
          400,
          "invalid_range",
        ],
        [
          "window over 62 days",
          { staff_id: staff.id, time_min: window.time_min, time_max: at(tomorrow + 70 * day) },
          400,
          "range_too_long",
        ],
        [
          "window years ago",
          { staff_id: staff.id, time_min: "2001-01-01T00:00:00Z", time_max: "2001-01-02T00:00:00Z" },
          400,
          "range_out_of_bounds",
        ],
        [
          "window years ahead",
          {
            staff_id: staff.id,
            time_min: "2099-01-01T00:00:00+02:00",
            time_max: "2099-01-02T00:00:00+02:00",
          },
          400,
          "range_out_of_bounds",
        ],
        [
          "instant without offset",
          { staff_id: staff.id, time_min: "2026-12-01T09:00:00", time_max: "2026-12-01T17:00:00" },
          400,
          "invalid_request",
        ],
        [
          "impossible date",
          { staff_id: staff.id, time_min: "2026-13-45T09:00:00Z", time_max: window.time_max },
          400,
          "invalid_request",
        ],
      ],
      secrets: () => [foreign.email, otherTenantId],
    });
    const syncAppointment = (name: string): FunctionCase => ({
      name,
      method: "POST",
      // The seed name keeps the seed's gateway check; the canonical name checks callers itself.
      verifyJwt: name === "google-calendar-sync-appointment",
      refusesQuery: true,
      token: () => staff.jwt,
      valid: () => ({ appointment_id: appointmentId }),
      missing: [{}, { action: "create" }],
      wrongTypes: [
        { appointment_id: 42 },
        { appointment_id: "not-a-uuid" },
        { appointment_id: appointmentId, action: "explode" },
        { appointment_id: appointmentId, action: 1 },
        [appointmentId],
        null,
      ],
      domain: () => [
        ["unknown appointment_id", { appointment_id: crypto.randomUUID() }, 404, "appointment_not_found"],
        ["another tenant's appointment", { appointment_id: foreignAppointmentId }, 403, "forbidden_tenant"],
      ],
      secrets: () => [foreign.email, otherTenantId, foreign.id],
    });
    const authStart = (name: string): FunctionCase => ({
      name,
      method: "POST",
      verifyJwt: false,
      refusesQuery: true,
      token: () => staff.jwt,
      valid: () => ({ return_to: "http://127.0.0.1:3000/settings" }),
      missing: [], // every field is optional
      wrongTypes: [
        { return_to: 5 },
        { return_to: ["http://127.0.0.1:3000/"] },
        { provider: "yahoo" },
        { login_hint: { email: staff.email } },
        { login_hint: "has space@example.com" },
        [],
        "start",
        null,
      ],
      domain: () => [
        [
          "return_to on another origin",
          { return_to: "https://attacker.example/cb" },
          400,
          "invalid_return_to",
        ],
        ["return_to not absolute", { return_to: "/settings" }, 400, "invalid_return_to"],
        [
          "return_to with credentials",
          { return_to: "http://user:pw@127.0.0.1:3000/" },
          400,
          "invalid_return_to",
        ],
        ["microsoft not configured", { provider: "microsoft" }, 400, "provider_not_configured"],
      ],
    });
    const listCalendars = (name: string): FunctionCase => ({
      name,
      method: "POST",
      verifyJwt: true,
      refusesQuery: true,
      token: () => staff.jwt,
      valid: () => ({}),
      missing: [],
      wrongTypes: [[], "calendars", 5, null],
      domain: () => [
        ["naming another tenant's staff", { staff_id: foreign.id }, 400, "invalid_request"],
      ],
      secrets: () => [foreign.email, otherTenantId],
    });
    const disconnect: FunctionCase = {
      name: "calendar-disconnect",
      method: "POST",
      verifyJwt: true,
      refusesQuery: true,
      token: () => staff.jwt,
      valid: () => ({ staff_id: staff.id }),
      missing: [],
      wrongTypes: [{ staff_id: 5 }, { staff_id: "abc" }, { staff_id: null }, [staff.id], "me", null],
      domain: () => [
        ["unknown staff_id", { staff_id: crypto.randomUUID() }, 404, "staff_not_found"],
        ["another tenant's staff_id", { staff_id: foreign.id }, 403, "forbidden_tenant"],
      ],
      secrets: () => [foreign.email, otherTenantId],
    };
    const selectCalendar: FunctionCase = {
      name: "calendar-select-calendar",
      method: "POST",
      verifyJwt: true,
      refusesQuery: true,
      token: () => staff.jwt,
      valid: () => ({ calendar_id: "primary" }),
      missing: [{}],
      wrongTypes: [
        { calendar_id: 5 },
        { calendar_id: "" },
        { calendar_id: null },
        ["primary"],
        "primary",
        null,
      ],
      domain: () => [
        [
          "naming another tenant's staff",
          { calendar_id: "primary", staff_id: foreign.id },
          400,
          "invalid_request",
        ],
        ["another tenant's calendar", { calendar_id: foreign.email }, 404, "calendar_not_found"],
        [
          "a read-only calendar",
          {
            calendar_id: "en.usa#holiday@group.v.calendar.google.com",
          },
          403,
          "calendar_not_writable",
        ],
      ],
      secrets: () => [foreign.email, otherTenantId],
    };
    const worker: FunctionCase = {
      name: "calendar-sync-worker",
      method: "POST",
      verifyJwt: false,
      refusesQuery: true,
      token: () => stack.secrets.workerSecret,
      valid: () => ({}),
      missing: [],
      wrongTypes: [[], "drain", 1, null],
      domain: () => [],
    };
    const functions: FunctionCase[] = [
      authStart("calendar-auth-start"),
      authStart("google-calendar-auth-start"),
      listCalendars("calendar-list-calendars"),
      listCalendars("google-calendar-list-calendars"),
      availability("calendar-get-availability"),
      availability("google-calendar-get-availability"),
      syncAppointment("calendar-sync-appointment"),
      syncAppointment("google-calendar-sync-appointment"),
      worker,
      disconnect,
      selectCalendar,
    ];

    /** POST a body as a stream: chunked transfer, no content-length, so only the read limit can stop it. */
    const postStream = (name: string, jwt: string, bytes: Uint8Array) =>
      fetch(`${stack.functionsUrl}/${name}`, {
        method: "POST",
        headers: {
          authorization: `Bearer ${jwt}`,
          apikey: stack.anonJwt,
          "content-type": "application/json",
        },
        body: new ReadableStream<Uint8Array>({
          start(controller) {
            for (let i = 0; i < bytes.length; i += 4096) controller.enqueue(bytes.slice(i, i + 4096));
            controller.close();
          },
        }),
      });
    const summary = { cases: 0 };
    const tables = Object.keys(await fingerprint(sql));
    for (
      const table of [
        "public.staff_calendar_connections",
        "public.calendar_sync_log",
        "public.calendar_oauth_states",
        "public.appointments",
        "auth.users",
      ]
    ) {
      assert.ok(tables.includes(table), `the fingerprint covers ${table}`);
    }
    /** Send one request; assert a 4xx with the envelope (or the gateway's 401) and no write. */
    const expectRefusal = async (
      label: string,
      name: string,
      req: { method?: string; jwt?: string | null } & Body,
      expected: { status: number; code?: string; gateway?: boolean; secrets?: string[] },
    ) => {
      const before = await fingerprint(sql);
      const res = req.stream ? await postStream(name, req.jwt!, req.stream) : await stack.invoke(name, {
        method: req.method ?? "POST",
        jwt: req.jwt,
        body: req.body,
        rawBody: req.rawBody,
        headers: req.headers,
        query: req.query,
      });
      const text = await res.text();
      const where = `${name} ${label}: ${res.status} ${text.slice(0, 300)}`;
      assert.equal(res.status, expected.status, where);
      assert.ok(res.status >= 400 && res.status < 500, where);
      let body: Record<string, unknown>;
      try {
        body = JSON.parse(text);
      } catch {
        assert.fail(`${where}: not JSON`);
      }
      if (expected.gateway) {
        // Supabase's gateway shape: {code, message}; the function never ran.
        assert.equal(typeof body.message, "string", where);
      } else {
        assert.deepEqual(Object.keys(body).sort(), ["error", "request_id"], where);
        const error = body.error as Record<string, unknown>;
        assert.deepEqual(Object.keys(error).sort(), ["code", "message"], where);
        assert.match(String(error.code), /^[a-z][a-z0-9_]*$/, where);
        assert.ok(String(error.message).length > 0, where);
        if (expected.code) assert.equal(error.code, expected.code, where);
        assert.equal(typeof body.request_id, "string", where);
        assert.equal(res.headers.get("x-request-id"), body.request_id, where);
        assert.ok(res.headers.get("access-control-allow-origin"), `${where}: CORS on errors too`);
      }
      for (const s of expected.secrets ?? []) assert.ok(!text.includes(s), `${where}: leaks ${s}`);
      assert.deepEqual(await fingerprint(sql), before, `${where}: wrote to the database`);
      summary.cases++;
    };

    for (const fn of functions) {
      await t.step(`${fn.name}: bad input is a 4xx envelope and writes nothing`, async () => {
        const token = fn.token();
        // Method.
        for (const method of ["PUT", "DELETE", "PATCH"]) {
          await expectRefusal(`method ${method}`, fn.name, { method, jwt: token, body: fn.valid() }, {
            status: 405,
            code: "method_not_allowed",
          });
        }
        if (fn.name.includes("availability") || fn.name.includes("sync-") || fn.name.includes("disconnect")) {
          await expectRefusal("method GET", fn.name, { method: "GET", jwt: token }, {
            status: 405,
            code: "method_not_allowed",
          });
        }
        // Identity.
        const gateway = fn.verifyJwt;
        await expectRefusal("no JWT", fn.name, { jwt: null, body: fn.valid() }, {
          status: 401,
          gateway,
          code: gateway ? undefined : "missing_authorization",
        });
        await expectRefusal("JWT signed with another secret", fn.name, { jwt: forged, body: fn.valid() }, {
          status: 401,
          gateway,
          code: gateway ? undefined : "invalid_token",
        });
        await expectRefusal("expired JWT", fn.name, { jwt: expired, body: fn.valid() }, {
          status: 401,
          gateway,
          code: gateway ? undefined : "invalid_token",
        });
        await expectRefusal("not a bearer token", fn.name, {
          jwt: null,
          headers: { authorization: "Basic dXNlcjpwdw==" },
          body: fn.valid(),
        }, { status: 401, gateway, code: gateway ? undefined : "missing_authorization" });
        // Body.
        await expectRefusal("malformed JSON", fn.name, { jwt: token, rawBody: '{"staff_id": ' }, {
          status: 400,
          code: "invalid_json",
        });
        await expectRefusal("not JSON at all", fn.name, { jwt: token, rawBody: "staff_id=1" }, {
          status: 400,
          code: "invalid_json",
        });
        await expectRefusal("form-encoded body", fn.name, {
          jwt: token,
          rawBody: "staff_id=1",
          headers: { "content-type": "application/x-www-form-urlencoded" },
        }, { status: 415, code: "unsupported_media_type" });
        for (const [i, body] of fn.missing.entries()) {
          await expectRefusal(`missing fields #${i}`, fn.name, { jwt: token, body }, {
            status: 400,
            code: "invalid_request",
          });
        }
        await expectRefusal("extra field", fn.name, { jwt: token, body: { ...fn.valid(), surprise: true } }, {
          status: 400,
          code: "invalid_request",
        });
        for (const [i, body] of fn.wrongTypes.entries()) {
          await expectRefusal(`wrong types #${i} ${JSON.stringify(body)}`, fn.name, { jwt: token, body }, {
            status: 400,
            code: "invalid_request",
          });
        }
        await expectRefusal("huge body (> 16 KiB)", fn.name, {
          jwt: token,
          body: { ...fn.valid(), pad: PAD },
        }, {
          status: 413,
          code: "payload_too_large",
        });
        await expectRefusal("huge body without a declared length (chunked)", fn.name, {
          jwt: token,
          stream: new TextEncoder().encode(JSON.stringify({ ...fn.valid(), pad: PAD })),
        }, { status: 413, code: "payload_too_large" });
        if (fn.refusesQuery) {
          await expectRefusal("parameters in the query string of a POST", fn.name, {
            jwt: token,
            body: fn.valid(),
            query: { staff_id: foreign.id },
          }, { status: 400, code: "invalid_request" });
        }
        // Domain: unknown ids, other tenants, windows.
        for (const [label, body, status, code] of fn.domain()) {
          await expectRefusal(label, fn.name, { jwt: token, body }, {
            status,
            code,
            secrets: fn.secrets?.(),
          });
        }
      });
    }

    await t.step(
      "GET query input (auth-start, list-calendars): unknown, repeated, wrong and oversized parameters",
      async () => {
        const names = [
          "calendar-auth-start",
          "google-calendar-auth-start",
          "calendar-list-calendars",
          "google-calendar-list-calendars",
        ];
        for (const name of names) {
          const get = async (label: string, search: string, status: number, code: string) => {
            const before = await fingerprint(sql);
            const res = await fetch(`${stack.functionsUrl}/${name}${search}`, {
              headers: { authorization: `Bearer ${staff.jwt}`, apikey: stack.anonJwt },
            });
            const text = await res.text();
            const where = `${name} GET ${label}: ${res.status} ${text.slice(0, 200)}`;
            assert.equal(res.status, status, where);
            const body = JSON.parse(text);
            assert.equal(body.error.code, code, where);
            assert.equal(typeof body.request_id, "string", where);
            assert.deepEqual(await fingerprint(sql), before, `${where}: wrote to the database`);
            summary.cases++;
          };
          await get("unknown parameter", "?surprise=1", 400, "invalid_request");
          await get("repeated parameter", "?return_to=a&return_to=b", 400, "invalid_request");
          await get("oversized query", `?return_to=${"r".repeat(17 * 1024)}`, 414, "uri_too_long");
          if (name.includes("auth-start")) {
            await get(
              "return_to elsewhere",
              `?return_to=${encodeURIComponent("https://evil.example/")}`,
              400,
              "invalid_return_to",
            );
            await get("provider unknown", "?provider=yahoo", 400, "invalid_request");
          }
        }
      },
    );

    await t.step("calendar-sync-worker: a user's JWT is not the worker's credential (403)", async () => {
      await expectRefusal("user JWT", "calendar-sync-worker", { jwt: staff.jwt, body: {} }, {
        status: 403,
        code: "forbidden_role",
      });
      await expectRefusal("anon key", "calendar-sync-worker", { jwt: stack.anonJwt, body: {} }, {
        status: 403,
        code: "forbidden_role",
      });
    });

    await t.step(
      "user-only functions refuse the anon key (403) and a signed-in non-staff user (403)",
      async () => {
        const stranger = await stack.userJwt(crypto.randomUUID());
        for (const fn of functions.filter((f) => f.name !== "calendar-sync-worker")) {
          await expectRefusal("anon key", fn.name, { jwt: stack.anonJwt, body: fn.valid() }, {
            status: 403,
            code: "forbidden_role",
          });
          await expectRefusal("user without a staff row", fn.name, { jwt: stranger, body: fn.valid() }, {
            status: 403,
            code: "not_staff",
          });
        }
      },
    );

    for (const name of ["calendar-auth-callback", "google-calendar-auth-callback"]) {
      await t.step(
        `${name}: refusals redirect to the app with an error marker and write nothing`,
        async () => {
          const callback = async (label: string, query: string, code: string) => {
            const before = await fingerprint(sql);
            const res = await fetch(`${stack.functionsUrl}/${name}${query}`, { redirect: "manual" });
            const text = await res.text();
            const where = `${name} ${label}: ${res.status} ${text.slice(0, 200)}`;
            assert.equal(res.status, 302, where);
            const location = new URL(res.headers.get("location")!);
            assert.equal(location.origin, "http://127.0.0.1:3000", where);
            assert.equal(location.searchParams.get("calendar_status"), "error", where);
            assert.equal(location.searchParams.get("calendar_error"), code, where);
            assert.deepEqual(await fingerprint(sql), before, `${where}: wrote to the database`);
            summary.cases++;
          };
          const foreignState = await new jose.SignJWT({ tid: tenantId, prv: "google" })
            .setProtectedHeader({ alg: "HS256", typ: "JWT" })
            .setIssuer("calendar-sync")
            .setAudience("calendar-auth-callback")
            .setSubject(staff.id)
            .setJti("a".repeat(43))
            .setIssuedAt()
            .setExpirationTime("5m")
            .sign(new TextEncoder().encode("another-state-secret-that-is-long-enough"));
          await callback("no parameters", "", "invalid_state");
          await callback("code without state", "?code=4/abc", "invalid_state");
          await callback("error without state", "?error=access_denied", "invalid_state");
          await callback("garbage state", "?state=hello&code=4/abc", "invalid_state");
          await callback(
            "state signed with another secret",
            `?state=${foreignState}&code=4/abc`,
            "invalid_state",
          );
          const unknownNonce = await signStateToken(
            { stateSigningSecret: stack.secrets.stateSigningSecret },
            { jti: "b".repeat(43), sub: staff.id, tid: tenantId, prv: "google" },
            new Date(Date.now() + 300_000),
          );
          await callback(
            "genuine signature, unknown nonce",
            `?state=${unknownNonce}&code=4/abc`,
            "invalid_state",
          );
          await callback("repeated state", "?state=a&state=b&code=c", "invalid_request");
          await callback("oversized state", `?state=${"a".repeat(5000)}&code=c`, "invalid_request");
          await callback("oversized query", `?state=a&pad=${"p".repeat(20 * 1024)}`, "invalid_request");

          for (const method of ["POST", "PUT", "DELETE"]) {
            const before = await fingerprint(sql);
            const res = await fetch(`${stack.functionsUrl}/${name}?state=a&code=b`, {
              method,
              redirect: "manual",
            });
            const body = await res.json();
            assert.equal(res.status, 405, `${name} ${method}`);
            assert.equal(body.error.code, "method_not_allowed");
            assert.equal(typeof body.request_id, "string");
            assert.deepEqual(await fingerprint(sql), before);
            summary.cases++;
          }
        },
      );
    }

    await t.step(
      "an OPTIONS preflight answers CORS headers for every function, without credentials",
      async () => {
        const names = [
          ...functions.map((f) => f.name),
          "calendar-auth-callback",
          "google-calendar-auth-callback",
        ];
        for (const name of names) {
          const res = await fetch(`${stack.functionsUrl}/${name}`, {
            method: "OPTIONS",
            headers: {
              origin: "http://localhost:3000",
              "access-control-request-method": "POST",
              "access-control-request-headers": "authorization, x-client-info, apikey, content-type",
            },
          });
          await res.body?.cancel();
          assert.ok(res.status === 200 || res.status === 204, `${name}: ${res.status}`);
          const origin = res.headers.get("access-control-allow-origin");
          assert.ok(origin === "*" || origin === "http://localhost:3000", `${name}: allow-origin ${origin}`);
          const allowed = (res.headers.get("access-control-allow-headers") ?? "").toLowerCase();
          for (const h of ["authorization", "x-client-info", "apikey", "content-type"]) {
            assert.ok(allowed.includes(h), `${name}: allows header ${h}`);
          }
          assert.match(res.headers.get("access-control-allow-methods") ?? "", /POST/);
        }
      },
    );

    console.log(`bad-input: ${summary.cases} refusals checked; no writes to ${tables.length} tables`);
  } finally {
    await stack.close();
  }
});
