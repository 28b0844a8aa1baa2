/**
 * The token envelope (docs/decisions.md decision 5): AES-256-GCM with a random IV, additional data
 * binding a ciphertext to its row and field, a key id for rotation.
 */
import assert from "node:assert/strict";
import type { Config } from "../../supabase/functions/_shared/config.ts";
import {
  connectionTokenBinding,
  DecryptionError,
  decryptToken,
  encryptToken,
  needsReencryption,
  type TokenBinding,
} from "../../supabase/functions/_shared/crypto.ts";

function key(fill: number): Uint8Array {
  return new Uint8Array(32).fill(fill);
}

const K1: Config["encryption"] = { currentKeyId: "k1", keys: new Map([["k1", key(1)]]) };
const BINDING: TokenBinding = connectionTokenBinding(
  { tenant_id: "t-1", staff_id: "s-1", provider: "google" },
  "refresh_token",
);
const SECRET = "1//refresh-token-value";

Deno.test("crypto: round trip, envelope names version and key id, plaintext absent", async () => {
  const envelope = await encryptToken(SECRET, BINDING, K1);
  const parts = envelope.split(".");
  assert.equal(parts.length, 4);
  assert.equal(parts[0], "v1");
  assert.equal(parts[1], "k1");
  assert.ok(!envelope.includes("refresh-token-value"));
  assert.equal(await decryptToken(envelope, BINDING, K1), SECRET);
});

Deno.test("crypto: a fresh IV per encryption, so equal tokens give different envelopes", async () => {
  const a = await encryptToken(SECRET, BINDING, K1);
  const b = await encryptToken(SECRET, BINDING, K1);
  assert.notEqual(a, b);
  assert.notEqual(a.split(".")[2], b.split(".")[2]);
});

Deno.test("crypto: a ciphertext copied to another staff member's row fails to decrypt", async () => {
  const envelope = await encryptToken(SECRET, BINDING, K1);
  const other = connectionTokenBinding(
    { tenant_id: "t-1", staff_id: "s-2", provider: "google" },
    "refresh_token",
  );
  await assert.rejects(decryptToken(envelope, other, K1), DecryptionError);
  const otherTenant = connectionTokenBinding(
    { tenant_id: "t-2", staff_id: "s-1", provider: "google" },
    "refresh_token",
  );
  await assert.rejects(decryptToken(envelope, otherTenant, K1), DecryptionError);
});

Deno.test("crypto: a ciphertext moved from the refresh to the access column fails", async () => {
  const envelope = await encryptToken(SECRET, BINDING, K1);
  const access = connectionTokenBinding(
    { tenant_id: "t-1", staff_id: "s-1", provider: "google" },
    "access_token",
  );
  await assert.rejects(decryptToken(envelope, access, K1), DecryptionError);
});

Deno.test("crypto: tampering with ciphertext, tag or IV is detected", async () => {
  const envelope = await encryptToken(SECRET, BINDING, K1);
  const [v, id, iv, ct] = envelope.split(".");
  const flip = (s: string, at: number) => s.slice(0, at) + (s[at] === "A" ? "B" : "A") + s.slice(at + 1);
  for (
    const bad of [
      `${v}.${id}.${iv}.${flip(ct, 0)}`,
      `${v}.${id}.${iv}.${flip(ct, ct.length - 2)}`,
      `${v}.${id}.${flip(iv, 0)}.${ct}`,
    ]
  ) {
    await assert.rejects(decryptToken(bad, BINDING, K1), DecryptionError);
  }
});

Deno.test("crypto: malformed envelopes and unknown key ids are DecryptionErrors, not crashes", async () => {
  for (
    const bad of [
      "",
      "plaintext",
      "v2.k1.a.b",
      "v1.k1.only-three",
      "v1.k1.!!!.???",
      "v1.k1..",
      "v1.k1.AAAA.AAAA",
    ]
  ) {
    await assert.rejects(decryptToken(bad, BINDING, K1), DecryptionError, `envelope ${JSON.stringify(bad)}`);
  }
  const envelope = await encryptToken(SECRET, BINDING, K1);
  await assert.rejects(
    decryptToken(envelope, BINDING, { currentKeyId: "k9", keys: new Map([["k9", key(9)]]) }),
    (err: Error) => err instanceof DecryptionError && /unknown key id 'k1'/.test(err.message),
  );
});

Deno.test("crypto: a wrong key under the right id fails authentication", async () => {
  const envelope = await encryptToken(SECRET, BINDING, K1);
  await assert.rejects(
    decryptToken(envelope, BINDING, { currentKeyId: "k1", keys: new Map([["k1", key(2)]]) }),
    DecryptionError,
  );
});

Deno.test("crypto: key rotation: old envelopes still decrypt with the previous key and ask to be re-encrypted", async () => {
  const old = await encryptToken(SECRET, BINDING, K1);
  const rotated: Config["encryption"] = {
    currentKeyId: "k2",
    keys: new Map([["k2", key(2)], ["k1", key(1)]]),
  };
  assert.equal(await decryptToken(old, BINDING, rotated), SECRET);
  assert.equal(needsReencryption(old, rotated), true);
  const fresh = await encryptToken(SECRET, BINDING, rotated);
  assert.equal(fresh.split(".")[1], "k2");
  assert.equal(needsReencryption(fresh, rotated), false);
  assert.equal(await decryptToken(fresh, BINDING, rotated), SECRET);
});

Deno.test("crypto: unicode and long tokens survive", async () => {
  const long = "ya29." + "x".repeat(4000) + "é✓";
  assert.equal(await decryptToken(await encryptToken(long, BINDING, K1), BINDING, K1), long);
});
