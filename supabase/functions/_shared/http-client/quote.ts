/** Quoting a provider's own error text in our messages: one line, bounded. */

const MAX_QUOTED = 200;

/**
 * A provider message as one line of at most 200 characters (with `...` when cut), or "" when
 * absent. Only provider-authored descriptions are quoted, never request URLs or bodies we sent.
 */
export function quoteProviderText(text: string | undefined): string {
  if (!text) return "";
  const oneLine = text.replace(/\s+/g, " ").trim();
  return oneLine.length > MAX_QUOTED ? `${oneLine.slice(0, MAX_QUOTED)}...` : oneLine;
}
