/**
 * The keys Supabase JWTs are verified with: the inline SUPABASE_JWKS when it holds usable public
 * keys, else the project's remote JWKS at `SUPABASE_URL/auth/v1/.well-known/jwks.json` (fetched by
 * jose, cached, refetched at most every 30 s for an unknown `kid`).
 *
 * A SUPABASE_JWKS that is empty, malformed or holds no key jose can import never takes the
 * functions down: the remote JWKS is used and one warning line is logged per isolate
 * (`{"level":"warn","event":"jwks_fallback",...}`), not one per request. Keys of the inline set that
 * cannot be imported are skipped with one `jwks_key_skipped` warning. See
 * https://supabase.com/docs/guides/auth/signing-keys.
 */
import * as jose from "jose";
import type { Config } from "./config.ts";

/** What key resolution needs of the configuration. */
export type JwksSource = Pick<Config, "jwks" | "jwksProblem" | "supabaseUrl">;

/** A jose key resolver for asymmetric tokens. */
export type KeyResolver = jose.JWTVerifyGetKey;

/** Asymmetric algorithms Supabase Auth signs with: ES256 (the default), RS256, Ed25519 (`EdDSA`). */
export const ASYMMETRIC_ALGORITHMS = ["ES256", "RS256", "EdDSA", "Ed25519"] as const;

/** Private members of a JWK (RFC 7518 section 6): dropped so only the public part is ever used. */
const PRIVATE_MEMBERS = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

/** The algorithm a JWK verifies with: its `alg`, else the one its key type implies. */
function algorithmOf(jwk: Record<string, unknown>): string | undefined {
  if (typeof jwk.alg === "string") return jwk.alg;
  if (jwk.kty === "EC" && jwk.crv === "P-256") return "ES256";
  if (jwk.kty === "RSA") return "RS256";
  if (jwk.kty === "OKP" && jwk.crv === "Ed25519") return "EdDSA";
  return undefined;
}

/**
 * The public keys of an inline key set that jose can import for one of
 * {@link ASYMMETRIC_ALGORITHMS}, and how many were skipped. Symmetric (`oct`) keys are not public
 * keys and are handled by auth.ts's HS256 path.
 */
export async function usablePublicKeys(
  keys: Record<string, unknown>[],
): Promise<{ keys: jose.JWK[]; skipped: number }> {
  const usable: jose.JWK[] = [];
  let skipped = 0;
  for (const jwk of keys) {
    if (jwk.kty === "oct") continue;
    const alg = algorithmOf(jwk);
    if (!alg || !(ASYMMETRIC_ALGORITHMS as readonly string[]).includes(alg)) {
      skipped++;
      continue;
    }
    const pub = Object.fromEntries(Object.entries(jwk).filter(([k]) => !PRIVATE_MEMBERS.includes(k)));
    try {
      const key = await jose.importJWK({ ...pub, ext: true } as jose.JWK, alg);
      if (key instanceof Uint8Array || key.type !== "public") throw new Error("not a public key");
      usable.push(pub as jose.JWK);
    } catch {
      skipped++;
    }
  }
  return { keys: usable, skipped };
}

/** One JSON warning line; never the key material or the variable's value. */
function warn(event: string, fields: Record<string, unknown>): void {
  console.warn(JSON.stringify({ level: "warn", event, ...fields }));
}

let remote: { url: string; resolver: KeyResolver } | undefined;
let local: { source: unknown; resolver: Promise<KeyResolver> } | undefined;
const warned = new Set<string>();

function warnOnce(key: string, event: string, fields: Record<string, unknown>): void {
  if (warned.has(key)) return;
  warned.add(key);
  warn(event, fields);
}

/** The remote JWKS resolver for `supabaseUrl`, created once per URL. */
function remoteResolver(supabaseUrl: string): KeyResolver {
  const url = `${supabaseUrl}/auth/v1/.well-known/jwks.json`;
  if (remote?.url !== url) {
    remote = {
      url,
      resolver: jose.createRemoteJWKSet(new URL(url), { cooldownDuration: 30_000, timeoutDuration: 5_000 }),
    };
  }
  return remote.resolver;
}

/**
 * The resolver for asymmetric tokens: the inline keys when at least one is usable, else the remote
 * JWKS (with one warning per isolate naming why). Built once per configuration value.
 */
export async function keyResolver(config: JwksSource): Promise<KeyResolver> {
  const remoteUrl = `${config.supabaseUrl}/auth/v1/.well-known/jwks.json`;
  if (!config.jwks) {
    if (config.jwksProblem) {
      warnOnce(`problem:${config.jwksProblem}`, "jwks_fallback", {
        reason: config.jwksProblem,
        using: remoteUrl,
      });
    }
    return remoteResolver(config.supabaseUrl);
  }
  if (local?.source !== config.jwks) {
    const source = config.jwks;
    local = {
      source,
      resolver: (async () => {
        const { keys, skipped } = await usablePublicKeys(source.keys);
        if (keys.length === 0) {
          // Only symmetric keys (a legacy project): nothing to warn about, asymmetric tokens go remote.
          if (skipped === 0) return remoteResolver(config.supabaseUrl);
          warnOnce("no-usable-key", "jwks_fallback", {
            reason: "SUPABASE_JWKS holds no public key that can be imported",
            using: remoteUrl,
          });
          return remoteResolver(config.supabaseUrl);
        }
        if (skipped > 0) {
          warnOnce("skipped", "jwks_key_skipped", {
            reason: "SUPABASE_JWKS has keys that cannot be imported; they are ignored",
            skipped,
            usable: keys.length,
          });
        }
        return jose.createLocalJWKSet({ keys });
      })(),
    };
  }
  return await local.resolver;
}

/** Forget cached resolvers and warnings (tests). */
export function resetJwksCache(): void {
  remote = undefined;
  local = undefined;
  warned.clear();
}
