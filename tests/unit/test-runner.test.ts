/**
 * The test runner's counting (dev/test.ts): deno's summary line with colours, steps and ignored tests;
 * pg_prove's verbose TAP with failures, TODO/SKIP directives, scripts that died part way or before
 * their plan; the closing line CI reads; and which paths `deno test` gets.
 */
import assert from "node:assert/strict";
import { denoTestArgs, formatClosingLine, parseDenoSummary, parseTap, stripAnsi } from "../../dev/test.ts";

const ESC = "\x1b";

Deno.test("stripAnsi removes colour sequences and keeps the text", () => {
  assert.equal(stripAnsi(`${ESC}[0m${ESC}[32mok${ESC}[0m | 1 passed`), "ok | 1 passed");
  assert.equal(stripAnsi(`${ESC}[38;5;245m(1s)${ESC}[0m`), "(1s)");
});

Deno.test("parseDenoSummary reads a coloured ok summary", () => {
  const out =
    `running 3 tests\n\n${ESC}[0m${ESC}[32mok${ESC}[0m | 129 passed | 0 failed ${ESC}[0m${ESC}[38;5;245m(1s)${ESC}[0m\n`;
  assert.deepEqual(parseDenoSummary(out), { ok: true, passed: 129, failed: 0, ignored: 0, filteredOut: 0 });
});

Deno.test("parseDenoSummary reads FAILED with steps, ignored and filtered counts; steps are not added", () => {
  const out = [
    "fails => ./a_test.ts:3:6",
    "",
    `${ESC}[0m${ESC}[31mFAILED${ESC}[0m | 2 passed (2 steps) | 1 failed (1 step) | 1 ignored | 4 filtered out (7ms)`,
    "",
  ].join("\n");
  assert.deepEqual(parseDenoSummary(out), { ok: false, passed: 2, failed: 1, ignored: 1, filteredOut: 4 });
});

Deno.test("parseDenoSummary takes the last summary and returns null without one", () => {
  const out = "ok | 1 passed | 0 failed (1ms)\nmore output\nFAILED | 3 passed | 2 failed (2s)\n";
  assert.equal(parseDenoSummary(out)?.failed, 2);
  assert.equal(parseDenoSummary("error: Module not found\n"), null);
  assert.equal(parseDenoSummary("ok | something else\n"), null);
});

Deno.test("parseTap counts pg_prove --verbose output of passing files", () => {
  const out = [
    "supabase/tests/database/a.test.sql .. ",
    "1..3",
    "ok 1 - one",
    "ok 2 - two",
    "ok 3 - three",
    "ok",
    "supabase/tests/database/b.test.sql .... ",
    "1..1",
    "ok 1 - only",
    "ok",
    "All tests successful.",
    "Files=2, Tests=4,  0 wallclock secs",
    "Result: PASS",
  ].join("\n");
  assert.deepEqual(parseTap(out), {
    files: 2,
    planned: 4,
    passed: 4,
    failed: 0,
    skipped: 0,
    missing: 0,
    noPlan: 0,
  });
});

Deno.test("parseTap counts failures, TODO as passed, SKIP as skipped, and ignores diagnostics and subtests", () => {
  const out = [
    "x.test.sql .. ",
    "1..5",
    "ok 1 - fine",
    "not ok 2 - broken",
    '# Failed test 2: "broken"',
    "#         have: 1",
    "not ok 3 - later # TODO not built yet",
    "ok 4 - skipped # SKIP no pg_net",
    "    ok 1 - a subtest line",
    "    not ok 2 - an indented subtest failure",
    "ok 5 - last",
    "Failed 1/5 subtests",
  ].join("\n");
  const tap = parseTap(out);
  assert.equal(tap.passed, 3);
  assert.equal(tap.failed, 1);
  assert.equal(tap.skipped, 1);
  assert.equal(tap.missing, 0);
});

Deno.test("parseTap counts planned tests that never ran and files without a plan", () => {
  const out = [
    "a.test.sql .. ",
    "1..10",
    "ok 1 - one",
    "ok 2 - two",
    'psql:a.test.sql:40: ERROR:  relation "nope" does not exist',
    "Dubious, test returned 3 (wstat 768, 0x300)",
    "b.test.sql .. ",
    "psql:b.test.sql:2: ERROR:  syntax error",
    "No subtests run",
  ].join("\n");
  const tap = parseTap(out);
  assert.equal(tap.files, 2);
  assert.equal(tap.passed, 2);
  assert.equal(tap.missing, 8);
  assert.equal(tap.noPlan, 1);
});

Deno.test("parseTap reads plain TAP without pg_prove headers, plan at the end", () => {
  const tap = parseTap("ok 1\nnot ok 2\n1..3\n");
  assert.deepEqual([tap.files, tap.passed, tap.failed, tap.missing], [1, 1, 1, 1]);
  assert.equal(parseTap("").files, 0);
});

Deno.test("formatClosingLine prints the plain line CI reads, skipped only when any", () => {
  assert.equal(formatClosingLine({ passed: 192, failed: 0, skipped: 0 }), "192 passed, 0 failed");
  assert.equal(formatClosingLine({ passed: 5, failed: 2, skipped: 3 }), "5 passed, 2 failed, 3 skipped");
});

Deno.test("denoTestArgs appends tests/ unless a caller's argument is an existing path", () => {
  const exists = (p: string) => p === "tests/unit" || p === "tests/unit/http.test.ts";
  const base = ["test", "-A", "--no-check=remote"];
  assert.deepEqual(denoTestArgs([], exists), [...base, "tests/"]);
  assert.deepEqual(denoTestArgs(["tests/unit"], exists), [...base, "tests/unit"]);
  assert.deepEqual(denoTestArgs(["--filter", "refresh"], exists), [...base, "--filter", "refresh", "tests/"]);
  assert.deepEqual(
    denoTestArgs(["--parallel", "tests/unit/http.test.ts"], exists),
    [...base, "--parallel", "tests/unit/http.test.ts"],
  );
});
