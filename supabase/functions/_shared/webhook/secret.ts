/**
 * Channel secrets: the Google channel token (`X-Goog-Channel-Token`) and the Graph subscription's
 * `clientState` are random per channel, and the database keeps only their SHA-256
 * (`calendar_channels.secret_hash`), which the webhook's statement compares in constant time.
 */

/**
 * The SHA-256 of a channel secret as lowercase hex (what the webhook's SQL decodes to bytea), or
 * null when the notification carried no secret (then nothing matches).
 */
export async function channelSecretDigest(secret: string | null | undefined): Promise<string | null> {
  if (secret === null || secret === undefined) return null;
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(secret)));
  return Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
}
