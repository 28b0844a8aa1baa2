/**
 * The functions called exactly as an app calls them: `@supabase/supabase-js` `createClient(url,
 * anonKey, {global: {headers: {Authorization: "Bearer <user jwt>"}}})` and `functions.invoke`,
 * through the gateway process, against a scratch Postgres and the provider sandbox. Errors arrive as
 * a `FunctionsHttpError` whose `context` is the Response carrying our error envelope.
 */
import assert from "node:assert/strict";
import { createClient, FunctionRegion, FunctionsHttpError, type SupabaseClient } from "@supabase/supabase-js";
import { startTestStack, type TestStack, type TestStaff } from "../support/stack.ts";

/** An invoke error with the envelope it carried, for assertion messages. */
async function describe(error: unknown): Promise<string> {
  if (error instanceof FunctionsHttpError) {
    const res = (error.context as Response).clone();
    return `${res.status} ${await res.text()}`;
  }
  return String(error);
}

Deno.test("an app calls the functions through supabase-js functions.invoke", async (t) => {
  const stack: TestStack = await startTestStack();
  const baseUrl = stack.functionsUrl.replace(/\/functions\/v1$/, "");
  const clients: SupabaseClient[] = [];
  /** The app's client for a signed-in user (or the anon key alone when `jwt` is omitted). */
  const clientFor = (jwt?: string) => {
    const client = createClient(baseUrl, stack.anonJwt, {
      auth: { persistSession: false, autoRefreshToken: false, detectSessionInUrl: false },
      ...(jwt ? { global: { headers: { Authorization: `Bearer ${jwt}` } } } : {}),
    });
    clients.push(client);
    return client;
  };
  try {
    const tenantId = await stack.createTenant("supabase-js clinic");
    const clinician: TestStaff = await stack.createStaff({ tenantId });
    const newcomer: TestStaff = await stack.createStaff({ tenantId });
    await stack.connect(clinician);

    await t.step("invoke('calendar-list-calendars') answers the calendars as parsed JSON", async () => {
      const supabase = clientFor(clinician.jwt);
      const { data, error } = await supabase.functions.invoke("calendar-list-calendars");
      assert.equal(error, null, await describe(error));
      assert.ok(Array.isArray(data));
      const primary = data.find((c: { primary: boolean }) => c.primary);
      assert.deepEqual(primary, {
        id: clinician.email.toLowerCase(),
        summary: clinician.email.toLowerCase(),
        primary: true,
        access_role: "owner",
      });
      // GET works too, the way an app would fetch a list.
      const viaGet = await supabase.functions.invoke("google-calendar-list-calendars", { method: "GET" });
      assert.equal(viaGet.error, null, await describe(viaGet.error));
      assert.equal(viaGet.data.length, data.length);
    });

    await t.step("invoke('calendar-get-availability', {body}) answers busy intervals only", async () => {
      const day = new Date(Date.now() + 3 * 86_400_000);
      day.setUTCHours(0, 0, 0, 0);
      const at = (h: number, m = 0) => new Date(day.getTime() + (h * 60 + m) * 60_000).toISOString();
      for (const [start, end] of [[at(9), at(10)], [at(9, 30), at(11)], [at(14), at(15)]]) {
        await stack.sandbox.admin(
          "POST",
          `/_admin/accounts/${encodeURIComponent(clinician.email)}/calendars/${
            encodeURIComponent(clinician.email)
          }/events`,
          { start, end, summary: "Private appointment with a patient" },
        );
      }
      // A colleague of the same tenant asks, as a scheduling screen would.
      const colleague = clientFor(newcomer.jwt);
      const { data, error } = await colleague.functions.invoke("calendar-get-availability", {
        body: { staff_id: clinician.id, time_min: at(0), time_max: at(24) },
      });
      assert.equal(error, null, await describe(error));
      const strip = (s: string) => s.replace(".000Z", "Z");
      assert.deepEqual(data.busy, [
        { start: strip(at(9)), end: strip(at(11)) },
        { start: strip(at(14)), end: strip(at(15)) },
      ]);
      assert.deepEqual(Object.keys(data).sort(), ["as_of", "busy", "source"]);
      assert.ok(!JSON.stringify(data).includes("patient"), "no event details");
    });

    await t.step("invoke with a region (supabase-js adds ?forceFunctionRegion=) still works", async () => {
      // functions-js puts the region in the query string, also on POST; the functions must accept it.
      const supabase = clientFor(clinician.jwt);
      const list = await supabase.functions.invoke("calendar-list-calendars", {
        region: FunctionRegion.UsEast1,
      });
      assert.equal(list.error, null, await describe(list.error));
      assert.equal(list.data.length, 3);
      const viaGet = await supabase.functions.invoke("calendar-list-calendars", {
        method: "GET",
        region: FunctionRegion.EuWest1,
      });
      assert.equal(viaGet.error, null, await describe(viaGet.error));
      const busy = await supabase.functions.invoke("calendar-get-availability", {
        region: FunctionRegion.UsEast1,
        body: {
          staff_id: clinician.id,
          time_min: new Date(Date.now() + 86_400_000).toISOString(),
          time_max: new Date(Date.now() + 2 * 86_400_000).toISOString(),
        },
      });
      assert.equal(busy.error, null, await describe(busy.error));
      assert.ok(Array.isArray(busy.data.busy));
    });

    await t.step("a 409 arrives as FunctionsHttpError whose context holds the envelope", async () => {
      const supabase = clientFor(newcomer.jwt);
      const { data, error } = await supabase.functions.invoke("calendar-list-calendars");
      assert.equal(data, null);
      assert.ok(error instanceof FunctionsHttpError, `got ${error}`);
      const response = error.context as Response;
      assert.equal(response.status, 409);
      const body = await response.json();
      assert.equal(body.error.code, "not_connected");
      assert.equal(typeof body.error.message, "string");
      assert.equal(typeof body.request_id, "string");
      assert.equal(response.headers.get("x-request-id"), body.request_id);

      // The availability of a staff member who never connected: also a 409 the app can act on.
      const other = await supabase.functions.invoke("calendar-get-availability", {
        body: {
          staff_id: newcomer.id,
          time_min: new Date(Date.now() + 86_400_000).toISOString(),
          time_max: new Date(Date.now() + 2 * 86_400_000).toISOString(),
        },
      });
      assert.ok(other.error instanceof FunctionsHttpError);
      const ctx = other.error.context as Response;
      assert.equal(ctx.status, 409);
      assert.equal((await ctx.json()).error.code, "not_connected");
    });

    await t.step("without a session (anon key only) the app gets 403 from the function", async () => {
      const anon = clientFor();
      const { error } = await anon.functions.invoke("calendar-auth-start", { body: {} });
      assert.ok(error instanceof FunctionsHttpError);
      const ctx = error.context as Response;
      assert.equal(ctx.status, 403);
      assert.equal((await ctx.json()).error.code, "forbidden_role");
    });

    await t.step("invoke('calendar-auth-start') gives the consent URL the app navigates to", async () => {
      const supabase = clientFor(newcomer.jwt);
      const { data, error } = await supabase.functions.invoke("calendar-auth-start", {
        body: { return_to: "http://localhost:3000/calendar" },
      });
      assert.equal(error, null, await describe(error));
      assert.ok(typeof data.url === "string" && data.url.startsWith(stack.sandbox.url));
      const { redirect } = await stack.sandbox.admin<{ redirect: string }>("POST", "/_admin/authorize", {
        authorizationUrl: data.url,
        login: newcomer.email,
        decision: "approve",
      });
      const res = await fetch(redirect, { redirect: "manual" });
      await res.body?.cancel();
      const location = new URL(res.headers.get("location")!);
      assert.equal(location.origin, "http://localhost:3000");
      assert.equal(location.searchParams.get("calendar_status"), "pending");
      // Back in the app: it confirms the grant with the signed-in user's session.
      const confirmed = await supabase.functions.invoke("calendar-auth-confirm", {
        body: { pending_id: location.searchParams.get("calendar_pending"), flow_id: data.flow_id },
      });
      assert.equal(confirmed.error, null, await describe(confirmed.error));
      assert.deepEqual(confirmed.data, {
        status: "connected",
        provider: "google",
        account_email: newcomer.email,
      });
      const list = await supabase.functions.invoke("calendar-list-calendars");
      assert.equal(list.error, null, await describe(list.error));
      assert.equal(list.data.length, 3);
    });
  } finally {
    for (const c of clients) await c.removeAllChannels();
    await stack.close();
  }
});
