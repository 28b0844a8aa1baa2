/** OAuth scope strings (RFC 6749 §3.3), for every provider. */

/** Split an OAuth `scope` value (space-delimited) into distinct scopes, in first-seen order. */
export function parseScopeString(scope: string): string[] {
  return [...new Set(scope.split(/\s+/).filter(Boolean))];
}
