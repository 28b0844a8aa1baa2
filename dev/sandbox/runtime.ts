/**
 * Everything one running sandbox holds, handed to every route handler: the world state, registered
 * OAuth clients, and the test instrumentation (faults, latency, counters, concurrency tracking).
 */
import type { ClientRegistry } from "./clients.ts";
import type { CallLog, ConcurrencyTracker, FaultBoard } from "./faults.ts";
import type { GoogleChannels } from "./google-push.ts";
import type { MsSubscriptions } from "./ms-subscriptions.ts";
import type { PushHub } from "./push.ts";
import type { MailboxGate } from "./ms-routes.ts";
import type { SandboxState } from "./state.ts";

/** One sandbox instance's live objects. */
export interface SandboxRuntime {
  state: SandboxState;
  clients: ClientRegistry;
  /** Registered Microsoft (Entra app registration) clients. */
  msClients: ClientRegistry;
  faults: FaultBoard;
  calls: CallLog;
  concurrency: ConcurrencyTracker;
  /** Outlook's live per-app-per-mailbox request count (MailboxConcurrency). */
  mailboxes: MailboxGate;
  /** Outbound webhook delivery (Google channels, Graph subscriptions) and its test controls. */
  push: PushHub;
  /** Google push channels (events.watch). */
  channels: GoogleChannels;
  /** Microsoft Graph subscriptions. */
  subscriptions: MsSubscriptions;
  /** Aborted when the server closes, so requests held by latency or a timeout fault end at once. */
  closing: AbortSignal;
}

/** Decode an `application/x-www-form-urlencoded` body (case-insensitive content type check). */
export function formBody(req: Request, bodyText: string): URLSearchParams | undefined {
  const type = (req.headers.get("content-type") ?? "").split(";")[0].trim().toLowerCase();
  return type === "application/x-www-form-urlencoded" ? new URLSearchParams(bodyText) : undefined;
}
