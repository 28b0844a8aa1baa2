/**
 * Outbound webhook delivery, shared by Google push channels (google-push.ts) and Microsoft Graph
 * change and lifecycle notifications (ms-subscriptions.ts), plus the test controls over it
 * (CONTRACT.md "Inbound sync"): drop, duplicate or reorder the next notifications, wait for every
 * delivery in flight (`flush`), and count what was sent.
 *
 * A notification is POSTed after the API answer that caused it (never inside it), one at a time per
 * receiver URL so that without a reorder plan receivers see notifications in the order they were
 * made. Failures are retried like the providers do, on a compressed clock: Google retries 500, 502,
 * 503 and 504 (docs/providers/google.md A10); Graph retries anything but a 2xx within 3 seconds (B9.4).
 * The sandbox gives up after {@link MAX_RETRIES} retries (Graph keeps trying for 4 hours).
 */
import { sleep } from "./faults.ts";

/** Which provider sends. */
export type PushProvider = "google" | "microsoft";
/** What a delivery is: Google `sync`/`exists`, Graph `change`/`lifecycle`, or a Graph validation request. */
export type PushKind = "sync" | "exists" | "change" | "lifecycle" | "validation";

/** One outbound POST. */
export interface Notification {
  provider: PushProvider;
  kind: Exclude<PushKind, "validation">;
  /** Google channel id, or the Graph subscription id(s) in the batch (comma-separated). */
  target: string;
  url: string;
  headers: Record<string, string>;
  /** Empty for Google (headers only, `Content-Length: 0`). */
  body: string;
  /** Google `X-Goog-Message-Number`. */
  messageNumber?: number;
}

/** One entry of the delivery log (`GET /_admin/push/deliveries`). `status` 0 = no HTTP answer. */
export interface DeliveryRecord {
  provider: PushProvider;
  kind: PushKind;
  target: string;
  url: string;
  messageNumber?: number;
  outcome: "delivered" | "failed" | "retrying" | "dropped";
  status: number;
  attempt: number;
  at: string;
}

/** `POST /_admin/push/plan`: what happens to the provider's next notifications. */
export interface DeliveryPlan {
  /** The next `drop` notifications are lost (counted, never POSTed). */
  drop: number;
  /** The next `duplicate` notifications are POSTed twice. */
  duplicate: number;
  /** The next `reorder` notifications are held and POSTed in reverse order once all have been made. */
  reorder: number;
}

/** Retries after the first attempt before a notification is given up. */
export const MAX_RETRIES = 2;
/** First retry delay in ms, doubled per retry (compressed backoff; see the module comment). */
export const RETRY_BASE_MS = 200;
/** Graph's publisher timeout (B9.4); the sandbox uses it for Google too. */
export const NOTIFY_TIMEOUT_MS = 3_000;
const LOG_LIMIT = 1_000;

type Counters = { made: number; attempts: number; delivered: number; failed: number; dropped: number };
const zero = (): Counters => ({ made: 0, attempts: 0, delivered: 0, failed: 0, dropped: 0 });

/** The delivery engine of one sandbox. */
export class PushHub {
  private plans: Record<PushProvider, DeliveryPlan> = {
    google: { drop: 0, duplicate: 0, reorder: 0 },
    microsoft: { drop: 0, duplicate: 0, reorder: 0 },
  };
  private held: Record<PushProvider, Notification[]> = { google: [], microsoft: [] };
  private inFlight = new Set<Promise<void>>();
  private chains = new Map<string, Promise<void>>();
  private byTarget = new Map<string, Counters>();
  private totals: Record<PushProvider, Counters> = { google: zero(), microsoft: zero() };
  private log: DeliveryRecord[] = [];
  private aborts = new AbortController();

  constructor(private readonly closing: AbortSignal) {}

  /** Add to the provider's plan (counts add up). */
  plan(provider: PushProvider, p: Partial<DeliveryPlan>): DeliveryPlan {
    const cur = this.plans[provider];
    cur.drop += p.drop ?? 0;
    cur.duplicate += p.duplicate ?? 0;
    cur.reorder += p.reorder ?? 0;
    return { ...cur };
  }

  /** Send a notification after the current request (fire and forget; see {@link flush}). */
  notify(n: Notification): void {
    const plan = this.plans[n.provider];
    this.count(n, "made");
    if (plan.drop > 0) {
      plan.drop--;
      this.count(n, "dropped");
      this.record(n, "dropped", 0, 0);
      return;
    }
    const copies = plan.duplicate > 0 ? (plan.duplicate--, 2) : 1;
    const batch = Array.from({ length: copies }, () => n);
    if (plan.reorder > 0) {
      plan.reorder--;
      this.held[n.provider].push(...batch);
      if (plan.reorder === 0) this.releaseHeld(n.provider);
      return;
    }
    for (const one of batch) this.enqueue(one);
  }

  /**
   * POST a Graph validation request and wait for its answer (the caller judges it).
   * @returns status (0 when no answer within `timeoutMs`), content type and body text.
   */
  async request(
    provider: PushProvider,
    target: string,
    url: string,
    headers: Record<string, string>,
    timeoutMs: number,
  ): Promise<{ status: number; contentType: string; text: string }> {
    const res = await this.post(url, headers, "", timeoutMs);
    this.log.push({
      provider,
      kind: "validation",
      target,
      url,
      outcome: res.status >= 200 && res.status < 300 ? "delivered" : "failed",
      status: res.status,
      attempt: 1,
      at: new Date().toISOString(),
    });
    this.trimLog();
    return res;
  }

  /** Deliver held (reordered) notifications now and wait until nothing is in flight. */
  async flush(): Promise<void> {
    this.releaseHeld("google");
    this.releaseHeld("microsoft");
    while (this.inFlight.size > 0) await Promise.allSettled([...this.inFlight]);
  }

  /** Counters per provider and per target, and the delivery log (oldest first). */
  report(target?: string) {
    return {
      totals: structuredClone(this.totals),
      targets: Object.fromEntries(
        [...this.byTarget].filter(([k]) => target === undefined || k === target).map((
          [k, v],
        ) => [k, { ...v }]),
      ),
      plans: structuredClone(this.plans),
      held: this.held.google.length + this.held.microsoft.length,
      deliveries: this.log.filter((r) => target === undefined || r.target.split(",").includes(target)),
    };
  }

  /** Counters of one target (a channel or subscription id). */
  countersOf(target: string): Counters {
    return { ...(this.byTarget.get(target) ?? zero()) };
  }

  /** Abort deliveries in flight, forget plans, held notifications, counters and the log. */
  async reset(): Promise<void> {
    this.aborts.abort();
    await this.flush();
    this.aborts = new AbortController();
    this.plans = {
      google: { drop: 0, duplicate: 0, reorder: 0 },
      microsoft: { drop: 0, duplicate: 0, reorder: 0 },
    };
    this.held = { google: [], microsoft: [] };
    this.chains.clear();
    this.byTarget.clear();
    this.totals = { google: zero(), microsoft: zero() };
    this.log = [];
  }

  private releaseHeld(provider: PushProvider): void {
    const held = this.held[provider].reverse();
    this.held[provider] = [];
    for (const n of held) this.enqueue(n);
  }

  private enqueue(n: Notification): void {
    const prev = this.chains.get(n.url) ?? Promise.resolve();
    const run = prev.then(() => this.deliver(n));
    this.chains.set(n.url, run);
    this.inFlight.add(run);
    run.finally(() => {
      this.inFlight.delete(run);
      if (this.chains.get(n.url) === run) this.chains.delete(n.url);
    });
  }

  private async deliver(n: Notification): Promise<void> {
    for (let attempt = 1; attempt <= MAX_RETRIES + 1; attempt++) {
      if (this.closing.aborted || this.aborts.signal.aborted) return;
      this.count(n, "attempts");
      const { status } = await this.post(n.url, n.headers, n.body, NOTIFY_TIMEOUT_MS);
      if (status >= 200 && status < 300 || (n.provider === "google" && status === 102)) {
        this.count(n, "delivered");
        this.record(n, "delivered", status, attempt);
        return;
      }
      const retryable = n.provider === "google" ? [0, 500, 502, 503, 504].includes(status) : true;
      if (!retryable || attempt > MAX_RETRIES) {
        this.count(n, "failed");
        this.record(n, "failed", status, attempt);
        return;
      }
      this.record(n, "retrying", status, attempt);
      if (!await sleep(RETRY_BASE_MS * 2 ** (attempt - 1), [this.closing, this.aborts.signal])) return;
    }
  }

  /** One POST; status 0 when the receiver cannot be reached or does not answer within `timeoutMs`. */
  private async post(url: string, headers: Record<string, string>, body: string, timeoutMs: number) {
    const ctl = new AbortController();
    const stop = () => ctl.abort();
    const signals = [this.closing, this.aborts.signal];
    for (const s of signals) s.addEventListener("abort", stop, { once: true });
    const timer = setTimeout(stop, timeoutMs);
    try {
      const res = await fetch(url, { method: "POST", headers, body, redirect: "manual", signal: ctl.signal });
      const text = await res.text();
      return { status: res.status, contentType: res.headers.get("content-type") ?? "", text };
    } catch {
      return { status: 0, contentType: "", text: "" };
    } finally {
      clearTimeout(timer);
      for (const s of signals) s.removeEventListener("abort", stop);
    }
  }

  private count(n: Notification, field: keyof Counters): void {
    this.totals[n.provider][field]++;
    for (const t of n.target.split(",")) {
      const c = this.byTarget.get(t) ?? zero();
      c[field]++;
      this.byTarget.set(t, c);
    }
  }

  private record(n: Notification, outcome: DeliveryRecord["outcome"], status: number, attempt: number): void {
    this.log.push({
      provider: n.provider,
      kind: n.kind,
      target: n.target,
      url: n.url,
      ...(n.messageNumber !== undefined ? { messageNumber: n.messageNumber } : {}),
      outcome,
      status,
      attempt,
      at: new Date().toISOString(),
    });
    this.trimLog();
  }

  private trimLog(): void {
    if (this.log.length > LOG_LIMIT) this.log.splice(0, this.log.length - LOG_LIMIT);
  }
}

/**
 * Whether a webhook address is acceptable: HTTPS as both providers require, or plain HTTP to a
 * loopback host (the sandbox's one allowance, so local receivers need no certificate).
 */
export function webhookUrlAllowed(address: string): boolean {
  let u: URL;
  try {
    u = new URL(address);
  } catch {
    return false;
  }
  if (u.protocol === "https:") return true;
  return u.protocol === "http:" && ["127.0.0.1", "localhost", "[::1]"].includes(u.hostname);
}
