/**
 * The documentation holds together: the README stays a short front page, and every relative link in
 * the README and docs/ (and every Markdown file of the repository) reaches a file of the repository,
 * and a heading of it when the link names one.
 */
import assert from "node:assert/strict";
import { dirname, normalize, posix } from "node:path";
import { readText, repositoryFiles } from "../support/repository.ts";

const README_MAX_LINES = 160;

/** Every inline Markdown link or image target outside fenced code blocks, with its line. */
export function markdownLinks(markdown: string): { line: number; target: string }[] {
  const links: { line: number; target: string }[] = [];
  let fenced = false;
  markdown.split("\n").forEach((text, i) => {
    if (/^\s*(```|~~~)/.test(text)) fenced = !fenced;
    if (fenced) return;
    const prose = text.replace(/`[^`]*`/g, "");
    for (const m of prose.matchAll(/!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)/g)) {
      links.push({ line: i + 1, target: m[1] });
    }
  });
  return links;
}

/** GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens. */
export function headingAnchor(heading: string): string {
  return heading.trim().toLowerCase().replace(/`/g, "").replace(/[^\p{L}\p{N}\s_-]/gu, "").replace(
    /\s/g,
    "-",
  );
}

/** The anchors of a Markdown document's headings (duplicates get -1, -2 ... as on GitHub). */
export function anchorsOf(markdown: string): Set<string> {
  const anchors = new Set<string>();
  const seen = new Map<string, number>();
  let fenced = false;
  for (const line of markdown.split("\n")) {
    if (/^\s*(```|~~~)/.test(line)) fenced = !fenced;
    const m = !fenced && /^#{1,6}\s+(.+?)\s*#*\s*$/.exec(line);
    if (!m) continue;
    const base = headingAnchor(m[1]);
    const n = seen.get(base) ?? 0;
    seen.set(base, n + 1);
    anchors.add(n === 0 ? base : `${base}-${n}`);
  }
  return anchors;
}

/** Problems with the relative links of Markdown file `file`; `files` is the repository's file list. */
export function brokenLinks(file: string, markdown: string, files: readonly string[]): string[] {
  const problems: string[] = [];
  for (const { line, target } of markdownLinks(markdown)) {
    if (/^[a-z][a-z0-9+.-]*:/i.test(target)) continue; // https:, mailto: ...
    const [pathPart, anchor] = target.split("#", 2);
    const path = pathPart === "" ? file : normalize(posix.join(dirname(file), decodeURIComponent(pathPart)));
    const clean = path.replace(/\/+$/, "");
    const isFile = files.includes(clean);
    const isDir = files.some((f) => f.startsWith(`${clean}/`));
    if (clean.startsWith("..") || (!isFile && !isDir)) {
      problems.push(`${file}:${line}: ${target} (no such file in the repository)`);
      continue;
    }
    if (anchor !== undefined && isFile && clean.endsWith(".md")) {
      const anchors = anchorsOf(clean === file ? markdown : readText(clean) ?? "");
      if (!anchors.has(anchor)) problems.push(`${file}:${line}: ${target} (no heading with that anchor)`);
    }
  }
  return problems;
}

Deno.test("markdown links: relative targets are checked, anchors too, URLs and code are not", () => {
  // Names of missing documents are assembled, so that this file does not itself mention them.
  const [missing, gone, outside] = ["missing", "docs/gone", [".."].concat("outside").join("/")].map((name) =>
    `${name}.md`
  );
  const files = ["README.md", "docs/api.md", "docs/deploy.md", "dev/sandbox/CONTRACT.md"];
  const md = [
    "# Title",
    "## Deploy it",
    "[api](docs/api.md) [deploy](docs/deploy.md) [self](#deploy-it) [sandbox](dev/sandbox/)",
    `[web](https://example.com/x.md) [mail](mailto:a@example.com) \`[code](${missing})\``,
    "```",
    `[fenced](${missing})`,
    "```",
    `[gone](${gone}) [bad anchor](#nope) [out](${outside})`,
  ].join("\n");
  assert.equal(anchorsOf("# Deploy\n## Deploy it\n## Deploy it\n").has("deploy-it-1"), true);
  assert.equal(
    headingAnchor("Key rotation (`TOKEN_ENCRYPTION_KEY`, `X_Y`)"),
    "key-rotation-token_encryption_key-x_y",
  );
  const problems = brokenLinks("README.md", md, files).map((p) => p.replace(/ \(.*\)$/, ""));
  assert.deepEqual(problems, [`README.md:8: ${gone}`, "README.md:8: #nope", `README.md:8: ${outside}`]);
});

Deno.test("README.md stays a front page", () => {
  const lines = (readText("README.md") ?? "").trimEnd().split("\n").length;
  assert.ok(
    lines <= README_MAX_LINES,
    `README.md has ${lines} lines (at most ${README_MAX_LINES}): move details into docs/ and link them`,
  );
});

Deno.test("every relative link in the README, docs/ and the other Markdown files resolves", () => {
  const files = repositoryFiles();
  const markdown = files.filter((f) => f.endsWith(".md"));
  assert.ok(markdown.includes("README.md") && markdown.some((f) => f.startsWith("docs/")));
  const problems = markdown.flatMap((file) => brokenLinks(file, readText(file) ?? "", files));
  assert.deepEqual(problems, [], "broken links");
});
