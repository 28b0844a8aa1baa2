/**
 * HTML for the sandbox's Google sign-in/consent screen and its error pages. Plain HTML forms only:
 * no JavaScript and no external resources (enforced by the Content-Security-Policy header), so it
 * works in any browser and in tests that post the form directly.
 */

const CSP = "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; frame-ancestors 'none'";

const STYLE = `body{font-family:system-ui,sans-serif;background:#f1f3f4;margin:0}
main{max-width:34rem;margin:3rem auto;background:#fff;border:1px solid #dadce0;border-radius:8px;padding:2rem}
h1{font-size:1.4rem;font-weight:500}code{word-break:break-all}label{display:block;margin:.4rem 0}
input[type=text]{width:100%;padding:.5rem;box-sizing:border-box}fieldset{border:1px solid #dadce0;margin:1rem 0}
button{padding:.5rem 1.2rem;margin-right:.5rem}.err{color:#b3261e}`;

/** Escape text for HTML element and attribute content. */
export function escapeHtml(s: string): string {
  return s.replace(
    /[&<>"']/g,
    (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]!,
  );
}

function page(status: number, title: string, body: string): Response {
  const html = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>${escapeHtml(title)}</title><style>${STYLE}</style></head>
<body><main>${body}</main></body></html>
`;
  return new Response(html, {
    status,
    headers: {
      "content-type": "text/html; charset=utf-8",
      "content-security-policy": CSP,
      "cache-control": "no-store",
      "x-frame-options": "DENY",
    },
  });
}

/** Input for {@link consentPage}. */
export interface ConsentView {
  requestId: string;
  clientId: string;
  login: string;
  scopes: string[];
  /** Shown above the form when a previous submission was refused (e.g. an invalid email). */
  error?: string;
  /** Where the form posts; default Google's decision endpoint. */
  action?: string;
  /** Whose sign-in this imitates; default Google. */
  provider?: "Google" | "Microsoft";
}

/**
 * The consent screen (CONTRACT.md): a POST form to `/google/o/oauth2/v2/auth/decision` with hidden
 * `request_id`, text input `login`, one checked `scope` checkbox per requested scope and the
 * `decision=approve` / `decision=deny` submit buttons.
 */
export function consentPage(v: ConsentView, status = 200): Response {
  const scopes = v.scopes.map((s) =>
    `<label><input type="checkbox" name="scope" value="${escapeHtml(s)}" checked> <code>${
      escapeHtml(s)
    }</code></label>`
  ).join("\n");
  const provider = v.provider ?? "Google";
  const action = v.action ?? "/google/o/oauth2/v2/auth/decision";
  return page(
    status,
    provider === "Google"
      ? "Sign in - Google Accounts (sandbox)"
      : "Permissions requested - Microsoft (sandbox)",
    `<h1>Sign in to continue</h1>
<p><code>${escapeHtml(v.clientId)}</code> wants to access your ${
      provider === "Google" ? "Google Account" : "Microsoft work or school account"
    }.</p>
${v.error ? `<p class="err">${escapeHtml(v.error)}</p>` : ""}
<form method="post" action="${escapeHtml(action)}">
<input type="hidden" name="request_id" value="${escapeHtml(v.requestId)}">
<label>Email <input type="text" name="login" value="${escapeHtml(v.login)}" autocomplete="email"></label>
<fieldset><legend>Allow access to</legend>
${scopes}
</fieldset>
<button type="submit" name="decision" value="approve">Allow</button>
<button type="submit" name="decision" value="deny">Cancel</button>
</form>
<p><small>Local ${provider} sandbox: no password; any email signs in.</small></p>`,
  );
}

/** Google's error screen ("Error 400: redirect_uri_mismatch"), shown instead of redirecting. */
export function errorPage(status: number, error: string, description: string): Response {
  return page(
    status,
    `Error ${status}: ${error}`,
    `<h1>Access blocked: this request is invalid</h1>
<p><strong>Error ${status}: ${escapeHtml(error)}</strong></p>
<p>${escapeHtml(description)}</p>`,
  );
}
