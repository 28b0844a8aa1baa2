/**
 * Work that outlives its response. The Supabase edge runtime exposes `EdgeRuntime.waitUntil(promise)`:
 * the isolate stays alive until the promise settles (within the runtime's wall-clock and CPU limits)
 * after the response has gone out. Plain Deno has no such global, and the local gateway
 * (dev/stack/edge-runtime.ts) installs an equivalent one, so the functions behave the same there.
 *
 * A caller asks for this with the RFC 7240 preference `Prefer: respond-async`; the answer is then
 * `202 Accepted` with `Preference-Applied: respond-async`. Without the header, or where the runtime
 * cannot keep work alive, the function answers synchronously as before (RFC 7240 lets a server ignore
 * a preference).
 */

/** `EdgeRuntime.waitUntil` as the Supabase edge runtime declares it. */
export type WaitUntil = (promise: Promise<unknown>) => void;

/**
 * The runtime's `waitUntil`, or null where there is none (plain Deno, a test process).
 * Looked up on every call, so a runtime that installs the global after this module loads is seen.
 */
export function runtimeWaitUntil(): WaitUntil | null {
  const runtime = (globalThis as { EdgeRuntime?: { waitUntil?: unknown } }).EdgeRuntime;
  const waitUntil = runtime?.waitUntil;
  if (typeof waitUntil !== "function") return null;
  return (promise) => waitUntil.call(runtime, promise);
}

/**
 * Whether the request carries the RFC 7240 preference `respond-async` (`Prefer: respond-async`,
 * also inside a list such as `Prefer: wait=5, respond-async`; names are case-insensitive).
 */
export function prefersRespondAsync(req: Request): boolean {
  const header = req.headers.get("prefer");
  if (!header) return false;
  return header.split(",").some((pref) =>
    pref.split(";")[0].split("=")[0].trim().toLowerCase() === "respond-async"
  );
}
