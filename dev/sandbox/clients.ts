/**
 * OAuth clients registered in the sandbox (the "Google Cloud console" of the emulator) and client
 * authentication at the token endpoint: `client_secret_post` or HTTP Basic (RFC 6749 section 2.3.1),
 * with Google's 401 `invalid_client` answers (docs/providers/google.md A1.4).
 */
import { OAuthError } from "./errors.ts";

/** One registered OAuth client: id, secret and the exact redirect URIs it may use. */
export interface SandboxClientConfig {
  clientId: string;
  clientSecret: string;
  /** Compared exactly (scheme, case, trailing slash), as Google does (A1.1). */
  redirectUris: string[];
}

/** The client `startSandbox` registers when none are given (matches CONTRACT.md's example). */
export const DEFAULT_CLIENT: SandboxClientConfig = {
  clientId: "sandbox-client-id.apps.googleusercontent.com",
  clientSecret: "sandbox-client-secret",
  redirectUris: [
    "http://127.0.0.1:54321/functions/v1/calendar-auth-callback",
    "http://127.0.0.1:54321/functions/v1/google-calendar-auth-callback",
  ],
};

/** Registered clients by id. */
export class ClientRegistry {
  private readonly byId = new Map<string, SandboxClientConfig>();

  constructor(clients: SandboxClientConfig[]) {
    for (const c of clients) this.byId.set(c.clientId, { ...c, redirectUris: [...c.redirectUris] });
  }

  /** The client with this id, or undefined. */
  get(clientId: string | null | undefined): SandboxClientConfig | undefined {
    return clientId ? this.byId.get(clientId) : undefined;
  }

  /**
   * Authenticate the caller of the token endpoint from its form and `Authorization` header.
   * @throws OAuthError 400 `invalid_request` when both methods are used, 401 `invalid_client`
   *   ("The OAuth client was not found." / "Unauthorized") when the client is unknown or the secret wrong.
   */
  authenticate(form: URLSearchParams, authorization: string | null): SandboxClientConfig {
    let id = form.get("client_id");
    let secret = form.get("client_secret");
    const basic = authorization ? /^Basic\s+(\S+)\s*$/i.exec(authorization) : null;
    if (basic) {
      if (secret !== null) {
        throw new OAuthError(400, "invalid_request", "Client authentication must use only one method.");
      }
      let decoded: string;
      try {
        decoded = atob(basic[1]);
      } catch {
        throw new OAuthError(401, "invalid_client", "Unauthorized");
      }
      const colon = decoded.indexOf(":");
      if (colon < 0) throw new OAuthError(401, "invalid_client", "Unauthorized");
      const basicId = safeDecode(decoded.slice(0, colon));
      if (id !== null && id !== basicId) throw new OAuthError(401, "invalid_client", "Unauthorized");
      id = basicId;
      secret = safeDecode(decoded.slice(colon + 1));
    }
    if (!id) throw new OAuthError(400, "invalid_request", "Could not determine client ID from request.");
    const client = this.byId.get(id);
    if (!client) throw new OAuthError(401, "invalid_client", "The OAuth client was not found.");
    if (secret === null || secret !== client.clientSecret) {
      throw new OAuthError(401, "invalid_client", "Unauthorized");
    }
    return client;
  }
}

/** Basic credentials are form-urlencoded before base64 (RFC 6749 section 2.3.1). */
function safeDecode(s: string): string {
  try {
    return decodeURIComponent(s.replace(/\+/g, " "));
  } catch {
    return s;
  }
}
