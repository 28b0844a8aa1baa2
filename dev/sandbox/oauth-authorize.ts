/**
 * Google's authorization endpoint (docs/providers/google.md A1.1) and the consent decision behind it:
 * `GET /google/o/oauth2/v2/auth` validates the request like Google (client and redirect URI problems
 * are shown as an error page, never redirected) and renders the consent page; `POST .../decision`
 * turns the user's choice into the redirect back to the app with a code or `error=access_denied`.
 * Every redirect back carries `iss` (RFC 9207), the sandbox's issuer identifier, as Google's do.
 */
import { consentPage, errorPage } from "./consent-page.ts";
import { newAuthorizationCode } from "./ids.ts";
import { issuerFor } from "./oauth-identity.ts";
import { formBody, type SandboxRuntime } from "./runtime.ts";
import type { PendingAuthorization } from "./state.ts";

/** How long a rendered consent page can be submitted, in ms. */
const PENDING_TTL_MS = 60 * 60_000;
/** Authorization codes live 10 minutes (A1.2). */
export const CODE_TTL_MS = 10 * 60_000;
/** Login shown on the consent page when the app sent no `login_hint`. */
export const DEFAULT_LOGIN = "clinician@example.com";
const PROMPTS = new Set(["none", "consent", "select_account"]);
const PKCE_VALUE = /^[A-Za-z0-9._~-]{43,128}$/;
const EMAIL = /^[^\s@]+@[^\s@]+\.[^\s@]+$/;
/** OpenID Connect scopes Google's consent screen grants without a checkbox. */
const SIGN_IN_SCOPES = new Set(["openid", "email", "profile"]);

/**
 * `GET /google/o/oauth2/v2/auth`: unknown client -> 400 page `invalid_client`; redirect URI not
 * registered exactly -> 400 page `redirect_uri_mismatch`; other malformed parameters -> 400 page
 * `invalid_request` / `unsupported_response_type`; `prompt=none` -> redirect with
 * `error=login_required` (the sandbox keeps no browser session). Otherwise the consent page.
 */
export function authorizePage(sb: SandboxRuntime, url: URL): Response {
  const p = url.searchParams;
  const client = sb.clients.get(p.get("client_id"));
  if (!client) {
    return errorPage(400, "invalid_client", "The OAuth client was not found.");
  }
  const redirectUri = p.get("redirect_uri");
  if (!redirectUri) return errorPage(400, "invalid_request", "Missing required parameter: redirect_uri");
  if (!client.redirectUris.includes(redirectUri)) {
    return errorPage(
      400,
      "redirect_uri_mismatch",
      `You can't sign in to this app because it doesn't comply with Google's OAuth 2.0 policy. ` +
        `The redirect URI ${redirectUri} is not registered for this client.`,
    );
  }
  const responseType = p.get("response_type");
  if (!responseType) return errorPage(400, "invalid_request", "Missing required parameter: response_type");
  if (responseType !== "code") {
    return errorPage(400, "unsupported_response_type", `Invalid response_type: ${responseType}`);
  }
  const scopes = [...new Set((p.get("scope") ?? "").split(" ").filter(Boolean))];
  if (scopes.length === 0) return errorPage(400, "invalid_request", "Missing required parameter: scope");
  const accessType = p.get("access_type") ?? "online";
  if (accessType !== "online" && accessType !== "offline") {
    return errorPage(400, "invalid_request", `Invalid access_type: ${accessType}`);
  }
  const prompt = (p.get("prompt") ?? "").split(" ").filter(Boolean);
  if (prompt.some((x) => !PROMPTS.has(x)) || (prompt.includes("none") && prompt.length > 1)) {
    return errorPage(400, "invalid_request", `Invalid prompt: ${p.get("prompt")}`);
  }
  const challenge = p.get("code_challenge") ?? undefined;
  const method = p.get("code_challenge_method") ?? undefined;
  if (method !== undefined && method !== "S256" && method !== "plain") {
    return errorPage(400, "invalid_request", "Invalid code_challenge_method value.");
  }
  if (method !== undefined && challenge === undefined) {
    return errorPage(400, "invalid_request", "Missing code_challenge.");
  }
  if (challenge !== undefined && !PKCE_VALUE.test(challenge)) {
    return errorPage(400, "invalid_request", "Invalid code_challenge value.");
  }
  const state = p.get("state") ?? undefined;
  if (prompt.includes("none")) {
    const echo: [string, string][] = state !== undefined ? [["state", state]] : [];
    return redirect(redirectUri, [["error", "login_required"], ...echo, ["iss", issuerFor(url.origin)]]);
  }

  const now = Date.now();
  for (const [id, pending] of sb.state.pending) if (pending.expiresAt < now) sb.state.pending.delete(id);
  const pending: PendingAuthorization = {
    id: crypto.randomUUID(),
    clientId: client.clientId,
    redirectUri,
    scopes,
    ...(state !== undefined ? { state } : {}),
    offline: accessType === "offline",
    prompt,
    includeGrantedScopes: p.get("include_granted_scopes") === "true",
    ...(challenge !== undefined
      ? { codeChallenge: challenge, codeChallengeMethod: (method ?? "plain") as "S256" | "plain" }
      : {}),
    ...(p.get("login_hint") ? { loginHint: p.get("login_hint")! } : {}),
    ...(p.get("nonce") ? { nonce: p.get("nonce")! } : {}),
    expiresAt: now + PENDING_TTL_MS,
  };
  sb.state.pending.set(pending.id, pending);
  return consentPage({
    requestId: pending.id,
    clientId: client.clientId,
    login: pending.loginHint ?? DEFAULT_LOGIN,
    scopes,
  });
}

/**
 * `POST /google/o/oauth2/v2/auth/decision` (form `request_id`, `login`, `scope`*, `decision`):
 * `deny` -> 302 `redirect_uri?error=access_denied&state=..`; `approve` -> 302
 * `redirect_uri?code=..&scope=..&authuser=0&prompt=consent&state=..&iss=..` where `scope` holds the ticked
 * subset of the requested scopes (granular consent, A1.1) plus, with `include_granted_scopes=true`,
 * the scopes this account already granted the client. Unknown or used `request_id` -> 400 page; an
 * invalid login re-renders the consent page with a message (400).
 */
export function decisionPost(sb: SandboxRuntime, req: Request, bodyText: string): Response {
  const form = formBody(req, bodyText);
  if (!form) return errorPage(400, "invalid_request", "The consent form must be posted as a form.");
  const pending = sb.state.pending.get(form.get("request_id") ?? "");
  if (!pending || pending.expiresAt < Date.now()) {
    return errorPage(
      400,
      "invalid_request",
      "This sign-in request expired or was already used. Start again.",
    );
  }
  const decision = form.get("decision");
  const stateParam: [string, string][] = pending.state !== undefined ? [["state", pending.state]] : [];
  const iss: [string, string] = ["iss", issuerFor(new URL(req.url).origin)];
  if (decision === "deny") {
    sb.state.pending.delete(pending.id);
    return redirect(pending.redirectUri, [["error", "access_denied"], ...stateParam, iss]);
  }
  if (decision !== "approve") return errorPage(400, "invalid_request", "Choose Allow or Cancel.");
  const login = (form.get("login") ?? "").trim().toLowerCase();
  const ticked = new Set(form.getAll("scope"));
  if (!EMAIL.test(login)) {
    return consentPage({
      requestId: pending.id,
      clientId: pending.clientId,
      login,
      scopes: pending.scopes,
      error: "Enter a valid email address.",
    }, 400);
  }
  sb.state.pending.delete(pending.id);
  sb.state.ensureAccount(login);
  // Google's granular consent lets the user untick data scopes, never the sign-in ones.
  let scopes = pending.scopes.filter((s) => ticked.has(s) || SIGN_IN_SCOPES.has(s));
  if (pending.includeGrantedScopes) {
    const earlier = sb.state.grantsFor({ email: login, clientId: pending.clientId })
      .filter((g) => !g.revoked).flatMap((g) => g.scopes);
    scopes = [...new Set([...scopes, ...earlier])];
  }
  const now = Date.now();
  for (const [c, rec] of sb.state.codes) if (rec.expiresAt < now - CODE_TTL_MS) sb.state.codes.delete(c);
  const code = newAuthorizationCode();
  sb.state.codes.set(code, {
    clientId: pending.clientId,
    redirectUri: pending.redirectUri,
    email: login,
    scopes,
    offline: pending.offline,
    forceConsent: pending.prompt.includes("consent"),
    ...(pending.codeChallenge !== undefined
      ? { codeChallenge: pending.codeChallenge, codeChallengeMethod: pending.codeChallengeMethod }
      : {}),
    ...(pending.nonce !== undefined ? { nonce: pending.nonce } : {}),
    expiresAt: now + CODE_TTL_MS,
    redeemed: false,
  });
  return redirect(pending.redirectUri, [
    ["code", code],
    ["scope", scopes.join(" ")],
    ["authuser", "0"],
    ["prompt", "consent"],
    ...stateParam,
    iss,
  ]);
}

function redirect(target: string, params: [string, string][]): Response {
  const url = new URL(target);
  for (const [k, v] of params) url.searchParams.append(k, v);
  return new Response(null, { status: 302, headers: { location: url.href, "cache-control": "no-store" } });
}
