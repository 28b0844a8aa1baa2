/**
 * The fixed identities of the local demo (seeded by `npm start`, used by `npm run demo`), and the
 * shape of `.local/demo.json` that connects the two. Fixed UUIDs make the seed idempotent: a
 * restart finds the same tenant, user and staff member.
 */

/** The demo tenant ("Demo Clinic"). */
export const DEMO_TENANT_ID = "de300000-0000-4000-8000-000000000001";
/** The demo user in auth.users (the staff member's profile_id; the demo JWT's `sub`). */
export const DEMO_USER_ID = "de300000-0000-4000-8000-000000000002";
/** The demo staff member. */
export const DEMO_STAFF_ID = "de300000-0000-4000-8000-000000000003";
/** The demo staff member's email, also their sandbox Google account (primary calendar id). */
export const DEMO_EMAIL = "clinician@example.com";
/** The second demo user, who connects Microsoft 365 (a staff member has one active connection). */
export const DEMO_MS_USER_ID = "de300000-0000-4000-8000-000000000004";
/** The second demo staff member (same tenant), walked by `npm run demo -- --provider microsoft`. */
export const DEMO_MS_STAFF_ID = "de300000-0000-4000-8000-000000000005";
/** The second demo staff member's email, also their sandbox Microsoft account (default calendar). */
export const DEMO_MS_EMAIL = "ms.clinician@example.com";
/** Where the demo's OAuth flow asks to be sent back (an allowed local return origin). */
export const DEMO_RETURN_TO = "http://127.0.0.1:3000/settings/calendar";

/** Path of the file `npm start` writes and `npm run demo` reads. */
export const DEMO_FILE = ".local/demo.json";

/** Contents of `.local/demo.json`. URLs without a trailing slash. */
export interface DemoInfo {
  /** `http://127.0.0.1:54321/functions/v1` */
  functionsUrl: string;
  /** `http://127.0.0.1:54329` */
  sandboxUrl: string;
  /** A long-lived JWT of the demo user (role authenticated). Local secrets only. */
  jwt: string;
  /** A long-lived service-role JWT. Local secrets only. */
  serviceRoleJwt: string;
  staffId: string;
  tenantId: string;
  userId: string;
  email: string;
  /** The second demo staff member, who connects Microsoft (same tenant; `jwt` is their session). */
  microsoft: DemoStaff;
  /** Postgres connection string of the stack's database. */
  databaseUrl: string;
  /** Process id of the `npm start` process that wrote the file. */
  pid: number;
  /** When the stack started (ISO 8601 UTC). */
  startedAt: string;
}

/** A demo staff member and a long-lived JWT of their user (role authenticated). Local secrets only. */
export interface DemoStaff {
  jwt: string;
  staffId: string;
  userId: string;
  email: string;
}
