/** Base64 encodings of raw bytes (no std library here: imports are limited to the import map). */

/** Standard base64 with padding (RFC 4648 section 4). */
export function base64(bytes: Uint8Array): string {
  let bin = "";
  for (const b of bytes) bin += String.fromCharCode(b);
  return btoa(bin);
}

/** base64url without padding (RFC 4648 section 5), as JWTs, PKCE and our token envelopes use. */
export function base64url(bytes: Uint8Array): string {
  return base64(bytes).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}
