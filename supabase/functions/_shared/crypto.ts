/**
 * Token envelope: WebCrypto AES-256-GCM with a random 96-bit IV and additional authenticated data
 * that binds a ciphertext to its row and field, so a ciphertext copied to another staff member's
 * row (or from the access-token column to the refresh-token column) fails to decrypt.
 *
 * Envelope text: `v1.<key id>.<iv base64url>.<ciphertext+tag base64url>`. The key id names which
 * key encrypted it, so keys rotate by adding a new current key and keeping old ones in
 * TOKEN_ENCRYPTION_PREVIOUS_KEYS until every row was re-encrypted.
 */
import type { Config } from "./config.ts";
import { base64url } from "./encoding.ts";

/** What a ciphertext is bound to. Use the row's stable natural key, never something that changes. */
export interface TokenBinding {
  /** e.g. "staff_calendar_connections" */
  table: string;
  /** e.g. `${tenant_id}:${staff_id}:${provider}` */
  rowKey: string;
  /** e.g. "refresh_token" */
  field: string;
}

/** Raised when an envelope is malformed, names an unknown key, or fails authentication. */
export class DecryptionError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "DecryptionError";
  }
}

const keyCache = new Map<Uint8Array, CryptoKey>();

async function importKey(raw: Uint8Array): Promise<CryptoKey> {
  let key = keyCache.get(raw);
  if (!key) {
    key = await crypto.subtle.importKey("raw", raw as BufferSource, "AES-GCM", false, ["encrypt", "decrypt"]);
    keyCache.set(raw, key);
  }
  return key;
}

function aad(b: TokenBinding): Uint8Array {
  return new TextEncoder().encode(`v1|${b.table}|${b.rowKey}|${b.field}`);
}

function fromB64url(text: string): Uint8Array {
  const b64 = text.replace(/-/g, "+").replace(/_/g, "/");
  return Uint8Array.from(atob(b64 + "===".slice((b64.length + 3) % 4)), (c) => c.charCodeAt(0));
}

/** Encrypt `plaintext` with the current key. @returns the envelope text. */
export async function encryptToken(
  plaintext: string,
  binding: TokenBinding,
  encryption: Config["encryption"],
): Promise<string> {
  const raw = encryption.keys.get(encryption.currentKeyId)!;
  const iv = crypto.getRandomValues(new Uint8Array(12));
  const ct = new Uint8Array(
    await crypto.subtle.encrypt(
      { name: "AES-GCM", iv, additionalData: aad(binding) as BufferSource },
      await importKey(raw),
      new TextEncoder().encode(plaintext),
    ),
  );
  return `v1.${encryption.currentKeyId}.${base64url(iv)}.${base64url(ct)}`;
}

/**
 * Decrypt an envelope made by {@link encryptToken} with the same binding.
 * @throws DecryptionError on any mismatch (wrong row or field, tampering, unknown key id).
 */
export async function decryptToken(
  envelope: string,
  binding: TokenBinding,
  encryption: Config["encryption"],
): Promise<string> {
  const parts = envelope.split(".");
  if (parts.length !== 4 || parts[0] !== "v1") throw new DecryptionError("unknown token envelope format");
  const raw = encryption.keys.get(parts[1]);
  if (!raw) throw new DecryptionError(`token encrypted with unknown key id '${parts[1]}'`);
  try {
    const iv = fromB64url(parts[2]);
    if (iv.length !== 12) throw new Error("bad iv");
    const pt = await crypto.subtle.decrypt(
      { name: "AES-GCM", iv: iv as BufferSource, additionalData: aad(binding) as BufferSource },
      await importKey(raw),
      fromB64url(parts[3]) as BufferSource,
    );
    return new TextDecoder().decode(pt);
  } catch {
    throw new DecryptionError("token failed authentication (tampered, or bound to another row or field)");
  }
}

/** True when the envelope was made with a key other than the current one (it should be re-encrypted). */
export function needsReencryption(envelope: string, encryption: Config["encryption"]): boolean {
  return envelope.split(".")[1] !== encryption.currentKeyId;
}

/** The binding for a staff_calendar_connections token column. */
export function connectionTokenBinding(
  conn: { tenant_id: string; staff_id: string; provider: string },
  field: "access_token" | "refresh_token",
): TokenBinding {
  return {
    table: "staff_calendar_connections",
    rowKey: `${conn.tenant_id}:${conn.staff_id}:${conn.provider}`,
    field,
  };
}
