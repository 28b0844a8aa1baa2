/**
 * `calendar-auth-callback` (and the seed's `google-calendar-auth-callback`): where the provider's
 * consent page sends the browser back (GET). Gateway verify_jwt is off: the caller is a browser
 * following the provider's redirect, and the signed, single-use state is the credential for the flow.
 *
 * Input (query): `state` (required), and either `code` (+ `scope`, what the provider reports as
 * granted, and `iss`, RFC 9207) or `error` (`access_denied` when the user declined). Other parameters
 * Google appends (`authuser`, `prompt`, `hd`, ...) are ignored rather than refused. `iss` must equal
 * GOOGLE_OAUTH_ISSUER when present (and be present with GOOGLE_OAUTH_ISS_PARAMETER=required), for
 * error answers too; otherwise `issuer_mismatch` and nothing is exchanged.
 *
 * Steps: consume the state (signature, audience, expiry, nonce consumed exactly once, atomically);
 * handle a provider error; exchange the code with the PKCE verifier; verify the ID token (signature
 * against GOOGLE_JWKS_URI, issuer, audience, nonce) and require a verified email; refuse (and
 * revoke) a grant that lacks a required scope, or whose account is outside
 * CALENDAR_ALLOWED_EMAIL_DOMAINS. Then, with CALENDAR_CONSENT_CONFIRMATION=app (the default), keep
 * the grant PENDING (tokens encrypted, nothing attached) for the app to confirm with the initiating
 * user's session (calendar-auth-confirm; pending-grants.ts says why); with `none`, attach it at once
 * (encrypt and store the tokens, `connected`, calendar 'primary', and queue the backfill, in one
 * transaction).
 *
 * Output: `302` to the state's `return_to` (else CALENDAR_DEFAULT_RETURN_URL) with, in the query:
 * - pending (confirmation `app`): `calendar_status=pending&calendar_pending=<id>&calendar_provider=google
 *   &calendar_account_email=<email>`; the app POSTs `{pending_id}` to calendar-auth-confirm.
 * - connected (confirmation `none`): `calendar_status=connected&calendar_provider=google
 *   &calendar_account_email=<email>`
 * - failure: `calendar_status=error&calendar_error=<code>`, codes: `access_denied`, `provider_error`
 *   (+ `calendar_provider_error=<the provider's OAuth error code>`), `missing_scopes`
 *   (+ `calendar_missing_scopes=<space-delimited scopes>`), `account_unverified` (no verified email
 *   in the ID token), `account_not_allowed` (+ `calendar_account_email`), `issuer_mismatch`
 *   (RFC 9207), `exchange_failed`,
 *   `missing_refresh_token`, `other_provider_connected`, `invalid_state`, `state_expired`, `state_replayed`, `invalid_request`
 *   (no code and no error), `internal_error` (a bug; the log has the request id).
 * When there is no usable return URL (unusable state and no default), a small HTML page states the
 * result instead: status 400 for errors, 200 for success (a pending grant needs the app, so it is
 * revoked and the page says `no_return_url`). Never shows a token or a stack; never logs the code,
 * the state or tokens. 405 (JSON envelope) for methods other than GET.
 */
import type { Config } from "../config.ts";
import { storeGrant } from "../connections.ts";
import { requestChannel } from "../inbound/channels.ts";
import { getSql, type Sql } from "../db/client.ts";
import { HttpError, requireMethod } from "../http.ts";
import { emailDomainAllowed } from "../id-token.ts";
import { AuthStateError, consumeAuthState, type ConsumedAuthState } from "../oauth-state.ts";
import { revokeGrants, storePendingGrant, takeExpiredPendingGrants } from "../pending-grants.ts";
import { providerFor } from "../providers/registry.ts";
import { type CalendarProvider, ProviderError, type TokenSet } from "../providers/types.ts";
import { queryRecord } from "../request-input.ts";
import type { FunctionContext, FunctionHandler } from "../serve.ts";
import { enqueueBackfill } from "../sync/backfill.ts";
import { acceptableReturnUrl } from "./auth-start.ts";

/** Error markers the callback redirects with (`calendar_error`). */
export type CallbackErrorCode =
  | "access_denied"
  | "provider_error"
  | "missing_scopes"
  | "account_unverified"
  | "account_not_allowed"
  | "no_return_url"
  | "issuer_mismatch"
  | "exchange_failed"
  | "missing_refresh_token"
  | "other_provider_connected"
  | "invalid_state"
  | "state_expired"
  | "state_replayed"
  | "invalid_request"
  | "internal_error";

const MESSAGES: Record<CallbackErrorCode, string> = {
  access_denied: "Calendar access was declined.",
  provider_error: "The calendar provider reported an error.",
  missing_scopes: "Some calendar permissions were not granted; connect again and allow every permission.",
  account_unverified:
    "The calendar provider did not confirm the account's email address; connect with another account.",
  account_not_allowed:
    "This calendar account is not allowed here: use an account of your organisation's email domain.",
  no_return_url:
    "The app did not say where to return to, so the connection was cancelled; start again from the app.",
  issuer_mismatch:
    "The answer did not come from the configured sign-in server; start connecting from the app again.",
  exchange_failed: "The calendar provider did not accept the sign-in; please try connecting again.",
  missing_refresh_token: "The calendar provider granted no offline access; please try connecting again.",
  other_provider_connected:
    "This staff member is connected to another calendar provider; disconnect that calendar first, then connect again.",
  invalid_state: "This sign-in link is not valid; start connecting from the app again.",
  state_expired: "The sign-in took too long; start connecting from the app again.",
  state_replayed: "This sign-in link was already used; start connecting from the app again.",
  invalid_request: "The calendar provider's answer was incomplete; start connecting from the app again.",
  internal_error: "Something went wrong on our side; please try again.",
};

const LIMITS = { state: 4096, code: 2048, scope: 4096, error: 128, iss: 2048 } as const;

/** The parameters we read, each at most once and within a sane length, or `invalid_request`. */
function callbackParams(url: URL): { state?: string; code?: string; error?: string } | null {
  let query: Record<string, string>;
  try {
    query = queryRecord(url);
  } catch {
    return null;
  }
  for (const [key, max] of Object.entries(LIMITS)) {
    if ((query[key]?.length ?? 0) > max) return null;
  }
  return { state: query.state || undefined, code: query.code || undefined, error: query.error || undefined };
}

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

const PAGE_HEADERS = {
  "content-type": "text/html; charset=utf-8",
  "cache-control": "no-store",
  "referrer-policy": "no-referrer",
  "content-security-policy": "default-src 'none'; style-src 'unsafe-inline'",
  "x-content-type-options": "nosniff",
  "x-frame-options": "DENY",
};

function page(status: number, title: string, text: string, code: string | undefined, requestId: string) {
  const detail = code ? `<p>Error code: <code>${escapeHtml(code)}</code></p>` : "";
  const body = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>${escapeHtml(title)}</title></head>
<body style="font-family: system-ui, sans-serif; max-width: 36rem; margin: 3rem auto;">
<h1>${escapeHtml(title)}</h1><p>${escapeHtml(text)}</p>${detail}
<p><small>Request id: ${escapeHtml(requestId)}</small></p></body></html>
`;
  return new Response(body, { status, headers: PAGE_HEADERS });
}

/** The URL to send the browser back to: the state's return_to if still allowed, else the default. */
function returnBase(config: Config, returnTo: string | null | undefined): string | undefined {
  const fromState = returnTo ? acceptableReturnUrl(returnTo, config) : null;
  return fromState ?? config.defaultReturnUrl;
}

function finish(
  ctx: FunctionContext,
  returnTo: string | null | undefined,
  markers: Record<string, string>,
): Response {
  const base = returnBase(ctx.config, returnTo);
  const failed = markers.calendar_status !== "connected";
  if (!base) {
    return failed
      ? page(
        400,
        "Calendar not connected",
        MESSAGES[markers.calendar_error as CallbackErrorCode] ?? "",
        markers.calendar_error,
        ctx.requestId,
      )
      : page(
        200,
        "Calendar connected",
        "You can close this window and return to the app.",
        undefined,
        ctx.requestId,
      );
  }
  const target = new URL(base);
  for (const key of [...target.searchParams.keys()]) {
    if (key.startsWith("calendar_")) target.searchParams.delete(key);
  }
  for (const [key, value] of Object.entries(markers)) target.searchParams.set(key, value);
  return new Response(null, {
    status: 302,
    headers: { location: target.toString(), "cache-control": "no-store", "referrer-policy": "no-referrer" },
  });
}

function failure(
  ctx: FunctionContext,
  returnTo: string | null | undefined,
  code: CallbackErrorCode,
  extra: Record<string, string> = {},
  logFields: Record<string, unknown> = {},
): Response {
  ctx.log("oauth_callback", { outcome: "error", code, ...logFields });
  return finish(ctx, returnTo, { calendar_status: "error", calendar_error: code, ...extra });
}

/** Revoke a grant we refuse; best effort (the tokens are never stored, so a failure only lingers at the provider). */
async function revokeQuietly(ctx: FunctionContext, provider: CalendarProvider, tokens: TokenSet) {
  try {
    await provider.revoke(tokens.refreshToken ?? tokens.accessToken);
  } catch (err) {
    ctx.log("oauth_revoke_failed", { kind: err instanceof ProviderError ? err.kind : "unknown" });
  }
}

/** Store the grant and queue the backfill atomically: either both happen or neither. */
async function storeAndBackfill(sql: Sql, config: Config, flow: ConsumedAuthState, tokens: TokenSet) {
  return await sql.begin(async (tx) => {
    const [staff] =
      await tx`select 1 from public.staff where id = ${flow.staffId} and tenant_id = ${flow.tenantId}`;
    if (!staff) {
      throw new AuthStateError("invalid_state", "the staff member no longer belongs to this tenant");
    }
    // storeGrant and enqueueBackfill only issue queries; a transaction runs them the same way.
    const txSql = tx as unknown as Sql;
    const connectionId = await storeGrant(txSql, config, {
      tenantId: flow.tenantId,
      staffId: flow.staffId,
      provider: flow.provider,
    }, tokens);
    const queued = await enqueueBackfill(txSql, flow.staffId);
    // A usable connection gets a fresh push channel (a reconnect replaces the old one).
    await requestChannel(txSql, config, { connectionId, provider: flow.provider, replace: true });
    return { connectionId, queued };
  });
}

export const authCallback: FunctionHandler = async (req, ctx) => {
  requireMethod(req, "GET");
  const { config } = ctx;
  const url = new URL(req.url);
  const params = callbackParams(url);
  if (!params) return failure(ctx, undefined, "invalid_request");
  if (!params.state) return failure(ctx, undefined, "invalid_state", {}, { reason: "no state" });

  const sql = getSql(config);
  let flow: ConsumedAuthState;
  try {
    flow = await consumeAuthState(sql, config, params.state);
  } catch (err) {
    if (err instanceof AuthStateError) {
      return failure(ctx, err.returnTo, err.code, {}, err.staffId ? { staff_id: err.staffId } : {});
    }
    throw err;
  }
  const who = { staff_id: flow.staffId, tenant_id: flow.tenantId, provider: flow.provider };
  const provider = providerFor(flow.provider, config);
  // RFC 9207 mix-up defence, for error answers as well as codes: nothing from another issuer is
  // exchanged or reported as this provider's.
  if (!provider.issuerMatches(url)) {
    return failure(ctx, flow.returnTo, "issuer_mismatch", {}, { ...who, reason: "iss" });
  }

  if (params.error) {
    if (params.error === "access_denied") return failure(ctx, flow.returnTo, "access_denied", {}, who);
    const providerCode = /^[a-z0-9_]{1,64}$/i.test(params.error) ? params.error : "unknown";
    return failure(ctx, flow.returnTo, "provider_error", { calendar_provider_error: providerCode }, {
      ...who,
      provider_error: providerCode,
    });
  }
  if (!params.code) return failure(ctx, flow.returnTo, "invalid_request", {}, { ...who, reason: "no code" });

  try {
    // Grants nobody confirmed in time are revoked here too (bounded batch), so an abandoned or
    // attacked consent does not leave a live grant behind.
    if (config.consentConfirmation === "app") {
      await revokeGrants(config, await takeExpiredPendingGrants(sql, config), ctx.log);
    }
    let tokens: TokenSet;
    try {
      tokens = await provider.exchangeCode({
        callbackUrl: url,
        codeVerifier: flow.codeVerifier,
        state: params.state,
        nonce: flow.oidcNonce,
      });
    } catch (err) {
      if (!(err instanceof ProviderError)) throw err;
      return failure(ctx, flow.returnTo, "exchange_failed", {}, {
        ...who,
        kind: err.kind,
        reason: err.details.reason,
        status: err.details.status,
      });
    }
    const refuse = async (
      code: CallbackErrorCode,
      extra: Record<string, string> = {},
      fields: Record<string, unknown> = {},
    ) => {
      await revokeQuietly(ctx, provider, tokens);
      return failure(ctx, flow.returnTo, code, extra, { ...who, ...fields });
    };
    const missing = provider.missingScopes(tokens.scopes);
    if (missing.length > 0) {
      return await refuse("missing_scopes", { calendar_missing_scopes: missing.join(" ") }, {
        missing_scopes: missing,
      });
    }
    const accountEmail = tokens.accountEmail;
    if (!accountEmail) return await refuse("account_unverified");
    if (!emailDomainAllowed(accountEmail, config.allowedEmailDomains)) {
      return await refuse("account_not_allowed", { calendar_account_email: accountEmail });
    }

    if (config.consentConfirmation === "app") {
      if (!flow.initiatedBy || !flow.flowSecretHash) {
        return await refuse("invalid_state", {}, { reason: "state without initiator" });
      }
      if (!returnBase(config, flow.returnTo)) return await refuse("no_return_url");
      const pending = await storePendingGrant(sql, config, {
        ...flow,
        initiatedBy: flow.initiatedBy,
        flowSecretHash: flow.flowSecretHash,
      }, {
        ...tokens,
        accountEmail,
      });
      ctx.log("oauth_callback", { outcome: "pending", ...who, pending_id: pending.id });
      return finish(ctx, flow.returnTo, {
        calendar_status: "pending",
        calendar_pending: pending.id,
        calendar_provider: flow.provider,
        calendar_account_email: accountEmail,
      });
    }

    let stored: { connectionId: string; queued: number };
    try {
      stored = await storeAndBackfill(sql, config, flow, tokens);
    } catch (err) {
      if (
        err instanceof HttpError &&
        (err.code === "missing_refresh_token" || err.code === "other_provider_connected")
      ) {
        return await refuse(err.code);
      }
      if (err instanceof AuthStateError) return failure(ctx, flow.returnTo, err.code, {}, who);
      throw err;
    }
    ctx.log("oauth_callback", {
      outcome: "connected",
      ...who,
      connection_id: stored.connectionId,
      backfill_queued: stored.queued,
    });
    return finish(ctx, flow.returnTo, {
      calendar_status: "connected",
      calendar_provider: flow.provider,
      calendar_account_email: accountEmail,
    });
  } catch (err) {
    // A bug (or the database failing): the browser still goes back to the app with a marker, and
    // the log carries what happened under this request id. Error names and messages here come from
    // our code and the database, never from token material.
    console.error(JSON.stringify({
      level: "error",
      event: "oauth_callback_failed",
      request_id: ctx.requestId,
      ...who,
      name: (err as Error)?.name,
      message: (err as Error)?.message,
    }));
    return failure(ctx, flow.returnTo, "internal_error", {}, who);
  }
};
