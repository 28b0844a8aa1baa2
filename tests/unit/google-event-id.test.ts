import assert from "node:assert/strict";
import { eventIdFor, GOOGLE_EVENT_ID } from "../../supabase/functions/_shared/providers/google/event-id.ts";
import { ProviderError } from "../../supabase/functions/_shared/providers/types.ts";

// Vectors computed independently with Python:
// base64.b32hexencode(uuid.UUID(s).bytes).decode().rstrip("=").lower()
const VECTORS: [string, string][] = [
  ["00000000-0000-0000-0000-000000000000", "00000000000000000000000000"],
  ["ffffffff-ffff-ffff-ffff-ffffffffffff", "vvvvvvvvvvvvvvvvvvvvvvvvvs"],
  ["6ba7b810-9dad-11d1-80b4-00c04fd430c8", "dejrg44tlk8t305k0304vl1gp0"],
  ["123e4567-e89b-12d3-a456-426614174000", "28v4apv8jc9d792m89j185q000"],
  ["01890a5d-ac96-774b-bcce-b302099a8057", "064gkndciprknf6emc10j6k0as"],
];

Deno.test("eventIdFor: known RFC 4648 base32hex vectors", () => {
  for (const [uuid, id] of VECTORS) assert.equal(eventIdFor(uuid), id, uuid);
});

Deno.test("eventIdFor: uppercase and lowercase UUIDs give the same id", () => {
  for (const [uuid, id] of VECTORS) assert.equal(eventIdFor(uuid.toUpperCase()), id);
});

Deno.test("eventIdFor: 26 chars of Google's id alphabet, deterministic, injective on random UUIDs", () => {
  const seen = new Map<string, string>();
  for (let i = 0; i < 2000; i++) {
    const uuid = crypto.randomUUID();
    const id = eventIdFor(uuid);
    assert.equal(id.length, 26);
    assert.match(id, /^[0-9a-v]{26}$/);
    assert.match(id, GOOGLE_EVENT_ID);
    assert.equal(eventIdFor(uuid), id, "same input, same id");
    // Independent derivation: base32hex digits are exactly JavaScript's radix-32 digits, and 128
    // bits padded with 2 zero bits make 130 bits = 26 digits.
    const viaBigInt = (BigInt(`0x${uuid.replace(/-/g, "")}`) << 2n).toString(32).padStart(26, "0");
    assert.equal(id, viaBigInt, uuid);
    assert.ok(!seen.has(id) || seen.get(id) === uuid, "two UUIDs share an id");
    seen.set(id, uuid);
  }
});

Deno.test("eventIdFor: anything but a UUID is refused with kind invalid", () => {
  for (
    const bad of [
      "",
      "not-a-uuid",
      "6ba7b8109dad11d180b400c04fd430c8",
      "6ba7b810-9dad-11d1-80b4-00c04fd430c8x",
    ]
  ) {
    assert.throws(
      () => eventIdFor(bad),
      (err) => err instanceof ProviderError && err.kind === "invalid",
      JSON.stringify(bad),
    );
  }
});

Deno.test("eventIdFor: each generation is a fresh, deterministic, valid id; generation 0 is the plain id", () => {
  const uuid = "6ba7b810-9dad-11d1-80b4-00c04fd430c8";
  const base = eventIdFor(uuid);
  assert.equal(eventIdFor(uuid, 0), base);
  const ids = new Set([base]);
  for (const generation of [1, 2, 31, 32, 1023, 1_000_000]) {
    const id = eventIdFor(uuid, generation);
    assert.match(id, GOOGLE_EVENT_ID);
    assert.ok(id.startsWith(base), "the appointment's id stays the prefix");
    assert.equal(id.slice(26), generation.toString(32));
    assert.equal(eventIdFor(uuid, generation), id, "a retry derives the same id");
    assert.ok(!ids.has(id), `generation ${generation} collides`);
    ids.add(id);
  }
  for (const bad of [-1, 1.5, 1_000_001, Number.NaN]) {
    assert.throws(
      () => eventIdFor(uuid, bad),
      (err) => err instanceof ProviderError && err.kind === "invalid",
      String(bad),
    );
  }
});
