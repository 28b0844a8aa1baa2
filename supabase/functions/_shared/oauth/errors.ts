/**
 * Classification of OAuth 2.0 failures (RFC 6749 §4.1.2.1 and §5.2, RFC 7009, RFC 6750 challenges)
 * as thrown by oauth4webapi, for every provider. A provider with its own error dialect (Microsoft's
 * `AADSTS` codes) refines the result; the RFC meaning comes from here.
 */
import * as oauth from "oauth4webapi";
import { ProviderError, type ProviderErrorKind } from "../errors/domain-error.ts";
import { quoteProviderText as quote } from "../http-client/quote.ts";
import { parseRetryAfter } from "../http-client/retry-after.ts";
import { classifyTransportError } from "../http-client/transport-errors.ts";

/** The classification of an RFC 6749 `error` code at a token endpoint answering HTTP `status`. */
export function oauthErrorKind(error: string | undefined, status: number): ProviderErrorKind {
  if (error === "invalid_grant") return "auth";
  if (error === "invalid_client" || error === "unauthorized_client") return "invalid";
  if (status === 429) return "rate_limited";
  if (status === 408 || status >= 500) return "transient";
  return "invalid";
}

function oauthError(
  label: string,
  status: number,
  error: string | undefined,
  description: string | undefined,
  headers: Headers | undefined,
  nowMs: number,
): ProviderError {
  const retryAfterMs = parseRetryAfter(headers?.get("retry-after"), nowMs);
  const text = [`${label} failed: HTTP ${status}`, error, quote(description)].filter(Boolean);
  return new ProviderError(oauthErrorKind(error, status), text.join(" "), {
    status,
    ...(error ? { reason: error } : {}),
    ...(retryAfterMs !== undefined ? { retryAfterMs } : {}),
  });
}

/**
 * Classify an error thrown by oauth4webapi for a token or revocation request:
 * `invalid_grant` -> `auth` (reason `invalid_grant`: revoked/expired grant, reused or bad code,
 * PKCE mismatch); `invalid_client` / `unauthorized_client` (also a 401 challenge) -> `invalid`;
 * HTTP 429 -> `rate_limited` (with Retry-After); 408/5xx, timeouts and network errors -> `transient`;
 * other OAuth errors (`invalid_request`, `redirect_uri_mismatch`, ...) and malformed answers -> `invalid`.
 * An error in the authorization response itself (`?error=access_denied`) -> `auth` when the user
 * denied consent (reason `access_denied`), `invalid` otherwise.
 *
 * @param label names the call in the message, e.g. `Google oauth.token.refresh_token`.
 * @param nowMs the current time in epoch ms, for HTTP-date Retry-After values.
 * @throws the original error when it is neither an OAuth nor a transport failure (a bug).
 */
export function classifyOAuthError(err: unknown, label: string, nowMs: number = Date.now()): ProviderError {
  if (err instanceof ProviderError) return err;
  if (err instanceof oauth.ResponseBodyError) {
    return oauthError(label, err.status, err.error, err.error_description, err.response.headers, nowMs);
  }
  if (err instanceof oauth.WWWAuthenticateChallengeError) {
    const challengeError = err.cause.find((c) => c.parameters.error)?.parameters.error;
    const error = challengeError ?? (err.status === 401 ? "invalid_client" : undefined);
    return oauthError(label, err.status, error, undefined, err.response.headers, nowMs);
  }
  if (err instanceof oauth.AuthorizationResponseError) {
    const kind = err.error === "access_denied" ? "auth" : "invalid";
    return new ProviderError(
      kind,
      [`${label}: the authorization response is an error`, err.error, quote(err.error_description)]
        .filter(Boolean).join(" "),
      { reason: err.error },
    );
  }
  if (err instanceof oauth.OperationProcessingError) {
    if (err.cause instanceof Response) {
      const status = err.cause.status;
      if (status < 200 || status > 299) {
        return oauthError(label, status, undefined, undefined, err.cause.headers, nowMs);
      }
    }
    // The server answered 2xx with something that is not a token response, or the callback's
    // parameters are wrong (state mismatch, unexpected issuer): permanent for this request.
    return new ProviderError("invalid", `${label} failed: ${err.message}`, {
      reason: err.code ?? "invalid_response",
    });
  }
  if (err instanceof oauth.UnsupportedOperationError) {
    return new ProviderError("invalid", `${label} failed: ${err.message}`, { reason: "unsupported" });
  }
  return classifyTransportError(err, label);
}
