/**
 * The gateway's verify_jwt check, as Supabase's API gateway applies it before a function runs:
 * any JWT signed with the project's key passes (anon key, service role, user token), whatever its
 * role; a missing header or a bad, expired or foreign token is answered 401 and the function never
 * runs. Functions still verify identity themselves (auth.ts).
 */
import { parse as parseToml } from "smol-toml";
import { type JwtKeys, verifyJwt } from "../../supabase/functions/_shared/auth.ts";

/** verify_jwt per function name, from supabase/config.toml's `[functions.<name>]` tables. */
export async function readVerifyJwt(configToml: URL): Promise<Map<string, boolean>> {
  const parsed = parseToml(await Deno.readTextFile(configToml)) as {
    functions?: Record<string, { verify_jwt?: boolean }>;
  };
  const map = new Map<string, boolean>();
  // Supabase's default for a function without a table is verify_jwt = true.
  for (const [name, table] of Object.entries(parsed.functions ?? {})) map.set(name, table.verify_jwt ?? true);
  return map;
}

/**
 * Check the request's `Authorization: Bearer <jwt>` like the gateway.
 * @returns null when it passes, else the 401 message Supabase's gateway uses:
 *   "Missing authorization header" or "Invalid JWT".
 */
export async function gatewayJwtError(req: Request, keys: JwtKeys): Promise<string | null> {
  const header = req.headers.get("authorization");
  if (!header) return "Missing authorization header";
  const match = /^Bearer\s+(\S+)$/i.exec(header.trim());
  if (!match) return "Invalid JWT";
  const token = match[1];
  try {
    // The functions' own verification (auth.ts), whatever the role: the gateway checks signatures only.
    await verifyJwt(token, keys);
    return null;
  } catch {
    return "Invalid JWT";
  }
}
