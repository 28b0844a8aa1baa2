/**
 * A client that goes away in the middle of its request body is the client's doing: the function
 * answers (to nobody) with a 4xx, logs no error-level line, and keeps serving. Real HTTP over a raw
 * TCP socket to the gateway process: headers, part of a chunked body, then the socket is closed.
 */
import assert from "node:assert/strict";
import { waitFor } from "../support/poll.ts";
import { startTestStack } from "../support/stack.ts";

const encoder = new TextEncoder();

/** Send the headers and the first chunk of a chunked JSON body, then close the socket. */
async function abortMidBody(
  base: URL,
  path: string,
  authorization: string,
  requestId: string,
): Promise<void> {
  const conn = await Deno.connect({ hostname: base.hostname, port: Number(base.port) });
  const partial = '{"appointment_id": "';
  const head = [
    `POST ${path} HTTP/1.1`,
    `host: ${base.host}`,
    `authorization: ${authorization}`,
    "content-type: application/json",
    "transfer-encoding: chunked",
    `x-request-id: ${requestId}`,
    "",
    "",
  ].join("\r\n");
  await conn.write(encoder.encode(head + `${partial.length.toString(16)}\r\n${partial}\r\n`));
  // Let the server start reading the body before the connection goes.
  await new Promise((r) => setTimeout(r, 100));
  conn.close();
}

Deno.test("a client that drops the connection mid-body gets no 500 and leaves no error in the log", async (t) => {
  const stack = await startTestStack();
  try {
    const base = new URL(stack.functionsUrl);
    const cases: [string, string][] = [
      ["calendar-sync-appointment", `Bearer ${stack.serviceRoleJwt}`],
      ["calendar-get-availability", `Bearer ${stack.serviceRoleJwt}`],
      ["calendar-sync-worker", `Bearer ${stack.secrets.workerSecret}`],
      ["calendar-auth-start", `Bearer ${await stack.userJwt(crypto.randomUUID())}`],
    ];
    for (const [name, authorization] of cases) {
      await t.step(name, async () => {
        const requestId = `abort-${crypto.randomUUID()}`;
        await abortMidBody(base, `/functions/v1/${name}`, authorization, requestId);
        // The gateway logs one line per request once the handler has answered.
        const found = await waitFor(
          `${name}'s request line`,
          () =>
            Promise.resolve(
              stack.gatewayLogs().find((l) => l.includes(requestId) && l.includes("gateway_request")),
            ),
          (l) => l !== undefined,
          { timeoutMs: 10_000 },
        );
        const line = JSON.parse(found!);
        assert.ok(line.status >= 400 && line.status < 500, `${name} answered ${line.status}`);
        const errors = stack.gatewayLogs().filter((l) =>
          /"level":"error"|unhandled|internal_error|^error|Error:/i.test(l)
        );
        assert.deepEqual(errors, [], "no error-level line and nothing on stderr");
        const note = stack.gatewayLogs().find((l) => l.includes(requestId) && l.includes("client_aborted"));
        assert.ok(note && JSON.parse(note).level === "info", "noted at info level");
      });
    }

    await t.step("the server keeps serving", async () => {
      const res = await stack.invoke("calendar-sync-worker", { jwt: stack.secrets.workerSecret, body: {} });
      assert.equal(res.status, 200, await res.text());
    });
  } finally {
    await stack.close();
  }
});
