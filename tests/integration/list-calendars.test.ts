/**
 * calendar-list-calendars over real HTTP (gateway process) against a scratch Postgres and the
 * provider sandbox: the answer's shape, only the caller's own connection, refresh when the token
 * expires within 2 minutes, exactly one refresh for 20 concurrent calls, refresh-and-retry after a
 * 401 from the API, and a revoked grant turning into 409 needs_reconnect.
 */
import assert from "node:assert/strict";
import { assertEnvelope, json } from "../support/assertions.ts";
import { startTestStack, type TestStack, type TestStaff } from "../support/stack.ts";

interface Grant {
  email: string;
  scopes: string[];
  revoked: boolean;
  refreshCount: number;
}

Deno.test("calendar-list-calendars over HTTP against Postgres and the sandbox", async (t) => {
  const stack: TestStack = await startTestStack();
  const sql = stack.sql;
  try {
    const tenantId = await stack.createTenant("List calendars clinic");
    const owner = await stack.createStaff({ tenantId });
    const colleague = await stack.createStaff({ tenantId });
    await stack.connect(owner);

    const live = async (staff: TestStaff): Promise<Grant> => {
      const { grants } = await stack.sandbox.admin<{ grants: Grant[] }>(
        "GET",
        `/_admin/grants?email=${encodeURIComponent(staff.email)}`,
      );
      const open = grants.filter((g) => !g.revoked);
      assert.equal(open.length, 1, `one live grant for ${staff.email}`);
      return open[0];
    };
    const list = (staff: TestStaff) => stack.invoke("calendar-list-calendars", { jwt: staff.jwt });
    const setExpiry = async (staff: TestStaff, expression: string) => {
      const result = await sql.unsafe(
        `update public.staff_calendar_connections set token_expires_at = ${expression} where staff_id = $1`,
        [staff.id],
      );
      assert.equal(result.count, 1);
    };
    const expiresAt = async (staff: TestStaff): Promise<Date> =>
      (await sql`select token_expires_at from public.staff_calendar_connections where staff_id = ${staff.id}`)[
        0
      ]
        .token_expires_at;

    await t.step(
      "answers [{id, summary, primary, access_role}] for the caller's own connection",
      async () => {
        for (const method of ["GET", "POST"]) {
          const res = await stack.invoke("calendar-list-calendars", { jwt: owner.jwt, method });
          const body = await json<Record<string, unknown>[]>(res);
          assert.equal(res.status, 200, JSON.stringify(body));
          assert.equal(res.headers.get("cache-control"), "no-store");
          assert.ok(Array.isArray(body));
          for (const c of body) {
            assert.deepEqual(Object.keys(c).sort(), ["access_role", "id", "primary", "summary"]);
          }
          const primary = body.filter((c) => c.primary === true);
          assert.equal(primary.length, 1);
          assert.equal(primary[0].id, owner.email.toLowerCase());
          assert.equal(primary[0].access_role, "owner");
          const team = body.find((c) => c.summary === "Team");
          assert.ok(team, "the secondary calendar is listed");
          assert.equal(team.access_role, "writer");
          assert.equal(team.primary, false);
          assert.ok(
            body.some((c) => c.access_role === "reader"),
            "the read-only holidays calendar is listed",
          );
        }
        // The seed's name answers the same shape.
        const seed = await stack.invoke("google-calendar-list-calendars", { jwt: owner.jwt });
        const seedBody = await json<unknown[]>(seed);
        assert.equal(seed.status, 200);
        assert.equal(seedBody.length, 3);
      },
    );

    await t.step("a staff member without a connection gets 409 not_connected", async () => {
      await assertEnvelope(await list(colleague), 409, "not_connected");
    });

    await t.step(
      "another staff member cannot read this staff member's calendars: only their own",
      async () => {
        // Nothing in the request can name another staff member: such fields are refused, not ignored.
        await assertEnvelope(
          await stack.invoke("calendar-list-calendars", { jwt: colleague.jwt, body: { staff_id: owner.id } }),
          400,
          "invalid_request",
        );
        await assertEnvelope(
          await stack.invoke("calendar-list-calendars", {
            jwt: colleague.jwt,
            method: "GET",
            query: { staff_id: owner.id },
          }),
          400,
          "invalid_request",
        );
        // The colleague's own JWT reaches only the colleague's (missing) connection.
        await assertEnvelope(await list(colleague), 409, "not_connected");
        // A tenant admin is no exception: calendar lists are personal.
        const admin = await stack.createStaff({ tenantId, role: "admin" });
        await assertEnvelope(await list(admin), 409, "not_connected");
        // A user who is no staff member, and the service role, are refused.
        await assertEnvelope(
          await stack.invoke("calendar-list-calendars", { jwt: await stack.userJwt(crypto.randomUUID()) }),
          403,
          "not_staff",
        );
        await assertEnvelope(
          await stack.invoke("calendar-list-calendars", { jwt: stack.serviceRoleJwt }),
          403,
          "user_required",
        );
      },
    );

    await t.step("a token expiring within 2 minutes is refreshed before the call", async () => {
      const before = (await live(owner)).refreshCount;
      // Outside the margin: no refresh.
      await setExpiry(owner, "now() + interval '10 minutes'");
      assert.equal((await list(owner)).status, 200);
      assert.equal((await live(owner)).refreshCount, before);
      // Within the margin: one refresh, and the new expiry is stored.
      await setExpiry(owner, "now() + interval '90 seconds'");
      const res = await list(owner);
      assert.equal(res.status, 200);
      await res.body?.cancel();
      assert.equal((await live(owner)).refreshCount, before + 1);
      assert.ok(
        (await expiresAt(owner)).getTime() > Date.now() + 50 * 60_000,
        "the refreshed expiry is stored",
      );
    });

    await t.step(
      "20 concurrent calls with an expired token cause exactly one refresh and all succeed",
      async () => {
        await setExpiry(owner, "now() - interval '5 minutes'");
        const before = (await live(owner)).refreshCount;
        await stack.sandbox.resetCalls();
        // Slow provider answers keep the refresh in flight while the other calls arrive.
        await stack.sandbox.latency(40);
        const responses = await Promise.all(Array.from({ length: 20 }, () => list(owner)))
          .finally(() => stack.sandbox.latency(0));
        const bodies = await Promise.all(responses.map((r) => json<unknown[]>(r)));
        responses.forEach((r, i) => assert.equal(r.status, 200, `call ${i}: ${JSON.stringify(bodies[i])}`));
        for (const b of bodies) assert.equal(b.length, 3);
        const calls = await stack.sandbox.calls();
        assert.equal(calls.byEndpoint["oauth.token.refresh_token"], 1, JSON.stringify(calls.byEndpoint));
        assert.equal(calls.byEndpoint["calendarList.list"], 20);
        assert.equal((await live(owner)).refreshCount, before + 1);
      },
    );

    await t.step(
      "a 401 from the API (access token expired at the provider) is refreshed once and retried",
      async () => {
        const before = (await live(owner)).refreshCount;
        const storedExpiry = await expiresAt(owner);
        assert.ok(
          storedExpiry.getTime() > Date.now() + 5 * 60_000,
          "our row still believes the token is valid",
        );
        await stack.sandbox.admin("POST", "/_admin/tokens/expire", { email: owner.email });
        await stack.sandbox.resetCalls();
        const res = await list(owner);
        const body = await json<unknown[]>(res);
        assert.equal(res.status, 200, JSON.stringify(body));
        assert.equal(body.length, 3);
        const calls = await stack.sandbox.calls();
        assert.equal(calls.byEndpoint["calendarList.list"], 2, "one 401, then the retry");
        assert.equal(calls.byEndpoint["oauth.token.refresh_token"], 1);
        assert.equal((await live(owner)).refreshCount, before + 1);
        const [row] = await sql`select connection_status from public.staff_calendar_connections
        where staff_id = ${owner.id}`;
        assert.equal(row.connection_status, "connected");
      },
    );

    await t.step(
      "provider failures are 503 / 429 with Retry-After and leave the connection connected",
      async () => {
        const status = async () =>
          (await sql`select connection_status, token_expires_at from public.staff_calendar_connections
          where staff_id = ${owner.id}`)[0];
        // The token endpoint fails while a refresh is due: nothing is stored, the next call retries.
        await setExpiry(owner, "now() - interval '1 minute'");
        await stack.sandbox.fault({
          match: { endpoint: "oauth.token.refresh_token" },
          response: { status: 500 },
        });
        const unavailable = await list(owner);
        assert.equal(unavailable.headers.get("retry-after"), "5");
        await assertEnvelope(unavailable, 503, "provider_unavailable");
        const afterFailure = await status();
        assert.equal(afterFailure.connection_status, "connected");
        assert.ok(afterFailure.token_expires_at.getTime() < Date.now(), "no token was stored");
        // The API rate-limits us.
        await stack.sandbox.fault({
          match: { endpoint: "calendarList.list" },
          response: { status: 429, retryAfterSeconds: 7 },
        });
        const limited = await list(owner);
        assert.equal(limited.headers.get("retry-after"), "7");
        await assertEnvelope(limited, 429, "rate_limited");
        // A 503 from the API.
        await stack.sandbox.fault({ match: { endpoint: "calendarList.list" }, response: { status: 503 } });
        await assertEnvelope(await list(owner), 503, "provider_unavailable");
        await stack.sandbox.clearFaults();
        assert.equal((await status()).connection_status, "connected");
        const ok = await list(owner);
        assert.equal(ok.status, 200);
        await ok.body?.cancel();
      },
    );

    await t.step(
      "a revoked grant answers 409 needs_reconnect and marks the row needs_reconnect",
      async () => {
        await stack.sandbox.admin("POST", "/_admin/grants/revoke", { email: owner.email });
        const body = await assertEnvelope(await list(owner), 409, "needs_reconnect");
        assert.ok(!JSON.stringify(body).includes("ya29."), "no token in the answer");
        const [row] =
          await sql`select connection_status, last_error, refresh_token_encrypted is not null as kept
        from public.staff_calendar_connections where staff_id = ${owner.id}`;
        assert.equal(row.connection_status, "needs_reconnect");
        assert.match(row.last_error, /reconnect/);
        // Later calls answer 409 from the row alone, without calling the provider again.
        await stack.sandbox.resetCalls();
        await assertEnvelope(await list(owner), 409, "needs_reconnect");
        assert.equal((await stack.sandbox.calls()).total, 0);
      },
    );
  } finally {
    await stack.close();
  }
});
