/**
 * calendar-webhook's request reading, without a database: routes under the function name (hosted
 * and local paths), Google's headers, Graph's validation answer, and the secret digest the
 * database compares (SHA-256, as `sha256(convert_to(secret, 'UTF8'))` computes it).
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { webhookRoute } from "../../supabase/functions/_shared/handlers/webhook.ts";
import { HttpError } from "../../supabase/functions/_shared/http.ts";
import { readGoogleNotification } from "../../supabase/functions/_shared/webhook/google.ts";
import { validationAnswer } from "../../supabase/functions/_shared/webhook/microsoft.ts";
import { channelSecretDigest } from "../../supabase/functions/_shared/webhook/secret.ts";

Deno.test("webhookRoute: the path after the function name, hosted or behind the local gateway", () => {
  assert.equal(webhookRoute(new URL("https://x.supabase.co/calendar-webhook/google")), "google");
  assert.equal(
    webhookRoute(new URL("http://127.0.0.1:54321/functions/v1/calendar-webhook/microsoft")),
    "microsoft",
  );
  assert.equal(
    webhookRoute(
      new URL("http://127.0.0.1/functions/v1/calendar-webhook/microsoft/lifecycle?validationToken=a"),
    ),
    "microsoft/lifecycle",
  );
  assert.equal(webhookRoute(new URL("http://127.0.0.1/functions/v1/calendar-webhook")), "");
  assert.equal(webhookRoute(new URL("http://127.0.0.1/elsewhere/google")), "");
});

Deno.test("readGoogleNotification: Google's headers, validated; a malformed one is a 400", () => {
  const headers = {
    "X-Goog-Channel-ID": "4ba78bf0-6a47-11e2-bcfd-0800200c9a66",
    "X-Goog-Channel-Token": "398348u3tu83ut8uu38",
    "X-Goog-Channel-Expiration": "Tue, 19 Nov 2013 01:13:52 GMT",
    "X-Goog-Resource-ID": "ret08u3rv24htgh289g",
    "X-Goog-Resource-URI": "https://www.googleapis.com/calendar/v3/calendars/my_calendar@gmail.com/events",
    "X-Goog-Resource-State": "exists",
    "X-Goog-Message-Number": "10",
  };
  const req = (over: Record<string, string | null> = {}) => {
    const h = new Headers(headers);
    for (const [k, v] of Object.entries(over)) v === null ? h.delete(k) : h.set(k, v);
    return new Request("http://x/calendar-webhook/google", { method: "POST", headers: h });
  };
  assert.deepEqual(readGoogleNotification(req()), {
    "x-goog-channel-id": "4ba78bf0-6a47-11e2-bcfd-0800200c9a66",
    "x-goog-channel-token": "398348u3tu83ut8uu38",
    "x-goog-resource-id": "ret08u3rv24htgh289g",
    "x-goog-resource-state": "exists",
    "x-goog-message-number": "10",
  });
  assert.equal(
    readGoogleNotification(req({ "X-Goog-Channel-Token": null }))["x-goog-channel-token"],
    undefined,
  );
  for (
    const bad of [
      { "X-Goog-Channel-ID": null },
      { "X-Goog-Channel-ID": "a".repeat(65) },
      { "X-Goog-Resource-State": "update" },
      { "X-Goog-Message-Number": "-1" },
      { "X-Goog-Message-Number": "1".repeat(19) },
      { "X-Goog-Resource-ID": null },
    ] as Record<string, string | null>[]
  ) {
    assert.throws(() => readGoogleNotification(req(bad)), (e) => e instanceof HttpError && e.status === 400);
  }
});

Deno.test("validationAnswer: Graph's token echoed verbatim as text/plain; null without one", async () => {
  assert.equal(validationAnswer(new URL("http://x/calendar-webhook/microsoft")), null);
  const token = "Validation: Testing client application reachability <script>&";
  const res = validationAnswer(
    new URL(`http://x/calendar-webhook/microsoft?validationToken=${encodeURIComponent(token)}`),
  )!;
  assert.equal(res.status, 200);
  assert.equal(res.headers.get("content-type"), "text/plain; charset=utf-8");
  assert.equal(res.headers.get("x-content-type-options"), "nosniff");
  assert.equal(await res.text(), token);
  for (
    const query of [
      "validationToken=",
      "validationToken=a&validationToken=b",
      `validationToken=${"a".repeat(4097)}`,
    ]
  ) {
    assert.throws(
      () => validationAnswer(new URL(`http://x/calendar-webhook/microsoft?${query}`)),
      (e) => e instanceof HttpError && e.status === 400,
    );
  }
});

Deno.test("channelSecretDigest: SHA-256 of the UTF-8 secret in hex; null for no secret", async () => {
  const secret = "clientState-é-42";
  assert.equal(await channelSecretDigest(secret), createHash("sha256").update(secret, "utf8").digest("hex"));
  assert.equal(await channelSecretDigest(null), null);
  assert.equal(await channelSecretDigest(undefined), null);
});
