/**
 * The provider contract for recurring events, through the provider interface against both sandboxes
 * (./fixtures.ts, ./world.ts): a weekly busy series in New York that crosses the March DST change, one
 * instance moved and one cancelled by the user. `inbound.listChanges` over a window and `busy()` must
 * both give exactly the expected intervals (the moved instance at its new time, the cancelled one
 * absent, 09:00 local on both sides of the change), and an incremental round after the user cancels
 * another instance reports exactly that instance as cancelled.
 */
import assert from "node:assert/strict";
import type { ChangesPage, ExternalEvent } from "../../supabase/functions/_shared/providers/types.ts";
import { FIXTURES } from "./fixtures.ts";
import { startWorld } from "./world.ts";

const WINDOW = { timeMin: "2026-03-01T00:00:00Z", timeMax: "2026-04-01T00:00:00Z" };

/** What a busy cache would hold after applying `events`: live busy intervals, earliest first. */
const busyOf = (events: Iterable<ExternalEvent>) =>
  [...events].filter((e) => e.status === "confirmed" && e.busy)
    .map((e) => ({ start: e.start!, end: e.end! }))
    .sort((a, b) => a.start.localeCompare(b.start));

for (const f of FIXTURES) {
  Deno.test(
    `contract[${f.id}]: a recurring series with a moved and a cancelled instance, across DST`,
    async () => {
      const w = await startWorld(f);
      try {
        const inbound = w.provider.inbound!;
        const email = f.email("series");
        await f.createAccount(w.sb, email);
        const { accessToken } = await w.connect(email);
        // Mondays 09:00 New York from 2 March 2026 (EST, UTC-5); DST starts 8 March (EDT, UTC-4).
        await f.addWeeklySeries(w.sb, email, {
          firstStart: "2026-03-02T09:00:00",
          zone: "America/New_York",
          minutes: 60,
          count: 5,
        });

        /** Every page of one round, as the sync engine reads it. */
        const round = async (syncCursor: string | null) => {
          const events: ExternalEvent[] = [];
          let pageCursor: string | null = null;
          for (let pages = 1;; pages++) {
            assert.ok(pages < 50, "the round ends");
            const page: ChangesPage = await inbound.listChanges(accessToken, {
              calendarId: "primary",
              syncCursor,
              pageCursor,
              window: syncCursor ? undefined : WINDOW,
              pageLimit: 2,
            });
            events.push(...page.events);
            if (page.nextSyncCursor) return { events, syncCursor: page.nextSyncCursor };
            pageCursor = page.nextPageCursor;
          }
        };

        const first = await round(null);
        const at = new Map(first.events.map((e) => [e.start, e]));
        assert.deepEqual([...at.keys()].sort(), [
          "2026-03-02T14:00:00Z",
          "2026-03-09T13:00:00Z",
          "2026-03-16T13:00:00Z",
          "2026-03-23T13:00:00Z",
          "2026-03-30T13:00:00Z",
        ], "five instances, 09:00 New York on both sides of the DST change; no series master");
        assert.equal(new Set(first.events.map((e) => e.id)).size, 5, "an id per instance");
        const seriesIds = new Set(first.events.map((e) => e.seriesId));
        assert.equal(seriesIds.size, 1, "one series");
        assert.ok([...seriesIds][0], "the instances name their series");

        await f.editEvent(
          w.sb,
          email,
          at.get("2026-03-09T13:00:00Z")!.id,
          "2026-03-10T15:00:00Z",
          "2026-03-10T16:00:00Z",
        );
        await f.deleteEvent(w.sb, email, at.get("2026-03-16T13:00:00Z")!.id);
        const expected = [
          { start: "2026-03-02T14:00:00Z", end: "2026-03-02T15:00:00Z" },
          { start: "2026-03-10T15:00:00Z", end: "2026-03-10T16:00:00Z" },
          { start: "2026-03-23T13:00:00Z", end: "2026-03-23T14:00:00Z" },
          { start: "2026-03-30T13:00:00Z", end: "2026-03-30T14:00:00Z" },
        ];
        const full = await round(null);
        assert.deepEqual(busyOf(full.events), expected, "a first sync of the window");
        assert.deepEqual(
          await w.provider.busy(accessToken, { calendarIds: ["primary"], ...WINDOW }),
          expected,
          "live busy",
        );

        const cancelled = at.get("2026-03-23T13:00:00Z")!;
        await f.deleteEvent(w.sb, email, cancelled.id);
        const next = await round(full.syncCursor);
        assert.deepEqual(
          next.events.map((e) => ({ id: e.id, status: e.status, busy: e.busy })),
          [{ id: cancelled.id, status: "cancelled", busy: false }],
          "exactly the newly cancelled instance",
        );
        const cache = new Map(full.events.map((e) => [e.id, e]));
        for (const e of next.events) cache.set(e.id, e);
        assert.deepEqual(busyOf(cache.values()), [expected[0], expected[1], expected[3]]);
        assert.deepEqual(
          await w.provider.busy(accessToken, { calendarIds: ["primary"], ...WINDOW }),
          [expected[0], expected[1], expected[3]],
        );
      } finally {
        await w.close();
      }
    },
  );
}
