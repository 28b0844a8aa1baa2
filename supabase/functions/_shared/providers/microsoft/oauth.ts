/**
 * Microsoft's side of the authorization-code flow (docs/providers/microsoft.md B1): the tenant's
 * endpoints, the consent parameters, the multi-tenant issuer rule, which ID-token claim names the
 * account, AADSTS classification, and what "revoke" means where there is no revocation endpoint. The
 * flow itself (PKCE, code exchange with ID-token verification, refresh) is ../../oauth/client.ts.
 */
import * as oauth from "oauth4webapi";
import type { HttpOptions } from "../../http-client/transport.ts";
import { OAuthClient } from "../../oauth/client.ts";
import { type CodeExchange, ProviderError, type ProviderOAuthClient, type TokenSet } from "../types.ts";
import { classifyTokenError } from "./errors.ts";
import {
  authorizationResponseIssuerAllowed,
  idTokenIssuerAllowed,
  issuerForTenant,
  type MicrosoftConfig,
  missingMicrosoftScopes,
  normaliseGrantedScopes,
  REQUIRED_GRAPH_SCOPES,
} from "./oauth-config.ts";

const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** An address-shaped claim, lowercased, or undefined. */
function address(value: unknown): string | undefined {
  if (typeof value !== "string") return undefined;
  const v = value.trim().toLowerCase();
  return /^[^\s@]+@[^\s@]+\.[^\s@]+$/.test(v) ? v : undefined;
}

/**
 * The account email a verified Microsoft ID token vouches for (B1.1; Microsoft sends no
 * `email_verified`):
 * - `email` only when the optional claim `xms_edov` says the domain owner verified it: a plain
 *   `email` is whatever a directory holds, and any tenant can write any address there;
 * - else `preferred_username`: for work or school accounts the user principal name, whose domain
 *   must be one the account's tenant has verified (or its `onmicrosoft.com` domain), so it cannot
 *   claim another organisation's domain; for personal accounts the Microsoft account's sign-in
 *   address, which Microsoft confirms before the account can sign in.
 * Undefined otherwise (the connect flow then refuses the grant as `account_unverified`).
 */
export function microsoftAccountEmail(claims: Readonly<Record<string, unknown>>): string | undefined {
  const edov = claims.xms_edov;
  if (edov === true || edov === "true" || edov === 1 || edov === "1") {
    const email = address(claims.email);
    if (email) return email;
  }
  if (typeof claims.tid !== "string" || !GUID.test(claims.tid)) return undefined;
  return address(claims.preferred_username);
}

/** Microsoft's {@link ProviderOAuthClient}; every network method throws ProviderError. */
export class MicrosoftOAuth implements ProviderOAuthClient {
  readonly #config: MicrosoftConfig;
  readonly #client: OAuthClient;
  /** `Calendars.ReadWrite`: a grant without it is refused ({@link missingScopes}). */
  readonly requiredScopes: readonly string[] = REQUIRED_GRAPH_SCOPES;

  constructor(config: MicrosoftConfig, options: HttpOptions = {}) {
    this.#config = config;
    const refine = (classified: ProviderError, original: unknown): ProviderError =>
      original instanceof oauth.ResponseBodyError
        ? classifyTokenError(original.status, original.cause, original.response.headers, "token request")
        : classified;
    this.#client = new OAuthClient(
      {
        displayName: "Microsoft",
        // A tenant id has one issuer; the aliases publish a `{tenantid}` template (B1.1), so the
        // issuer is decided per token by `idTokenIssuer`; this value is only the fallback.
        issuer: GUID.test(config.tenant)
          ? issuerForTenant(config.authority, config.tenant)
          : `${config.authority}/${config.tenant}/v2.0`,
        authorizationEndpoint: config.authorizationEndpoint,
        tokenEndpoint: config.tokenEndpoint,
        jwksUri: config.jwksUri,
        clientId: config.clientId,
        clientSecret: config.clientSecret,
        redirectUri: config.redirectUri,
        issParameter: "optional",
        idTokenIssuer: (claims) => {
          const allowed = idTokenIssuerAllowed(config, { iss: claims.iss, tid: claims.tid });
          return allowed ? issuerForTenant(config.authority, String(claims.tid)) : undefined;
        },
        accountEmail: microsoftAccountEmail,
      },
      options,
      refine,
    );
  }

  /** The required scopes the grant lacks (Graph's full-URI and short names both understood). */
  missingScopes(granted: string[]): string[] {
    return missingMicrosoftScopes(granted.join(" "), this.requiredScopes);
  }

  /**
   * The consent page URL (B1.2): `offline_access Calendars.ReadWrite User.Read openid email`, PKCE
   * S256, `state`, `nonce`, `prompt` (MICROSOFT_OAUTH_PROMPT), `response_mode=query`, optional
   * `login_hint`.
   */
  authorizationUrl(req: { state: string; codeChallenge: string; nonce: string; loginHint?: string }): URL {
    return this.#client.authorizationUrl({
      ...req,
      scopes: this.#config.scopes,
      extraParams: { response_mode: "query", prompt: this.#config.prompt },
    });
  }

  /**
   * Validate the callback and exchange its code (B1.3). Microsoft adds no `iss` to the redirect; one
   * that is present must name an issuer the tenant rule accepts ({@link issuerMatches}). The ID
   * token's issuer must be its own tenant's (`{authority}/{tid}/v2.0`) and the tenant one the
   * configuration admits. Granted scopes come back normalised (short names, lowercase).
   * @throws ProviderError as OAuthClient.exchangeCode; `invalid` (reason `issuer_mismatch`) for a
   *   foreign `iss` parameter.
   */
  async exchangeCode(args: CodeExchange): Promise<TokenSet> {
    if (!this.issuerMatches(args.callbackUrl)) {
      throw new ProviderError("invalid", "the authorization response names another issuer", {
        reason: "issuer_mismatch",
      });
    }
    // Checked above against the tenant rule; oauth4webapi would compare it with the template.
    const callbackUrl = new URL(args.callbackUrl);
    callbackUrl.searchParams.delete("iss");
    const tokens = await this.#client.exchangeCode({ ...args, callbackUrl }, this.#config.scopes);
    return { ...tokens, scopes: normaliseGrantedScopes(tokens.scopes.join(" ")) };
  }

  /** RFC 9207 for Microsoft: absent is fine, present must pass the tenant rule (B1.1). */
  issuerMatches(callbackUrl: URL): boolean {
    const all = callbackUrl.searchParams.getAll("iss");
    if (all.length > 1) return false;
    return authorizationResponseIssuerAllowed(this.#config, all[0] ?? null);
  }

  /**
   * Refresh (B1.4). Every answer carries a new refresh token (rotation): the result's `refreshToken`
   * must be stored with the access token, in one transaction (connections.ts does).
   * @throws ProviderError `auth` for a revoked, expired or withdrawn grant (AADSTS 50173, 65001,
   *   700082, 70008, 70000, 50076, ...), `rate_limited`, `transient`, `invalid` (client problems).
   */
  async refresh(refreshToken: string): Promise<TokenSet> {
    const tokens = await this.#client.refresh(refreshToken);
    return { ...tokens, scopes: normaliseGrantedScopes(tokens.scopes.join(" ")) };
  }

  /**
   * Microsoft has no token revocation endpoint (B1.6): this succeeds without a call. Disconnecting
   * forgets our tokens (the access token lives on until it expires, at most about 90 minutes; the
   * refresh token is never used again); a staff member who wants the grant gone at Microsoft removes
   * the app at myapps.microsoft.com, and an administrator can revoke sessions.
   */
  revoke(_token: string): Promise<void> {
    return Promise.resolve();
  }
}
