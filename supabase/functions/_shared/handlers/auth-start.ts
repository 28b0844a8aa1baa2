/**
 * `calendar-auth-start` (and the seed's `google-calendar-auth-start`): the consent URL for the
 * signed-in staff member.
 *
 * Gateway verify_jwt is off; the Supabase JWT is verified here (auth.ts). The staff member is the
 * one whose `staff.profile_id` is the token's `sub`; nothing in the request names a staff member.
 *
 * Input, GET query or POST JSON (unknown fields refused):
 * - `return_to?` absolute http(s) URL whose origin is listed in CALENDAR_ALLOWED_RETURN_ORIGINS; the
 *   callback sends the browser there (else to CALENDAR_DEFAULT_RETURN_URL) with its result markers.
 * - `provider?` "google" (default) | "microsoft" (refused until Microsoft is configured).
 * - `login_hint?` email (or provider subject) to preselect the account on the consent page.
 *
 * Output 200: `{url, expires_at, flow_id}`: the provider's consent URL (scopes from GOOGLE_SCOPES plus
 * `openid email`, `access_type`, configured `prompt`, `include_granted_scopes=true`, S256
 * challenge, OIDC nonce, signed state) and when the state expires (ISO 8601 UTC, 10 minutes). Open
 * `url` in the browser (navigate, not fetch); the state inside it is single-use. The flow is bound
 * to the calling user and app: with CALENDAR_CONSENT_CONFIRMATION=app only this user, presenting
 * `flow_id` (keep it in the page's sessionStorage; it is never put in a URL), can confirm its grant.
 *
 * Limits per staff member (oauth-state.ts): a burst of CALENDAR_AUTH_START_BURST starts (10), then
 * one every CALENDAR_AUTH_START_REFILL_SECONDS (30 s), else 429 `too_many_attempts` with
 * `Retry-After` (seconds); at most MAX_LIVE_STATES (5) live links, a newer start deleting the oldest.
 *
 * Errors: 401 `missing_authorization` / `invalid_token`; 403 `forbidden_role` (anon key),
 * `user_required` (service role), `not_staff`; 409 `ambiguous_staff`, `other_provider_connected` (the
 * staff member's active connection is of another provider: disconnect it first); 429 `too_many_attempts`;
 * 400 `invalid_json`, `invalid_request`, `invalid_return_to`, `return_to_required` (confirmation
 * `app` needs an app page to come back to: `return_to` or CALENDAR_DEFAULT_RETURN_URL),
 * `provider_not_configured`; 405; 413; 414; 415.
 */
import { z } from "zod";
import { authenticateUser } from "../auth.ts";
import type { Config } from "../config.ts";
import { refuseOtherProvider } from "../connections.ts";
import { getSql } from "../db/client.ts";
import { HttpError, json, requireMethod } from "../http.ts";
import { AuthStartRateLimited, createAuthState } from "../oauth-state.ts";
import { revokeGrants, takeExpiredPendingGrants } from "../pending-grants.ts";
import { configuredProviders, KNOWN_PROVIDER_NAMES, providerFor } from "../providers/registry.ts";
import { NO_STORE, readQueryOrJson } from "../request-input.ts";
import type { FunctionHandler } from "../serve.ts";
import { requireOwnStaff } from "../staff.ts";

const inputSchema = z.strictObject({
  return_to: z.string().min(1).max(2048).optional(),
  /** Absent: the first configured provider in registry order (Google when configured). */
  provider: z.enum(KNOWN_PROVIDER_NAMES).optional(),
  login_hint: z.string().regex(/^[^\s\p{Cc}]{1,320}$/u, "must be an email address or account id").optional(),
});

/**
 * Whether `value` is an absolute http(s) URL, without credentials, on an allowed origin.
 * @returns the normalised URL string, or null when it is not acceptable.
 */
export function acceptableReturnUrl(
  value: string,
  config: Pick<Config, "allowedReturnOrigins">,
): string | null {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return null;
  }
  if (url.protocol !== "https:" && url.protocol !== "http:") return null;
  if (url.username || url.password) return null;
  return config.allowedReturnOrigins.includes(url.origin) ? url.toString() : null;
}

export const authStart: FunctionHandler = async (req, ctx) => {
  requireMethod(req, "GET", "POST");
  const { config } = ctx;
  const caller = await authenticateUser(req, config);
  const input = await readQueryOrJson(req, inputSchema);
  // Built before anything is written: an unconfigured provider (400 provider_not_configured) or a
  // misconfigured one must not leave a state row.
  const provider = providerFor(input.provider ?? configuredProviders(config)[0] ?? "google", config);
  let returnTo: string | null = null;
  if (input.return_to !== undefined) {
    returnTo = acceptableReturnUrl(input.return_to, config);
    if (!returnTo) {
      throw new HttpError(
        400,
        "invalid_return_to",
        "return_to must be an absolute URL on an origin listed in CALENDAR_ALLOWED_RETURN_ORIGINS",
      );
    }
  }
  if (config.consentConfirmation === "app" && !returnTo && !config.defaultReturnUrl) {
    throw new HttpError(
      400,
      "return_to_required",
      "send return_to (or set CALENDAR_DEFAULT_RETURN_URL): the app confirms the connection on that page",
    );
  }
  const sql = getSql(config);
  const staff = await requireOwnStaff(sql, caller.userId);
  // Before the consent page, not after it: one active connection per staff member.
  await refuseOtherProvider(sql, { tenantId: staff.tenant_id, staffId: staff.id }, provider.id);
  let created;
  try {
    created = await createAuthState(sql, config, {
      tenantId: staff.tenant_id,
      staffId: staff.id,
      provider: provider.id,
      initiatedBy: caller.userId,
      returnTo,
    });
  } catch (err) {
    if (!(err instanceof AuthStartRateLimited)) throw err;
    ctx.log("oauth_start_limited", { staff_id: staff.id, retry_after_s: err.retryAfterSeconds });
    throw new HttpError(429, "too_many_attempts", err.message, {
      "retry-after": String(err.retryAfterSeconds),
    });
  }
  const { state, flowId, codeChallenge, nonce, expiresAt } = created;
  if (config.consentConfirmation === "app") {
    await revokeGrants(config, await takeExpiredPendingGrants(sql, config), ctx.log);
  }
  const url = provider.authorizationUrl({ state, codeChallenge, nonce, loginHint: input.login_hint });
  ctx.log("oauth_start", { staff_id: staff.id, tenant_id: staff.tenant_id, provider: provider.id });
  return json({ url: url.toString(), expires_at: expiresAt.toISOString(), flow_id: flowId }, 200, NO_STORE);
};
