/**
 * Google's side of the OAuth 2.0 web-server flow (docs/decisions.md decision 3;
 * docs/providers/google.md A1): its issuer, the consent parameters it understands (`access_type`,
 * `prompt`, `include_granted_scopes`) and the `openid email` scopes added to every consent. The
 * flow itself (PKCE, code exchange with ID-token verification, refresh, RFC 7009 revocation, RFC 6749
 * error classification) is ../../oauth/client.ts. Issuer and endpoints come from configuration, so
 * the same code talks to Google or the sandbox.
 */
import type { HttpOptions } from "../../http-client/transport.ts";
import { OAuthClient } from "../../oauth/client.ts";
import type { CodeExchange, ProviderOAuthClient, TokenSet } from "../types.ts";
import type { GoogleConfig } from "./config.ts";
import { consentScopes, missingGoogleScopes } from "./scopes.ts";

/** Google's issuer identifier: the default of GOOGLE_OAUTH_ISSUER. */
export const GOOGLE_ISSUER = "https://accounts.google.com";

/** Google's OAuth endpoints, client credentials and consent parameters (a slice of the Google config). */
export type GoogleOAuthConfig = Pick<
  GoogleConfig,
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

/** Google's {@link ProviderOAuthClient}; every network method throws ProviderError. */
export class GoogleOAuth implements ProviderOAuthClient {
  readonly #config: GoogleOAuthConfig;
  readonly #client: OAuthClient;
  /** GOOGLE_SCOPES: each must be granted (a broader Calendar scope satisfies a narrower one). */
  readonly requiredScopes: readonly string[];

  constructor(config: GoogleOAuthConfig, options: HttpOptions = {}) {
    this.#config = config;
    this.#client = new OAuthClient({ displayName: "Google", ...config }, options);
    this.requiredScopes = Object.freeze([...config.scopes]);
  }

  /** The required scopes none of `granted` satisfies (./scopes.ts). */
  missingScopes(granted: string[]): string[] {
    return missingGoogleScopes(granted, this.requiredScopes);
  }

  /**
   * The consent page URL: `response_type=code`, the configured scopes plus `openid email`
   * (space-delimited), `access_type`, `prompt`, `include_granted_scopes=true`, PKCE
   * `code_challenge` with S256, `state`, the OIDC `nonce` and an optional `login_hint` (A1.1).
   * @param req.codeChallenge base64url SHA-256 of the PKCE verifier (oauth.calculatePKCECodeChallenge).
   */
  authorizationUrl(req: { state: string; codeChallenge: string; nonce: string; loginHint?: string }): URL {
    return this.#client.authorizationUrl({
      ...req,
      scopes: consentScopes(this.#config.scopes),
      extraParams: {
        access_type: this.#config.accessType,
        prompt: this.#config.prompt,
        include_granted_scopes: "true",
      },
    });
  }

  /**
   * Validate the callback and exchange its code (A1.2; see OAuthClient.exchangeCode). `scopes` are
   * those Google reports as granted (possibly a subset of those requested); `refreshToken` is present
   * only on a first offline consent or with `prompt=consent`.
   * @throws ProviderError as OAuthClient.exchangeCode.
   */
  exchangeCode(args: CodeExchange): Promise<TokenSet> {
    return this.#client.exchangeCode(args, consentScopes(this.#config.scopes));
  }

  /** RFC 9207 §2.4 against GOOGLE_OAUTH_ISSUER and GOOGLE_OAUTH_ISS_PARAMETER. */
  issuerMatches(callbackUrl: URL): boolean {
    return this.#client.issuerMatches(callbackUrl);
  }

  /**
   * Refresh an access token (A1.3). Google does not rotate refresh tokens: the result carries no
   * `refreshToken` (keep the stored one) unless Google ever sends one.
   * @throws ProviderError `auth` with reason `invalid_grant` for a revoked or expired grant.
   */
  refresh(refreshToken: string): Promise<TokenSet> {
    return this.#client.refresh(refreshToken);
  }

  /** Revoke a token (A1.5); revoking either token of a grant revokes the whole grant. */
  revoke(token: string): Promise<void> {
    return this.#client.revoke(token);
  }
}
