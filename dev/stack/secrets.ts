/**
 * The local stack's secrets: the JWT secret (stands in for the Supabase project's legacy HS256 secret),
 * the token encryption key, the OAuth state signing secret, the worker's shared secret and the
 * sandbox's Google OAuth client. Tests generate fresh ones per stack; `npm start` keeps one set in
 * `.local/secrets.json` (gitignored, mode 0600) so tokens encrypted yesterday still decrypt today.
 * Nothing here is ever logged.
 */
import { base64, base64url } from "../../supabase/functions/_shared/encoding.ts";

/** Every secret the local stack hands to the functions (see function-env.ts). All strings are ASCII. */
export interface LocalSecrets {
  /** HS256 secret for Supabase-shaped JWTs (>= 32 chars, like SUPABASE_JWT_SECRET). */
  jwtSecret: string;
  /** 32 random bytes, standard base64 (TOKEN_ENCRYPTION_KEY). */
  tokenEncryptionKey: string;
  /** HMAC secret for the OAuth state JWT, >= 32 chars (OAUTH_STATE_SIGNING_SECRET). */
  stateSigningSecret: string;
  /** Bearer secret for calendar-sync-worker, >= 32 chars (CALENDAR_WORKER_SECRET). */
  workerSecret: string;
  /** OAuth client registered in the provider sandbox (GOOGLE_CLIENT_ID). */
  googleClientId: string;
  /** Its client secret (GOOGLE_CLIENT_SECRET). */
  googleClientSecret: string;
  /** App registration in the Microsoft sandbox (MICROSOFT_CLIENT_ID), a GUID as Entra's are. */
  microsoftClientId: string;
  /** Its client secret (MICROSOFT_CLIENT_SECRET). */
  microsoftClientSecret: string;
}

/** Fields added after the first secrets files were written: filled in (and saved) when missing. */
const ADDED_FIELDS: (keyof LocalSecrets)[] = ["microsoftClientId", "microsoftClientSecret"];

const FIELDS: (keyof LocalSecrets)[] = [
  "jwtSecret",
  "tokenEncryptionKey",
  "stateSigningSecret",
  "workerSecret",
  "googleClientId",
  "googleClientSecret",
];

function random(bytes: number): Uint8Array {
  return crypto.getRandomValues(new Uint8Array(bytes));
}

/** A fresh random set (tests: one per stack, so no two stacks can read each other's tokens). */
export function generateSecrets(): LocalSecrets {
  const id = Array.from(random(6), (b) => b.toString(16).padStart(2, "0")).join("");
  return {
    jwtSecret: base64url(random(36)),
    tokenEncryptionKey: base64(random(32)),
    stateSigningSecret: base64url(random(36)),
    workerSecret: base64url(random(36)),
    googleClientId: `local-${id}.apps.googleusercontent.com`,
    googleClientSecret: `GOCSPX-${base64url(random(18))}`,
    microsoftClientId: crypto.randomUUID(),
    microsoftClientSecret: `local~${base64url(random(27))}`,
  };
}

function isComplete(value: unknown): value is LocalSecrets {
  if (!value || typeof value !== "object") return false;
  const record = value as Record<string, unknown>;
  return FIELDS.every((f) => typeof record[f] === "string" && (record[f] as string).length > 0) &&
    record.jwtSecret!.toString().length >= 32 && record.stateSigningSecret!.toString().length >= 32 &&
    record.workerSecret!.toString().length >= 32;
}

/**
 * The secrets in `<dir>/secrets.json`, generated and written (mode 0600) on first use.
 * A file that is unreadable as JSON or misses a field is an error rather than silently replaced,
 * because replacing it would make every stored token undecryptable.
 * @throws Error naming the file when it exists but is not a complete secrets file.
 */
export async function loadOrCreateSecrets(dir = ".local"): Promise<LocalSecrets> {
  const file = `${dir.replace(/\/$/, "")}/secrets.json`;
  let text: string | undefined;
  try {
    text = await Deno.readTextFile(file);
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
  }
  if (text !== undefined) {
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch {
      throw new Error(
        `${file} is not valid JSON; fix it or delete it (stored tokens then become unreadable)`,
      );
    }
    if (!isComplete(value)) {
      throw new Error(`${file} lacks a secret; fix it or delete it (stored tokens then become unreadable)`);
    }
    const secrets = {} as LocalSecrets;
    for (const f of FIELDS) secrets[f] = value[f];
    const fresh = generateSecrets();
    const record = value as unknown as Record<string, unknown>;
    const missing = ADDED_FIELDS.filter((f) => typeof record[f] !== "string" || record[f] === "");
    for (const f of ADDED_FIELDS) secrets[f] = missing.includes(f) ? fresh[f] : record[f] as string;
    // New fields never touch the token key, so adding them keeps stored tokens readable.
    if (missing.length > 0) {
      await Deno.writeTextFile(file, JSON.stringify(secrets, null, 2) + "\n", { mode: 0o600 });
    }
    return secrets;
  }
  const secrets = generateSecrets();
  await Deno.mkdir(dir, { recursive: true });
  try {
    await Deno.writeTextFile(file, JSON.stringify(secrets, null, 2) + "\n", { mode: 0o600, createNew: true });
  } catch (err) {
    // Another process created it first: use theirs.
    if (err instanceof Deno.errors.AlreadyExists) return await loadOrCreateSecrets(dir);
    throw err;
  }
  return secrets;
}
