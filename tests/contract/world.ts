/**
 * What one contract case runs against: the provider sandbox (dev/sandbox, Google and Microsoft in
 * one process) on a random port, the product's configuration for it (dev/stack/function-env.ts, as
 * `npm start` and the integration stack use), the provider from `providerFor`, and, when the case
 * needs the product's connection code, a scratch database with the migrations applied. No gateway:
 * the contract talks to the provider interface and to `_shared/connections.ts` directly.
 */
import * as oauth from "oauth4webapi";
import { startSandbox } from "../../dev/sandbox/server.ts";
import { createScratchDatabase } from "../../dev/stack/database.ts";
import { functionEnv, sandboxMicrosoftClient, sandboxOAuthClient } from "../../dev/stack/function-env.ts";
import { generateSecrets } from "../../dev/stack/secrets.ts";
import { type Config, parseConfig } from "../../supabase/functions/_shared/config.ts";
import { storeGrant } from "../../supabase/functions/_shared/connections.ts";
import { createSql, type Sql } from "../../supabase/functions/_shared/db/client.ts";
import { providerFor } from "../../supabase/functions/_shared/providers/registry.ts";
import type {
  CalendarProvider,
  CodeExchange,
  TokenSet,
} from "../../supabase/functions/_shared/providers/types.ts";
import { type SandboxClient, sandboxClient } from "../support/stack.ts";
import type { ProviderFixture } from "./fixtures.ts";

/** Where the OAuth callback would be; never fetched (the test reads the redirect itself). */
const APP_URL = "http://127.0.0.1:54321";

/** One consent as the app runs it: the authorization URL and what the flow must remember. */
export interface ConsentFlow {
  url: URL;
  verifier: string;
  challenge: string;
  state: string;
  nonce: string;
}

/** A running contract world; see the module doc. */
export interface World {
  fixture: ProviderFixture;
  provider: CalendarProvider;
  config: Config;
  sb: SandboxClient;
  /** The scratch database (only when started with `database: true`). */
  sql?: Sql;
  /** A fresh consent URL (PKCE S256, state, nonce; `login_hint` = `email`). */
  startConsent(email?: string): Promise<ConsentFlow>;
  /** The user's decision on the sandbox's consent page: the redirect back to the app. */
  decide(flow: ConsentFlow, login: string, decision: "approve" | "deny"): Promise<URL>;
  /** What the callback hands the provider. */
  exchangeOf(flow: ConsentFlow, callbackUrl: URL): CodeExchange;
  /** Consent approved by `email` and its code exchanged. */
  connect(email: string): Promise<TokenSet>;
  /**
   * A tenant and staff member in the scratch database with `tokens` stored as their connection, as
   * the auth callback stores them (storeGrant).
   */
  storeConnection(tokens: TokenSet): Promise<{ tenantId: string; staffId: string; connectionId: string }>;
  close(): Promise<void>;
}

/**
 * Start a world for `fixture`'s provider.
 * @param o.database also create a scratch database (bootstrap + migrations) for connection code.
 * @param o.providerTimeoutMs per-request timeout of the provider (default 10 000 ms).
 */
export async function startWorld(
  fixture: ProviderFixture,
  o: { database?: boolean; providerTimeoutMs?: number } = {},
): Promise<World> {
  const secrets = generateSecrets();
  const cleanups: (() => Promise<unknown>)[] = [];
  const close = async () => {
    for (const fn of cleanups.splice(0).reverse()) await fn().catch(() => {});
  };
  try {
    const sandbox = await startSandbox({
      port: 0,
      hostname: "127.0.0.1",
      clients: [sandboxOAuthClient(APP_URL, secrets)],
      microsoftClients: [sandboxMicrosoftClient(APP_URL, secrets)],
      seed: 42,
    });
    cleanups.push(() => sandbox.close());
    let sql: Sql | undefined;
    let databaseUrl = "postgres://postgres@127.0.0.1:5432/unused";
    if (o.database) {
      const db = await createScratchDatabase(`contract_${fixture.id}`);
      cleanups.push(() => db.drop());
      databaseUrl = db.url;
      // Room for twenty callers at once, as twenty function instances would have.
      sql = createSql(db.url, { max: 10 });
      cleanups.push(() => sql!.end({ timeout: 5 }));
    }
    const env = functionEnv({
      supabaseUrl: APP_URL,
      databaseUrl,
      sandboxUrl: sandbox.url,
      secrets,
      providers: [fixture.id],
      extra: o.providerTimeoutMs ? { CALENDAR_PROVIDER_TIMEOUT_MS: String(o.providerTimeoutMs) } : {},
    });
    const config = parseConfig(env);
    const provider = providerFor(fixture.id, config);
    const sb = sandboxClient(sandbox.url);

    const startConsent = async (email?: string): Promise<ConsentFlow> => {
      const verifier = oauth.generateRandomCodeVerifier();
      const challenge = await oauth.calculatePKCECodeChallenge(verifier);
      const state = oauth.generateRandomState();
      const nonce = oauth.generateRandomNonce();
      const url = provider.authorizationUrl({ state, codeChallenge: challenge, nonce, loginHint: email });
      return { url, verifier, challenge, state, nonce };
    };
    const decide = async (flow: ConsentFlow, login: string, decision: "approve" | "deny") => {
      // The sandbox drives its own consent page (GET the authorize URL, POST the form) for us.
      const { redirect } = await sb.admin<{ redirect: string }>("POST", "/_admin/authorize", {
        authorizationUrl: flow.url.href,
        login,
        decision,
      });
      return new URL(redirect);
    };
    const exchangeOf = (flow: ConsentFlow, callbackUrl: URL): CodeExchange => ({
      callbackUrl,
      codeVerifier: flow.verifier,
      state: flow.state,
      nonce: flow.nonce,
    });
    const connect = async (email: string) => {
      const flow = await startConsent(email);
      return await provider.exchangeCode(exchangeOf(flow, await decide(flow, email, "approve")));
    };
    const storeConnection = async (tokens: TokenSet) => {
      if (!sql) throw new Error("storeConnection needs a world started with database: true");
      const [{ id: tenantId }] = await sql`insert into public.tenants (name) values ('Contract clinic')
        returning id`;
      const [{ id: staffId }] = await sql`insert into public.staff (tenant_id, profile_id, email)
        values (${tenantId}, ${crypto.randomUUID()}, ${tokens.accountEmail ?? null}) returning id`;
      const connectionId = await storeGrant(sql, config, { tenantId, staffId, provider: fixture.id }, tokens);
      return { tenantId, staffId, connectionId };
    };
    return {
      fixture,
      provider,
      config,
      sb,
      sql,
      startConsent,
      decide,
      exchangeOf,
      connect,
      storeConnection,
      close,
    };
  } catch (err) {
    await close();
    throw err;
  }
}
