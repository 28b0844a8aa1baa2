/**
 * Google's token and revocation endpoints (docs/providers/google.md A1.2-A1.5, Part E items 1-3):
 * authorization_code with PKCE (single-use 10-minute codes), refresh_token (never rotated), and
 * revocation of a whole grant. Errors are RFC 6749 JSON `{error, error_description}`.
 */
import { jsonResponse, OAuthError } from "./errors.ts";
import { newRefreshToken, sha256Base64url } from "./ids.ts";
import { idTokenFor, wantsIdToken } from "./oauth-identity.ts";
import { formBody, type SandboxRuntime } from "./runtime.ts";
import { ACCESS_TOKEN_TTL_S, type Grant } from "./state.ts";

const PKCE_VERIFIER = /^[A-Za-z0-9._~-]{43,128}$/;
const NO_STORE = { "cache-control": "no-store", pragma: "no-cache" };

/** The grant_type of a token request (for endpoint naming before the request is handled). */
export function grantTypeOf(req: Request, bodyText: string): string | undefined {
  return formBody(req, bodyText)?.get("grant_type") ?? undefined;
}

/** The account a token-endpoint request concerns (code or refresh token), for fault matching. */
export function tokenRequestEmail(sb: SandboxRuntime, req: Request, bodyText: string): string | null {
  const form = formBody(req, bodyText);
  if (!form) return null;
  const code = form.get("code");
  if (code) return sb.state.codes.get(code)?.email ?? null;
  const rt = form.get("refresh_token");
  return rt ? sb.state.grantByRefreshToken(rt)?.email ?? null : null;
}

/** The account behind a token presented for revocation, or null. */
export function revokeRequestEmail(sb: SandboxRuntime, token: string | null): string | null {
  if (!token) return null;
  return sb.state.accessToken(token)?.grant.email ?? sb.state.grantByRefreshToken(token)?.email ?? null;
}

/**
 * `POST /google/token`. Client authentication by `client_secret_post` or HTTP Basic.
 * - `authorization_code`: 200 `{access_token:"ya29…", expires_in:3599, refresh_token?:"1//0…", scope,
 *   token_type:"Bearer", id_token?}`; the ID token (oauth-identity.ts) when `openid` was granted; the
 *   refresh token only when `access_type=offline` and this is the client's
 *   first offline grant for the account or the consent used `prompt=consent` (A1.2). Otherwise the
 *   new access token joins the account's existing grant, so revoking it later revokes both.
 * - `refresh_token`: the same without `refresh_token` (Google does not rotate, A1.3).
 * @throws OAuthError 400 invalid_grant (unknown/expired/reused code "Code was already redeemed.",
 *   PKCE mismatch, revoked refresh token "Token has been expired or revoked."), 400
 *   redirect_uri_mismatch, 400 unsupported_grant_type / invalid_request, 401 invalid_client.
 */
export async function tokenEndpoint(sb: SandboxRuntime, req: Request, bodyText: string): Promise<Response> {
  const form = formBody(req, bodyText);
  if (!form) throw new OAuthError(400, "invalid_request", "Bad Request");
  const client = sb.clients.authenticate(form, req.headers.get("authorization"));
  const grantType = form.get("grant_type");
  if (!grantType) throw new OAuthError(400, "invalid_request", "Missing required parameter: grant_type");
  if (grantType === "authorization_code") {
    return await exchangeCode(sb, form, client.clientId, new URL(req.url).origin);
  }
  if (grantType === "refresh_token") return refresh(sb, form, client.clientId);
  throw new OAuthError(400, "unsupported_grant_type", `Invalid grant_type: ${grantType}`);
}

async function exchangeCode(
  sb: SandboxRuntime,
  form: URLSearchParams,
  clientId: string,
  origin: string,
): Promise<Response> {
  const code = form.get("code");
  if (!code) throw new OAuthError(400, "invalid_request", "Missing required parameter: code");
  const rec = sb.state.codes.get(code);
  if (!rec) throw new OAuthError(400, "invalid_grant", "Malformed auth code.");
  if (rec.redeemed) throw new OAuthError(400, "invalid_grant", "Code was already redeemed.");
  if (rec.expiresAt < Date.now() || rec.clientId !== clientId) {
    throw new OAuthError(400, "invalid_grant", "Bad Request");
  }
  if (form.get("redirect_uri") !== rec.redirectUri) {
    throw new OAuthError(400, "redirect_uri_mismatch", "Bad Request");
  }
  if (rec.codeChallenge !== undefined) {
    const verifier = form.get("code_verifier");
    if (!verifier) throw new OAuthError(400, "invalid_grant", "Missing code verifier.");
    const computed = rec.codeChallengeMethod === "S256" ? sha256Base64url(verifier) : verifier;
    if (!PKCE_VERIFIER.test(verifier) || computed !== rec.codeChallenge) {
      throw new OAuthError(400, "invalid_grant", "Bad Request");
    }
  }
  rec.redeemed = true;

  const existing = sb.state.grantsFor({ email: rec.email, clientId })
    .filter((g) => g.refreshToken && !g.revoked).at(-1);
  let grant: Grant;
  let refreshToken: string | undefined;
  if (rec.offline && (rec.forceConsent || !existing)) {
    refreshToken = newRefreshToken();
    grant = sb.state.createGrant({ email: rec.email, clientId, scopes: rec.scopes, refreshToken });
  } else if (existing) {
    // Same authorization as before: it now covers the union of everything granted (A1.1).
    existing.scopes = [...new Set([...existing.scopes, ...rec.scopes])];
    grant = existing;
  } else {
    grant = sb.state.createGrant({ email: rec.email, clientId, scopes: rec.scopes });
  }
  const accessToken = sb.state.issueAccessToken(grant, rec.scopes);
  const idToken = wantsIdToken(rec.scopes)
    ? await idTokenFor(sb, { origin, clientId, email: rec.email, nonce: rec.nonce })
    : undefined;
  return jsonResponse(
    {
      access_token: accessToken,
      expires_in: ACCESS_TOKEN_TTL_S,
      ...(refreshToken ? { refresh_token: refreshToken } : {}),
      scope: rec.scopes.join(" "),
      token_type: "Bearer",
      ...(idToken ? { id_token: idToken } : {}),
    },
    200,
    NO_STORE,
  );
}

function refresh(sb: SandboxRuntime, form: URLSearchParams, clientId: string): Response {
  const token = form.get("refresh_token");
  if (!token) throw new OAuthError(400, "invalid_request", "Missing required parameter: refresh_token");
  const grant = sb.state.grantByRefreshToken(token);
  if (!grant || grant.revoked) {
    throw new OAuthError(400, "invalid_grant", "Token has been expired or revoked.");
  }
  if (grant.clientId !== clientId) throw new OAuthError(401, "unauthorized_client", "Unauthorized");
  let scopes = grant.scopes;
  const asked = form.get("scope");
  if (asked !== null) {
    const wanted = [...new Set(asked.split(" ").filter(Boolean))];
    if (wanted.length === 0 || wanted.some((s) => !grant.scopes.includes(s))) {
      throw new OAuthError(400, "invalid_scope", "Some requested scopes were invalid.");
    }
    scopes = wanted;
  }
  grant.refreshCount++;
  const accessToken = sb.state.issueAccessToken(grant, scopes);
  return jsonResponse(
    {
      access_token: accessToken,
      expires_in: ACCESS_TOKEN_TTL_S,
      scope: scopes.join(" "),
      token_type: "Bearer",
    },
    200,
    NO_STORE,
  );
}

/** The token a revocation request names: `?token=` first, then the form body (A1.5). */
export function revokeToken(url: URL, req: Request, bodyText: string): string | null {
  return url.searchParams.get("token") ?? formBody(req, bodyText)?.get("token") ?? null;
}

/**
 * `POST /google/revoke?token=…` (or form `token`): an access or refresh token; revokes its whole grant
 * (access and refresh tokens) -> 200 with an empty body. Unknown, expired or already revoked ->
 * 400 `{"error":"invalid_token","error_description":"Token expired or revoked"}`.
 */
export function revokeEndpoint(sb: SandboxRuntime, url: URL, req: Request, bodyText: string): Response {
  const token = revokeToken(url, req, bodyText);
  if (!token) throw new OAuthError(400, "invalid_request", "Bad Request");
  const access = sb.state.accessToken(token);
  const grant = access
    ? (access.record.expiresAt > Date.now() ? access.grant : undefined)
    : sb.state.grantByRefreshToken(token);
  if (!grant || grant.revoked) throw new OAuthError(400, "invalid_token", "Token expired or revoked");
  sb.state.revokeGrant(grant);
  return new Response(null, { status: 200, headers: NO_STORE });
}
