/**
 * Test instrumentation for `/google/**`: injected faults and latency, call counters, and in-flight
 * tracking per event (to prove the sync engine never writes one event from two places at once).
 */
import { z } from "zod";
import { seededRandom } from "./random.ts";

/** Endpoint names used by faults and counters (CONTRACT.md). */
export const ENDPOINTS = [
  "oauth.authorize",
  "oauth.token.authorization_code",
  "oauth.token.refresh_token",
  "oauth.revoke",
  "calendarList.list",
  "calendarList.get",
  "calendars.get",
  "freeBusy.query",
  "events.insert",
  "events.get",
  "events.list",
  "events.patch",
  "events.update",
  "events.delete",
  "events.watch",
  "channels.stop",
  "microsoft.oauth.authorize",
  "microsoft.oauth.token.authorization_code",
  "microsoft.oauth.token.refresh_token",
  "microsoft.me.get",
  "microsoft.calendars.list",
  "microsoft.calendar.getSchedule",
  "microsoft.calendar.calendarView",
  "microsoft.subscriptions.create",
  "microsoft.subscriptions.list",
  "microsoft.subscriptions.get",
  "microsoft.subscriptions.update",
  "microsoft.subscriptions.delete",
  "microsoft.subscriptions.reauthorize",
  "microsoft.calendarView.delta",
  "microsoft.events.create",
  "microsoft.events.get",
  "microsoft.events.update",
  "microsoft.events.delete",
] as const;
/** One of the endpoint names of CONTRACT.md. */
export type EndpointName = typeof ENDPOINTS[number];

/** `POST /_admin/faults` body. `times`: how often it fires (-1 = until cleared); `probability` uses the seeded RNG. */
export const faultSchema = z.strictObject({
  match: z.strictObject({
    endpoint: z.enum(ENDPOINTS).optional(),
    method: z.string().min(1).transform((m) => m.toUpperCase()).optional(),
    pathPrefix: z.string().startsWith("/").optional(),
    email: z.string().min(1).transform((e) => e.toLowerCase()).optional(),
  }).default({}),
  response: z.union([
    z.strictObject({
      status: z.number().int().min(400).max(599),
      reason: z.string().min(1).optional(),
      message: z.string().min(1).optional(),
      retryAfterSeconds: z.number().int().min(0).optional(),
    }),
    z.strictObject({
      timeout: z.literal(true),
      hangMs: z.number().int().min(0).max(600_000).optional(),
      /** True: the request is carried out first and only its answer is held (a lost response). */
      executed: z.boolean().optional(),
    }),
  ]),
  times: z.number().int().min(-1).refine((n) => n !== 0, "times must be -1 or at least 1").default(1),
  probability: z.number().min(0).max(1).default(1),
});
/** A validated fault (defaults applied: `times` 1, `probability` 1). */
export type FaultSpec = z.infer<typeof faultSchema>;
/** What a fault answers: a status with Google's body, or a held (timeout) request. */
export type FaultResponse = FaultSpec["response"];

/** `POST /_admin/latency` body: `ms` plus a uniform random `0..jitterMs`; `{ms:0}` turns it off. */
export const latencySchema = z.strictObject({
  ms: z.number().int().min(0).max(600_000),
  jitterMs: z.number().int().min(0).max(600_000).default(0),
});

/** What a request looks like to fault matching. `path` is the URL path only (never the query). */
export interface CallInfo {
  endpoint: EndpointName | "unknown";
  method: string;
  path: string;
  email: string | null;
}

interface Fault extends FaultSpec {
  id: string;
  fired: number;
}

/** Active faults and latency settings. */
export class FaultBoard {
  private faults: Fault[] = [];
  private random: () => number;
  private latency = { ms: 0, jitterMs: 0 };

  constructor(private readonly seed: number) {
    this.random = seededRandom(seed);
  }

  /** Register a fault; returns its id. */
  add(spec: FaultSpec): string {
    const id = crypto.randomUUID();
    this.faults.push({ ...spec, id, fired: 0 });
    return id;
  }

  /** Active faults with how often each fired. */
  list(): Array<FaultSpec & { id: string; fired: number }> {
    return this.faults.map((f) => ({ ...f }));
  }

  /** Clear faults and latency, and restart the RNG so a reset run repeats the same choices. */
  reset(): void {
    this.faults = [];
    this.latency = { ms: 0, jitterMs: 0 };
    this.random = seededRandom(this.seed);
  }

  /** Remove every fault (latency stays). */
  clearFaults(): void {
    this.faults = [];
  }

  /** Set the delay added to every `/google/**` call. */
  setLatency(l: { ms: number; jitterMs: number }): void {
    this.latency = l;
  }

  /** Delay for the next call, in ms (0 when latency is off). */
  nextDelayMs(): number {
    const { ms, jitterMs } = this.latency;
    return ms + (jitterMs > 0 ? Math.floor(this.random() * (jitterMs + 1)) : 0);
  }

  /**
   * The first matching fault that fires for this call, consuming one of its `times`. The RNG is only
   * drawn for faults that match, so unrelated traffic does not change which calls fail.
   */
  take(call: CallInfo): FaultResponse | undefined {
    for (const f of this.faults) {
      const m = f.match;
      if (m.endpoint && m.endpoint !== call.endpoint) continue;
      if (m.method && m.method !== call.method) continue;
      if (m.pathPrefix && !call.path.startsWith(m.pathPrefix)) continue;
      if (m.email && m.email !== call.email) continue;
      if (f.probability < 1 && this.random() >= f.probability) continue;
      f.fired++;
      if (f.times > 0 && f.fired >= f.times) this.faults = this.faults.filter((x) => x !== f);
      return f.response;
    }
    return undefined;
  }
}

/** One recorded call. `at` is RFC 3339. */
export interface CallRecord extends CallInfo {
  status: number;
  at: string;
}

const RECENT_LIMIT = 500;

/** Call counters for `GET /_admin/calls`. */
export class CallLog {
  private total = 0;
  private byEndpoint: Record<string, number> = {};
  private recent: CallRecord[] = [];

  /** Count one answered call (`status` 0 when no answer was sent). */
  record(call: CallInfo, status: number): void {
    this.total++;
    this.byEndpoint[call.endpoint] = (this.byEndpoint[call.endpoint] ?? 0) + 1;
    this.recent.push({ ...call, status, at: new Date().toISOString() });
    if (this.recent.length > RECENT_LIMIT) this.recent.splice(0, this.recent.length - RECENT_LIMIT);
  }

  /** Zero the counters and forget recent calls. */
  reset(): void {
    this.total = 0;
    this.byEndpoint = {};
    this.recent = [];
  }

  /** Totals and the last 500 calls, oldest first. */
  snapshot(): { total: number; byEndpoint: Record<string, number>; recent: CallRecord[] } {
    return { total: this.total, byEndpoint: { ...this.byEndpoint }, recent: [...this.recent] };
  }
}

/** One events.* request in flight; `abandoned` once it ended without an answer (its client went away). */
interface Flight {
  abandoned: boolean;
}

/**
 * In-flight events.* requests per (calendarId, eventId), with the maximum ever seen per key and the
 * overlaps. An overlap is a violation unless every request it overlapped was abandoned by its client
 * (a timeout: the client gave up and may retry, while the provider may still be working on the
 * abandoned call, which no client can prevent; the sandbox can notice the client left only after the
 * retry arrived).
 */
export class ConcurrencyTracker {
  private inFlight = new Map<string, Set<Flight>>();
  private max = new Map<string, number>();
  private overlaps: Array<{ key: string; n: number; earlier: Flight[] }> = [];

  /**
   * Count a request as in flight; call the returned function exactly once when it ends, with
   * `abandoned` true when no answer was sent (the client went away).
   */
  enter(calendarId: string, eventId: string): (abandoned?: boolean) => void {
    const key = JSON.stringify([calendarId, eventId]);
    const flights = this.inFlight.get(key) ?? new Set<Flight>();
    this.inFlight.set(key, flights);
    const flight: Flight = { abandoned: false };
    if (flights.size > 0) this.overlaps.push({ key, n: flights.size + 1, earlier: [...flights] });
    flights.add(flight);
    if (flights.size > (this.max.get(key) ?? 0)) this.max.set(key, flights.size);
    let released = false;
    return (abandoned = false) => {
      if (released) return;
      released = true;
      flight.abandoned = abandoned;
      flights.delete(flight);
      if (flights.size === 0) this.inFlight.delete(key);
    };
  }

  /** Maxima and overlaps only; requests still in flight keep being counted correctly. */
  reset(): void {
    this.max = new Map([...this.inFlight].map(([k, f]) => [k, f.size]));
    this.overlaps = [];
  }

  report(): {
    maxInFlightPerEvent: number;
    violations: Array<{ calendarId: string; eventId: string; maxInFlight: number }>;
    abandonedOverlaps: number;
  } {
    let overall = 0;
    for (const n of this.max.values()) overall = Math.max(overall, n);
    const worst = new Map<string, number>();
    let abandonedOverlaps = 0;
    for (const o of this.overlaps) {
      if (o.earlier.every((f) => f.abandoned)) {
        abandonedOverlaps++;
        continue;
      }
      worst.set(o.key, Math.max(worst.get(o.key) ?? 0, o.n));
    }
    const violations = [...worst].map(([key, maxInFlight]) => {
      const [calendarId, eventId] = JSON.parse(key) as [string, string];
      return { calendarId, eventId, maxInFlight };
    });
    return { maxInFlightPerEvent: overall, violations, abandonedOverlaps };
  }
}

/**
 * Wait `ms`, ending early when any signal aborts. Resolves true when the full time passed. The timer is
 * always cleared, so test sanitizers see no leaks.
 */
export function sleep(ms: number, signals: AbortSignal[]): Promise<boolean> {
  if (ms <= 0 || signals.some((s) => s.aborted)) return Promise.resolve(ms <= 0);
  return new Promise((resolve) => {
    const done = (full: boolean) => {
      clearTimeout(timer);
      for (const s of signals) s.removeEventListener("abort", onAbort);
      resolve(full);
    };
    const onAbort = () => done(false);
    const timer = setTimeout(() => done(true), ms);
    for (const s of signals) s.addEventListener("abort", onAbort, { once: true });
  });
}
