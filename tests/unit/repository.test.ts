/**
 * The repository stands on its own: no file reads or cites a path outside it (a design note, a
 * payload directory or a home directory on someone's machine). The matcher is tested on examples
 * first, so the guard over the real tree is known to be able to fail.
 */
import assert from "node:assert/strict";
import { outsideMentions, readText, repositoryFiles } from "../support/repository.ts";

// The examples are assembled from parts so that this file does not itself mention the paths.
const abs = (...parts: string[]) => "/" + parts.join("/");
const up = (steps: number, rest: string) => [...Array(steps).fill(".."), rest].join("/");
const md = (name: string) => `${name}.md`;

/** A small repository for the examples. */
const FILES = [
  ".ci/run",
  "README.md",
  "dev/sandbox/CONTRACT.md",
  "docs/architecture.md",
  "supabase/functions/_shared/http.ts",
  "tests/unit/a.test.ts",
];

const paths = (file: string, text: string) => outsideMentions(file, text, FILES).map((m) => m.path);

Deno.test("outside paths: absolute paths into a machine's directories are found", () => {
  assert.deepEqual(paths("README.md", `see ${abs("work", "shared", "notes")} first`), [
    abs("work", "shared", "notes"),
  ]);
  assert.deepEqual(paths("tests/unit/a.test.ts", `const DIR = "${abs("root", "repo", "payloads")}";`), [
    abs("root", "repo", "payloads"),
  ]);
  assert.deepEqual(paths("docs/architecture.md", `cloned to \`${abs("home", "alice", "x")}\``), [
    abs("home", "alice", "x"),
  ]);
  assert.deepEqual(paths("README.md", `in ${abs("Users", "bob", "src")}.`), [abs("Users", "bob", "src")]);
  assert.deepEqual(paths("README.md", `cat ${abs("etc", "passwd")}`), [abs("etc", "passwd")]);
  const windows = outsideMentions("README.md", `C:${"\\"}Users${"\\"}bob${"\\"}repo`, FILES);
  assert.equal(windows.length, 1);
  assert.equal(windows[0].why, "absolute Windows path");
  const escaped = outsideMentions("a.json", `"C:${"\\\\"}Users${"\\\\"}bob"`, FILES);
  assert.equal(escaped.length, 1, "JSON-escaped backslashes too");
});

Deno.test("outside paths: relative paths that leave the repository are found, with the line", () => {
  const climbOut = outsideMentions("tests/unit/a.test.ts", `// x\nimport "${up(3, "outside.ts")}";`, FILES);
  assert.deepEqual(climbOut, [{ line: 2, path: up(3, "outside.ts"), why: "climbs out of the repository" }]);
  // From docs/ one step up is the root, but there is no shared/ in the repository: the path means
  // the working directory's parent.
  assert.deepEqual(paths("docs/architecture.md", `read ${up(1, "shared/vendor")}`), [up(1, "shared/vendor")]);
  assert.deepEqual(paths("dev/start.ts", `const v = "${up(1, "shared/vendor/pg_net")}";`), [
    up(1, "shared/vendor/pg_net"),
  ]);
  assert.deepEqual(paths(".ci/run", `cp -r ${up(1, "shared/other")} .`), [up(1, "shared/other")]);
  assert.deepEqual(paths("README.md", `cd "$HOME/${up(1, "elsewhere")}"`), [up(1, "elsewhere")]);
});

Deno.test("outside paths: a Markdown document that is not in the repository is found", () => {
  assert.deepEqual(paths("supabase/functions/_shared/http.ts", `// (${md("ARCHITECTURE")} decision 6)`), [
    md("ARCHITECTURE"),
  ]);
  assert.deepEqual(paths("README.md", `see docs/${md("missing")}`), [`docs/${md("missing")}`]);
});

Deno.test("outside paths: paths inside the repository, system paths and URLs are not", () => {
  const clean: [string, string][] = [
    ["tests/unit/a.test.ts", `import { x } from "${up(2, "supabase/functions/_shared/http.ts")}";`],
    ["tests/unit/a.test.ts", `const root = new URL("${up(2, "")}", import.meta.url);`],
    ["docs/architecture.md", `[front page](${up(1, md("README"))}), [the sandbox](${up(1, "dev/sandbox/")})`],
    ["README.md", `the sandbox's ${md("CONTRACT")}, and docs/${md("architecture")}`],
    [".ci/run", `ls ${abs("etc", "postgresql")}; ${abs("usr", "lib", "postgresql", "15", "bin")}`],
    [
      ".ci/run",
      `${abs("var", "run", "postgresql")} ${abs("tmp", "x.log")} #!${abs("usr", "bin", "env")} bash`,
    ],
    [".ci/run", `build "${up(1, "shared/vendor/pg_net")}"`],
    [
      ".ci/run",
      `VENDOR="$(dirname "$0")/${up(2, "shared/vendor")}" # see ${up(1, "shared/vendor/" + md("BUILD"))}`,
    ],
    [
      ".ci/run",
      `pg_config: ${abs("usr", "include", "postgresql", "15", "server")} ${abs("etc", "pgbouncer", "x.ini")}`,
    ],
    ["README.md", "https://example.com/home/alice/x and http://127.0.0.1:54321/functions/v1/x"],
    [
      "README.md",
      `a/etc/b, ${abs("etcetera")}, ${abs("functions", "v1", "x")}, a checkout under ${abs("root")}`,
    ],
    ["README.md", "https://github.com/insanum/gcalcli/blob/main/README.md"],
  ];
  for (const [file, text] of clean) assert.deepEqual(paths(file, text), [], `${file}: ${text}`);
});

Deno.test("repository: no file mentions a path outside the repository", () => {
  const files = repositoryFiles();
  assert.ok(files.includes("tests/unit/repository.test.ts"), "the file list is the repository's");
  const offenders: string[] = [];
  for (const file of files) {
    const text = readText(file);
    if (text === undefined) continue;
    for (const m of outsideMentions(file, text, files)) {
      offenders.push(`${file}:${m.line}: ${m.path} (${m.why})`);
    }
  }
  assert.deepEqual(
    offenders,
    [],
    "the repository must stand on its own: cite docs/architecture.md, docs/decisions.md or " +
      "docs/providers/google.md, and keep test data in tests/fixtures/; system paths a script needs go " +
      "in ALLOWED_ABSOLUTE_PREFIXES of tests/support/repository.ts",
  );
});
