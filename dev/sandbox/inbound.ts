/**
 * Wiring of the inbound-sync emulation (CONTRACT.md "Inbound sync"): one webhook delivery engine, the
 * Google push channels and the Graph subscriptions, fed by the world's event-change hooks.
 */
import { GoogleChannels } from "./google-push.ts";
import { MsSubscriptions } from "./ms-subscriptions.ts";
import { PushHub } from "./push.ts";
import type { SandboxState } from "./state.ts";

/**
 * Build the push objects of one sandbox and subscribe them to `state`'s event changes (Google and
 * Microsoft). `closing` aborts deliveries in flight when the server stops.
 */
export function inbound(
  state: SandboxState,
  closing: AbortSignal,
): { push: PushHub; channels: GoogleChannels; subscriptions: MsSubscriptions } {
  const push = new PushHub(closing);
  const channels = new GoogleChannels(push);
  const subscriptions = new MsSubscriptions(push, state);
  state.onEventChange = (cal) => channels.changed(cal);
  state.microsoft.onEventChange = (cal, ev, changeType) => subscriptions.changed(cal, ev, changeType);
  return { push, channels, subscriptions };
}
