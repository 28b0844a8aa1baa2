/**
 * The Microsoft identity platform settings (docs/providers/microsoft.md B1): variables, endpoints per
 * tenant, scopes, and the issuer rule for multi-tenant ID tokens, tested as the attacks it stops.
 */
import assert from "node:assert/strict";
import { ConfigError } from "../../supabase/functions/_shared/config.ts";
import {
  authorizationResponseIssuerAllowed,
  CONSUMER_TENANT_ID,
  idTokenIssuerAllowed,
  issuerForTenant,
  MICROSOFT_SCOPES,
  missingMicrosoftScopes,
  normaliseGrantedScopes,
  parseMicrosoftConfig,
} from "../../supabase/functions/_shared/providers/microsoft/oauth-config.ts";
import { microsoftTokenResponse } from "../../supabase/functions/_shared/providers/microsoft/schemas.ts";

const BASE = {
  MICROSOFT_CLIENT_ID: "00001111-aaaa-2222-bbbb-3333cccc4444",
  MICROSOFT_CLIENT_SECRET: "secret-value-never-printed",
  MICROSOFT_REDIRECT_URI: "https://ref.supabase.co/functions/v1/calendar-auth-callback",
};
const CONTOSO = "72f988bf-86f1-41af-91ab-2d7cd011db47";
const FABRIKAM = "0b3f5a3e-1c9d-4e3f-8a2b-6c7d8e9f0a1b";
const AUTHORITY = "https://login.microsoftonline.com";

Deno.test("parseMicrosoftConfig: defaults (tenant common) and the v2 endpoints of the tenant", () => {
  const c = parseMicrosoftConfig({ ...BASE, UNRELATED: "x" });
  assert.equal(c.tenant, "common");
  assert.equal(c.prompt, "select_account");
  assert.equal(c.authorizationEndpoint, `${AUTHORITY}/common/oauth2/v2.0/authorize`);
  assert.equal(c.tokenEndpoint, `${AUTHORITY}/common/oauth2/v2.0/token`);
  assert.equal(c.jwksUri, `${AUTHORITY}/common/discovery/v2.0/keys`);
  assert.equal(c.graphApiBase, "https://graph.microsoft.com/v1.0");
  assert.deepEqual(c.scopes, [
    "offline_access",
    "Calendars.ReadWrite",
    "User.Read",
    "openid",
    "email",
    "profile",
  ]);
  assert.equal(MICROSOFT_SCOPES.includes("offline_access"), true, "no refresh token without it (B1.2)");
});

Deno.test("parseMicrosoftConfig: tenant forms, prompt, sandbox overrides; empty values are unset", () => {
  for (const tenant of ["organizations", "consumers", "contoso.onmicrosoft.com", "clinic.example.org"]) {
    const c = parseMicrosoftConfig({ ...BASE, MICROSOFT_TENANT: tenant });
    assert.equal(c.tokenEndpoint, `${AUTHORITY}/${tenant}/oauth2/v2.0/token`);
  }
  assert.equal(parseMicrosoftConfig({ ...BASE, MICROSOFT_TENANT: CONTOSO.toUpperCase() }).tenant, CONTOSO);
  const sandbox = parseMicrosoftConfig({
    ...BASE,
    MICROSOFT_TENANT: "",
    MICROSOFT_OAUTH_PROMPT: "consent",
    MICROSOFT_AUTHORITY: "http://127.0.0.1:54400/ms/",
    MICROSOFT_GRAPH_API_BASE: "http://127.0.0.1:54400/graph/v1.0/",
  });
  assert.equal(sandbox.tenant, "common");
  assert.equal(sandbox.prompt, "consent");
  assert.equal(sandbox.authorizationEndpoint, "http://127.0.0.1:54400/ms/common/oauth2/v2.0/authorize");
  assert.equal(sandbox.graphApiBase, "http://127.0.0.1:54400/graph/v1.0");
});

Deno.test("parseMicrosoftConfig: each bad variable is named, its value never printed", () => {
  const bad: [Record<string, string | undefined>, string][] = [
    [{ ...BASE, MICROSOFT_CLIENT_ID: "" }, "MICROSOFT_CLIENT_ID"],
    [{ ...BASE, MICROSOFT_CLIENT_SECRET: undefined }, "MICROSOFT_CLIENT_SECRET"],
    [{ ...BASE, MICROSOFT_REDIRECT_URI: "not a url" }, "MICROSOFT_REDIRECT_URI"],
    [{ ...BASE, MICROSOFT_TENANT: ["common", "..", "evil"].join("/") }, "MICROSOFT_TENANT"],
    [{ ...BASE, MICROSOFT_TENANT: "evil.example/x?y=" }, "MICROSOFT_TENANT"],
    [{ ...BASE, MICROSOFT_OAUTH_PROMPT: "consent select_account" }, "MICROSOFT_OAUTH_PROMPT"],
    [{ ...BASE, MICROSOFT_AUTHORITY: "nope" }, "MICROSOFT_AUTHORITY"],
  ];
  for (const [env, name] of bad) {
    const err = (() => {
      try {
        parseMicrosoftConfig(env);
      } catch (e) {
        return e;
      }
    })();
    assert.ok(err instanceof ConfigError, name);
    assert.match(err.message, new RegExp(name), name);
    assert.doesNotMatch(err.message, /secret-value-never-printed/);
  }
});

Deno.test("idTokenIssuerAllowed: the v2 issuer of the token's own tenant, within the configured tenants", () => {
  const common = { authority: AUTHORITY, tenant: "common" };
  const iss = issuerForTenant(AUTHORITY, CONTOSO);
  assert.equal(iss, `${AUTHORITY}/${CONTOSO}/v2.0`);
  assert.ok(idTokenIssuerAllowed(common, { iss, tid: CONTOSO }));
  assert.ok(
    idTokenIssuerAllowed(common, {
      iss: issuerForTenant(AUTHORITY, CONSUMER_TENANT_ID),
      tid: CONSUMER_TENANT_ID,
    }),
  );
  // Attacks: a token whose issuer names another tenant than its tid (a token minted in a tenant the
  // attacker controls, relabelled), another server, the v1 issuer, the template itself, missing claims.
  assert.ok(!idTokenIssuerAllowed(common, { iss: issuerForTenant(AUTHORITY, FABRIKAM), tid: CONTOSO }));
  assert.ok(!idTokenIssuerAllowed(common, { iss: `https://evil.example/${CONTOSO}/v2.0`, tid: CONTOSO }));
  assert.ok(!idTokenIssuerAllowed(common, { iss: `https://sts.windows.net/${CONTOSO}/`, tid: CONTOSO }));
  assert.ok(!idTokenIssuerAllowed(common, { iss: `${AUTHORITY}/{tenantid}/v2.0`, tid: "{tenantid}" }));
  assert.ok(!idTokenIssuerAllowed(common, { iss: `${AUTHORITY}/common/v2.0`, tid: "common" }));
  assert.ok(!idTokenIssuerAllowed(common, { iss, tid: undefined }));
  assert.ok(!idTokenIssuerAllowed(common, { iss: undefined, tid: CONTOSO }));
  assert.ok(!idTokenIssuerAllowed(common, { iss: `${iss}/`, tid: CONTOSO }));

  const single = { authority: AUTHORITY, tenant: CONTOSO };
  assert.ok(idTokenIssuerAllowed(single, { iss, tid: CONTOSO }));
  assert.ok(
    idTokenIssuerAllowed(single, {
      iss: issuerForTenant(AUTHORITY, CONTOSO).replace(CONTOSO, CONTOSO.toUpperCase()),
      tid: CONTOSO.toUpperCase(),
    }),
  );
  assert.ok(
    !idTokenIssuerAllowed(single, { iss: issuerForTenant(AUTHORITY, FABRIKAM), tid: FABRIKAM }),
    "a single-tenant deployment refuses another tenant's account",
  );

  const orgs = { authority: AUTHORITY, tenant: "organizations" };
  assert.ok(idTokenIssuerAllowed(orgs, { iss, tid: CONTOSO }));
  assert.ok(
    !idTokenIssuerAllowed(orgs, {
      iss: issuerForTenant(AUTHORITY, CONSUMER_TENANT_ID),
      tid: CONSUMER_TENANT_ID,
    }),
  );
  const consumers = { authority: AUTHORITY, tenant: "consumers" };
  assert.ok(!idTokenIssuerAllowed(consumers, { iss, tid: CONTOSO }));
  assert.ok(
    idTokenIssuerAllowed(consumers, {
      iss: issuerForTenant(AUTHORITY, CONSUMER_TENANT_ID),
      tid: CONSUMER_TENANT_ID,
    }),
  );
  assert.ok(idTokenIssuerAllowed({ authority: `${AUTHORITY}/`, tenant: "common" }, { iss, tid: CONTOSO }));
  assert.ok(
    !idTokenIssuerAllowed(common, {
      iss: iss.replace("login.microsoftonline.com", "LOGIN.microsoftonline.com"),
      tid: CONTOSO,
    }),
    "only the GUID's case may differ",
  );
  assert.ok(!idTokenIssuerAllowed(common, { iss: iss.replace("/v2.0", "/V2.0"), tid: CONTOSO }));
  // The sandbox authority (an override) is the issuer base there, and only there.
  const sandbox = { authority: "http://127.0.0.1:54400/ms", tenant: "common" };
  assert.ok(
    idTokenIssuerAllowed(sandbox, { iss: `http://127.0.0.1:54400/ms/${CONTOSO}/v2.0`, tid: CONTOSO }),
  );
  assert.ok(!idTokenIssuerAllowed(sandbox, { iss, tid: CONTOSO }));
});

Deno.test("authorizationResponseIssuerAllowed: absent is fine (Entra sends none); present must be ours", () => {
  const common = { authority: AUTHORITY, tenant: "common" };
  assert.ok(authorizationResponseIssuerAllowed(common, null));
  assert.ok(authorizationResponseIssuerAllowed(common, `${AUTHORITY}/${CONTOSO}/v2.0`));
  assert.ok(!authorizationResponseIssuerAllowed(common, "https://accounts.google.com"));
  assert.ok(!authorizationResponseIssuerAllowed(common, `${AUTHORITY}/common/v2.0`));
  assert.ok(!authorizationResponseIssuerAllowed(common, `${AUTHORITY}.evil.example/${CONTOSO}/v2.0`));
  assert.ok(
    !authorizationResponseIssuerAllowed(
      { authority: AUTHORITY, tenant: CONTOSO },
      `${AUTHORITY}/${FABRIKAM}/v2.0`,
    ),
  );
});

Deno.test("scopes: short names or Graph URIs, any case, URL-encoded or not; broader grants satisfy", () => {
  assert.deepEqual(
    normaliseGrantedScopes(
      "openid profile email https://graph.microsoft.com/Calendars.ReadWrite https://graph.microsoft.com/User.Read",
    ),
    ["openid", "profile", "email", "calendars.readwrite", "user.read"],
  );
  assert.deepEqual(normaliseGrantedScopes("https%3A%2F%2Fgraph.microsoft.com%2Fmail.read"), ["mail.read"]);
  assert.deepEqual(normaliseGrantedScopes(undefined), []);
  assert.deepEqual(missingMicrosoftScopes("Calendars.ReadWrite User.Read"), []);
  assert.deepEqual(missingMicrosoftScopes("https://graph.microsoft.com/calendars.readwrite"), []);
  assert.deepEqual(missingMicrosoftScopes("Calendars.ReadWrite.Shared"), []);
  // Consent to fewer scopes: read-only calendars are not enough.
  assert.deepEqual(missingMicrosoftScopes("Calendars.Read User.Read openid"), ["Calendars.ReadWrite"]);
  assert.deepEqual(missingMicrosoftScopes(""), ["Calendars.ReadWrite"]);
  assert.deepEqual(missingMicrosoftScopes("constructor __proto__ toString"), ["Calendars.ReadWrite"]);
  assert.deepEqual(missingMicrosoftScopes("User.Read", ["User.Read", "Calendars.Read"]), ["Calendars.Read"]);
});

Deno.test("schemas: token answers with rotation; the documentation's sample parses", () => {
  const docs = JSON.parse(
    Deno.readTextFileSync(new URL("../fixtures/microsoft/oauth/token-response.json", import.meta.url)),
  );
  const parsed = microsoftTokenResponse.parse(docs);
  assert.equal(parsed.expires_in, 3599);
  assert.ok(parsed.refresh_token, "every answer carries the new refresh token (rotation)");
  const refreshed = microsoftTokenResponse.parse({
    token_type: "bearer",
    access_token: "a",
    expires_in: "4999",
    ext_expires_in: 4999,
    scope: "Calendars.ReadWrite",
    refresh_token: "r2",
  });
  assert.equal(refreshed.expires_in, 4999);
  assert.ok(!microsoftTokenResponse.safeParse({ ...docs, token_type: "mac" }).success);
  assert.ok(!microsoftTokenResponse.safeParse({ ...docs, access_token: "" }).success);
  assert.ok(!microsoftTokenResponse.safeParse({ ...docs, expires_in: 0 }).success);
});
