/**
 * The provider sandbox's inbound-sync emulation (dev/sandbox/CONTRACT.md "Inbound sync") through real
 * HTTP: Google events.watch channels with their `sync`/`exists` notifications and channels.stop,
 * incremental events.list with sync tokens and 410 fullSyncRequired; Microsoft Graph subscriptions
 * with the validation handshake, batched change notifications, lifecycle notifications, renewal and
 * expiry, and calendarView/delta rounds with `@removed` and 410 SyncStateNotFound; and the admin
 * API's user edits and delivery controls (drop, duplicate, reorder). A small HTTP receiver in this
 * process plays the webhook endpoint; `POST /_admin/push/flush` waits for deliveries, so no assertion
 * depends on timing.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { startSandbox } from "../../dev/sandbox/server.ts";

const G_CLIENT = { clientId: "it-inbound.apps.googleusercontent.com", clientSecret: "it-inbound-secret" };
const MS_CLIENT = { clientId: "22223333-cccc-4444-dddd-5555eeee6666", clientSecret: "it-inbound-ms-secret" };
const REDIRECT = "http://127.0.0.1:54321/functions/v1/calendar-auth-callback";
const G_SCOPE = "https://www.googleapis.com/auth/calendar.events";
const VERIFIER = "it-inbound-verifier-0123456789-0123456789-0123";
const CHALLENGE = createHash("sha256").update(VERIFIER).digest("base64url");

interface Answer {
  status: number;
  headers: Headers;
  // deno-lint-ignore no-explicit-any
  json: any;
}

async function call(url: string, init: RequestInit = {}): Promise<Answer> {
  const res = await fetch(url, init);
  const text = await res.text();
  let json: unknown;
  try {
    json = text ? JSON.parse(text) : undefined;
  } catch {
    json = text;
  }
  return { status: res.status, headers: res.headers, json };
}

const jsonInit = (method: string, body?: unknown, headers: Record<string, string> = {}): RequestInit => ({
  method,
  headers: { ...(body === undefined ? {} : { "content-type": "application/json" }), ...headers },
  body: body === undefined ? undefined : JSON.stringify(body),
});

/** One request the receiver got. */
interface Received {
  path: string;
  query: URLSearchParams;
  headers: Headers;
  body: string;
}

/**
 * The webhook receiver: Google paths answer 200 (`/google-flaky` answers 503 once), Graph paths echo
 * validation tokens as text/plain (`/ms-forbidden` answers 403, `/ms-wrong` echoes something else)
 * and answer notifications with 202.
 */
function startReceiver() {
  const got: Received[] = [];
  let flakyLeft = 1;
  const server = Deno.serve({ port: 0, hostname: "127.0.0.1", onListen: () => {} }, async (req) => {
    const url = new URL(req.url);
    const body = await req.text();
    got.push({ path: url.pathname, query: url.searchParams, headers: req.headers, body });
    const token = url.searchParams.get("validationToken");
    if (url.pathname === "/google-flaky" && flakyLeft-- > 0) return new Response(null, { status: 503 });
    if (url.pathname === "/ms-forbidden") return new Response("no", { status: 403 });
    if (token !== null) {
      const echo = url.pathname === "/ms-wrong" ? "something else" : token;
      return new Response(echo, { status: 200, headers: { "content-type": "text/plain; charset=utf-8" } });
    }
    return new Response(null, { status: url.pathname.startsWith("/ms") ? 202 : 200 });
  });
  const base = `http://127.0.0.1:${server.addr.port}`;
  return {
    base,
    /** Requests received since `mark` (an index from {@link count}), optionally for one path. */
    since: (mark: number, path?: string) => got.slice(mark).filter((r) => !path || r.path === path),
    count: () => got.length,
    close: () => server.shutdown(),
  };
}

Deno.test("Google push channels, sync tokens and the inbound admin API", async (t) => {
  const sb = await startSandbox({
    clients: [{ ...G_CLIENT, redirectUris: [REDIRECT] }],
  });
  const rx = startReceiver();
  const admin = async (method: string, path: string, body?: unknown) => {
    const a = await call(`${sb.url}/_admin${path}`, jsonInit(method, body));
    assert.ok(a.status < 300, `admin ${method} ${path} -> ${a.status} ${JSON.stringify(a.json)}`);
    return a.json;
  };
  const flush = () => admin("POST", "/push/flush");
  const login = "dr.push@example.com";
  const { redirect } = await admin("POST", "/authorize", {
    authorizationUrl: `${sb.url}/google/o/oauth2/v2/auth?${new URLSearchParams({
      client_id: G_CLIENT.clientId,
      redirect_uri: REDIRECT,
      response_type: "code",
      scope: G_SCOPE,
      access_type: "offline",
    })}`,
    login,
    decision: "approve",
  });
  const tok = await call(`${sb.url}/google/token`, {
    method: "POST",
    body: new URLSearchParams({
      grant_type: "authorization_code",
      code: new URL(redirect).searchParams.get("code")!,
      redirect_uri: REDIRECT,
      ...{ client_id: G_CLIENT.clientId, client_secret: G_CLIENT.clientSecret },
    }),
  });
  const bearer = { authorization: `Bearer ${tok.json.access_token}` };
  const api = (method: string, path: string, body?: unknown) =>
    call(`${sb.url}/google/calendar/v3${path}`, jsonInit(method, body, bearer));
  const watch = (body: Record<string, unknown>, calendarId = "primary") =>
    api("POST", `/calendars/${encodeURIComponent(calendarId)}/events/watch`, body);
  const insert = async (summary: string, hour = 9) => {
    const a = await api("POST", "/calendars/primary/events", {
      summary,
      start: { dateTime: `2031-03-0${hour % 9 + 1}T${String(hour).padStart(2, "0")}:00:00Z` },
      end: { dateTime: `2031-03-0${hour % 9 + 1}T${String(hour).padStart(2, "0")}:30:00Z` },
    });
    assert.equal(a.status, 200, JSON.stringify(a.json));
    return a.json as { id: string; etag: string };
  };
  const messageNumbers = (rs: Received[]) => rs.map((r) => Number(r.headers.get("x-goog-message-number")));

  try {
    let channel: { id: string; resourceId: string; resourceUri: string; expiration: string; token: string };

    await t.step("watch answers the channel resource and sends the sync notification", async () => {
      const mark = rx.count();
      const before = Date.now();
      const a = await watch({
        id: "chan-0001",
        type: "web_hook",
        address: `${rx.base}/google`,
        token: "target=clinic-42",
        params: { ttl: "3600" },
      });
      assert.equal(a.status, 200, JSON.stringify(a.json));
      channel = a.json;
      assert.deepEqual(Object.keys(a.json), [
        "kind",
        "id",
        "resourceId",
        "resourceUri",
        "token",
        "expiration",
      ]);
      assert.equal(a.json.kind, "api#channel");
      assert.equal(a.json.id, "chan-0001");
      assert.equal(a.json.token, "target=clinic-42");
      assert.equal(typeof a.json.expiration, "string", "int64 is serialized as a string");
      const exp = Number(a.json.expiration);
      assert.ok(exp > before && exp <= Date.now() + 3600_000, "ttl 3600 s is honoured");
      assert.ok(a.json.resourceUri.endsWith(`/calendars/${encodeURIComponent(login)}/events?alt=json`));
      await flush();
      const [sync, ...rest] = rx.since(mark, "/google");
      assert.equal(rest.length, 0);
      assert.equal(sync.body, "");
      assert.equal(sync.headers.get("content-length"), "0");
      assert.match(sync.headers.get("user-agent")!, /^APIs-Google/);
      assert.equal(sync.headers.get("x-goog-channel-id"), "chan-0001");
      assert.equal(sync.headers.get("x-goog-channel-token"), "target=clinic-42");
      assert.equal(sync.headers.get("x-goog-channel-expiration"), new Date(exp).toUTCString());
      assert.equal(sync.headers.get("x-goog-resource-id"), a.json.resourceId);
      assert.equal(sync.headers.get("x-goog-resource-uri"), a.json.resourceUri);
      assert.equal(sync.headers.get("x-goog-resource-state"), "sync");
      assert.equal(sync.headers.get("x-goog-message-number"), "1");
    });

    await t.step("watch refuses what Google refuses", async () => {
      const http = await watch({ id: "chan-http", type: "web_hook", address: "http://example.com/hook" });
      assert.equal(http.status, 400);
      assert.equal(http.json.error.errors[0].reason, "push.webhookUrlNotHttps");
      assert.equal(http.json.error.message, "WebHook callback must be HTTPS: http://example.com/hook");
      const dup = await watch({ id: "chan-0001", type: "web_hook", address: `${rx.base}/google` });
      assert.equal(dup.status, 400);
      assert.equal(dup.json.error.errors[0].reason, "channelIdNotUnique");
      const holiday = await watch(
        { id: "chan-holiday", type: "web_hook", address: `${rx.base}/google` },
        "en.usa#holiday@group.v.calendar.google.com",
      );
      assert.equal(holiday.status, 400);
      assert.equal(holiday.json.error.errors[0].reason, "pushNotSupportedForRequestedResource");
      const noType = await watch({ id: "chan-notype", address: `${rx.base}/google` });
      assert.equal(noType.status, 400);
    });

    await t.step("every change, by the API or by the user, sends an exists notification", async () => {
      const mark = rx.count();
      const ev = await insert("Booked appointment", 9);
      await admin("PATCH", `/accounts/${login}/calendars/primary/events/${ev.id}`, {
        summary: "Moved by the clinician",
        start: { dateTime: "2031-03-01T10:00:00Z" },
        end: { dateTime: "2031-03-01T10:30:00Z" },
      });
      await admin("POST", `/accounts/${login}/calendars/primary/events`, {
        summary: "Dentist",
        start: { date: "2031-03-04" },
        end: { date: "2031-03-05" },
      });
      await admin("DELETE", `/accounts/${login}/calendars/primary/events/${ev.id}`);
      await flush();
      const got = rx.since(mark, "/google");
      assert.equal(got.length, 4);
      for (const r of got) {
        assert.equal(r.headers.get("x-goog-resource-state"), "exists");
        assert.equal(r.headers.get("x-goog-channel-id"), "chan-0001");
        assert.equal(r.body, "");
      }
      const numbers = messageNumbers(got);
      assert.ok(numbers[0] > 1);
      for (let i = 1; i < numbers.length; i++) assert.ok(numbers[i] > numbers[i - 1], `${numbers}`);
      const gone = await api("GET", `/calendars/primary/events/${ev.id}`);
      assert.equal(gone.json.status, "cancelled");
    });

    await t.step("the same calendar watched twice has the same resourceId", async () => {
      const a = await watch({ id: "chan-0002", type: "webhook", address: `${rx.base}/google-2` });
      assert.equal(a.status, 200);
      assert.equal(a.json.resourceId, channel.resourceId);
      assert.equal(a.json.token, undefined, "no token field when none was set");
      await flush();
      const sync = rx.since(0, "/google-2")[0];
      assert.equal(sync.headers.get("x-goog-channel-token"), null);
      assert.ok(
        Number(a.json.expiration) <= Date.now() + 604_800_000,
        "the default ttl is 604800 s",
      );
    });

    await t.step("a sync token returns exactly the changes since, deletions as cancelled", async () => {
      const full = await api("GET", "/calendars/primary/events?showDeleted=true");
      assert.equal(full.status, 200);
      const token = full.json.nextSyncToken;
      assert.ok(token);
      assert.equal(full.json.nextPageToken, undefined);
      const same = await api("GET", `/calendars/primary/events?syncToken=${encodeURIComponent(token)}`);
      assert.deepEqual(same.json.items, []);
      assert.equal(same.json.nextSyncToken, token, "an unchanged calendar keeps its token");

      const kept = await insert("Kept", 11);
      const removed = await insert("Removed", 12);
      await admin("DELETE", `/accounts/${login}/calendars/primary/events/${removed.id}`);
      const edited = await admin("PATCH", `/accounts/${login}/calendars/primary/events/${kept.id}`, {
        summary: "Kept, renamed",
      });
      const inc = await api("GET", `/calendars/primary/events?syncToken=${encodeURIComponent(token)}`);
      assert.equal(inc.status, 200);
      assert.deepEqual(inc.json.items.map((e: { id: string }) => e.id).sort(), [kept.id, removed.id].sort());
      const byId = Object.fromEntries(inc.json.items.map((e: { id: string }) => [e.id, e]));
      assert.equal(byId[kept.id].summary, "Kept, renamed");
      assert.equal(byId[kept.id].etag, edited.etag);
      assert.deepEqual(Object.keys(byId[removed.id]), ["kind", "etag", "id", "status"]);
      assert.equal(byId[removed.id].status, "cancelled");

      // Paging: nextPageToken on every page but the last, nextSyncToken on the last only.
      const pages = [];
      let pageToken: string | undefined;
      do {
        const q = new URLSearchParams({ syncToken: token, maxResults: "1" });
        if (pageToken) q.set("pageToken", pageToken);
        const p = await api("GET", `/calendars/primary/events?${q}`);
        assert.equal(p.status, 200, JSON.stringify(p.json));
        assert.ok(!(p.json.nextPageToken && p.json.nextSyncToken));
        pages.push(p.json);
        pageToken = p.json.nextPageToken;
      } while (pageToken);
      assert.equal(pages.length, 2);
      assert.equal(pages[1].nextSyncToken, inc.json.nextSyncToken);

      await admin("POST", `/accounts/${login}/calendars/primary/sync-tokens/invalidate`);
      const gone = await api("GET", `/calendars/primary/events?syncToken=${encodeURIComponent(token)}`);
      assert.equal(gone.status, 410);
      assert.deepEqual(gone.json.error.errors[0], {
        domain: "calendar",
        reason: "fullSyncRequired",
        message: "Sync token is no longer valid, a full sync is required.",
        locationType: "parameter",
        location: "syncToken",
      });
      const garbage = await api("GET", "/calendars/primary/events?syncToken=not-a-token");
      assert.equal(garbage.status, 410);
    });

    let secondChannelGot = 0;
    await t.step("drop, duplicate and reorder the next notifications", async () => {
      await admin("POST", "/google/channels/chan-0002/expire");
      await flush();
      secondChannelGot = rx.since(0, "/google-2").length;
      let mark = rx.count();
      await admin("POST", "/push/plan", { provider: "google", drop: 1 });
      await insert("Dropped notification", 13);
      await flush();
      assert.equal(rx.since(mark, "/google").length, 0, "a dropped notification never arrives");
      const log = await admin("GET", "/push/deliveries?target=chan-0001");
      assert.equal(log.deliveries.at(-1).outcome, "dropped");
      assert.equal(log.targets["chan-0001"].dropped, 1);

      mark = rx.count();
      await admin("POST", "/push/plan", { provider: "google", duplicate: 1 });
      await insert("Duplicated notification", 14);
      await flush();
      const dup = rx.since(mark, "/google");
      assert.equal(dup.length, 2);
      assert.equal(dup[0].headers.get("x-goog-message-number"), dup[1].headers.get("x-goog-message-number"));

      mark = rx.count();
      await admin("POST", "/push/plan", { provider: "google", reorder: 2 });
      await insert("First change", 15);
      await insert("Second change", 16);
      await flush();
      const numbers = messageNumbers(rx.since(mark, "/google"));
      assert.equal(numbers.length, 2);
      assert.ok(numbers[0] > numbers[1], `delivered out of order: ${numbers}`);
    });

    await t.step("an expired channel sends nothing; 5xx answers are retried", async () => {
      const list = await admin("GET", `/google/channels?email=${login}`);
      const expired = list.channels.find((c: { id: string }) => c.id === "chan-0002");
      assert.equal(expired.state, "expired");
      assert.equal(rx.since(0, "/google-2").length, secondChannelGot, "nothing after its expiry");

      const flaky = await watch({ id: "chan-flaky", type: "web_hook", address: `${rx.base}/google-flaky` });
      assert.equal(flaky.status, 200);
      await flush();
      const attempts = rx.since(0, "/google-flaky");
      assert.equal(attempts.length, 2, "503 then a successful retry");
      assert.equal(attempts[1].headers.get("x-goog-message-number"), "1");
      const log = await admin("GET", "/push/deliveries?target=chan-flaky");
      assert.deepEqual(log.deliveries.map((d: { outcome: string }) => d.outcome), ["retrying", "delivered"]);
    });

    await t.step("channels.stop ends the channel", async () => {
      const wrong = await api("POST", "/channels/stop", { id: channel.id, resourceId: "nope" });
      assert.equal(wrong.status, 404);
      assert.match(wrong.json.error.message, /^Channel 'chan-0001' not found for project '\d+'$/);
      const ok = await fetch(`${sb.url}/google/calendar/v3/channels/stop`, {
        ...jsonInit("POST", { id: channel.id, resourceId: channel.resourceId }, bearer),
      });
      assert.equal(ok.status, 204);
      assert.equal(await ok.text(), "");
      const mark = rx.count();
      await insert("After stop", 17);
      await flush();
      assert.equal(rx.since(mark, "/google").length, 0);
      const again = await api("POST", "/channels/stop", { id: channel.id, resourceId: channel.resourceId });
      assert.equal(again.status, 404);
      const calls = await admin("GET", "/calls");
      assert.ok(calls.byEndpoint["events.watch"] >= 1);
      assert.ok(calls.byEndpoint["channels.stop"] >= 3);
    });
  } finally {
    await sb.close();
    await rx.close();
  }
});

Deno.test("Microsoft subscriptions, change notifications and calendarView/delta", async (t) => {
  const sb = await startSandbox({ microsoftClients: [{ ...MS_CLIENT, redirectUris: [REDIRECT] }] });
  const rx = startReceiver();
  const admin = async (method: string, path: string, body?: unknown) => {
    const a = await call(`${sb.url}/_admin${path}`, jsonInit(method, body));
    assert.ok(a.status < 300, `admin ${method} ${path} -> ${a.status} ${JSON.stringify(a.json)}`);
    return a.json;
  };
  const flush = () => admin("POST", "/push/flush");
  const login = "dr.graph@contoso.example";
  const authUrl = new URL(`${sb.url}/microsoft/common/oauth2/v2.0/authorize`);
  for (
    const [k, v] of Object.entries({
      client_id: MS_CLIENT.clientId,
      redirect_uri: REDIRECT,
      response_type: "code",
      scope: "openid offline_access Calendars.ReadWrite User.Read",
      code_challenge: CHALLENGE,
      code_challenge_method: "S256",
    })
  ) authUrl.searchParams.set(k, v);
  const { redirect } = await admin("POST", "/authorize", {
    authorizationUrl: authUrl.href,
    login,
    decision: "approve",
  });
  const tok = await call(`${sb.url}/microsoft/common/oauth2/v2.0/token`, {
    method: "POST",
    body: new URLSearchParams({
      grant_type: "authorization_code",
      code: new URL(redirect).searchParams.get("code")!,
      redirect_uri: REDIRECT,
      code_verifier: VERIFIER,
      client_id: MS_CLIENT.clientId,
      client_secret: MS_CLIENT.clientSecret,
    }),
  });
  assert.equal(tok.status, 200, JSON.stringify(tok.json));
  const bearer = { authorization: `Bearer ${tok.json.access_token}` };
  const graph = (method: string, path: string, body?: unknown, headers: Record<string, string> = {}) =>
    call(
      path.startsWith("http") ? path : `${sb.url}/microsoft/graph/v1.0${path}`,
      jsonInit(method, body, { ...bearer, ...headers }),
    );
  const account = await admin("GET", `/microsoft/accounts/${login}`);
  const inHours = (h: number) => new Date(Date.now() + h * 3600_000).toISOString();
  const subscribe = (body: Record<string, unknown>) =>
    graph("POST", "/subscriptions", {
      changeType: "created,updated,deleted",
      notificationUrl: `${rx.base}/ms-notify?tenant=clinic`,
      resource: "me/events",
      expirationDateTime: inHours(24),
      clientState: "secret-42",
      ...body,
    });
  const createEvent = async (subject: string, day: number, hour = 9) => {
    const a = await graph("POST", "/me/events", {
      subject,
      start: {
        dateTime: `2031-05-${String(day).padStart(2, "0")}T${String(hour).padStart(2, "0")}:00:00`,
        timeZone: "UTC",
      },
      end: {
        dateTime: `2031-05-${String(day).padStart(2, "0")}T${String(hour).padStart(2, "0")}:30:00`,
        timeZone: "UTC",
      },
    });
    assert.equal(a.status, 201, JSON.stringify(a.json));
    return a.json as { id: string; changeKey: string };
  };
  const notifications = (rs: Received[]) => rs.flatMap((r) => JSON.parse(r.body).value);

  try {
    let sub: { id: string; expirationDateTime: string };

    await t.step("POST /subscriptions validates both URLs, then answers 201", async () => {
      const mark = rx.count();
      const a = await subscribe({ lifecycleNotificationUrl: `${rx.base}/ms-lifecycle` });
      assert.equal(a.status, 201, JSON.stringify(a.json));
      sub = a.json;
      assert.equal(
        a.json["@odata.context"],
        "https://graph.microsoft.com/v1.0/$metadata#subscriptions/$entity",
      );
      assert.equal(a.json.resource, "me/events");
      assert.equal(a.json.applicationId, MS_CLIENT.clientId);
      assert.equal(a.json.creatorId, account.oid);
      assert.equal(a.json.clientState, "secret-42");
      assert.equal(a.json.lifecycleNotificationUrl, `${rx.base}/ms-lifecycle`);
      assert.match(a.json.expirationDateTime, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{7}Z$/);
      const [notify, lifecycle, ...rest] = rx.since(mark);
      assert.equal(rest.length, 0);
      assert.equal(notify.path, "/ms-notify");
      assert.equal(notify.query.get("tenant"), "clinic", "the URL's own query is kept");
      assert.match(
        notify.query.get("validationToken")!,
        /^Validation: Testing client application reachability/,
      );
      assert.equal(notify.headers.get("content-type"), "text/plain; charset=utf-8");
      assert.equal(lifecycle.path, "/ms-lifecycle");
      assert.ok(lifecycle.query.get("validationToken"));
    });

    await t.step("failed validation and bad requests answer Graph's 400s", async () => {
      const forbidden = await subscribe({ notificationUrl: `${rx.base}/ms-forbidden` });
      assert.equal(forbidden.status, 400);
      assert.equal(forbidden.json.error.code, "ValidationError");
      assert.match(forbidden.json.error.message, /must respond with 200 OK to validation request/);
      const wrong = await subscribe({ notificationUrl: `${rx.base}/ms-wrong` });
      assert.equal(wrong.status, 400);
      assert.equal(wrong.json.error.code, "ValidationError");
      const badLifecycle = await subscribe({ lifecycleNotificationUrl: `${rx.base}/ms-forbidden` });
      assert.equal(badLifecycle.status, 400, "the lifecycle URL is validated too");
      const tooLong = await subscribe({ expirationDateTime: inHours(24 * 7 + 1) });
      assert.equal(tooLong.status, 400);
      assert.equal(
        tooLong.json.error.message,
        "Subscription expiration can only be 10080 minutes in the future.",
      );
      const http = await subscribe({ notificationUrl: "http://example.com/hook" });
      assert.equal(http.status, 400);
      const longState = await subscribe({ clientState: "x".repeat(129) });
      assert.equal(longState.status, 400);
      const list = await graph("GET", "/subscriptions");
      assert.deepEqual(list.json.value.map((s: { id: string }) => s.id), [sub.id], "failures create nothing");
    });

    await t.step("changes POST batched notifications with Graph's body", async () => {
      const deletesOnly = await subscribe({ changeType: "deleted", clientState: "deletes" });
      assert.equal(deletesOnly.status, 201);
      const mark = rx.count();
      const ev = await createEvent("Booked", 3);
      const patched = await graph("PATCH", `/me/events/${ev.id}`, { subject: "Booked, renamed" });
      assert.equal(patched.status, 200);
      const userEdit = await admin(
        "PATCH",
        `/microsoft/accounts/${login}/calendars/default/events/${ev.id}`,
        {
          start: { dateTime: "2031-05-03T11:00:00", timeZone: "UTC" },
          end: { dateTime: "2031-05-03T11:30:00", timeZone: "UTC" },
        },
      );
      const del = await graph("DELETE", `/me/events/${ev.id}`);
      assert.equal(del.status, 204);
      await flush();
      const posts = rx.since(mark, "/ms-notify");
      assert.equal(posts.length, 4, "one POST per change");
      for (const p of posts) assert.match(p.headers.get("content-type")!, /^application\/json/);
      const all = notifications(posts);
      assert.deepEqual(all.map((n) => n.changeType), ["created", "updated", "updated", "deleted", "deleted"]);
      const batch = JSON.parse(posts[3].body).value;
      assert.deepEqual(
        batch.map((n: { subscriptionId: string }) => n.subscriptionId).sort(),
        [
          sub.id,
          deletesOnly.json.id,
        ].sort(),
      );
      const [first] = all;
      assert.deepEqual(Object.keys(first), [
        "id",
        "subscriptionId",
        "subscriptionExpirationDateTime",
        "clientState",
        "changeType",
        "resource",
        "tenantId",
        "resourceData",
      ]);
      assert.equal(first.subscriptionId, sub.id);
      assert.equal(first.subscriptionExpirationDateTime, sub.expirationDateTime);
      assert.equal(first.clientState, "secret-42");
      assert.equal(first.tenantId, account.tenantId);
      assert.equal(first.resource, `Users/${account.oid}/Events/${ev.id}`);
      assert.deepEqual(first.resourceData, {
        "@odata.type": "#Microsoft.Graph.Event",
        "@odata.id": `Users/${account.oid}/Events/${ev.id}`,
        "@odata.etag": `W/"${ev.changeKey}"`,
        id: ev.id,
      });
      assert.equal(all[2].resourceData["@odata.etag"], userEdit["@odata.etag"], "the user's edit");
      const del2 = await graph("DELETE", `/subscriptions/${deletesOnly.json.id}`);
      assert.equal(del2.status, 204);
    });

    await t.step("calendarView/delta: pages, deltaLink, then exactly the changes", async () => {
      const window = "startDateTime=2031-05-01T00:00:00Z&endDateTime=2031-06-01T00:00:00Z";
      const missing = await graph("GET", "/me/calendarView/delta?startDateTime=2031-05-01T00:00:00Z");
      assert.equal(missing.status, 400);
      assert.equal(missing.json.error.code, "ErrorInvalidParameter");
      const a = await createEvent("A", 5);
      const b = await createEvent("B", 6);
      const c = await createEvent("C", 7);
      const outside = await createEvent("Outside", 7);
      await admin("PATCH", `/microsoft/accounts/${login}/calendars/default/events/${outside.id}`, {
        start: { dateTime: "2031-07-01T09:00:00", timeZone: "UTC" },
        end: { dateTime: "2031-07-01T10:00:00", timeZone: "UTC" },
      });
      const prefer = { prefer: "odata.maxpagesize=2" };
      let page = await graph("GET", `/me/calendarView/delta?${window}`, undefined, prefer);
      const seen: string[] = [];
      let pages = 0;
      while (true) {
        assert.equal(page.status, 200, JSON.stringify(page.json));
        assert.match(page.headers.get("preference-applied")!, /odata\.track-changes/);
        pages++;
        seen.push(...page.json.value.map((e: { id: string }) => e.id));
        if (!page.json["@odata.nextLink"]) break;
        assert.equal(page.json["@odata.deltaLink"], undefined);
        assert.match(page.json["@odata.nextLink"], /\/me\/calendarView\/delta\?\$skiptoken=/);
        page = await graph("GET", page.json["@odata.nextLink"], undefined, prefer);
      }
      assert.equal(pages, 2);
      assert.deepEqual(seen.sort(), [a.id, b.id, c.id].sort(), "live events inside the window only");
      let deltaLink: string = page.json["@odata.deltaLink"];
      assert.match(deltaLink, /\/me\/calendarView\/delta\?\$deltatoken=/);

      const none = await graph("GET", deltaLink);
      assert.deepEqual(none.json.value, []);
      deltaLink = none.json["@odata.deltaLink"];

      const d = await createEvent("D", 8);
      await graph("PATCH", `/me/events/${a.id}`, { subject: "A, renamed" });
      await graph("DELETE", `/me/events/${b.id}`);
      await admin("PATCH", `/microsoft/accounts/${login}/calendars/default/events/${c.id}`, {
        start: { dateTime: "2031-08-01T09:00:00", timeZone: "UTC" },
        end: { dateTime: "2031-08-01T10:00:00", timeZone: "UTC" },
      });
      const shortLived = await createEvent("Created then deleted", 9);
      await graph("DELETE", `/me/events/${shortLived.id}`);
      const round = await graph("GET", deltaLink);
      assert.equal(round.status, 200);
      const byId = Object.fromEntries(round.json.value.map((e: { id: string }) => [e.id, e]));
      assert.deepEqual(Object.keys(byId).sort(), [a.id, b.id, c.id, d.id].sort());
      assert.equal(byId[a.id].subject, "A, renamed");
      assert.equal(byId[d.id].subject, "D");
      assert.deepEqual(byId[b.id], {
        "@odata.type": "#microsoft.graph.event",
        id: b.id,
        "@removed": { reason: "deleted" },
      });
      assert.deepEqual(byId[c.id]["@removed"], { reason: "deleted" }, "moved out of the window");
      const next: string = round.json["@odata.deltaLink"];

      await admin("POST", `/microsoft/accounts/${login}/calendars/default/delta/expire`);
      const expired = await graph("GET", next);
      assert.equal(expired.status, 410);
      assert.equal(expired.json.error.code, "SyncStateNotFound");
      assert.match(expired.json.error.message, /^The sync state generation is not found; generation=/);
      const garbage = await graph("GET", "/me/calendarView/delta?$deltatoken=garbage");
      assert.equal(garbage.status, 410);
      const restart = await graph(
        "GET",
        `/me/calendars/${account.calendars[0].id}/calendarView/delta?${window}`,
      );
      assert.equal(restart.status, 200, "a new initial round works after 410");
    });

    await t.step("renewal validates again; lifecycleNotificationUrl cannot be patched", async () => {
      await flush();
      const mark = rx.count();
      const newExp = inHours(48);
      const renewed = await graph("PATCH", `/subscriptions/${sub.id}`, { expirationDateTime: newExp });
      assert.equal(renewed.status, 200, JSON.stringify(renewed.json));
      assert.equal(Date.parse(renewed.json.expirationDateTime), Date.parse(newExp));
      assert.equal(rx.since(mark, "/ms-notify").length, 1);
      assert.ok(rx.since(mark, "/ms-notify")[0].query.get("validationToken"));
      const lifecyclePatch = await graph("PATCH", `/subscriptions/${sub.id}`, {
        lifecycleNotificationUrl: `${rx.base}/ms-lifecycle-2`,
      });
      assert.equal(lifecyclePatch.status, 400);
      const tooLong = await graph("PATCH", `/subscriptions/${sub.id}`, { expirationDateTime: inHours(200) });
      assert.equal(tooLong.status, 400);
    });

    await t.step("drop and duplicate change notifications", async () => {
      let mark = rx.count();
      await admin("POST", "/push/plan", { provider: "microsoft", drop: 1 });
      await createEvent("Dropped", 10);
      await flush();
      assert.equal(rx.since(mark, "/ms-notify").length, 0);
      mark = rx.count();
      await admin("POST", "/push/plan", { provider: "microsoft", duplicate: 1 });
      await createEvent("Duplicated", 11);
      await flush();
      const dup = rx.since(mark, "/ms-notify");
      assert.equal(dup.length, 2);
      assert.equal(dup[0].body, dup[1].body);
      const listed = await admin("GET", `/microsoft/subscriptions?email=${login}`);
      const mine = listed.subscriptions.find((s: { id: string }) => s.id === sub.id);
      assert.equal(mine.notifications.dropped, 1);
    });

    await t.step("lifecycle notifications, expiry and removal", async () => {
      let mark = rx.count();
      const sent = await admin("POST", `/microsoft/subscriptions/${sub.id}/lifecycle`, {
        lifecycleEvent: "reauthorizationRequired",
      });
      assert.equal(sent.sent, true);
      await flush();
      const [reauth] = rx.since(mark, "/ms-lifecycle");
      const body = JSON.parse(reauth.body);
      assert.deepEqual(Object.keys(body.value[0]), [
        "subscriptionId",
        "subscriptionExpirationDateTime",
        "tenantId",
        "clientState",
        "lifecycleEvent",
      ]);
      assert.equal(body.value[0].lifecycleEvent, "reauthorizationRequired");
      assert.equal(body.value[0].clientState, "secret-42");
      const reauthorize = await graph("POST", `/subscriptions/${sub.id}/reauthorize`);
      assert.equal(reauthorize.status, 204);

      mark = rx.count();
      await admin("POST", `/microsoft/subscriptions/${sub.id}/lifecycle`, {
        lifecycleEvent: "subscriptionRemoved",
      });
      await createEvent("After removal", 12);
      await flush();
      assert.equal(rx.since(mark, "/ms-lifecycle").length, 1);
      assert.equal(rx.since(mark, "/ms-notify").length, 0, "a removed subscription notifies nothing");
      const gone = await graph("GET", `/subscriptions/${sub.id}`);
      assert.equal(gone.status, 404);

      const other = await subscribe({});
      assert.equal(other.status, 201);
      await admin("POST", `/microsoft/subscriptions/${other.json.id}/expire`);
      mark = rx.count();
      await createEvent("After expiry", 13);
      await flush();
      assert.equal(rx.since(mark, "/ms-notify").length, 0);
      const renew = await graph("PATCH", `/subscriptions/${other.json.id}`, {
        expirationDateTime: inHours(1),
      });
      assert.equal(renew.status, 404, "Graph deletes expired subscriptions");
      const list = await graph("GET", "/subscriptions");
      assert.deepEqual(list.json.value, []);
    });
  } finally {
    await sb.close();
    await rx.close();
  }
});
