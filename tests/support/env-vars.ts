/**
 * Which environment variables code reads, which a Markdown table documents, and which an env file
 * lists: the three lists tests/unit/configuration-docs.test.ts keeps equal.
 */

/** A name that looks like an environment variable. */
const NAME = /^[A-Z][A-Z0-9_]*[A-Z0-9]$/;

/**
 * The text at brace depth 1 of the object literal that starts at `open` (the index of its `{`), with
 * strings and comments blanked out, so that keys of nested objects and words in strings do not count.
 */
function topLevelText(source: string, open: number): string {
  let depth = 0;
  let out = "";
  for (let i = open; i < source.length; i++) {
    const c = source[i];
    if (c === "/" && source[i + 1] === "/") {
      while (i < source.length && source[i] !== "\n") i++;
      out += "\n";
      continue;
    }
    if (c === "/" && source[i + 1] === "*") {
      i = source.indexOf("*/", i + 2) + 1;
      if (i === 0) break;
      continue;
    }
    if (c === '"' || c === "'" || c === "`") {
      for (i++; i < source.length && source[i] !== c; i++) if (source[i] === "\\") i++;
      out += depth === 1 ? '""' : "";
      continue;
    }
    if (c === "{" || c === "(" || c === "[") depth++;
    else if (c === "}" || c === ")" || c === "]") {
      depth--;
      if (depth === 0) break;
    } else if (depth === 1) out += c;
  }
  return out;
}

/**
 * The environment variables a TypeScript source reads: the upper-case keys of its zod object schemas
 * (`z.object({...})`, `z.strictObject`, `z.looseObject`, `.extend({...})`), and direct reads
 * (`env.NAME`, `env["NAME"]`, `Deno.env.get("NAME")`). Sorted, without duplicates.
 */
export function variablesReadBy(source: string): string[] {
  const found = new Set<string>();
  for (const m of source.matchAll(/\bz\.(?:object|strictObject|looseObject)\(\s*\{|\.extend\(\s*\{/g)) {
    const open = m.index + m[0].lastIndexOf("{");
    for (const k of topLevelText(source, open).matchAll(/(?:^|[\n,])\s*([A-Za-z0-9_]+)\s*:/g)) {
      if (NAME.test(k[1])) found.add(k[1]);
    }
  }
  const direct = [
    /\benv\.([A-Z][A-Z0-9_]*)\b/g,
    /\benv\[\s*["']([A-Z][A-Z0-9_]*)["']\s*\]/g,
    /\bDeno\.env\.get\(\s*["']([A-Z][A-Z0-9_]*)["']\s*\)/g,
  ];
  for (const re of direct) for (const m of source.matchAll(re)) if (NAME.test(m[1])) found.add(m[1]);
  return [...found].sort();
}

/**
 * The variables a Markdown document's tables document: every table row whose first cell is a
 * code-formatted upper-case name (`| \`NAME\` | ... |`). Sorted, without duplicates.
 */
export function variablesInTables(markdown: string): string[] {
  const found = new Set<string>();
  for (const line of markdown.split("\n")) {
    const m = /^\s*\|\s*`([^`]+)`\s*\|/.exec(line);
    if (m && NAME.test(m[1])) found.add(m[1]);
  }
  return [...found].sort();
}

/** The variables an env file lists, set (`NAME=...`) or commented out (`# NAME=...`). Sorted. */
export function variablesInEnvFile(text: string): string[] {
  const found = new Set<string>();
  for (const m of text.matchAll(/^[ \t]*(?:#[ \t]*)?(?:export[ \t]+)?([A-Z][A-Z0-9_]*)=/gm)) {
    if (NAME.test(m[1])) found.add(m[1]);
  }
  return [...found].sort();
}
