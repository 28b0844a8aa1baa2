/**
 * The authorization-code flow with PKCE and OpenID Connect over oauth4webapi, for any
 * standards-compliant authorization server (Google, Microsoft identity platform, the sandbox):
 * consent URL (PKCE S256, `nonce`), code exchange (RFC 9207 `iss` checked, ID token required and
 * verified against the issuer's JWK Set), refresh, and RFC 7009 revocation, with client_secret_post.
 * A provider module supplies its endpoints, scopes and extra consent parameters; nothing here knows
 * a provider.
 */
import * as oauth from "oauth4webapi";
import { ProviderError } from "../errors/domain-error.ts";
import { DEFAULT_TIMEOUT_MS, type HttpOptions, isLoopbackHttp } from "../http-client/transport.ts";
import { verifyIdToken } from "../id-token.ts";
import type { CodeExchange, TokenSet } from "../providers/types.ts";
import { classifyOAuthError } from "./errors.ts";
import { parseScopeString } from "./scopes.ts";

/** Assumed access-token lifetime in seconds when a token response omits `expires_in`. */
export const DEFAULT_EXPIRES_IN_S = 3600;

/** One authorization server and this deployment's client at it. */
export interface OAuthServerConfig {
  /** Names the provider in error messages, e.g. `Google`. */
  displayName: string;
  issuer: string;
  authorizationEndpoint: string;
  tokenEndpoint: string;
  /** RFC 7009 endpoint; absent where the provider has none (then {@link OAuthClient.revoke} throws). */
  revocationEndpoint?: string;
  jwksUri: string;
  clientId: string;
  clientSecret: string;
  redirectUri: string;
  /** RFC 9207: `required` refuses an authorization response without `iss`. */
  issParameter: "required" | "optional";
  /**
   * For a multi-tenant issuer (Microsoft `common`/`organizations`): the issuer an ID token with these
   * (not yet trusted) claims must carry, or undefined to refuse it. Absent: `issuer` is expected.
   */
  idTokenIssuer?: (claims: Readonly<Record<string, unknown>>) => string | undefined;
  /**
   * The account email the verified ID token vouches for, lowercased, or undefined. Absent: `email`
   * when `email_verified` is true (OpenID Connect Core §5.1).
   */
  accountEmail?: (claims: Readonly<Record<string, unknown>>) => string | undefined;
}

/**
 * oauth4webapi's hook for an issuer known only from the ID token (what openid-client uses for Entra
 * ID's `{tenantid}` template). Exported at runtime, not in its typings; checked at load so an upgrade
 * that drops it fails loudly instead of comparing against the template.
 */
const EXPECTED_ISSUER: symbol = (() => {
  const hook = (oauth as unknown as { _expectedIssuer?: unknown })._expectedIssuer;
  if (typeof hook !== "symbol") throw new Error("oauth4webapi no longer exports _expectedIssuer");
  return hook;
})();

/** An issuer no ID token can carry: what the issuer hook's refusal is compared with. */
const REFUSED_ISSUER = "urn:invalid:issuer-refused";

/**
 * A provider's refinement of the RFC 6749 classification (e.g. Microsoft's AADSTS codes): given the
 * generic result and the original error, return the error to throw.
 */
export type OAuthErrorRefiner = (classified: ProviderError, original: unknown) => ProviderError;

/** The consent URL's inputs: scopes, the flow's state, PKCE challenge and nonce, provider extras. */
export interface AuthorizationUrlInput {
  scopes: readonly string[];
  state: string;
  /** base64url SHA-256 of the PKCE verifier. */
  codeChallenge: string;
  nonce: string;
  loginHint?: string;
  /** Provider parameters set after `scope` (Google `access_type`, `prompt`, ...). */
  extraParams?: Readonly<Record<string, string>>;
}

/** OAuth operations against one authorization server; every network method throws {@link ProviderError}. */
export class OAuthClient {
  readonly #config: OAuthServerConfig;
  readonly #as: oauth.AuthorizationServer;
  readonly #client: oauth.Client;
  readonly #clientAuth: oauth.ClientAuth;
  readonly #fetch: typeof fetch | undefined;
  readonly #timeoutMs: number;
  readonly #refine: OAuthErrorRefiner;

  constructor(config: OAuthServerConfig, options: HttpOptions = {}, refine?: OAuthErrorRefiner) {
    this.#config = config;
    this.#as = {
      issuer: config.issuer,
      authorization_endpoint: config.authorizationEndpoint,
      token_endpoint: config.tokenEndpoint,
      ...(config.revocationEndpoint ? { revocation_endpoint: config.revocationEndpoint } : {}),
      jwks_uri: config.jwksUri,
      code_challenge_methods_supported: ["S256"],
      ...(config.idTokenIssuer
        ? {
          [EXPECTED_ISSUER]: (result: { claims: Record<string, unknown> }) =>
            config.idTokenIssuer!(result.claims) ?? REFUSED_ISSUER,
        }
        : {}),
      // RFC 9207: with `required`, a response without `iss` is refused; `iss` is compared whenever present.
      authorization_response_iss_parameter_supported: config.issParameter === "required",
    };
    this.#client = { client_id: config.clientId };
    this.#clientAuth = oauth.ClientSecretPost(config.clientSecret);
    this.#fetch = options.fetch;
    this.#timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.#refine = refine ?? ((e) => e);
  }

  #fail(err: unknown, operation: string): ProviderError {
    return this.#refine(classifyOAuthError(err, `${this.#config.displayName} ${operation}`), err);
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
   * The consent page URL: `client_id`, `redirect_uri`, `response_type=code`, `scope`
   * (space-delimited), the provider's extra parameters, PKCE `code_challenge` with S256, `state`,
   * `nonce` and an optional `login_hint`.
   */
  authorizationUrl(req: AuthorizationUrlInput): URL {
    const url = new URL(this.#config.authorizationEndpoint);
    const p = url.searchParams;
    p.set("client_id", this.#config.clientId);
    p.set("redirect_uri", this.#config.redirectUri);
    p.set("response_type", "code");
    p.set("scope", req.scopes.join(" "));
    for (const [k, v] of Object.entries(req.extraParams ?? {})) p.set(k, v);
    p.set("code_challenge", req.codeChallenge);
    p.set("code_challenge_method", "S256");
    p.set("state", req.state);
    p.set("nonce", req.nonce);
    if (req.loginHint) p.set("login_hint", req.loginHint);
    return url;
  }

  /**
   * Validate the callback (state must equal `state`; `iss` as {@link issuerMatches}; an `error`
   * parameter throws) and exchange its code. The token response must carry an ID token: its claims
   * are checked by oauth4webapi (iss, aud, exp, iat, azp, nonce) and its signature against the
   * JWK Set. `accountEmail` is set only when the ID token vouches for it (`email_verified: true`, or
   * the `accountEmail` hook of the configuration).
   * @param requestedScopes the granted scopes when the token response omits `scope` (RFC 6749 §5.1).
   * @throws ProviderError `auth` (`invalid_grant`, `access_denied`), `invalid` (state or issuer
   *   mismatch, client or redirect problems, a missing or refused ID token: reason
   *   `id_token_invalid` or oauth4webapi's code), `rate_limited`, `transient`.
   */
  async exchangeCode(args: CodeExchange, requestedScopes: readonly string[]): Promise<TokenSet> {
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
      throw this.#fail(err, "oauth.token.authorization_code");
    }
    const tokens = this.#tokenSet(result, requestedScopes);
    const unverified = oauth.getValidatedIdTokenClaims(result) as Record<string, unknown> | undefined;
    const issuer = this.#config.idTokenIssuer
      ? this.#config.idTokenIssuer(unverified ?? {}) ?? REFUSED_ISSUER
      : this.#config.issuer;
    const identity = await verifyIdToken(result.id_token!, {
      issuer,
      audience: this.#config.clientId,
      jwksUri: this.#config.jwksUri,
      nonce: args.nonce,
      ...(this.#fetch ? { fetch: this.#fetch } : {}),
      timeoutMs: this.#timeoutMs,
    });
    const accountEmail = this.#config.accountEmail
      ? this.#config.accountEmail(identity.claims)
      : identity.email && identity.emailVerified
      ? identity.email
      : undefined;
    return { ...tokens, accountSubject: identity.subject, ...(accountEmail ? { accountEmail } : {}) };
  }

  /**
   * RFC 9207 §2.4: the response's `iss` (taken once; a repeated `iss` is refused) equals the
   * configured issuer exactly, or is absent while `issParameter` is `optional`.
   */
  issuerMatches(callbackUrl: URL): boolean {
    const all = callbackUrl.searchParams.getAll("iss");
    if (all.length > 1) return false;
    if (all.length === 0) return this.#config.issParameter !== "required";
    return all[0] === this.#config.issuer;
  }

  /**
   * Refresh an access token. `refreshToken` in the result is the new one when the server rotates
   * (store it), absent when it does not (keep the stored one). Scopes are those the answer names,
   * none otherwise (a caller never over-trusts a refresh answer).
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
      throw this.#fail(err, "oauth.token.refresh_token");
    }
  }

  /**
   * Revoke a token (RFC 7009). A token the server no longer knows (400 `invalid_token`) counts as
   * revoked already.
   * @throws ProviderError `invalid` when the server has no revocation endpoint; `invalid`,
   *   `rate_limited`, `transient` as classified.
   */
  async revoke(token: string): Promise<void> {
    const endpoint = this.#config.revocationEndpoint;
    if (!endpoint) {
      throw new ProviderError("invalid", `${this.#config.displayName} has no token revocation endpoint`, {
        reason: "unsupported",
      });
    }
    try {
      const response = await oauth.revocationRequest(
        this.#as,
        this.#client,
        this.#clientAuth,
        token,
        this.#options(endpoint),
      );
      await oauth.processRevocationResponse(response);
    } catch (err) {
      if (err instanceof oauth.ResponseBodyError && err.error === "invalid_token") return;
      throw this.#fail(err, "oauth.revoke");
    }
  }

  #tokenSet(result: oauth.TokenEndpointResponse, fallbackScopes: readonly string[]): TokenSet {
    const expiresIn = typeof result.expires_in === "number" && result.expires_in > 0
      ? result.expires_in
      : DEFAULT_EXPIRES_IN_S;
    if (!result.access_token) {
      throw new ProviderError("invalid", `${this.#config.displayName} token response has no access_token`);
    }
    return {
      accessToken: result.access_token,
      ...(result.refresh_token ? { refreshToken: result.refresh_token } : {}),
      expiresAt: new Date(Date.now() + expiresIn * 1000),
      scopes: typeof result.scope === "string" ? parseScopeString(result.scope) : [...fallbackScopes],
    };
  }
}
