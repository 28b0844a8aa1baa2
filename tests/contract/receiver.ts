/**
 * A tiny webhook receiver for the inbound contract cases: it answers Graph's validation handshake
 * (the decoded `validationToken` as text/plain, as the webhook must) and records every other POST as
 * the notifications it carries, read by the provider's fixture. Loopback http, which the sandbox
 * accepts in place of HTTPS.
 */
import type { ProviderFixture, PushNotice } from "./fixtures.ts";

/** A running receiver. */
export interface Receiver {
  /** Its base URL, e.g. `http://127.0.0.1:41234`. */
  url: string;
  /** Paths (with query) of the validation requests received, in order. */
  validations: string[];
  /** Notifications received, in order. */
  notices: PushNotice[];
  /** Notifications for one channel. */
  noticesOf(channelId: string, kind?: PushNotice["kind"]): PushNotice[];
  close(): Promise<void>;
}

/** Start a receiver that reads notifications with `fixture`. */
export function startReceiver(fixture: ProviderFixture): Receiver {
  const validations: string[] = [];
  const notices: PushNotice[] = [];
  const server = Deno.serve({ port: 0, hostname: "127.0.0.1", onListen: () => {} }, async (req) => {
    const url = new URL(req.url);
    const body = await req.text();
    const token = url.searchParams.get("validationToken");
    if (token !== null) {
      validations.push(url.pathname);
      return new Response(token, { headers: { "content-type": "text/plain; charset=utf-8" } });
    }
    notices.push(...fixture.notificationsIn({ headers: req.headers, body }));
    return new Response(null, { status: 202 });
  });
  return {
    url: `http://127.0.0.1:${server.addr.port}`,
    validations,
    notices,
    noticesOf: (channelId, kind) =>
      notices.filter((n) => n.channelId === channelId && (kind === undefined || n.kind === kind)),
    close: () => server.shutdown(),
  };
}
