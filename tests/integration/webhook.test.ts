/**
 * calendar-webhook through the gateway process (verify_jwt off, no Supabase credentials sent, as a
 * provider calls it), against a scratch database. Channels are inserted with SQL as the worker will
 * create them (secret kept as its SHA-256); requests carry what Google and Graph send
 * (dev/sandbox/CONTRACT.md, "Inbound sync"). Every refused notification is checked to write nothing:
 * the channels and jobs tables, row versions included, are identical before and after.
 */
import assert from "node:assert/strict";
import { startTestStack, type TestStack, type TestStaff } from "../support/stack.ts";

interface Channel {
  id: string;
  providerChannelId: string;
  secret: string;
  resourceId: string;
}

/** Insert a connected connection for `staff` and a live channel on it (secret hashed as the worker will). */
async function channelFor(
  stack: TestStack,
  staff: TestStaff,
  provider: "google" | "microsoft",
): Promise<Channel> {
  const [conn] = await stack.sql<{ id: string }[]>`
    insert into public.staff_calendar_connections
      (tenant_id, staff_id, provider, refresh_token_encrypted, connection_status, account_email)
    values (${staff.tenantId}, ${staff.id}, ${provider}, 'v1.k1.iv.ciphertext', 'connected', ${staff.email})
    returning id`;
  return await addChannel(stack, staff, conn.id, provider, "primary");
}

async function addChannel(
  stack: TestStack,
  staff: TestStaff,
  connectionId: string,
  provider: "google" | "microsoft",
  calendarId: string,
  stage = "incremental",
): Promise<Channel> {
  const providerChannelId = crypto.randomUUID();
  const secret = crypto.randomUUID() + crypto.randomUUID();
  const resourceId = provider === "google" ? `res-${crypto.randomUUID().slice(0, 12)}` : "me/calendar/events";
  const [ch] = await stack.sql<{ id: string }[]>`
    insert into public.calendar_channels (tenant_id, staff_id, connection_id, provider, calendar_id,
      provider_channel_id, resource_id, secret_hash, sync_stage, expires_at)
    values (${staff.tenantId}, ${staff.id}, ${connectionId}, ${provider}, ${calendarId}, ${providerChannelId},
      ${resourceId}, sha256(convert_to(${secret}, 'UTF8')), ${stage}, now() + interval '7 days')
    returning id`;
  return { id: ch.id, providerChannelId, secret, resourceId };
}

/** Everything the webhook could write, row versions (xmin) included. */
async function snapshot(stack: TestStack): Promise<string> {
  const [row] = await stack.sql<{ s: string }[]>`
    select coalesce((select string_agg(c.xmin::text || ':' || c::text, '|' order by c.id)
      from public.calendar_channels c), '') || '#' ||
      coalesce((select string_agg(j.xmin::text || ':' || j::text, '|' order by j.id)
      from public.calendar_channel_jobs j), '') as s`;
  return row.s;
}

/** The channel's sync jobs: how many rows, and the pending one's coalesced request count. */
async function syncJobs(
  stack: TestStack,
  channelId: string,
): Promise<{ rows: number; pending: number; requests: number }> {
  const [row] = await stack.sql<{ rows: number; pending: number; requests: number }[]>`
    select count(*)::int as rows, count(*) filter (where status = 'pending')::int as pending,
      coalesce(sum(request_count) filter (where status = 'pending'), 0)::int as requests
    from public.calendar_channel_jobs where channel_id = ${channelId} and kind = 'sync'`;
  return row;
}

Deno.test("calendar-webhook: Google and Microsoft notifications through the gateway", async (t) => {
  const stack = await startTestStack();
  const url = (route: string) => `${stack.functionsUrl}/calendar-webhook/${route}`;

  /** POST a Google notification (empty body, X-Goog-* headers, as Google sends it). */
  const google = (
    ch: Channel,
    o: { state?: string; number: number | string; token?: string | null; resource?: string; id?: string },
  ) => {
    const headers: Record<string, string> = {
      "user-agent": "APIs-Google; (+https://developers.google.com/webmasters/APIs-Google.html)",
      "x-goog-channel-id": o.id ?? ch.providerChannelId,
      "x-goog-channel-expiration": new Date(Date.now() + 86_400_000).toUTCString(),
      "x-goog-resource-id": o.resource ?? ch.resourceId,
      "x-goog-resource-uri": "https://www.googleapis.com/calendar/v3/calendars/primary/events?alt=json",
      "x-goog-resource-state": o.state ?? "exists",
      "x-goog-message-number": String(o.number),
    };
    if (o.token !== null) headers["x-goog-channel-token"] = o.token ?? ch.secret;
    return fetch(url("google"), { method: "POST", headers, body: "" });
  };
  /** POST a Graph notification collection to the change or the lifecycle URL. */
  const graph = (route: "microsoft" | "microsoft/lifecycle", value: unknown[]) =>
    fetch(url(route), {
      method: "POST",
      headers: { "content-type": "application/json; charset=utf-8" },
      body: JSON.stringify({ value }),
    });
  const change = (
    ch: Channel,
    clientState: string | null = ch.secret,
    subscriptionId = ch.providerChannelId,
  ) => ({
    id: "lsgTZMr9KwAAA",
    subscriptionId,
    subscriptionExpirationDateTime: new Date(Date.now() + 86_400_000).toISOString(),
    clientState,
    changeType: "updated",
    resource: "Users/oid/Events/AAMkAD",
    tenantId: crypto.randomUUID(),
    resourceData: {
      "@odata.type": "#Microsoft.Graph.Event",
      "@odata.id": "Users/oid/Events/AAMkAD",
      "@odata.etag": 'W/"DwAAABYAAAA"',
      id: "AAMkAD",
    },
  });
  const lifecycle = (ch: Channel, lifecycleEvent: string, clientState: string = ch.secret) => ({
    subscriptionId: ch.providerChannelId,
    subscriptionExpirationDateTime: new Date(Date.now() + 86_400_000).toISOString(),
    tenantId: crypto.randomUUID(),
    clientState,
    lifecycleEvent,
  });
  /** Assert `fn`'s answer and that nothing was written while it ran. @returns the answer's JSON. */
  const refusedWithoutWrites = async (fn: () => Promise<Response>, status: number, code: string) => {
    const before = await snapshot(stack);
    const res = await fn();
    const body = await res.json();
    assert.equal(res.status, status, JSON.stringify(body));
    assert.equal(body.error?.code, code);
    assert.equal(await snapshot(stack), before, "nothing written");
  };

  try {
    const tenant = await stack.createTenant("Webhook clinic");
    const alice = await stack.createStaff({ tenantId: tenant });
    const carol = await stack.createStaff({ tenantId: tenant });
    const gch = await channelFor(stack, alice, "google");
    const mch = await channelFor(stack, carol, "microsoft");

    await t.step("Google: a change notification records its number and requests one sync job", async () => {
      const res = await google(gch, { number: 2 });
      assert.equal(res.status, 200);
      assert.deepEqual(await res.json(), { status: "sync_requested" });
      const [row] = await stack.sql`select last_message_number, sync_requested_at is not null as requested
        from public.calendar_channels where id = ${gch.id}`;
      assert.deepEqual({ ...row }, { last_message_number: "2", requested: true });
      assert.deepEqual(await syncJobs(stack, gch.id), { rows: 1, pending: 1, requests: 1 });
      // not_exists asks for a sync too (with a newer number).
      const gone = await google(gch, { state: "not_exists", number: 5 });
      assert.equal(gone.status, 200);
      assert.deepEqual(await gone.json(), { status: "sync_requested" });
      assert.deepEqual(await syncJobs(stack, gch.id), { rows: 1, pending: 1, requests: 2 });
    });

    await t.step("Google: the channel's `sync` message is acknowledged and writes nothing", async () => {
      const before = await snapshot(stack);
      const res = await google(gch, { state: "sync", number: 1 });
      assert.equal(res.status, 200);
      assert.deepEqual(await res.json(), { status: "acknowledged" });
      assert.equal(await snapshot(stack), before);
    });

    await t.step(
      "Google: replayed and older message numbers are acknowledged and write nothing",
      async () => {
        for (const number of [5, 3]) {
          const before = await snapshot(stack);
          const res = await google(gch, { number });
          assert.equal(res.status, 200);
          assert.deepEqual(await res.json(), { status: "replayed" });
          assert.equal(await snapshot(stack), before, `message ${number} wrote nothing`);
        }
      },
    );

    await t.step(
      "Google: forged token, missing token or another resource: 403, nothing written",
      async () => {
        await refusedWithoutWrites(
          () => google(gch, { number: 50, token: "not-the-token" }),
          403,
          "forged_notification",
        );
        await refusedWithoutWrites(
          () => google(gch, { number: 51, token: null }),
          403,
          "forged_notification",
        );
        await refusedWithoutWrites(
          () => google(gch, { number: 52, resource: "res-other" }),
          403,
          "forged_notification",
        );
        // A forged `sync` is refused as well.
        await refusedWithoutWrites(
          () => google(gch, { state: "sync", number: 1, token: "x" }),
          403,
          "forged_notification",
        );
      },
    );

    await t.step(
      "Google: an unknown channel is 404; a stopped channel's late message is acknowledged as retired; nothing written",
      async () => {
        await refusedWithoutWrites(
          () => google(gch, { number: 60, id: crypto.randomUUID() }),
          404,
          "unknown_channel",
        );
        const [conn] = await stack
          .sql`select id from public.staff_calendar_connections where staff_id = ${alice.id}`;
        const stopped = await addChannel(stack, alice, conn.id, "google", "primary", "stopped");
        // Late deliveries of a channel we stopped carry its genuine token: 200, so the provider does not
        // retry them, and nothing is written.
        const retired = async (ch: Channel) => {
          const before = await snapshot(stack);
          const res = await google(ch, { number: 2 });
          assert.equal(res.status, 200);
          assert.deepEqual(await res.json(), { status: "retired" });
          assert.equal(await snapshot(stack), before, "a retired channel's message wrote nothing");
        };
        await retired(stopped);
        // Without its genuine token a stopped channel is unknown, as an id no channel has.
        await refusedWithoutWrites(
          () => google(stopped, { number: 3, token: "not-the-token" }),
          404,
          "unknown_channel",
        );
        // A channel of a disconnected connection is retired too.
        const dave = await stack.createStaff({ tenantId: tenant });
        const daveCh = await channelFor(stack, dave, "google");
        await stack.sql`update public.staff_calendar_connections set connection_status = 'disconnected'
          where staff_id = ${dave.id}`;
        await retired(daveCh);
      },
    );

    await t.step("Google: malformed headers, other routes and methods are refused", async () => {
      await refusedWithoutWrites(() => google(gch, { number: "ten" }), 400, "invalid_request");
      await refusedWithoutWrites(() => google(gch, { number: 70, state: "trash" }), 400, "invalid_request");
      await refusedWithoutWrites(() => fetch(url("dropbox"), { method: "POST" }), 404, "not_found");
      await refusedWithoutWrites(() => fetch(url("google"), { method: "GET" }), 405, "method_not_allowed");
    });

    await t.step(
      "Microsoft: the validation handshake echoes the decoded token as text/plain on both URLs",
      async () => {
        const token =
          "Validation: Testing client application reachability for subscription Request-Id: 1 <b>&";
        for (const route of ["microsoft", "microsoft/lifecycle"]) {
          const res = await fetch(`${url(route)}?validationToken=${encodeURIComponent(token)}`, {
            method: "POST",
            headers: { "content-type": "text/plain; charset=utf-8" },
          });
          assert.equal(res.status, 200);
          assert.match(res.headers.get("content-type") ?? "", /^text\/plain/);
          assert.equal(res.headers.get("x-content-type-options"), "nosniff");
          assert.equal(await res.text(), token);
        }
      },
    );

    await t.step("Microsoft: a batch with one forged entry records the genuine one only (202)", async () => {
      const before = await syncJobs(stack, mch.id);
      const res = await graph("microsoft", [change(mch), change(mch, "forged-client-state")]);
      assert.equal(res.status, 202);
      assert.deepEqual(await res.json(), { accepted: 1, retired: 0, refused: 1 });
      const after = await syncJobs(stack, mch.id);
      assert.deepEqual(after, { rows: 1, pending: 1, requests: before.requests + 1 });
    });

    await t.step("Microsoft: a batch of forged or unknown entries only: 4xx, nothing written", async () => {
      await refusedWithoutWrites(
        () =>
          graph("microsoft", [
            change(mch, "forged"),
            change(mch, null),
            change(mch, mch.secret, "unknown-sub"),
          ]),
        403,
        "forged_notification",
      );
      await refusedWithoutWrites(
        () => graph("microsoft", [change(mch, mch.secret, crypto.randomUUID())]),
        404,
        "unknown_channel",
      );
      // A subscription we stopped: its late notifications are retired (202, nothing written); with a
      // wrong clientState it is unknown.
      const [mconn] = await stack
        .sql`select id from public.staff_calendar_connections where staff_id = ${carol.id}`;
      const mstopped = await addChannel(stack, carol, mconn.id, "microsoft", "primary", "stopped");
      const before = await snapshot(stack);
      const late = await graph("microsoft", [
        change(mstopped, mstopped.secret),
        change(mstopped, mstopped.secret),
      ]);
      assert.equal(late.status, 202);
      assert.deepEqual(await late.json(), { accepted: 0, retired: 2, refused: 0 });
      assert.equal(await snapshot(stack), before, "retired notifications wrote nothing");
      await refusedWithoutWrites(
        () => graph("microsoft", [change(mstopped, "forged")]),
        404,
        "unknown_channel",
      );
      // The Google channel's secret does not open the Microsoft route.
      await refusedWithoutWrites(
        () => graph("microsoft", [change(gch, gch.secret)]),
        404,
        "unknown_channel",
      );
      await refusedWithoutWrites(() => graph("microsoft", []), 400, "invalid_request");
      await refusedWithoutWrites(
        () =>
          fetch(url("microsoft"), {
            method: "POST",
            headers: { "content-type": "application/json" },
            body: "{",
          }),
        400,
        "invalid_json",
      );
    });

    await t.step("Microsoft: lifecycle events are recorded on the channel and request a sync", async () => {
      for (
        const [event, column] of [
          ["reauthorizationRequired", "reauthorization_required_at"],
          ["missed", "missed_at"],
          ["subscriptionRemoved", "subscription_removed_at"],
        ]
      ) {
        const before = await syncJobs(stack, mch.id);
        const res = await graph("microsoft/lifecycle", [lifecycle(mch, event)]);
        assert.equal(res.status, 202, event);
        const [row] = await stack.sql.unsafe(
          `select ${column} is not null as recorded from public.calendar_channels where id = $1`,
          [mch.id],
        );
        assert.equal(row.recorded, true, `${event} recorded in ${column}`);
        assert.deepEqual(await syncJobs(stack, mch.id), {
          rows: 1,
          pending: 1,
          requests: before.requests + 1,
        });
      }
      await refusedWithoutWrites(
        () => graph("microsoft/lifecycle", [lifecycle(mch, "missed", "forged")]),
        403,
        "forged_notification",
      );
    });

    await t.step("storm: 1,000 Google notifications for one channel leave one pending sync job", async () => {
      const bob = await stack.createStaff({ tenantId: tenant });
      const storm = await channelFor(stack, bob, "google");
      // Delivered out of order by 20 concurrent senders, as Google's retries and parallel deliveries do.
      const numbers = Array.from({ length: 1000 }, (_, i) => 10 + i * 3);
      let next = 0;
      const statuses: Record<string, number> = {};
      await Promise.all(Array.from({ length: 20 }, async () => {
        while (next < numbers.length) {
          const res = await google(storm, { number: numbers[next++] });
          const { status } = await res.json();
          statuses[`${res.status} ${status}`] = (statuses[`${res.status} ${status}`] ?? 0) + 1;
        }
      }));
      assert.equal(Object.values(statuses).reduce((a, b) => a + b, 0), 1000);
      assert.deepEqual(
        Object.keys(statuses).filter((k) => !k.startsWith("200 ")),
        [],
        JSON.stringify(statuses),
      );
      const jobs = await syncJobs(stack, storm.id);
      assert.equal(jobs.rows, 1, "one sync job row for the channel");
      assert.equal(jobs.pending, 1, "one pending sync job");
      assert.equal(
        jobs.requests,
        statuses["200 sync_requested"],
        "every recorded notification is counted on it",
      );
      const [row] = await stack
        .sql`select last_message_number from public.calendar_channels where id = ${storm.id}`;
      assert.equal(row.last_message_number, String(numbers.at(-1)), "the highest number is kept");
    });

    await t.step("storm: 1,000 Graph notifications in batches leave one pending sync job", async () => {
      const erin = await stack.createStaff({ tenantId: tenant });
      const storm = await channelFor(stack, erin, "microsoft");
      const results = await Promise.all(
        Array.from(
          { length: 10 },
          () => graph("microsoft", Array.from({ length: 100 }, () => change(storm))),
        ),
      );
      for (const res of results) {
        assert.equal(res.status, 202);
        assert.deepEqual(await res.json(), { accepted: 100, retired: 0, refused: 0 });
      }
      assert.deepEqual(await syncJobs(stack, storm.id), { rows: 1, pending: 1, requests: 1000 });
    });
  } finally {
    await stack.close();
  }
});

Deno.test("calendar-webhook: the provider sandbox's real deliveries reach it and are recorded", async (t) => {
  const stack = await startTestStack();
  const sb = stack.sandbox;
  const hook = `${stack.functionsUrl}/calendar-webhook`;
  const flush = () => sb.admin("POST", "/_admin/push/flush");
  /** An authorization code for `login` from the sandbox's consent page, exchanged at `tokenUrl`. */
  const accessToken = async (authorizeUrl: URL, tokenUrl: string, form: Record<string, string>) => {
    const { redirect } = await sb.admin<{ redirect: string }>("POST", "/_admin/authorize", {
      authorizationUrl: authorizeUrl.href,
      login: form.login,
      decision: "approve",
    });
    const { login: _, ...rest } = form;
    const res = await fetch(tokenUrl, {
      method: "POST",
      body: new URLSearchParams({
        grant_type: "authorization_code",
        code: new URL(redirect).searchParams.get("code")!,
        ...rest,
      }),
    });
    const body = await res.json();
    assert.equal(res.status, 200, JSON.stringify(body));
    return body.access_token as string;
  };
  const connect = async (staff: TestStaff, provider: "google" | "microsoft") => {
    const [conn] = await stack.sql<{ id: string }[]>`
      insert into public.staff_calendar_connections
        (tenant_id, staff_id, provider, refresh_token_encrypted, connection_status, account_email)
      values (${staff.tenantId}, ${staff.id}, ${provider}, 'v1.k1.iv.ciphertext', 'connected', ${staff.email})
      returning id`;
    return conn.id;
  };

  try {
    const tenant = await stack.createTenant("Push clinic");

    await t.step(
      "Google: events.watch to the webhook; sync acknowledged, a user's edit requests a sync, a duplicate is a replay",
      async () => {
        const alice = await stack.createStaff({ tenantId: tenant });
        const redirectUri = stack.env.GOOGLE_REDIRECT_URI;
        const authorize = new URL(`${sb.url}/google/o/oauth2/v2/auth`);
        for (
          const [k, v] of Object.entries({
            client_id: stack.secrets.googleClientId,
            redirect_uri: redirectUri,
            response_type: "code",
            scope: "https://www.googleapis.com/auth/calendar.events",
            access_type: "offline",
          })
        ) authorize.searchParams.set(k, v);
        const token = await accessToken(authorize, `${sb.url}/google/token`, {
          login: alice.email,
          redirect_uri: redirectUri,
          client_id: stack.secrets.googleClientId,
          client_secret: stack.secrets.googleClientSecret,
        });
        const connectionId = await connect(alice, "google");
        // As the worker will: the row (with the secret's digest) first, then events.watch.
        const channelId = crypto.randomUUID();
        const secret = crypto.randomUUID();
        const [ch] = await stack.sql<{ id: string }[]>`
        insert into public.calendar_channels (tenant_id, staff_id, connection_id, provider, calendar_id,
          provider_channel_id, secret_hash)
        values (${alice.tenantId}, ${alice.id}, ${connectionId}, 'google', 'primary', ${channelId},
          sha256(convert_to(${secret}, 'UTF8')))
        returning id`;
        const watch = await fetch(`${sb.url}/google/calendar/v3/calendars/primary/events/watch`, {
          method: "POST",
          headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
          body: JSON.stringify({ id: channelId, type: "web_hook", address: `${hook}/google`, token: secret }),
        });
        const channel = await watch.json();
        assert.equal(watch.status, 200, JSON.stringify(channel));
        await stack.sql`update public.calendar_channels set resource_id = ${channel.resourceId},
        resource_uri = ${channel.resourceUri}, expires_at = ${new Date(Number(channel.expiration))},
        sync_stage = 'full_sync' where id = ${ch.id}`;
        await flush();
        const deliveries = async () =>
          (await sb.admin<{ deliveries: { outcome: string; status: number }[] }>(
            "GET",
            `/_admin/push/deliveries?target=${channelId}`,
          )).deliveries.map((d) => `${d.outcome} ${d.status}`);
        assert.deepEqual(await deliveries(), ["delivered 200"], "the sync message was acknowledged");
        assert.deepEqual(await syncJobs(stack, ch.id), { rows: 0, pending: 0, requests: 0 });

        await sb.admin(
          "POST",
          `/_admin/accounts/${encodeURIComponent(alice.email)}/calendars/primary/events`,
          {
            start: { dateTime: "2031-03-03T09:00:00Z" },
            end: { dateTime: "2031-03-03T10:00:00Z" },
            summary: "Dentist",
          },
        );
        await flush();
        const { channels } = await sb.admin<{ channels: { id: string; messageNumber: number }[] }>(
          "GET",
          `/_admin/google/channels?email=${encodeURIComponent(alice.email)}`,
        );
        const sent = channels.find((c) => c.id === channelId)!.messageNumber;
        const [row] = await stack
          .sql`select last_message_number from public.calendar_channels where id = ${ch.id}`;
        assert.equal(row.last_message_number, String(sent), "the delivered message number is recorded");
        assert.deepEqual(await syncJobs(stack, ch.id), { rows: 1, pending: 1, requests: 1 });

        const before = await snapshot(stack);
        await sb.admin("POST", "/_admin/push/plan", { provider: "google", duplicate: 1 });
        await sb.admin(
          "POST",
          `/_admin/accounts/${encodeURIComponent(alice.email)}/calendars/primary/events`,
          {
            start: { dateTime: "2031-03-04T09:00:00Z" },
            end: { dateTime: "2031-03-04T10:00:00Z" },
          },
        );
        await flush();
        assert.deepEqual((await deliveries()).slice(-2), ["delivered 200", "delivered 200"]);
        assert.deepEqual(
          await syncJobs(stack, ch.id),
          { rows: 1, pending: 1, requests: 2 },
          "the duplicate added nothing",
        );
        assert.notEqual(await snapshot(stack), before);
      },
    );

    await t.step(
      "Microsoft: the subscription's validation passes on both URLs; changes and lifecycle events are recorded",
      async () => {
        const carol = await stack.createStaff({ tenantId: tenant });
        const redirectUri = stack.env.MICROSOFT_REDIRECT_URI;
        const verifier = `${crypto.randomUUID()}-${crypto.randomUUID()}`;
        const challenge = btoa(String.fromCharCode(
          ...new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(verifier))),
        )).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
        const authorize = new URL(`${sb.url}/microsoft/common/oauth2/v2.0/authorize`);
        for (
          const [k, v] of Object.entries({
            client_id: stack.secrets.microsoftClientId,
            redirect_uri: redirectUri,
            response_type: "code",
            scope: "openid offline_access Calendars.ReadWrite User.Read",
            code_challenge: challenge,
            code_challenge_method: "S256",
          })
        ) authorize.searchParams.set(k, v);
        const token = await accessToken(authorize, `${sb.url}/microsoft/common/oauth2/v2.0/token`, {
          login: carol.email,
          redirect_uri: redirectUri,
          code_verifier: verifier,
          client_id: stack.secrets.microsoftClientId,
          client_secret: stack.secrets.microsoftClientSecret,
        });
        const connectionId = await connect(carol, "microsoft");
        const secret = crypto.randomUUID();
        const created = await fetch(`${sb.url}/microsoft/graph/v1.0/subscriptions`, {
          method: "POST",
          headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
          body: JSON.stringify({
            changeType: "created,updated,deleted",
            notificationUrl: `${hook}/microsoft`,
            lifecycleNotificationUrl: `${hook}/microsoft/lifecycle`,
            resource: "me/calendar/events",
            expirationDateTime: new Date(Date.now() + 86_400_000).toISOString(),
            clientState: secret,
          }),
        });
        const sub = await created.json();
        assert.equal(created.status, 201, `both validation handshakes answered: ${JSON.stringify(sub)}`);
        const [ch] = await stack.sql<{ id: string }[]>`
        insert into public.calendar_channels (tenant_id, staff_id, connection_id, provider, calendar_id,
          provider_channel_id, resource_id, secret_hash, sync_stage, expires_at)
        values (${carol.tenantId}, ${carol.id}, ${connectionId}, 'microsoft', 'default', ${sub.id},
          ${sub.resource}, sha256(convert_to(${secret}, 'UTF8')), 'full_sync', ${new Date(
          sub.expirationDateTime,
        )})
        returning id`;

        await sb.admin(
          "POST",
          `/_admin/microsoft/accounts/${encodeURIComponent(carol.email)}/calendars/default/events`,
          {
            start: { dateTime: "2031-05-05T09:00:00", timeZone: "UTC" },
            end: { dateTime: "2031-05-05T10:00:00", timeZone: "UTC" },
            subject: "Gym",
          },
        );
        await flush();
        assert.deepEqual(await syncJobs(stack, ch.id), { rows: 1, pending: 1, requests: 1 });

        const { sent } = await sb.admin<{ sent: boolean }>(
          "POST",
          `/_admin/microsoft/subscriptions/${sub.id}/lifecycle`,
          { lifecycleEvent: "reauthorizationRequired" },
        );
        assert.equal(sent, true);
        await flush();
        const [row] = await stack.sql`select reauthorization_required_at is not null as recorded
        from public.calendar_channels where id = ${ch.id}`;
        assert.equal(row.recorded, true);
        assert.deepEqual(await syncJobs(stack, ch.id), { rows: 1, pending: 1, requests: 2 });
        const log = await sb.admin<{ deliveries: { kind: string; outcome: string; status: number }[] }>(
          "GET",
          `/_admin/push/deliveries?target=${sub.id}`,
        );
        assert.ok(log.deliveries.length >= 3, JSON.stringify(log.deliveries));
        for (const d of log.deliveries) assert.equal(d.outcome, "delivered", JSON.stringify(d));
      },
    );
  } finally {
    await stack.close();
  }
});
