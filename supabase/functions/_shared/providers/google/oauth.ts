/**
 * Google OAuth 2.0 web-server flow with oauth4webapi (docs/decisions.md decision 3;
 * docs/providers/google.md A1),
 * with OpenID Connect so the connected account is always known: consent URL with PKCE S256, the
 * `openid email` scopes and a `nonce`; code exchange (RFC 9207 `iss` checked, ID token required and
 * verified against the issuer's JWK Set) and refresh with client_secret_post; RFC 7009 revocation.
 * Issuer and endpoints come from configuration, so the same code talks to Google, the sandbox or any
 * standards-compliant authorization server.
 */
import * as oauth from "oauth4webapi";
import type { Config } from "../../config.ts";
import { verifyIdToken } from "../../id-token.ts";
import { type CodeExchange, ProviderError, type TokenSet } from "../types.ts";
import { classifyOAuthError } from "./errors.ts";
import { consentScopes, parseScopeString } from "./scopes.ts";
import { DEFAULT_TIMEOUT_MS, type GoogleHttpOptions, isLoopbackHttp } from "./transport.ts";

/** Google's issuer identifier: the default of GOOGLE_OAUTH_ISSUER. */
export const GOOGLE_ISSUER = "https://accounts.google.com";

/** Assumed access-token lifetime when a token response omits `expires_in` (Google sends ~3599 s). */
const DEFAULT_EXPIRES_IN_S = 3600;

/** Google's OAuth endpoints, client credentials and consent parameters (a slice of Config.google). */
export type GoogleOAuthConfig = Pick<
  Config["google"],
  | "clientId"
  | "clientSecret"
  | "redirectUri"
  | "scopes"
  | "prompt"
  | "accessType"
  | "authorizationEndpoint"
  | "tokenEndpoint"
  | "revocationEndpoint"
  | "issuer"
  | "jwksUri"
  | "issParameter"
>;

/** OAuth operations for Google; every network method throws {@link ProviderError}. */
export class GoogleOAuth {
  readonly #config: GoogleOAuthConfig;
  readonly #as: oauth.AuthorizationServer;
  readonly #client: oauth.Client;
  readonly #clientAuth: oauth.ClientAuth;
  readonly #fetch: typeof fetch | undefined;
  readonly #timeoutMs: number;

  constructor(config: GoogleOAuthConfig, options: GoogleHttpOptions = {}) {
    this.#config = config;
    this.#as = {
      issuer: config.issuer,
      authorization_endpoint: config.authorizationEndpoint,
      token_endpoint: config.tokenEndpoint,
      revocation_endpoint: config.revocationEndpoint,
      jwks_uri: config.jwksUri,
      code_challenge_methods_supported: ["S256"],
      // RFC 9207: with `required`, a response without `iss` is refused; `iss` is compared whenever present.
      authorization_response_iss_parameter_supported: config.issParameter === "required",
    };
    this.#client = { client_id: config.clientId };
    this.#clientAuth = oauth.ClientSecretPost(config.clientSecret);
    this.#fetch = options.fetch;
    this.#timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  }

  /** Request options for an endpoint: timeout, test fetch, and plain HTTP only on loopback. */
  #options(endpoint: string): oauth.HttpRequestOptions<"POST", URLSearchParams> {
    const fetchFn = this.#fetch;
    return {
      signal: () => AbortSignal.timeout(this.#timeoutMs),
      ...(fetchFn ? { [oauth.customFetch]: (url: string, init: RequestInit) => fetchFn(url, init) } : {}),
      ...(isLoopbackHttp(endpoint) ? { [oauth.allowInsecureRequests]: true } : {}),
    };
  }

  /**
   * The consent page URL: `response_type=code`, the configured scopes plus `openid email`
   * (space-delimited), `access_type`, `prompt`, `include_granted_scopes=true`, PKCE
   * `code_challenge` with S256, `state`, the OIDC `nonce` and an optional `login_hint` (A1.1).
   * @param req.codeChallenge base64url SHA-256 of the PKCE verifier (oauth.calculatePKCECodeChallenge).
   */
  authorizationUrl(req: { state: string; codeChallenge: string; nonce: string; loginHint?: string }): URL {
    const url = new URL(this.#config.authorizationEndpoint);
    const p = url.searchParams;
    p.set("client_id", this.#config.clientId);
    p.set("redirect_uri", this.#config.redirectUri);
    p.set("response_type", "code");
    p.set("scope", consentScopes(this.#config.scopes).join(" "));
    p.set("access_type", this.#config.accessType);
    p.set("prompt", this.#config.prompt);
    p.set("include_granted_scopes", "true");
    p.set("code_challenge", req.codeChallenge);
    p.set("code_challenge_method", "S256");
    p.set("state", req.state);
    p.set("nonce", req.nonce);
    if (req.loginHint) p.set("login_hint", req.loginHint);
    return url;
  }

  /**
   * Validate the callback (state must equal `state`; `iss` must equal the configured issuer when
   * present, and be present when GOOGLE_OAUTH_ISS_PARAMETER=required; an `error` parameter throws)
   * and exchange its code (A1.2). The token response must carry an ID token: its claims are checked
   * by oauth4webapi (iss, aud, exp, iat, azp, nonce) and its signature against GOOGLE_JWKS_URI.
   * `scopes` are those Google reports as granted (possibly a subset of those requested);
   * `refreshToken` is present only on a first offline consent or with `prompt=consent`;
   * `accountEmail` only when the ID token has `email_verified: true`.
   * @param args.callbackUrl the full URL Google redirected to (with `code`, `state`, `scope`, `iss`).
   * @throws ProviderError `auth` (`invalid_grant`: code reused/expired or PKCE mismatch; `access_denied`),
   *   `invalid` (state or issuer mismatch, client or redirect problems, a missing or refused ID
   *   token: reason `id_token_invalid` or oauth4webapi's code), `rate_limited`, `transient`.
   */
  async exchangeCode(args: CodeExchange): Promise<TokenSet> {
    let result: oauth.TokenEndpointResponse;
    try {
      const params = oauth.validateAuthResponse(this.#as, this.#client, args.callbackUrl, args.state);
      const response = await oauth.authorizationCodeGrantRequest(
        this.#as,
        this.#client,
        this.#clientAuth,
        params,
        this.#config.redirectUri,
        args.codeVerifier,
        this.#options(this.#config.tokenEndpoint),
      );
      result = await oauth.processAuthorizationCodeResponse(this.#as, this.#client, response, {
        expectedNonce: args.nonce,
        requireIdToken: true,
      });
    } catch (err) {
      throw classifyOAuthError(err, "oauth.token.authorization_code");
    }
    const tokens = this.#tokenSet(result, consentScopes(this.#config.scopes));
    const identity = await verifyIdToken(result.id_token!, {
      issuer: this.#config.issuer,
      audience: this.#config.clientId,
      jwksUri: this.#config.jwksUri,
      nonce: args.nonce,
      ...(this.#fetch ? { fetch: this.#fetch } : {}),
      timeoutMs: this.#timeoutMs,
    });
    return {
      ...tokens,
      accountSubject: identity.subject,
      ...(identity.email && identity.emailVerified ? { accountEmail: identity.email } : {}),
    };
  }

  /**
   * RFC 9207 §2.4: the response's `iss` (taken once; a repeated `iss` is refused) equals
   * GOOGLE_OAUTH_ISSUER exactly, or is absent while GOOGLE_OAUTH_ISS_PARAMETER is `optional`.
   */
  issuerMatches(callbackUrl: URL): boolean {
    const all = callbackUrl.searchParams.getAll("iss");
    if (all.length > 1) return false;
    if (all.length === 0) return this.#config.issParameter !== "required";
    return all[0] === this.#config.issuer;
  }

  /**
   * Refresh an access token (A1.3). Google does not rotate refresh tokens: the result carries no
   * `refreshToken` (keep the stored one) unless Google ever sends one.
   * @throws ProviderError `auth` with reason `invalid_grant` for a revoked or expired grant;
   *   `invalid`, `rate_limited`, `transient` as in {@link classifyOAuthError}.
   */
  async refresh(refreshToken: string): Promise<TokenSet> {
    try {
      const response = await oauth.refreshTokenGrantRequest(
        this.#as,
        this.#client,
        this.#clientAuth,
        refreshToken,
        this.#options(this.#config.tokenEndpoint),
      );
      const result = await oauth.processRefreshTokenResponse(this.#as, this.#client, response);
      return this.#tokenSet(result, []);
    } catch (err) {
      throw classifyOAuthError(err, "oauth.token.refresh_token");
    }
  }

  /**
   * Revoke a token (A1.5); revoking either token of a grant revokes the whole grant. A token Google
   * no longer knows (400 `invalid_token`) counts as revoked already.
   * @throws ProviderError `invalid`, `rate_limited`, `transient`.
   */
  async revoke(token: string): Promise<void> {
    try {
      const response = await oauth.revocationRequest(
        this.#as,
        this.#client,
        this.#clientAuth,
        token,
        this.#options(this.#config.revocationEndpoint),
      );
      await oauth.processRevocationResponse(response);
    } catch (err) {
      if (err instanceof oauth.ResponseBodyError && err.error === "invalid_token") return;
      throw classifyOAuthError(err, "oauth.revoke");
    }
  }

  /**
   * Build a TokenSet from a token response. When `scope` is absent, RFC 6749 §5.1 says the granted
   * scopes equal those requested: `fallbackScopes` (the configured scopes for a code exchange; none
   * for a refresh, so a caller never over-trusts a refresh answer).
   */
  #tokenSet(result: oauth.TokenEndpointResponse, fallbackScopes: readonly string[]): TokenSet {
    const expiresIn = typeof result.expires_in === "number" && result.expires_in > 0
      ? result.expires_in
      : DEFAULT_EXPIRES_IN_S;
    if (!result.access_token) throw new ProviderError("invalid", "Google token response has no access_token");
    return {
      accessToken: result.access_token,
      ...(result.refresh_token ? { refreshToken: result.refresh_token } : {}),
      expiresAt: new Date(Date.now() + expiresIn * 1000),
      scopes: typeof result.scope === "string" ? parseScopeString(result.scope) : [...fallbackScopes],
    };
  }
}
