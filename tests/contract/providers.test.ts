/**
 * The provider contract: the same cases, through the provider interface
 * (supabase/functions/_shared/providers/types.ts, from `providerFor`), against the Google and the
 * Microsoft sandbox (dev/sandbox). Connect (PKCE, state, deny), single-flight refresh through the
 * product's connection code on a real database (with Microsoft's rotation), calendar lists with
 * paging, busy times, idempotent writes that survive a lost answer, throttling and revoked grants.
 * What differs between the sandboxes' admin APIs is in ./fixtures.ts; what differs between the
 * providers is read from their declared capabilities, and both branches are asserted.
 */
import assert from "node:assert/strict";
import {
  findConnection,
  requireConnection,
  withAccessToken,
} from "../../supabase/functions/_shared/connections.ts";
import { connectionTokenBinding, decryptToken } from "../../supabase/functions/_shared/crypto.ts";
import { DomainError } from "../../supabase/functions/_shared/errors/domain-error.ts";
import { httpAnswerFor } from "../../supabase/functions/_shared/errors/http-answers.ts";
import { providerFor } from "../../supabase/functions/_shared/providers/registry.ts";
import {
  type ChangesPage,
  type EventWrite,
  type ExternalEvent,
  ProviderError,
  WRITABLE_ACCESS_ROLES,
} from "../../supabase/functions/_shared/providers/types.ts";
import { retryDelayMs } from "../../supabase/functions/_shared/sync/backoff.ts";
import { decideFailure } from "../../supabase/functions/_shared/sync/failures.ts";
import { DEFAULT_WORKER_OPTIONS } from "../../supabase/functions/_shared/sync/options.ts";
import { rejectedWith } from "../support/assertions.ts";
import { FIXTURES, type ProviderFixture } from "./fixtures.ts";
import { startReceiver } from "./receiver.ts";
import { startWorld, type World } from "./world.ts";

/** Run `fn` in a fresh world for `fixture`, closed afterwards whatever happens. */
async function inWorld(
  fixture: ProviderFixture,
  o: Parameters<typeof startWorld>[1],
  fn: (w: World) => Promise<void>,
): Promise<void> {
  const w = await startWorld(fixture, o);
  try {
    await fn(w);
  } finally {
    await w.close();
  }
}

/** The stored (decrypted) refresh token of a connection. */
async function storedRefreshToken(w: World, connectionId: string): Promise<string> {
  const [row] = await w.sql!`select tenant_id, staff_id, provider, refresh_token_encrypted
    from public.staff_calendar_connections where id = ${connectionId}`;
  assert.ok(row?.refresh_token_encrypted, "a refresh token is stored");
  return await decryptToken(
    row.refresh_token_encrypted,
    connectionTokenBinding(row as { tenant_id: string; staff_id: string; provider: string }, "refresh_token"),
    w.config.encryption,
  );
}

/** Make the stored access token due for refresh, as time passing would. */
async function expireStoredToken(w: World, connectionId: string): Promise<void> {
  await w.sql!`update public.staff_calendar_connections
    set token_expires_at = now() - interval '1 minute' where id = ${connectionId}`;
}

const iso = (ms: number) => new Date(ms).toISOString().replace(".000Z", "Z");

for (const f of FIXTURES) {
  const name = (what: string) => `contract[${f.id}]: ${what}`;

  Deno.test(
    name(
      "connect: consent URL with PKCE S256 and state, approve -> tokens and account, deny -> access_denied",
    ),
    () =>
      inWorld(f, {}, async (w) => {
        const email = f.email("connect");
        await f.createAccount(w.sb, email);
        const flow = await w.startConsent(email);
        const q = flow.url.searchParams;
        assert.equal(q.get("response_type"), "code");
        assert.equal(q.get("code_challenge_method"), "S256");
        assert.equal(q.get("code_challenge"), flow.challenge);
        assert.ok(!flow.url.href.includes(flow.verifier), "the PKCE verifier never leaves the app");
        assert.equal(q.get("state"), flow.state);
        assert.equal(q.get("nonce"), flow.nonce);
        assert.equal(q.get("redirect_uri"), w.config[f.id]!.redirectUri);
        assert.equal(q.get("login_hint"), email);
        assert.ok(f.asksOfflineAccess(flow.url), `offline access is asked for: ${flow.url}`);

        const callback = await w.decide(flow, email, "approve");
        assert.equal(callback.searchParams.get("state"), flow.state);
        assert.ok(callback.searchParams.get("code"));
        assert.ok(w.provider.issuerMatches(callback));
        const tokens = await w.provider.exchangeCode(w.exchangeOf(flow, callback));
        assert.ok(tokens.accessToken);
        assert.ok(tokens.refreshToken, "offline consent yields a refresh token");
        assert.ok(tokens.expiresAt.getTime() > Date.now());
        assert.equal(tokens.accountEmail, email, "the verified ID token names the account");
        assert.ok(tokens.accountSubject);
        assert.deepEqual(w.provider.missingScopes(tokens.scopes), []);
        assert.ok((await w.provider.listCalendars(tokens.accessToken)).some((c) => c.primary));

        const reused = await rejectedWith(
          ProviderError,
          w.provider.exchangeCode(w.exchangeOf(flow, callback)),
        );
        assert.equal(reused.kind, "auth", "an authorization code is single use");
        assert.equal(reused.details.reason, "invalid_grant");

        // A callback carrying another flow's state is refused before any token request.
        const first = await w.startConsent(email);
        const other = await w.startConsent(email);
        const crossed = await rejectedWith(
          ProviderError,
          w.provider.exchangeCode(w.exchangeOf(other, await w.decide(first, email, "approve"))),
        );
        assert.equal(crossed.kind, "invalid");

        const denied = await w.startConsent(email);
        const back = await w.decide(denied, email, "deny");
        assert.equal(back.searchParams.get("error"), "access_denied");
        assert.equal(back.searchParams.get("state"), denied.state);
        assert.equal(back.searchParams.get("code"), null);
        assert.ok(w.provider.issuerMatches(back));
        const err = await rejectedWith(ProviderError, w.provider.exchangeCode(w.exchangeOf(denied, back)));
        assert.equal(err.kind, "auth");
        assert.equal(err.details.reason, "access_denied");
      }),
  );

  Deno.test(
    name("refresh: 20 parallel callers with an expired token cause exactly one refresh; rotation is kept"),
    () =>
      inWorld(f, { database: true }, async (w) => {
        const sql = w.sql!;
        const email = f.email("refresh");
        await f.createAccount(w.sb, email);
        const tokens = await w.connect(email);
        const { tenantId, staffId, connectionId } = await w.storeConnection(tokens);
        const owner = { tenantId, staffId };
        const deps = { sql, config: w.config, provider: w.provider };
        /** What a request does: read the connection, then ask for a usable access token. */
        const caller = async () =>
          await withAccessToken(deps, await requireConnection(sql, owner, f.id), (token) =>
            Promise.resolve(token));

        await expireStoredToken(w, connectionId);
        await w.sb.resetCalls();
        const got = await Promise.all(Array.from({ length: 20 }, caller));
        assert.equal((await w.sb.calls()).byEndpoint[f.endpoints.refresh], 1, "one refresh at the provider");
        assert.equal(new Set(got).size, 1, "every caller got the same fresh token");
        assert.notEqual(got[0], tokens.accessToken);
        assert.ok((await w.provider.listCalendars(got[0])).length > 0, "the refreshed token works");
        const conn = await findConnection(sql, owner, f.id);
        assert.ok(conn!.token_expires_at!.getTime() > Date.now(), "the new expiry is stored");

        const stored = await storedRefreshToken(w, connectionId);
        if (w.provider.capabilities.refreshTokenRotation) {
          assert.notEqual(stored, tokens.refreshToken, "the rotated refresh token replaced the old one");
        } else {
          assert.equal(stored, tokens.refreshToken, "a provider that does not rotate keeps the same token");
        }
        assert.deepEqual(await f.grantCounters(w.sb, email), { refreshCount: 1, reuseCount: 0 });

        // The next refresh uses what was stored: with rotation, only the newest token works (the
        // sandbox refuses a rotated-away one and counts it), so this passing proves it was kept.
        await expireStoredToken(w, connectionId);
        const again = await Promise.all(Array.from({ length: 5 }, caller));
        assert.equal(new Set(again).size, 1);
        assert.notEqual(again[0], got[0]);
        assert.deepEqual(await f.grantCounters(w.sb, email), { refreshCount: 2, reuseCount: 0 });
        assert.equal((await findConnection(sql, owner, f.id))!.connection_status, "connected");

        if (w.provider.capabilities.refreshTokenRotation) {
          // The check above can fail: a reused (rotated-away) token is refused and counted.
          const reuse = await rejectedWith(ProviderError, w.provider.refresh(tokens.refreshToken!));
          assert.equal(reuse.kind, "auth");
          assert.equal((await f.grantCounters(w.sb, email)).reuseCount, 1);
        } else {
          const same = await w.provider.refresh(tokens.refreshToken!);
          assert.equal(same.refreshToken, undefined, "no new refresh token without rotation");
        }
      }),
  );

  Deno.test(
    name("list calendars: every page, the default flagged primary, access roles"),
    () =>
      inWorld(f, {}, async (w) => {
        const email = f.email("list");
        // More than one page of the provider's page size (Google 250, Microsoft 50).
        const extra = 260;
        await f.createAccount(w.sb, email, extra);
        const { accessToken } = await w.connect(email);
        await w.sb.resetCalls();
        const calendars = await w.provider.listCalendars(accessToken);
        assert.ok((await w.sb.calls()).byEndpoint[f.endpoints.listCalendars] >= 2, "the list was paged");
        assert.equal(new Set(calendars.map((c) => c.id)).size, calendars.length, "no calendar twice");
        const shared = calendars.filter((c) => /^Shared \d+$/.test(c.summary));
        assert.equal(shared.length, extra);
        assert.ok(shared.every((c) => WRITABLE_ACCESS_ROLES.includes(c.access_role) && !c.primary));
        const primary = calendars.filter((c) => c.primary);
        assert.equal(primary.length, 1, "exactly one default calendar");
        assert.ok(WRITABLE_ACCESS_ROLES.includes(primary[0].access_role));
        assert.ok(calendars.some((c) => c.access_role === "reader"), "read-only calendars are readers");

        const live = await w.provider.getCalendar(accessToken, "primary");
        assert.equal(live.id, primary[0].id);
        assert.equal(live.primary, true);
        assert.equal(
          (await w.provider.getCalendar(accessToken, shared[0].id)).access_role,
          shared[0].access_role,
        );
        const missing = await rejectedWith(
          ProviderError,
          w.provider.getCalendar(accessToken, "nope@example.com"),
        );
        assert.equal(missing.kind, "not_found");
        assert.equal(missing.details.resource, "calendar");
      }),
  );

  Deno.test(
    name("busy: all-day and multi-day events, merged and clipped; per-calendar errors throw"),
    () =>
      inWorld(f, {}, async (w) => {
        const email = f.email("busy");
        await f.createAccount(w.sb, email);
        const { accessToken } = await w.connect(email);
        for (
          const item of [
            { allDay: { from: "2026-03-10", to: "2026-03-11" } },
            { start: "2026-03-12T15:00:00Z", end: "2026-03-14T10:00:00Z" },
            // Overlapping, then touching: one interval.
            { start: "2026-03-20T09:00:00Z", end: "2026-03-20T10:00:00Z" },
            { start: "2026-03-20T09:30:00Z", end: "2026-03-20T11:00:00Z" },
            { start: "2026-03-20T11:00:00Z", end: "2026-03-20T11:30:00Z" },
            // Free time is not busy.
            { start: "2026-03-25T09:00:00Z", end: "2026-03-25T10:00:00Z", free: true },
            // Runs past the end of the range: clipped.
            { start: "2026-03-30T20:00:00Z", end: "2026-04-02T00:00:00Z" },
          ]
        ) await f.addBusy(w.sb, email, item);
        const expected = [
          { start: "2026-03-10T00:00:00Z", end: "2026-03-11T00:00:00Z" },
          { start: "2026-03-12T15:00:00Z", end: "2026-03-14T10:00:00Z" },
          { start: "2026-03-20T09:00:00Z", end: "2026-03-20T11:30:00Z" },
          { start: "2026-03-30T20:00:00Z", end: "2026-03-31T00:00:00Z" },
        ];
        const range = { timeMin: "2026-03-01T00:00:00Z", timeMax: "2026-03-31T00:00:00Z" };
        assert.deepEqual(
          await w.provider.busy(accessToken, { calendarIds: ["primary"], ...range }),
          expected,
        );
        const primaryId = (await w.provider.getCalendar(accessToken, "primary")).id;
        assert.deepEqual(
          await w.provider.busy(accessToken, { calendarIds: [primaryId], ...range }),
          expected,
          "the default calendar by its own id",
        );
        // Half a year with an offset: longer than one provider query allows, so it is chunked.
        await w.sb.resetCalls();
        assert.deepEqual(
          await w.provider.busy(accessToken, {
            calendarIds: ["primary"],
            timeMin: "2026-01-01T00:00:00-05:00",
            timeMax: "2026-07-01T00:00:00-05:00",
          }),
          [...expected.slice(0, 3), { start: "2026-03-30T20:00:00Z", end: "2026-04-02T00:00:00Z" }],
        );
        assert.ok((await w.sb.calls()).byEndpoint[f.endpoints.busy] >= 3, "the range was split");

        await f.setBusyError(w.sb, email, true);
        const failed = await rejectedWith(
          ProviderError,
          w.provider.busy(accessToken, { calendarIds: ["primary"], ...range }),
        );
        assert.equal(failed.kind, f.busyErrorKind, "a calendar that cannot be read is an error, not free");
        await f.setBusyError(w.sb, email, false);
        assert.equal((await w.provider.busy(accessToken, { calendarIds: ["primary"], ...range })).length, 4);

        const unknown = await rejectedWith(
          ProviderError,
          w.provider.busy(accessToken, { calendarIds: ["nobody@example.com"], ...range }),
        );
        assert.equal(unknown.kind, "not_found", "an unknown calendar is never free");
      }),
  );

  Deno.test(
    name("writes: create survives a lost answer without a duplicate, patch, find, delete twice"),
    () =>
      inWorld(f, {}, async (w) => {
        const email = f.email("writes");
        await f.createAccount(w.sb, email);
        const { accessToken } = await w.connect(email);
        const impatient = providerFor(f.id, w.config, { timeoutMs: 500 });
        const live = async () => (await f.events(w.sb, email)).filter((e) => e.live);
        /** The write happens at the provider, but its answer never arrives. */
        const loseNextCreate = () =>
          w.sb.fault({
            match: { endpoint: f.endpoints.createEvent },
            response: { timeout: true, executed: true, hangMs: 5_000 },
          });
        const write: EventWrite = {
          calendarId: "primary",
          appointmentId: crypto.randomUUID(),
          start: "2026-04-06T09:00:00-04:00",
          end: "2026-04-06T09:50:00-04:00",
          title: "Appointment",
          timeZone: "America/New_York",
        };

        await loseNextCreate();
        const lost = await rejectedWith(ProviderError, impatient.upsertEvent(accessToken, write));
        assert.equal(lost.kind, "transient");
        const [made, ...more] = await live();
        assert.deepEqual(more, [], "the lost create made one event");
        assert.equal(made.start, Date.parse("2026-04-06T13:00:00Z"));

        // The engine retries the same write: the event it made is found, not made again.
        const retried = await w.provider.upsertEvent(accessToken, write);
        assert.equal(retried.eventId, made.id);
        const twice = await w.provider.upsertEvent(accessToken, write);
        assert.equal(twice.eventId, made.id);
        assert.deepEqual((await live()).map((e) => e.id), [made.id], "one event after three writes");

        const moved = await w.provider.upsertEvent(accessToken, {
          ...write,
          eventId: made.id,
          start: "2026-04-06T11:00:00-04:00",
          end: "2026-04-06T11:50:00-04:00",
        });
        assert.equal(moved.operation, "updated");
        assert.equal(moved.eventId, made.id);
        assert.deepEqual(
          (await live()).map((e) => [e.id, iso(e.start), iso(e.end)]),
          [[made.id, "2026-04-06T15:00:00Z", "2026-04-06T15:50:00Z"]],
        );

        const ref = { calendarId: "primary", appointmentId: write.appointmentId };
        assert.equal(
          await w.provider.findAppointmentEvent(accessToken, { ...ref, eventId: made.id }),
          made.id,
        );
        // Without a stored id, as the provider declares it.
        assert.equal(
          await w.provider.findAppointmentEvent(accessToken, ref),
          w.provider.capabilities.eventLookupByAppointment ? made.id : null,
        );

        await w.provider.deleteEvent(accessToken, { calendarId: "primary", eventId: made.id });
        assert.deepEqual(await live(), []);
        await w.provider.deleteEvent(accessToken, { calendarId: "primary", eventId: made.id });
        await w.provider.deleteAppointmentEvent(accessToken, { ...ref, eventId: made.id });
        assert.equal(await w.provider.findAppointmentEvent(accessToken, { ...ref, eventId: made.id }), null);
        assert.equal(await w.provider.findAppointmentEvent(accessToken, ref), null);

        // A create whose answer was lost, then the appointment is cancelled: the delete finds it
        // without an event id.
        const cancelled = { ...write, appointmentId: crypto.randomUUID() };
        await loseNextCreate();
        await rejectedWith(ProviderError, impatient.upsertEvent(accessToken, cancelled));
        assert.equal((await live()).length, 1);
        const cancelledRef = { calendarId: "primary", appointmentId: cancelled.appointmentId };
        await w.provider.deleteAppointmentEvent(accessToken, cancelledRef);
        assert.deepEqual(await live(), []);
        await w.provider.deleteAppointmentEvent(accessToken, cancelledRef);
        assert.deepEqual(await live(), [], "deleting what is gone is success and leaves nothing");
      }),
  );

  Deno.test(
    name("throttling: 429 and rate-limit answers are rate_limited with the provider's retry time"),
    () =>
      inWorld(f, {}, async (w) => {
        const email = f.email("throttle");
        await f.createAccount(w.sb, email);
        let tokens = await w.connect(email);
        const calls = {
          listCalendars: () => w.provider.listCalendars(tokens.accessToken),
          busy: () =>
            w.provider.busy(tokens.accessToken, {
              calendarIds: ["primary"],
              timeMin: "2026-03-01T00:00:00Z",
              timeMax: "2026-03-02T00:00:00Z",
            }),
          refresh: async () => {
            const fresh = await w.provider.refresh(tokens.refreshToken!);
            tokens = { ...fresh, refreshToken: fresh.refreshToken ?? tokens.refreshToken };
          },
          upsertEvent: () =>
            w.provider.upsertEvent(tokens.accessToken, {
              calendarId: "primary",
              appointmentId: crypto.randomUUID(),
              start: "2026-03-01T09:00:00Z",
              end: "2026-03-01T10:00:00Z",
              title: "Appointment",
            }),
        };
        for (const c of f.throttles) {
          await w.sb.fault(c.fault);
          const err = await rejectedWith(ProviderError, calls[c.call]());
          assert.equal(err.kind, "rate_limited", `${c.label}: ${err.message}`);
          assert.equal(err.details.retryAfterMs, c.retryAfterMs, c.label);
          if (c.reason) assert.equal(err.details.reason, c.reason, c.label);
          // Honoured: the sync engine retries no sooner than asked, the API tells the app the same.
          const decision = decideFailure(err);
          assert.deepEqual(
            decision.decision === "retry" && [decision.code, decision.retryAfterMs, decision.rateLimited],
            ["rate_limited", c.retryAfterMs, true],
            c.label,
          );
          const policy = {
            baseMs: DEFAULT_WORKER_OPTIONS.backoffBaseMs,
            capMs: DEFAULT_WORKER_OPTIONS.backoffCapMs,
            retryAfterMaxMs: DEFAULT_WORKER_OPTIONS.retryAfterMaxMs,
          };
          assert.equal(retryDelayMs(1, policy, c.retryAfterMs, () => 0), c.retryAfterMs, c.label);
          const answer = httpAnswerFor(err);
          assert.equal(answer.status, 429);
          assert.equal(answer.headers["retry-after"], String(c.retryAfterMs / 1000));
          // The fault was a one-off: the same call goes through now.
          await calls[c.call]();
        }
      }),
  );

  Deno.test(
    name("revoked grant: the refresh is refused as auth and the connection needs reconnecting"),
    () =>
      inWorld(f, { database: true }, async (w) => {
        const sql = w.sql!;
        const deps = { sql, config: w.config, provider: w.provider };
        for (const revocation of f.revocations) {
          // Two connections: one whose stored token is due (refresh first), one whose token the
          // provider now refuses (401, then the refresh).
          for (const path of ["expired", "refused"] as const) {
            const label = `${revocation.label}, ${path} access token`;
            const email = f.email("revoked");
            await f.createAccount(w.sb, email);
            const tokens = await w.connect(email);
            const { tenantId, staffId, connectionId } = await w.storeConnection(tokens);
            const owner = { tenantId, staffId };
            await revocation.revoke(w.sb, email);

            const direct = await rejectedWith(ProviderError, w.provider.refresh(tokens.refreshToken!));
            assert.equal(direct.kind, "auth", label);
            assert.equal(direct.details.reason, revocation.reason, label);
            assert.ok(!direct.message.includes(tokens.refreshToken!), "no token in messages");
            assert.equal(
              (await rejectedWith(ProviderError, w.provider.listCalendars(tokens.accessToken))).kind,
              "auth",
              label,
            );

            if (path === "expired") await expireStoredToken(w, connectionId);
            const conn = await requireConnection(sql, owner, f.id);
            const err = await rejectedWith(
              DomainError,
              withAccessToken(deps, conn, (token) => w.provider.listCalendars(token)),
            );
            assert.equal(err.code, "needs_reconnect", label);
            const [row] = await sql`select connection_status, last_error
              from public.staff_calendar_connections where id = ${connectionId}`;
            assert.equal(row.connection_status, "needs_reconnect", label);
            assert.match(row.last_error, new RegExp(revocation.reason), label);
            const next = await rejectedWith(DomainError, requireConnection(sql, owner, f.id));
            assert.equal(next.code, "needs_reconnect", label);
          }
        }
      }),
  );

  Deno.test(
    name("revoke(): ends the grant where the provider declares token revocation, else changes nothing"),
    () =>
      inWorld(f, {}, async (w) => {
        const email = f.email("revoke");
        await f.createAccount(w.sb, email);
        const tokens = await w.connect(email);
        await w.provider.revoke(tokens.refreshToken!);
        await w.provider.revoke(tokens.refreshToken!); // revoking again is fine either way
        if (w.provider.capabilities.tokenRevocation) {
          const err = await rejectedWith(ProviderError, w.provider.refresh(tokens.refreshToken!));
          assert.equal(err.kind, "auth");
          assert.equal(err.details.reason, "invalid_grant");
        } else {
          // No revocation endpoint: the grant lives on at the provider until the user removes the app.
          const fresh = await w.provider.refresh(tokens.refreshToken!);
          assert.ok((await w.provider.listCalendars(fresh.accessToken)).length > 0);
        }
      }),
  );

  Deno.test(
    name("inbound push: watch (sync / validation), a change notified with the secret, stop -> nothing more"),
    () =>
      inWorld(f, {}, async (w) => {
        const inbound = w.provider.inbound!;
        assert.ok(w.provider.capabilities.inboundSync && inbound, "inbound sync is declared and present");
        const email = f.email("push");
        await f.createAccount(w.sb, email);
        const { accessToken } = await w.connect(email);
        const receiver = startReceiver(f);
        try {
          const secret = crypto.randomUUID();
          const address = `${receiver.url}/calendar-webhook/${f.id}`;
          const channel = await inbound.watch(accessToken, { calendarId: "primary", address, secret });
          await flushPush(w);
          const days = (Date.parse(channel.expiresAt) - Date.now()) / 86_400_000;
          assert.ok(days > 6 && days <= 7, `the longest lifetime is asked for: ${channel.expiresAt}`);
          if (inbound.renewal === "replace") {
            // Google: the channel says hello with `sync` (and needs its resourceId to be stopped).
            assert.ok(channel.resourceId);
            assert.deepEqual(receiver.noticesOf(channel.channelId), [
              { channelId: channel.channelId, secret, kind: "sync" },
            ]);
          } else {
            // Graph: both URLs were validated before the subscription was made.
            assert.equal(channel.resourceId, null);
            assert.deepEqual(receiver.validations, [
              `/calendar-webhook/${f.id}`,
              `/calendar-webhook/${f.id}/lifecycle`,
            ]);
          }
          await f.addBusy(w.sb, email, { start: "2026-05-04T09:00:00Z", end: "2026-05-04T10:00:00Z" });
          await flushPush(w);
          const changes = receiver.noticesOf(channel.channelId, "change");
          assert.ok(changes.length >= 1, "the change was notified");
          assert.ok(
            changes.every((n) => n.secret === secret),
            "every notification carries the channel secret",
          );

          await inbound.stop(accessToken, channel);
          await inbound.stop(accessToken, channel); // already stopped: success
          const before = receiver.notices.length;
          await f.addBusy(w.sb, email, { start: "2026-05-05T09:00:00Z", end: "2026-05-05T10:00:00Z" });
          await flushPush(w);
          assert.equal(receiver.notices.length, before, "a stopped channel notifies nothing");

          const refused = await rejectedWith(
            ProviderError,
            inbound.watch(accessToken, { calendarId: "primary", address: "http://192.0.2.1/hook", secret }),
          );
          assert.equal(refused.kind, "invalid", "a webhook that is not HTTPS is refused");
        } finally {
          await receiver.close();
        }
      }),
  );

  Deno.test(
    name("inbound changes: a paged first sync of a window, then exactly the changes, our own echoes, 410"),
    () =>
      inWorld(f, {}, async (w) => {
        const inbound = w.provider.inbound!;
        const email = f.email("changes");
        await f.createAccount(w.sb, email);
        const { accessToken } = await w.connect(email);
        const window = { timeMin: "2026-06-01T00:00:00Z", timeMax: "2026-07-01T00:00:00Z" };
        for (let day = 1; day <= 5; day++) {
          await f.addBusy(w.sb, email, {
            start: `2026-06-0${day}T09:00:00Z`,
            end: `2026-06-0${day}T10:00:00Z`,
          });
        }
        await f.addBusy(w.sb, email, {
          start: "2026-06-10T09:00:00Z",
          end: "2026-06-10T10:00:00Z",
          free: true,
        });
        await f.addBusy(w.sb, email, { allDay: { from: "2026-06-12", to: "2026-06-13" } });
        await f.addBusy(w.sb, email, { start: "2026-08-01T09:00:00Z", end: "2026-08-01T10:00:00Z" }); // outside

        /** Every page of one round; the page count and the sync cursor that ends it. */
        const round = async (syncCursor: string | null) => {
          const events: ExternalEvent[] = [];
          let pageCursor: string | null = null;
          for (let pages = 1;; pages++) {
            assert.ok(pages < 50, "the round ends");
            const page: ChangesPage = await inbound.listChanges(accessToken, {
              calendarId: "primary",
              syncCursor,
              pageCursor,
              window,
              pageLimit: 2,
            });
            assert.ok(!page.nextPageCursor !== !page.nextSyncCursor, "exactly one cursor");
            events.push(...page.events);
            if (page.nextSyncCursor) return { events, pages, syncCursor: page.nextSyncCursor };
            pageCursor = page.nextPageCursor;
          }
        };
        const first = await round(null);
        assert.ok(first.pages >= 4, `paged: ${first.pages} pages of 2`);
        const live = new Map(first.events.map((e) => [e.id, e]));
        assert.equal(live.size, 7, "the window's events, the one outside it left out");
        for (const e of first.events) {
          assert.deepEqual(Object.keys(e).sort(), EXTERNAL_EVENT_KEYS, "nothing but the neutral fields");
          assert.equal(e.status, "confirmed");
          assert.ok(e.version, "a version to recognise echoes by");
          // No `ourAppointment` check here: about one Google-made id in 32 decodes as a derived id, so
          // it is only a candidate, which the engine confirms against its sync rows (inbound/restore.ts).
        }
        const byStart = (iso: string) => first.events.find((e) => e.start === iso)!;
        assert.equal(byStart("2026-06-10T09:00:00Z").busy, false, "free time is not busy");
        assert.deepEqual(
          { ...byStart("2026-06-12T00:00:00Z") },
          { ...byStart("2026-06-12T00:00:00Z"), end: "2026-06-13T00:00:00Z", allDay: true, busy: true },
        );
        assert.equal(first.events.filter((e) => e.busy).length, 6);

        const quiet = await round(first.syncCursor);
        assert.deepEqual(quiet.events, [], "nothing changed, nothing listed");

        // A user moves one event, deletes another and adds a third; the product writes its own.
        const moved = byStart("2026-06-02T09:00:00Z");
        const deleted = byStart("2026-06-03T09:00:00Z");
        await f.editEvent(w.sb, email, moved.id, "2026-06-02T14:00:00Z", "2026-06-02T15:00:00Z");
        await f.deleteEvent(w.sb, email, deleted.id);
        await f.addBusy(w.sb, email, { start: "2026-06-20T09:00:00Z", end: "2026-06-20T10:00:00Z" });
        const appointmentId = crypto.randomUUID();
        const ours = await w.provider.upsertEvent(accessToken, {
          calendarId: "primary",
          appointmentId,
          start: "2026-06-22T09:00:00Z",
          end: "2026-06-22T10:00:00Z",
          title: "Appointment",
        });

        const next = await round(quiet.syncCursor);
        const changed = new Map(next.events.map((e) => [e.id, e]));
        assert.equal(changed.size, 4, `exactly the changes: ${[...changed.keys()]}`);
        assert.deepEqual(
          pick(changed.get(moved.id)!),
          { status: "confirmed", start: "2026-06-02T14:00:00Z", end: "2026-06-02T15:00:00Z", busy: true },
        );
        assert.notEqual(changed.get(moved.id)!.version, moved.version, "an edit is a new version");
        assert.deepEqual(pick(changed.get(deleted.id)!).status, "cancelled");
        assert.equal(changed.get(deleted.id)!.busy, false, "a deleted event is never busy");
        const added = next.events.find((e) => e.start === "2026-06-20T09:00:00Z");
        assert.ok(added?.busy && !live.has(added.id), "the added event");
        const echo = changed.get(ours.eventId)!;
        assert.equal(echo.version, ours.etag, "our own write's echo carries the version the write answered");
        const key = inbound.idempotencyKeyFor({ calendarId: "primary", appointmentId });
        if (key === null) {
          assert.deepEqual(echo.ourAppointment, { appointmentId, eventGeneration: 0 }, "the id names it");
        } else {
          assert.equal(echo.idempotencyKey, key, "the idempotency key names it");
        }
        for (const e of next.events) assert.deepEqual(Object.keys(e).sort(), EXTERNAL_EVENT_KEYS);

        await f.expireCursors(w.sb, email);
        const expired = await rejectedWith(
          ProviderError,
          inbound.listChanges(accessToken, {
            calendarId: "primary",
            syncCursor: next.syncCursor,
            pageCursor: null,
          }),
        );
        assert.equal(expired.kind, "cursor_expired", "a cursor the provider dropped means a full sync again");
        assert.equal(decideFailure(expired).decision, "retry");
        const again = await round(null);
        assert.equal(again.events.filter((e) => e.status === "confirmed").length, 8, "the full sync again");

        const noWindow = await rejectedWith(
          ProviderError,
          inbound.listChanges(accessToken, { calendarId: "primary", syncCursor: null, pageCursor: null }),
        );
        assert.equal(noWindow.kind, "invalid");
      }),
  );

  Deno.test(
    name("inbound: our own event's title read alone (retitled, unchanged, deleted -> null, unknown -> null)"),
    () =>
      inWorld(f, {}, async (w) => {
        const inbound = w.provider.inbound!;
        assert.ok(inbound.readOwnEventTitle, "both providers can read our event's title");
        const email = f.email("title");
        await f.createAccount(w.sb, email);
        const { accessToken } = await w.connect(email);
        const ours = await w.provider.upsertEvent(accessToken, {
          calendarId: "primary",
          appointmentId: crypto.randomUUID(),
          start: "2026-06-22T09:00:00Z",
          end: "2026-06-22T10:00:00Z",
          title: "Appointment",
        });
        const read = () =>
          inbound.readOwnEventTitle!(accessToken, { calendarId: "primary", eventId: ours.eventId });
        assert.equal(await read(), "Appointment");
        await f.touchEvent(w.sb, email, ours.eventId);
        assert.equal(await read(), "Appointment", "a change of something else keeps the title");
        await f.retitleEvent(w.sb, email, ours.eventId, "Dentist (private)");
        assert.equal(await read(), "Dentist (private)");
        await f.deleteEvent(w.sb, email, ours.eventId);
        assert.equal(await read(), null, "a deleted event has no title");
        assert.equal(
          await inbound.readOwnEventTitle!(accessToken, {
            calendarId: "primary",
            eventId: "unknown0event1id",
          }),
          null,
          "an unknown event is gone",
        );
      }),
  );

  Deno.test(
    name("inbound renewal: Graph patches the subscription (gone once expired), Google replaces the channel"),
    () =>
      inWorld(f, {}, async (w) => {
        const inbound = w.provider.inbound!;
        const email = f.email("renew");
        await f.createAccount(w.sb, email);
        const { accessToken } = await w.connect(email);
        const receiver = startReceiver(f);
        try {
          const address = `${receiver.url}/calendar-webhook/${f.id}`;
          const secret = crypto.randomUUID();
          const first = await inbound.watch(accessToken, {
            calendarId: "primary",
            address,
            secret,
            ttlSeconds: 3600,
          });
          const hours = (Date.parse(first.expiresAt) - Date.now()) / 3_600_000;
          assert.ok(hours > 0.9 && hours <= 1, `the lifetime asked for: ${first.expiresAt}`);
          if (inbound.renewal === "patch") {
            const renewed = await inbound.renew(accessToken, first);
            assert.ok(
              Date.parse(renewed) - Date.parse(first.expiresAt) > 5 * 86_400_000,
              "extended in place",
            );
            await f.expireChannel(w.sb, first.channelId);
            const gone = await rejectedWith(ProviderError, inbound.renew(accessToken, first));
            assert.equal(gone.kind, "gone", "an expired subscription is gone: create a new one");
            await inbound.stop(accessToken, first); // nothing to delete: success
          } else {
            assert.equal("renew" in inbound, false, "a channel cannot be extended");
            // Replace: the new channel first (its id chosen and stored beforehand), then the old stopped.
            const channelId = crypto.randomUUID();
            const second = await inbound.watch(accessToken, {
              calendarId: "primary",
              address,
              secret,
              channelId,
            });
            assert.equal(second.channelId, channelId);
            await inbound.stop(accessToken, first);
            await flushPush(w);
            await f.addBusy(w.sb, email, { start: "2026-05-04T09:00:00Z", end: "2026-05-04T10:00:00Z" });
            await flushPush(w);
            assert.equal(receiver.noticesOf(first.channelId, "change").length, 0, "the old channel is quiet");
            assert.ok(receiver.noticesOf(second.channelId, "change").length >= 1, "the new one notifies");
            await f.expireChannel(w.sb, second.channelId);
            await inbound.stop(accessToken, second); // expired: nothing to stop, success
          }
        } finally {
          await receiver.close();
        }
      }),
  );
}

/** Every field an {@link ExternalEvent} has, sorted: no provider may add one (no PHI can slip in). */
const EXTERNAL_EVENT_KEYS = [
  "allDay",
  "busy",
  "end",
  "id",
  "idempotencyKey",
  "ourAppointment",
  "seriesId",
  "start",
  "status",
  "version",
];

const pick = (e: ExternalEvent) => ({ status: e.status, start: e.start, end: e.end, busy: e.busy });

/** Deliver every notification the sandbox has made (retries included) before asserting. */
async function flushPush(w: World): Promise<void> {
  await w.sb.admin("POST", "/_admin/push/flush");
}
