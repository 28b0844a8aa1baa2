/**
 * The seed contract's Google function names (google-calendar-auth-start, -auth-callback,
 * -list-calendars, -get-availability, -sync-appointment) work end to end with the seed's inputs,
 * through the gateway process, and keep the seed's verify_jwt values from supabase/config.toml.
 */
import assert from "node:assert/strict";
import { parse as parseToml } from "smol-toml";
import { FUNCTIONS } from "../../supabase/functions/_shared/handlers/registry.ts";
import { eventIdFor } from "../../supabase/functions/_shared/providers/google/event-id.ts";
import { startTestStack } from "../support/stack.ts";

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const DAY0 = Math.floor(Date.now() / DAY) * DAY + 5 * DAY;

/**
 * The seed's names, their canonical twins, and the seed's verify_jwt values. The canonical
 * calendar-sync-appointment differs on purpose (`canonicalVerifyJwt`): server callers send secret
 * API keys, which the platform's JWT check refuses, so it verifies callers in code.
 */
const SEED: { seed: string; canonical: string; verifyJwt: boolean; canonicalVerifyJwt?: boolean }[] = [
  { seed: "google-calendar-auth-start", canonical: "calendar-auth-start", verifyJwt: false },
  { seed: "google-calendar-auth-callback", canonical: "calendar-auth-callback", verifyJwt: false },
  { seed: "google-calendar-list-calendars", canonical: "calendar-list-calendars", verifyJwt: true },
  { seed: "google-calendar-get-availability", canonical: "calendar-get-availability", verifyJwt: false },
  {
    seed: "google-calendar-sync-appointment",
    canonical: "calendar-sync-appointment",
    verifyJwt: true,
    canonicalVerifyJwt: false,
  },
];

function iso(ms: number): string {
  return new Date(ms).toISOString().replace(".000Z", "Z");
}

Deno.test("seed function names: deployable entries, seed verify_jwt values, and the whole job end to end", async (t) => {
  await t.step(
    "config.toml gives each seed name the seed's verify_jwt, and its canonical twin the same unless noted",
    async () => {
      const toml = parseToml(
        await Deno.readTextFile(new URL("../../supabase/config.toml", import.meta.url)),
      ) as { functions: Record<string, { verify_jwt?: boolean }> };
      for (const { seed, canonical, verifyJwt, canonicalVerifyJwt } of SEED) {
        assert.equal(toml.functions[seed]?.verify_jwt, verifyJwt, `${seed} verify_jwt`);
        assert.equal(
          toml.functions[canonical]?.verify_jwt,
          canonicalVerifyJwt ?? verifyJwt,
          `${canonical} verify_jwt`,
        );
      }
    },
  );

  await t.step(
    "each seed name has an entry file and runs the same handler as its canonical name",
    async () => {
      for (const { seed, canonical } of SEED) {
        const entry = await Deno.readTextFile(
          new URL(`../../supabase/functions/${seed}/index.ts`, import.meta.url),
        );
        assert.match(entry, /serve\(/, `${seed}/index.ts serves a handler`);
        assert.ok(FUNCTIONS[seed], `${seed} is in the registry`);
        assert.equal(FUNCTIONS[seed], FUNCTIONS[canonical], `${seed} and ${canonical} share a handler`);
      }
    },
  );

  // A configured title replaces the default "ValorWell" (CALENDAR_EVENT_TITLE).
  const stack = await startTestStack({ env: { CALENDAR_EVENT_TITLE: "Clinic appointment" } });
  try {
    const tenant = await stack.createTenant("Seed clinic");
    const alice = await stack.createStaff({ tenantId: tenant });
    const carol = await stack.createStaff({ tenantId: tenant });

    await t.step(
      "google-calendar-auth-start and google-calendar-auth-callback connect a calendar",
      async () => {
        const returnTo = "http://127.0.0.1:3000/settings/calendar";
        const start = await stack.invoke("google-calendar-auth-start", {
          jwt: alice.jwt,
          body: { return_to: returnTo },
        });
        assert.equal(start.status, 200);
        const { url, flow_id } = await start.json() as { url: string; flow_id: string };
        const consent = new URL(url);
        assert.equal(consent.searchParams.get("access_type"), "offline");
        assert.equal(consent.searchParams.get("code_challenge_method"), "S256");
        const { redirect } = await stack.sandbox.admin<{ redirect: string }>("POST", "/_admin/authorize", {
          authorizationUrl: url,
          login: alice.email,
          decision: "approve",
        });
        // A project deployed with the seed names registers .../google-calendar-auth-callback as its
        // redirect URI; the browser arrives there with the same query (code, scope, state).
        const back = new URL(redirect);
        back.pathname = "/functions/v1/google-calendar-auth-callback";
        const res = await fetch(back, { redirect: "manual" });
        await res.body?.cancel();
        assert.equal(res.status, 302);
        const location = new URL(res.headers.get("location") ?? "");
        assert.equal(`${location.origin}${location.pathname}`, returnTo);
        // The grant waits for the app's confirmation with the initiating user's session.
        assert.equal(location.searchParams.get("calendar_status"), "pending");
        assert.equal(location.searchParams.get("calendar_account_email"), alice.email);
        const confirm = await stack.invoke("calendar-auth-confirm", {
          jwt: alice.jwt,
          body: { pending_id: location.searchParams.get("calendar_pending"), flow_id },
        });
        assert.equal(confirm.status, 200);
        assert.deepEqual(await confirm.json(), {
          status: "connected",
          provider: "google",
          account_email: alice.email,
        });
        const [conn] = await stack.sql<{ connection_status: string; selected_calendar_id: string }[]>`
        select connection_status, selected_calendar_id from public.staff_calendar_connections
        where staff_id = ${alice.id}`;
        assert.deepEqual(conn, { connection_status: "connected", selected_calendar_id: "primary" });

        // The stack's own flow with the seed prefix on the start leg too.
        const second = await stack.connect(carol, { functionPrefix: "google-calendar" });
        assert.match(second.location, /calendar_status=connected/);
      },
    );

    await t.step("google-calendar-list-calendars answers [{id, summary, primary, access_role}]", async () => {
      const res = await stack.invoke("google-calendar-list-calendars", { jwt: alice.jwt });
      assert.equal(res.status, 200);
      const calendars = await res.json() as Record<string, unknown>[];
      assert.ok(Array.isArray(calendars) && calendars.length >= 1);
      for (const c of calendars) {
        assert.deepEqual(Object.keys(c).sort(), ["access_role", "id", "primary", "summary"]);
      }
      const primary = calendars.filter((c) => c.primary === true);
      assert.equal(primary.length, 1);
      assert.equal(primary[0].id, alice.email);
      assert.equal(primary[0].access_role, "owner");
    });

    await t.step(
      "google-calendar-get-availability answers {busy} for staff_id, time_min, time_max",
      async () => {
        await stack.sandbox.admin(
          "POST",
          `/_admin/accounts/${encodeURIComponent(alice.email)}/calendars/${
            encodeURIComponent(alice.email)
          }/events`,
          { start: iso(DAY0 + 9 * HOUR), end: iso(DAY0 + 10 * HOUR), summary: "busy" },
        );
        const res = await stack.invoke("google-calendar-get-availability", {
          jwt: carol.jwt,
          body: { staff_id: alice.id, time_min: iso(DAY0), time_max: iso(DAY0 + DAY) },
        });
        assert.equal(res.status, 200);
        // The seed's {busy}; `source` and `as_of` are additive (docs/api.md).
        const { busy, source, ...rest } = await res.json();
        assert.deepEqual(busy, [{ start: iso(DAY0 + 9 * HOUR), end: iso(DAY0 + 10 * HOUR) }]);
        assert.equal(source, "live");
        assert.deepEqual(Object.keys(rest), ["as_of"]);
      },
    );

    await t.step(
      "google-calendar-sync-appointment creates (with the configured title), then deletes, the appointment's event",
      async () => {
        const appointmentId = await stack.createAppointment({
          tenantId: tenant,
          staffId: alice.id,
          startsAt: iso(DAY0 + 13 * HOUR),
          endsAt: iso(DAY0 + 14 * HOUR),
        });
        const created = await stack.invoke("google-calendar-sync-appointment", {
          jwt: alice.jwt,
          body: { appointment_id: appointmentId, action: "create" },
        });
        const body = await created.json();
        assert.equal(created.status, 200, JSON.stringify(body));
        assert.equal(body.google_event_id, eventIdFor(appointmentId));
        const events = (await stack.sandbox.events(alice.email)).filter((e) =>
          e.id === eventIdFor(appointmentId)
        );
        assert.equal(events.length, 1);
        assert.equal(events[0].summary, "Clinic appointment");

        await stack.sql`update public.appointments set status = 'cancelled' where id = ${appointmentId}`;
        const deleted = await stack.invoke("google-calendar-sync-appointment", {
          jwt: stack.serviceRoleJwt,
          body: { appointment_id: appointmentId, action: "delete" },
        });
        assert.equal(deleted.status, 200);
        assert.equal((await deleted.json()).action, "delete");
        assert.equal(
          (await stack.sandbox.events(alice.email)).some((e) => e.id === eventIdFor(appointmentId)),
          false,
        );
      },
    );

    await t.step(
      "without a JWT the gateway refuses list/sync (verify_jwt true) and lets the others reach their code",
      async () => {
        for (const { seed, canonical, verifyJwt, canonicalVerifyJwt } of SEED) {
          const statuses: number[] = [];
          for (const name of [seed, canonical]) {
            // GET: a method the verify_jwt=false functions' own code refuses (405) or handles
            // (auth-start, the callback) -- so a 401 here can only come from the gateway.
            const res = await stack.invoke(name, { method: "GET", jwt: null });
            const text = await res.text();
            statuses.push(res.status);
            if (name === canonical ? (canonicalVerifyJwt ?? verifyJwt) : verifyJwt) {
              assert.equal(res.status, 401, `${name}: ${text}`);
              assert.deepEqual(JSON.parse(text), { code: 401, message: "Missing authorization header" });
            } else {
              assert.notDeepEqual(
                text.startsWith("{") ? JSON.parse(text) : {},
                { code: 401, message: "Missing authorization header" },
                `${name} reached its own code`,
              );
            }
          }
          if (canonicalVerifyJwt === undefined) {
            assert.equal(statuses[0], statuses[1], `${seed} answers like ${canonical}`);
          }
        }
        // POST without a JWT to the functions that check identity in code: their own 401 envelope.
        for (const name of ["google-calendar-get-availability", "google-calendar-auth-start"]) {
          const res = await stack.invoke(name, {
            jwt: null,
            body: name.endsWith("availability")
              ? { staff_id: alice.id, time_min: iso(DAY0), time_max: iso(DAY0 + DAY) }
              : {},
          });
          const body = await res.json();
          assert.equal(res.status, 401, `${name}: ${JSON.stringify(body)}`);
          assert.equal(typeof body.error?.code, "string", `${name} answers the function's envelope`);
          assert.equal(typeof body.request_id, "string");
        }
      },
    );
  } finally {
    await stack.close();
  }
});
