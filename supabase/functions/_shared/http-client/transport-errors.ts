/** Classifying a request that produced no HTTP answer, for every provider. */
import { ProviderError } from "../errors/domain-error.ts";

/**
 * Classify a failure that produced no HTTP answer: a timeout (`TimeoutError`), an abort
 * (`AbortError`) or a network error (`TypeError` from fetch) becomes `transient`. A
 * {@link ProviderError} is returned unchanged. Anything else is a bug and is rethrown as is.
 * The underlying message is not quoted (it can contain the request URL).
 *
 * @param label names the call in the message, e.g. `Google events.insert`.
 * @param timeoutMs the per-request timeout in ms, for the message.
 * @throws the original error when it is not a transport failure.
 */
export function classifyTransportError(err: unknown, label: string, timeoutMs?: number): ProviderError {
  if (err instanceof ProviderError) return err;
  const name = err instanceof Error || err instanceof DOMException ? err.name : undefined;
  if (name === "TimeoutError") {
    return new ProviderError(
      "transient",
      `${label} timed out${timeoutMs ? ` after ${timeoutMs} ms` : ""}`,
      { reason: "timeout" },
    );
  }
  if (name === "AbortError") {
    return new ProviderError("transient", `${label} was aborted`, { reason: "aborted" });
  }
  // oauth4webapi's argument errors are TypeErrors with an ERR_* code; those are bugs, not the network.
  if (err instanceof TypeError && !String((err as { code?: unknown }).code ?? "").startsWith("ERR_")) {
    return new ProviderError("transient", `${label} failed: network error`, { reason: "network" });
  }
  throw err;
}
