/**
 * The Microsoft identity platform v2 under `/microsoft/{tenant}` (CONTRACT.md, "Microsoft"):
 * the authorize page and its consent decision, the token endpoint (authorization code with PKCE S256,
 * refresh with rotation and reuse detection), the OpenID configuration and the key set.
 *
 * Errors follow Entra: a bad client or redirect URI is shown on an error page (never redirected);
 * other authorize errors redirect with `error`, `error_description` ("AADSTS…: …") and `state`; the
 * token endpoint answers AADSTS JSON (ms-errors.ts).
 */
import type { SandboxClientConfig } from "./clients.ts";
import { consentPage, errorPage } from "./consent-page.ts";
import { jsonResponse } from "./errors.ts";
import { sha256Base64url } from "./ids.ts";
import { AadstsError } from "./ms-errors.ts";
import type { MsAccount, MsGrant } from "./ms-state.ts";
import { newMsAuthorizationCode, newMsRefreshToken } from "./ms-state.ts";
import { publicSigningJwk, signIdToken } from "./oauth-identity.ts";
import { formBody, type SandboxRuntime } from "./runtime.ts";

/** Authorization codes live 10 minutes (B1.2). */
const CODE_TTL_MS = 10 * 60_000;
const PENDING_TTL_MS = 60 * 60_000;
const PKCE_VALUE = /^[A-Za-z0-9._~-]{43,128}$/;
const EMAIL = /^[^\s@]+@[^\s@]+\.[^\s@]+$/;
const GRAPH = "https://graph.microsoft.com/";
/** OpenID Connect scopes (not Graph permissions). */
const OIDC_SCOPES = ["openid", "profile", "email", "offline_access"];
/** The Graph delegated permissions the sandbox knows, in their canonical casing. */
export const GRAPH_SCOPES = [
  "User.Read",
  "Calendars.Read",
  "Calendars.ReadWrite",
  "Calendars.Read.Shared",
  "Calendars.ReadWrite.Shared",
  "MailboxSettings.Read",
];
/** Login shown on the consent page when the app sent no `login_hint`. */
export const MS_DEFAULT_LOGIN = "clinician@contoso.example";
/** Tenant aliases accepted in the path. */
const TENANT_ALIASES = new Set(["common", "organizations", "consumers"]);

/** The client `startSandbox` registers for Microsoft when none is given (CONTRACT.md). */
export const DEFAULT_MS_CLIENT: SandboxClientConfig = {
  clientId: "00001111-aaaa-2222-bbbb-3333cccc4444",
  clientSecret: "sandbox-ms-client-secret",
  redirectUris: [
    "http://127.0.0.1:54321/functions/v1/calendar-auth-callback",
    "http://127.0.0.1:54321/functions/v1/google-calendar-auth-callback",
  ],
};

/**
 * Canonical form of a requested scope: OIDC scopes lowercase, Graph permissions (short or
 * `https://graph.microsoft.com/…`, any case) in their canonical casing; undefined when unknown.
 */
export function canonicalScope(s: string): string | undefined {
  const lower = s.toLowerCase();
  if (OIDC_SCOPES.includes(lower)) return lower;
  const short = lower.startsWith(GRAPH) ? lower.slice(GRAPH.length) : lower;
  return GRAPH_SCOPES.find((g) => g.toLowerCase() === short);
}

/** Scopes as the token response reports them: Graph permissions as full URIs, OIDC ones short. */
const reportScopes = (scopes: string[]) =>
  scopes.map((s) => GRAPH_SCOPES.includes(s) ? `${GRAPH}${s}` : s).join(" ");

/** The issuer of tokens for a tenant id at this origin (`{origin}/microsoft/{tid}/v2.0`). */
export const msIssuer = (origin: string, tenantId: string) => `${origin}/microsoft/${tenantId}/v2.0`;

/** Whether `account` may sign in through the `{tenant}` of the path. */
function tenantAdmits(tenant: string, account: MsAccount): boolean {
  const t = tenant.toLowerCase();
  if (t === "common" || t === "organizations") return true;
  if (t === "consumers") return false; // every sandbox account is a work or school account
  return t === account.tenantId || t === account.tenantDomain;
}

function redirect(target: string, params: [string, string][]): Response {
  const url = new URL(target);
  for (const [k, v] of params) url.searchParams.append(k, v);
  return new Response(null, { status: 302, headers: { location: url.href, "cache-control": "no-store" } });
}

/** The `error_description` of an authorize redirect: `AADSTS<code>: <message>` plus trace lines. */
function describe(code: number, message: string): string {
  const ts = new Date().toISOString().slice(0, 19).replace("T", " ") + "Z";
  return `AADSTS${code}: ${message}\r\nTrace ID: ${crypto.randomUUID()}\r\nCorrelation ID: ${crypto.randomUUID()}\r\nTimestamp: ${ts}`;
}

function errorRedirect(uri: string, error: string, code: number, message: string, state?: string): Response {
  return redirect(uri, [
    ["error", error],
    ["error_description", describe(code, message)],
    ["error_uri", `https://login.microsoftonline.com/error?code=${code}`],
    ...(state !== undefined ? [["state", state] as [string, string]] : []),
  ]);
}

/**
 * `GET /microsoft/{tenant}/oauth2/v2.0/authorize`. Unknown client -> 400 page AADSTS700016; redirect
 * URI not registered exactly -> 400 page AADSTS50011; then, redirected with `state`: missing or
 * non-`code` response_type -> `unsupported_response_type`; no scope or an unknown one ->
 * `invalid_scope` (AADSTS70011); no S256 `code_challenge` -> `invalid_request` (AADSTS9002325: the
 * sandbox requires PKCE S256); `prompt=none` -> `login_required` (no browser session). Otherwise the
 * consent page (form to `.../authorize/decision`).
 */
export function msAuthorizePage(sb: SandboxRuntime, url: URL, tenant: string): Response {
  const p = url.searchParams;
  const clientId = p.get("client_id");
  const client = sb.msClients.get(clientId);
  if (!client) {
    return errorPage(
      400,
      "unauthorized_client",
      `AADSTS700016: Application with identifier '${clientId ?? ""}' was not found in the directory.`,
    );
  }
  const redirectUri = p.get("redirect_uri");
  if (!redirectUri || !client.redirectUris.includes(redirectUri)) {
    return errorPage(
      400,
      "invalid_request",
      `AADSTS50011: The redirect URI '${
        redirectUri ?? ""
      }' specified in the request does not match the redirect URIs configured for the application '${client.clientId}'.`,
    );
  }
  const state = p.get("state") ?? undefined;
  const fail = (error: string, code: number, message: string) =>
    errorRedirect(redirectUri, error, code, message, state);
  const responseType = p.get("response_type");
  if (responseType !== "code") {
    return fail(
      "unsupported_response_type",
      700054,
      `response_type '${responseType ?? ""}' is not enabled for the application.`,
    );
  }
  const raw = [...new Set((p.get("scope") ?? "").split(" ").filter(Boolean))];
  if (raw.length === 0) {
    return fail("invalid_request", 900144, "The request body must contain the following parameter: 'scope'.");
  }
  const scopes: string[] = [];
  for (const s of raw) {
    const c = canonicalScope(s);
    if (!c) {
      return fail(
        "invalid_scope",
        70011,
        `The provided value for the input parameter 'scope' is not valid. The scope ${s} is not valid.`,
      );
    }
    if (!scopes.includes(c)) scopes.push(c);
  }
  const mode = p.get("response_mode") ?? "query";
  if (mode !== "query") {
    return fail(
      "invalid_request",
      900144,
      `The sandbox answers with response_mode=query only, not '${mode}'.`,
    );
  }
  const challenge = p.get("code_challenge");
  const method = p.get("code_challenge_method");
  if (!challenge || method !== "S256" || !PKCE_VALUE.test(challenge)) {
    return fail(
      "invalid_request",
      9002325,
      "Proof Key for Code Exchange is required for cross-origin authorization code redemption (code_challenge with code_challenge_method=S256).",
    );
  }
  const prompt = p.get("prompt");
  if (prompt !== null && !["login", "none", "consent", "select_account"].includes(prompt)) {
    return fail("invalid_request", 90023, `Invalid prompt value '${prompt}'.`);
  }
  if (prompt === "none") {
    return fail("login_required", 50058, "A silent sign-in request was sent but no user is signed in.");
  }
  const now = Date.now();
  for (const [id, pend] of sb.state.microsoft.pending) {
    if (pend.expiresAt < now) sb.state.microsoft.pending.delete(id);
  }
  const id = crypto.randomUUID();
  sb.state.microsoft.pending.set(id, {
    id,
    tenant,
    clientId: client.clientId,
    redirectUri,
    scopes,
    ...(state !== undefined ? { state } : {}),
    codeChallenge: challenge,
    ...(p.get("nonce") ? { nonce: p.get("nonce")! } : {}),
    ...(p.get("login_hint") ? { loginHint: p.get("login_hint")! } : {}),
    responseMode: "query",
    expiresAt: now + PENDING_TTL_MS,
  });
  return consentPage({
    requestId: id,
    clientId: client.clientId,
    login: p.get("login_hint") ?? MS_DEFAULT_LOGIN,
    scopes,
    provider: "Microsoft",
    action: `/microsoft/${encodeURIComponent(tenant)}/oauth2/v2.0/authorize/decision`,
  });
}

/**
 * `POST /microsoft/{tenant}/oauth2/v2.0/authorize/decision` (form `request_id`, `login`, `scope`*,
 * `decision`): `deny` -> redirect `error=access_denied` (AADSTS65004, the user declined consent);
 * `approve` -> redirect `?code=…&state=…&session_state=…` with the ticked scopes granted (`openid`
 * always: it is the sign-in itself). An account outside a specific `{tenant}` -> 400 page AADSTS50020.
 */
export function msDecisionPost(sb: SandboxRuntime, req: Request, bodyText: string): Response {
  const form = formBody(req, bodyText);
  if (!form) return errorPage(400, "invalid_request", "The consent form must be posted as a form.");
  const ms = sb.state.microsoft;
  const pending = ms.pending.get(form.get("request_id") ?? "");
  if (!pending || pending.expiresAt < Date.now()) {
    return errorPage(
      400,
      "invalid_request",
      "AADSTS90015: This sign-in request expired or was already used.",
    );
  }
  const decision = form.get("decision");
  if (decision === "deny") {
    ms.pending.delete(pending.id);
    return errorRedirect(
      pending.redirectUri,
      "access_denied",
      65004,
      "User declined to consent to access the app.",
      pending.state,
    );
  }
  if (decision !== "approve") return errorPage(400, "invalid_request", "Choose Accept or Cancel.");
  const login = (form.get("login") ?? "").trim().toLowerCase();
  if (!EMAIL.test(login)) {
    return consentPage({
      requestId: pending.id,
      clientId: pending.clientId,
      login,
      scopes: pending.scopes,
      error: "Enter a valid email address.",
      provider: "Microsoft",
      action: `/microsoft/${encodeURIComponent(pending.tenant)}/oauth2/v2.0/authorize/decision`,
    }, 400);
  }
  const existing = ms.account(login);
  const isAlias = TENANT_ALIASES.has(pending.tenant.toLowerCase());
  const account = existing ?? ms.ensureAccount(login, isAlias ? {} : guidOrDomain(pending.tenant));
  if (!tenantAdmits(pending.tenant, account)) {
    ms.pending.delete(pending.id);
    return errorPage(
      400,
      "invalid_request",
      `AADSTS50020: User account '${login}' from identity provider does not exist in tenant '${pending.tenant}' and cannot access the application '${pending.clientId}' in that tenant.`,
    );
  }
  ms.pending.delete(pending.id);
  const ticked = new Set(form.getAll("scope").map((s) => canonicalScope(s)).filter(Boolean));
  const scopes = pending.scopes.filter((s) => s === "openid" || ticked.has(s));
  const now = Date.now();
  for (const [c, rec] of ms.codes) if (rec.expiresAt < now - CODE_TTL_MS) ms.codes.delete(c);
  const code = newMsAuthorizationCode();
  ms.codes.set(code, {
    clientId: pending.clientId,
    redirectUri: pending.redirectUri,
    email: account.email,
    scopes,
    codeChallenge: pending.codeChallenge,
    ...(pending.nonce !== undefined ? { nonce: pending.nonce } : {}),
    tenant: pending.tenant,
    expiresAt: now + CODE_TTL_MS,
    redeemed: false,
  });
  return redirect(pending.redirectUri, [
    ["code", code],
    ...(pending.state !== undefined ? [["state", pending.state] as [string, string]] : []),
    ["session_state", crypto.randomUUID()],
  ]);
}

function guidOrDomain(tenant: string): { tenantId?: string; tenantDomain?: string } {
  return /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(tenant)
    ? { tenantId: tenant.toLowerCase() }
    : { tenantDomain: tenant.toLowerCase() };
}

/** The grant_type of a token request (endpoint naming happens before handling). */
export function msGrantTypeOf(req: Request, bodyText: string): string | undefined {
  return formBody(req, bodyText)?.get("grant_type") ?? undefined;
}

/** The account a token request concerns (by code or refresh token), for fault matching and the log. */
export function msTokenRequestEmail(sb: SandboxRuntime, req: Request, bodyText: string): string | null {
  const form = formBody(req, bodyText);
  if (!form) return null;
  const code = form.get("code");
  if (code) return sb.state.microsoft.codes.get(code)?.email ?? null;
  const rt = form.get("refresh_token");
  return rt ? sb.state.microsoft.grantByRefreshToken(rt)?.grant.email ?? null : null;
}

/** Client authentication: `client_secret` in the form or HTTP Basic (confidential web apps). */
function authenticate(
  sb: SandboxRuntime,
  form: URLSearchParams,
  authorization: string | null,
): SandboxClientConfig {
  let id = form.get("client_id");
  let secret = form.get("client_secret");
  const basic = authorization ? /^Basic\s+(\S+)\s*$/i.exec(authorization) : null;
  if (basic) {
    let decoded = "";
    try {
      decoded = atob(basic[1]);
    } catch { /* malformed: treated as no credentials below */ }
    const colon = decoded.indexOf(":");
    if (colon > 0) {
      id ??= decodeURIComponent(decoded.slice(0, colon));
      secret ??= decodeURIComponent(decoded.slice(colon + 1));
    }
  }
  if (!id) {
    throw new AadstsError(
      400,
      "invalid_request",
      900144,
      "The request body must contain the following parameter: 'client_id'.",
    );
  }
  const client = sb.msClients.get(id);
  if (!client) {
    throw new AadstsError(
      400,
      "unauthorized_client",
      700016,
      `Application with identifier '${id}' was not found in the directory.`,
    );
  }
  if (secret === null) {
    throw new AadstsError(
      401,
      "invalid_client",
      7000218,
      "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
    );
  }
  if (secret !== client.clientSecret) {
    throw new AadstsError(
      401,
      "invalid_client",
      7000215,
      "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '" +
        client.clientId + "'.",
    );
  }
  return client;
}

/** Access-token lifetime: randomised between 60 and 90 minutes, as Entra's (B1.3). */
const accessTtl = () => 3599 + Math.floor(Math.random() * 1801);

/**
 * `POST /microsoft/{tenant}/oauth2/v2.0/token` (form).
 * - `authorization_code`: code single use and 10 min, `redirect_uri` identical, `code_verifier` must
 *   match the S256 challenge -> 200 `{token_type:"Bearer", scope, expires_in, ext_expires_in,
 *   access_token, refresh_token? (with offline_access), id_token? (with openid)}`.
 * - `refresh_token`: ROTATION: a new refresh token every time. A refresh token already rotated away
 *   -> per `refreshReuse` (ms-state.ts). Revoked grants answer their AADSTS code (see CONTRACT.md).
 * @throws AadstsError for every refusal (400 invalid_grant / invalid_scope / invalid_request /
 *   unsupported_grant_type / unauthorized_client, 401 invalid_client).
 */
export async function msTokenEndpoint(sb: SandboxRuntime, req: Request, bodyText: string): Promise<Response> {
  const form = formBody(req, bodyText);
  if (!form) {
    throw new AadstsError(
      400,
      "invalid_request",
      900144,
      "The request body must contain the following parameter: 'grant_type'.",
    );
  }
  const client = authenticate(sb, form, req.headers.get("authorization"));
  const grantType = form.get("grant_type");
  const origin = new URL(req.url).origin;
  if (grantType === "authorization_code") return await exchange(sb, form, client, origin);
  if (grantType === "refresh_token") return await refresh(sb, form, client, origin);
  if (!grantType) {
    throw new AadstsError(
      400,
      "invalid_request",
      900144,
      "The request body must contain the following parameter: 'grant_type'.",
    );
  }
  throw new AadstsError(
    400,
    "unsupported_grant_type",
    70003,
    `The app requested an unsupported grant type '${grantType}'.`,
  );
}

async function exchange(
  sb: SandboxRuntime,
  form: URLSearchParams,
  client: SandboxClientConfig,
  origin: string,
): Promise<Response> {
  const ms = sb.state.microsoft;
  const code = form.get("code");
  if (!code) {
    throw new AadstsError(
      400,
      "invalid_request",
      900144,
      "The request body must contain the following parameter: 'code'.",
    );
  }
  const rec = ms.codes.get(code);
  if (!rec || rec.clientId !== client.clientId) {
    throw new AadstsError(400, "invalid_grant", 9002313, "Invalid request. Request is malformed or invalid.");
  }
  if (rec.redeemed) {
    throw new AadstsError(
      400,
      "invalid_grant",
      54005,
      "OAuth2 Authorization code was already redeemed, please retry with a new valid code or use an existing refresh token.",
    );
  }
  if (rec.expiresAt < Date.now()) {
    throw new AadstsError(
      400,
      "invalid_grant",
      70008,
      "The provided authorization code or refresh token has expired due to inactivity. Send a new interactive authorization request for this user and resource.",
    );
  }
  if (form.get("redirect_uri") !== rec.redirectUri) {
    throw new AadstsError(
      400,
      "invalid_grant",
      50011,
      "The redirect URI specified in the request does not match the redirect URI used to get the authorization code.",
    );
  }
  const verifier = form.get("code_verifier");
  if (!verifier || !PKCE_VALUE.test(verifier) || sha256Base64url(verifier) !== rec.codeChallenge) {
    throw new AadstsError(
      400,
      "invalid_grant",
      501481,
      "The Code_Verifier does not match the code_challenge supplied in the authorization request.",
    );
  }
  rec.redeemed = true;
  const refreshToken = rec.scopes.includes("offline_access") ? newMsRefreshToken() : undefined;
  const grant = ms.createGrant({
    email: rec.email,
    clientId: client.clientId,
    scopes: rec.scopes,
    refreshToken,
  });
  return await tokenResponse(sb, grant, rec.scopes, origin, refreshToken, rec.nonce);
}

async function refresh(
  sb: SandboxRuntime,
  form: URLSearchParams,
  client: SandboxClientConfig,
  origin: string,
): Promise<Response> {
  const ms = sb.state.microsoft;
  const token = form.get("refresh_token");
  if (!token) {
    throw new AadstsError(
      400,
      "invalid_request",
      900144,
      "The request body must contain the following parameter: 'refresh_token'.",
    );
  }
  const found = ms.grantByRefreshToken(token);
  if (!found || found.grant.clientId !== client.clientId) {
    throw new AadstsError(400, "invalid_grant", 9002313, "Invalid request. Request is malformed or invalid.");
  }
  const { grant, current } = found;
  if (grant.revoked) throw revokedError(grant);
  if (!current) {
    grant.reuseCount++;
    sb.state.changed();
    if (ms.refreshReuse !== "allow") {
      if (ms.refreshReuse === "revoke_grant") ms.revokeGrant(grant, "admin");
      throw new AadstsError(
        400,
        "invalid_grant",
        70000,
        "The provided grant is invalid or malformed: this refresh token was already exchanged for a newer one. Use the newest refresh token.",
      );
    }
  }
  let scopes = grant.scopes;
  const asked = form.get("scope");
  if (asked !== null) {
    const wanted: string[] = [];
    for (const s of asked.split(" ").filter(Boolean)) {
      const c = canonicalScope(s);
      if (!c) {
        throw new AadstsError(
          400,
          "invalid_scope",
          70011,
          `The provided value for the input parameter 'scope' is not valid. The scope ${s} is not valid.`,
        );
      }
      if (!wanted.includes(c)) wanted.push(c);
    }
    const missing = wanted.filter((s) => !grant.scopes.includes(s));
    if (missing.length > 0) {
      throw new AadstsError(
        400,
        "invalid_grant",
        65001,
        `The user or administrator has not consented to use the application with ID '${client.clientId}'. Send an interactive authorization request for this user and resource.`,
        { suberror: "consent_required" },
      );
    }
    // offline_access and openid stay part of the grant even when the refresh names only Graph scopes.
    scopes = [
      ...new Set([...wanted, ...grant.scopes.filter((s) => s === "offline_access" || s === "openid")]),
    ];
  }
  const next = ms.rotate(grant);
  return await tokenResponse(sb, grant, scopes, origin, next);
}

/** The AADSTS answer for a refresh on a revoked grant, by revocation reason (CONTRACT.md). */
function revokedError(grant: MsGrant): AadstsError {
  switch (grant.revoked) {
    case "inactivity":
      return new AadstsError(
        400,
        "invalid_grant",
        700082,
        `The refresh token has expired due to inactivity. The token was issued on ${grant.createdAt} and was inactive for 90.00:00:00.`,
      );
    case "consent_revoked":
      return new AadstsError(
        400,
        "invalid_grant",
        65001,
        `The user or administrator has not consented to use the application with ID '${grant.clientId}'. Send an interactive authorization request for this user and resource.`,
        { suberror: "consent_required" },
      );
    case "mfa_required":
      return new AadstsError(
        400,
        "invalid_grant",
        50076,
        "Due to a configuration change made by your administrator, or because you moved to a new location, you must use multi-factor authentication to access '00000003-0000-0000-c000-000000000000'.",
        { suberror: "basic_action" },
      );
    default:
      return new AadstsError(
        400,
        "invalid_grant",
        50173,
        `The provided grant has expired due to it being revoked, a fresh auth token is needed. The user might have changed or reset their password. The grant was issued on '${grant.createdAt}' and the TokensValidFrom date (before which tokens are not valid) for this user is '${
          new Date().toISOString()
        }'.`,
      );
  }
}

async function tokenResponse(
  sb: SandboxRuntime,
  grant: MsGrant,
  scopes: string[],
  origin: string,
  refreshToken: string | undefined,
  nonce?: string,
): Promise<Response> {
  const account = sb.state.microsoft.account(grant.email)!;
  const ttl = accessTtl();
  const accessToken = sb.state.microsoft.issueAccessToken(grant, scopes, ttl);
  const idToken = scopes.includes("openid")
    ? await signIdToken(sb, {
      oid: account.oid,
      tid: account.tenantId,
      ver: "2.0",
      ...(scopes.includes("profile") ? { name: account.displayName, preferred_username: account.email } : {}),
      ...(scopes.includes("email") ? { email: account.email } : {}),
      ...(nonce !== undefined ? { nonce } : {}),
    }, {
      issuer: msIssuer(origin, account.tenantId),
      audience: grant.clientId,
      // v2 `sub` is pairwise: the same user has a different subject in each application.
      subject: sha256Base64url(`${account.oid}:${grant.clientId}`).slice(0, 43),
      ttlS: 3600,
    })
    : undefined;
  return jsonResponse(
    {
      token_type: "Bearer",
      scope: reportScopes(scopes),
      expires_in: ttl,
      ext_expires_in: ttl,
      access_token: accessToken,
      ...(refreshToken ? { refresh_token: refreshToken } : {}),
      ...(idToken ? { id_token: idToken } : {}),
    },
    200,
    { "cache-control": "no-store, no-cache", pragma: "no-cache" },
  );
}

/**
 * `GET /microsoft/{tenant}/v2.0/.well-known/openid-configuration`: as Entra's, with no
 * `revocation_endpoint` (B1.1). For `common`/`organizations`/`consumers` the issuer is the template
 * `{origin}/microsoft/{tenantid}/v2.0`, as Entra publishes it; for a tenant id its own issuer.
 */
export function msOpenIdConfiguration(sb: SandboxRuntime, origin: string, tenant: string): Response {
  const base = `${origin}/microsoft/${tenant}`;
  const t = tenant.toLowerCase();
  const account = Object.values(sb.state.data.microsoft?.accounts ?? {}).find((a) => a.tenantDomain === t);
  const issuerTenant = TENANT_ALIASES.has(t) ? "{tenantid}" : account?.tenantId ?? t;
  return jsonResponse({
    token_endpoint: `${base}/oauth2/v2.0/token`,
    token_endpoint_auth_methods_supported: ["client_secret_post", "private_key_jwt", "client_secret_basic"],
    jwks_uri: `${base}/discovery/v2.0/keys`,
    response_modes_supported: ["query", "fragment", "form_post"],
    subject_types_supported: ["pairwise"],
    id_token_signing_alg_values_supported: ["RS256"],
    response_types_supported: ["code", "id_token", "code id_token", "id_token token"],
    scopes_supported: ["openid", "profile", "email", "offline_access"],
    issuer: msIssuer(origin, issuerTenant),
    request_uri_parameter_supported: false,
    userinfo_endpoint: `${origin}/microsoft/graph/oidc/userinfo`,
    authorization_endpoint: `${base}/oauth2/v2.0/authorize`,
    http_logout_supported: true,
    frontchannel_logout_supported: true,
    end_session_endpoint: `${base}/oauth2/v2.0/logout`,
    claims_supported: [
      "sub",
      "iss",
      "aud",
      "exp",
      "iat",
      "nbf",
      "name",
      "nonce",
      "oid",
      "preferred_username",
      "tid",
      "ver",
      "email",
    ],
    tenant_region_scope: null,
    cloud_instance_name: "microsoftonline.com",
  });
}

/** `GET /microsoft/{tenant}/discovery/v2.0/keys`: `{keys:[JWK]}` (the sandbox's RS256 key). */
export async function msKeys(sb: SandboxRuntime): Promise<Response> {
  const jwk = await publicSigningJwk(sb);
  return jsonResponse({ keys: [jwk] }, 200, { "cache-control": "public, max-age=86400" });
}
