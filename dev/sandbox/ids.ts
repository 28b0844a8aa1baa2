/**
 * Identifier and token generators for the Google sandbox, shaped like Google's so client code that
 * checks prefixes or character sets sees realistic values (docs/providers/google.md A1.2, A6).
 */
import { createHash } from "node:crypto";
import { base64url as encodeBase64url } from "../../supabase/functions/_shared/encoding.ts";

const BASE32HEX = "0123456789abcdefghijklmnopqrstuv";

/** Client-supplied event ids Google accepts: base32hex lowercase, 5..1024 chars (A6). */
export const CLIENT_EVENT_ID = /^[a-v0-9]{5,1024}$/;

/** `length` random base32hex characters (`[0-9a-v]`), the alphabet of Google event ids. */
export function randomBase32hex(length: number): string {
  const bytes = crypto.getRandomValues(new Uint8Array(length));
  return Array.from(bytes, (b) => BASE32HEX[b & 31]).join("");
}

/** `bytes` random bytes as unpadded base64url. */
export function randomBase64url(bytes: number): string {
  return base64url(crypto.getRandomValues(new Uint8Array(bytes)));
}

/** Unpadded base64url of bytes or of a UTF-8 string. */
export function base64url(input: Uint8Array | string): string {
  return encodeBase64url(typeof input === "string" ? new TextEncoder().encode(input) : input);
}

/** Decode unpadded base64url to a UTF-8 string; undefined when malformed. */
export function fromBase64url(s: string): string | undefined {
  if (!/^[A-Za-z0-9_-]*$/.test(s)) return undefined;
  try {
    const bin = atob(s.replace(/-/g, "+").replace(/_/g, "/"));
    return new TextDecoder("utf-8", { fatal: true }).decode(Uint8Array.from(bin, (c) => c.charCodeAt(0)));
  } catch {
    return undefined;
  }
}

/** SHA-256 as lowercase hex. */
export function sha256Hex(s: string): string {
  return createHash("sha256").update(s).digest("hex");
}

/** SHA-256 as unpadded base64url: the PKCE S256 transform (RFC 7636 section 4.2). */
export function sha256Base64url(s: string): string {
  return base64url(new Uint8Array(createHash("sha256").update(s).digest()));
}

/** An access token in Google's visible format (`ya29.` prefix). Opaque otherwise. */
export const newAccessToken = (): string => `ya29.a0${randomBase64url(60)}`;
/** A refresh token in Google's visible format (`1//` prefix). */
export const newRefreshToken = (): string => `1//0${randomBase64url(48)}`;
/** An authorization code in Google's visible format (`4/0` prefix). */
export const newAuthorizationCode = (): string => `4/0A${randomBase64url(48)}`;

/** RFC 3339 UTC with milliseconds and `Z`, as Google writes `created`/`updated`. */
export const rfc3339 = (ms: number): string => new Date(ms).toISOString();
