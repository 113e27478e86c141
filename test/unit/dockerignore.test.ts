/**
 * The scanner's .dockerignore matcher against the port it is built on (@balena/dockerignore):
 * the same decision for every pattern set and path below. The scanner computes the parent
 * directory's part once per directory (see directoryAwareMatcher); these cases make the
 * parent's part decide: patterns that match a directory, `**` at every position,
 * exceptions, anchoring, classes and literal characters.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { parseDockerignore, portIgnores } from "../../src/context/dockerignore.js";

const PATTERN_SETS = [
  "",
  "# only a comment\n\n",
  "*.log\nbuild/\n",
  "node_modules\n**/*.pyc\n.env\ndist/\ncoverage/\n**/__pycache__\n*.tmp\ndocs/**/*.pdf\n",
  "*\n!src\n!src/**\n",
  "a/b\n!a/b/keep.txt\n",
  "**\n!**/*.md\n",
  "/abs/x\n./rel/y\nz/../w\n",
  "a/**/c\n**/b/**\n!a/b/c/d\n",
  "a/*/c\n?/b\n[ab]/[!c]*\n",
  "c++\nx(1)\n{y}\nq|r\n^s\n",
  "vendor\n!vendor/keep/me.txt\ncache\n!**/*.keep\n",
  "**/a\nb/**\n!b/a\n",
  "*/*\n!*/keep\n",
  "A/B\n",
];

/** Paths as the scanner produces them: clean, '/'-separated, parents before children. */
function paths(): string[] {
  const names = [
    "a",
    "b",
    "c",
    "d",
    "s",
    "src",
    "x",
    "A",
    "B",
    "node_modules",
    "__pycache__",
    "vendor",
    "keep",
  ];
  const files = [
    "keep.txt",
    "me.txt",
    "f.log",
    "g.pyc",
    "h.md",
    "i.keep",
    "c++",
    "x(1)",
    "{y}",
    "q|r",
    "^s",
    "f.pdf",
    "plain",
  ];
  const out: string[] = [];
  const walk = (prefix: string, depth: number) => {
    for (const f of files) out.push(prefix + f);
    if (depth === 0) return;
    for (const n of names) {
      out.push(prefix + n);
      walk(`${prefix}${n}/`, depth - 1);
    }
  };
  walk("", 3);
  out.push(
    "abs",
    "abs/x",
    "rel",
    "rel/y",
    "w",
    "z",
    "docs",
    "docs/p",
    "docs/p/f.pdf",
    ".env",
    "dist",
    "dist/a",
  );
  return out;
}

test(".dockerignore: the scanner's matcher decides as the port does, path by path", () => {
  const all = paths();
  assert.ok(all.length > 30_000, `enough paths (${all.length})`);
  let ignoredSomewhere = 0;
  for (const text of PATTERN_SETS) {
    const fast = parseDockerignore(text);
    const port = portIgnores(text);
    let differ = 0;
    let first = "";
    for (const rel of all) {
      const want = port(rel);
      if (fast.ignores(rel) !== want) {
        differ++;
        first ||= `${rel} (port: ${want ? "ignored" : "kept"})`;
      }
      if (want) ignoredSomewhere++;
    }
    assert.equal(differ, 0, `patterns ${JSON.stringify(text)}: ${differ} paths differ, first ${first}`);
  }
  assert.ok(ignoredSomewhere > 1000, "the patterns do ignore paths");
});

test(".dockerignore: paths from different directories in any order decide as the port does", () => {
  // The parent's part is remembered for the last directory only; jumping between
  // directories must recompute it, never reuse another directory's.
  const text = "a/**/c\n!a/b/c/d\nb/*\n";
  const fast = parseDockerignore(text);
  const port = portIgnores(text);
  const sample = ["a/b/c/d", "b/x", "a/b/c/e", "b/x/y", "a/x", "a/b/c/d", "c", "b/x/y", "a/q/c"];
  assert.deepEqual(
    sample.map((p) => fast.ignores(p)),
    sample.map((p) => port(p)),
  );
});
