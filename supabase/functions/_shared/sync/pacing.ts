/**
 * Per-connection pacing of one drain (sync/worker.ts): at most the provider's `callsPerConnection`
 * rows in flight for one mailbox (Microsoft 3: one below Outlook's 4 concurrent requests per app and
 * mailbox, leaving one for interactive calls; Google 2: its per-user rate; docs/providers), whatever
 * the process's slots allow, so a burst of rows for one staff member never exceeds the provider's
 * per-account limit and never takes the slots the other staff members' rows need.
 *
 * Counted per row, not per HTTP request: a row makes its calls one after another (a token refresh,
 * then the write; a move's delete, then its create; a getCalendar after a 404), never two at once,
 * so rows in flight bound the requests in flight exactly. Token refreshes go to the identity
 * endpoint, which the mailbox limit does not cover; counting them is conservative.
 *
 * The limit holds per worker process: processes do not coordinate, so N processes draining one
 * mailbox's burst at once may keep up to N x the limit in flight. Microsoft then answers 429
 * MailboxConcurrency, which rests that account for its Retry-After (a rate-limited retry), and the
 * other processes' claims skip its rows meanwhile.
 *
 * The same counts steer the claims: a staff member whose rows already fill their slots twice over
 * (running and waiting in the buffer) is left out of the next claim, so the buffer holds rows other
 * staff can start.
 */
import type { ConnectionRow } from "../connections.ts";
import { callsPerConnection } from "../providers/registry.ts";

/**
 * What pacing needs of a unit of work: an outbox row (sync/outbox.ts ClaimedRow) or a channel job
 * (inbound/jobs.ts ClaimedJob); both go to one mailbox.
 */
export interface Paced {
  provider: string;
  staff_id: string;
  connection: Pick<ConnectionRow, "account_email"> | null;
}

/** Rows in flight per mailbox, and rows held (claimed, not yet recorded) per staff member. */
export class ConnectionPacer {
  private readonly running = new Map<string, number>();
  private readonly held = new Map<string, { rows: number; limit: number }>();

  /**
   * The mailbox a row's calls go to: its provider and connected account (the unit of the
   * providers' limits; two staff members sharing one account share it), else its staff member.
   */
  static mailbox(row: Paced): string {
    const account = row.connection?.account_email;
    return `${row.provider} ${account ? `account:${account.toLowerCase()}` : `staff:${row.staff_id}`}`;
  }

  /** Whether the row may start now: fewer than its provider's limit in flight for its mailbox. */
  canStart(row: Paced): boolean {
    return (this.running.get(ConnectionPacer.mailbox(row)) ?? 0) < callsPerConnection(row.provider);
  }

  /** Count a started row; @returns the function to call once when the row is recorded. */
  start(row: Paced): () => void {
    const key = ConnectionPacer.mailbox(row);
    this.running.set(key, (this.running.get(key) ?? 0) + 1);
    let done = false;
    return () => {
      if (done) return;
      done = true;
      const left = (this.running.get(key) ?? 1) - 1;
      if (left <= 0) this.running.delete(key);
      else this.running.set(key, left);
    };
  }

  /**
   * How many of the waiting rows their mailboxes could run at once (per mailbox, at most its
   * provider's limit): the ones that take the slots their mailbox's running rows free.
   */
  runnable(waiting: readonly Paced[]): number {
    const perMailbox = new Map<string, { rows: number; limit: number }>();
    for (const row of waiting) {
      const key = ConnectionPacer.mailbox(row);
      const m = perMailbox.get(key);
      if (m) m.rows++;
      else perMailbox.set(key, { rows: 1, limit: callsPerConnection(row.provider) });
    }
    let n = 0;
    for (const m of perMailbox.values()) n += Math.min(m.rows, m.limit);
    return n;
  }

  /** Count a claimed row as held until {@link release}. */
  hold(row: Paced): void {
    const h = this.held.get(row.staff_id);
    if (h) h.rows++;
    else this.held.set(row.staff_id, { rows: 1, limit: callsPerConnection(row.provider) });
  }

  /** The row is recorded (or given back): no longer held. */
  release(row: Paced): void {
    const h = this.held.get(row.staff_id);
    if (!h) return;
    if (--h.rows <= 0) this.held.delete(row.staff_id);
  }

  /**
   * Staff members holding at least twice their provider's limit (a full set running and one
   * waiting): the next claim leaves them out.
   */
  saturated(): string[] {
    return [...this.held.keys()].filter((staffId) => this.isSaturated(staffId));
  }

  /** Whether the staff member holds at least twice their provider's limit (see {@link saturated}). */
  isSaturated(staffId: string): boolean {
    const h = this.held.get(staffId);
    return h !== undefined && h.rows >= 2 * h.limit;
  }
}
