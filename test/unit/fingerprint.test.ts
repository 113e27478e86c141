/**
 * The walk's fingerprint (src/context/fingerprint.ts): whatever a manifest entry or the stat
 * cache's trust derives from changes it; the same walk gives the same one, across blocks.
 */
import assert from "node:assert/strict";
import type { Stats } from "node:fs";
import { test } from "node:test";
import { TreePrint } from "../../src/context/fingerprint.js";

const S_IFREG = 0o100000;
const S_IFDIR = 0o040000;
const S_IFLNK = 0o120000;

/** The fields of an lstat the fingerprint reads. */
function stat(mode: number, size = 0, mtimeMs = 0, ctimeMs = 0, ino = 0): Stats {
  return {
    mode,
    size,
    mtimeMs,
    ctimeMs,
    ino,
    isFile: () => (mode & 0o170000) === S_IFREG,
  } as Stats;
}

type Row = [string, Stats, string];

function print(rows: Row[]): string {
  const p = new TreePrint();
  for (const [rel, st, target] of rows) p.add(rel, st, target);
  return p.digest();
}

const base: Row[] = [
  ["a", stat(S_IFDIR | 0o755), ""],
  ["a/b.js", stat(S_IFREG | 0o644, 10, 1796301556126.123, 1796301556126.5, 42), ""],
  ["a/l", stat(S_IFLNK | 0o777, 4), "b.js"],
];

test("each field an entry or the stat cache derives from changes the fingerprint", () => {
  const same = print(base);
  assert.equal(print(base), same);
  const [d, f, l] = base as [Row, Row, Row];
  /** The walk with the file's lstat fields changed. */
  const file = (fields: Partial<Stats>): Row[] => [d, [f[0], { ...f[1], ...fields } as Stats, ""], l];
  const variants: Row[][] = [
    file({ mode: S_IFREG | 0o755 }),
    file({ size: 11 }),
    file({ mtimeMs: 1796301556126.124 }),
    file({ ctimeMs: 1796301556127 }),
    file({ ino: 43 }),
    [d, ["a/c.js", f[1], ""], l],
    [d, f, ["a/l", l[1], "c.js"]],
    [d, f],
    [d, l, f],
  ];
  const seen = new Set([same]);
  for (const v of variants) seen.add(print(v));
  assert.equal(seen.size, variants.length + 1);
});

test("names cannot run into each other, and a directory's own times are left out", () => {
  // The same letters split differently between two names: NUL ends each (no name holds one).
  const file = stat(S_IFREG | 0o644, 1, 1, 1, 1);
  assert.notEqual(
    print([
      ["ab", file, ""],
      ["c", file, ""],
    ]),
    print([
      ["a", file, ""],
      ["bc", file, ""],
    ]),
  );
  assert.notEqual(print([["x", stat(S_IFLNK | 0o777), "yz"]]), print([["xy", stat(S_IFLNK | 0o777), "z"]]));
  assert.equal(
    print([["d", stat(S_IFDIR | 0o755, 4096, 1, 2, 3), ""]]),
    print([["d", stat(S_IFDIR | 0o755, 4096, 9, 9, 9), ""]]),
  );
});

test("a walk longer than one block: the same walk, the same fingerprint; one change anywhere, another", () => {
  const rows = (changed: number): Row[] =>
    Array.from({ length: 2500 }, (_, i) => [
      `f${i}`,
      stat(S_IFREG | 0o644, i, i === changed ? 7 : 1, 1, i),
      "",
    ]);
  const all = print(rows(-1));
  assert.equal(print(rows(-1)), all);
  const others = [0, 1023, 1024, 2047, 2048, 2499].map((i) => print(rows(i)));
  assert.equal(new Set([all, ...others]).size, 7);
});
