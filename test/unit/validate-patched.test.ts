/**
 * validatePatched checks only what a diff touches; it must accept exactly the diffs whose
 * result validateManifest accepts, with the same entries. Checked on random manifests and
 * random diffs (a seeded generator: the same cases every run), and on the cases by hand
 * that break each rule. On the accepted ones, the agent's canonical text of the result,
 * made from the base's (agent/manifest-text.ts), must equal the one made anew.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { InvalidInput } from "../../src/agent/errors.js";
import { validateManifest, validatePatched } from "../../src/agent/validate-manifest.js";
import { patchedText } from "../../src/agent/manifest-text.js";
import {
  applyManifestDiff,
  compareEntryPaths,
  type Entry,
  manifestText,
} from "../../src/protocol/manifest.js";

const H = (n: number) => n.toString(16).padStart(64, "0");
const dir = (path: string): Entry => ({ path, type: "dir", mode: 0o755, size: 0 });
const file = (path: string, n = 1): Entry => ({ path, type: "file", mode: 0o644, size: n, hash: H(n) });
const link = (path: string, target: string): Entry => ({
  path,
  type: "symlink",
  mode: 0o777,
  size: Buffer.byteLength(target),
  target,
});

const BASE = validateManifest([
  dir("a"),
  link("a/up", ".."),
  file("a/x"),
  dir("a/y"),
  file("a/y/z"),
  dir("b"),
  link("b/l", "../a"),
  file("c"),
]);

/** What each validator says of `diff` on `base`: the entries, or the error's class. */
function outcomes(base: Entry[], diff: { remove: string[]; put: Entry[] }) {
  const said = (f: () => Entry[]) => {
    try {
      return JSON.stringify(f());
    } catch (e) {
      assert.ok(e instanceof InvalidInput, `not an InvalidInput: ${(e as Error).stack}`);
      return "refused";
    }
  };
  const whole = said(() => {
    let raw: unknown[];
    try {
      raw = applyManifestDiff(base, diff);
    } catch (e) {
      throw new InvalidInput((e as Error).message);
    }
    return validateManifest(raw);
  });
  return { whole, patched: said(() => validatePatched(base, diff)) };
}

test("each rule a diff can break is enforced", () => {
  const refused: [string, { remove: string[]; put: Entry[] }, RegExp][] = [
    ["a put whose parent is missing", { remove: [], put: [file("q/r")] }, /parent q is not a directory/],
    ["a put below a file", { remove: [], put: [file("c/r")] }, /parent c is not a directory/],
    ["a removed directory with something left below", { remove: ["a/y"], put: [] }, /a\/y\/z: its parent/],
    ["a directory turned into a file", { remove: [], put: [file("a/y", 3)] }, /a\/y\/z: its parent/],
    ["a link that leads out", { remove: [], put: [link("b/m", "../..")] }, /symlink b\/m/],
    ["a chain out through a replaced link", { remove: [], put: [link("b/l", "../a/up/..")] }, /symlink/],
    ["puts out of order", { remove: [], put: [file("c", 2), file("a/x", 2)] }, /not sorted/],
    ["a duplicate put", { remove: [], put: [file("c", 2), file("c", 3)] }, /not sorted/],
    ["removes out of order", { remove: ["c", "a/x"], put: [] }, /not sorted/],
    ["a removed path the base lacks", { remove: ["nope"], put: [] }, /could not be applied/],
    ["a bad path", { remove: [], put: [file("a/../c")] }, /path/],
    ["a bad hash", { remove: [], put: [{ ...file("c"), hash: "x" }] }, /invalid content hash/],
  ];
  for (const [what, diff, message] of refused) {
    assert.throws(() => validatePatched(BASE, diff), message, what);
    assert.equal(outcomes(BASE, diff).whole, "refused", `${what}: the whole manifest is refused too`);
  }
  const accepted = validatePatched(BASE, {
    remove: ["a/y", "a/y/z"],
    put: [file("a/x", 7), dir("d"), file("d/e", 2)],
  });
  assert.deepEqual(
    accepted.map((e) => e.path),
    ["a", "a/up", "a/x", "b", "b/l", "c", "d", "d/e"],
  );
  assert.throws(() => validatePatched(BASE, { put: [] }), /needs the lists remove and put/);
});

/** A small seeded generator (mulberry32). */
function random(seed: number) {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

test("on random manifests and diffs it agrees with validating the whole result", () => {
  const rnd = random(13);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)] as T;
  const names = ["a", "b", "c", "a-b", "d"];
  const paths: string[] = [];
  for (const x of names) {
    paths.push(x);
    for (const y of names) {
      paths.push(`${x}/${y}`);
      for (const z of names.slice(0, 2)) paths.push(`${x}/${y}/${z}`);
    }
  }
  const targets = ["..", "../..", "a", "../a", "b/c", "../../a", "x"];
  const anyEntry = (p: string): Entry => {
    const r = rnd();
    if (r < 0.45) return dir(p);
    if (r < 0.85) return file(p, 1 + Math.floor(rnd() * 3));
    return link(p, pick(targets));
  };
  let agreed = 0;
  let acceptedBoth = 0;
  for (let round = 0; round < 3000; round++) {
    // A valid base: random entries, kept only where the whole manifest stays valid.
    const base: Entry[] = [];
    for (const p of paths) {
      if (rnd() < 0.5) continue;
      const candidate = [...base, anyEntry(p)];
      try {
        validateManifest(candidate);
        base.push(candidate[candidate.length - 1] as Entry);
      } catch {}
    }
    const removeSet = new Set<string>();
    for (const e of base) if (rnd() < 0.1) removeSet.add(e.path);
    if (rnd() < 0.05) removeSet.add(pick(paths));
    const putMap = new Map<string, Entry>();
    for (let k = Math.floor(rnd() * 4); k > 0; k--) {
      const p = pick(paths);
      putMap.set(p, anyEntry(p));
    }
    const remove = [...removeSet].sort();
    const put = [...putMap.values()].sort(compareEntryPaths);
    if (rnd() < 0.05) put.reverse();
    const { whole, patched } = outcomes(base, { remove, put });
    assert.equal(patched, whole, `base ${JSON.stringify(base)} diff ${JSON.stringify({ remove, put })}`);
    agreed++;
    if (whole !== "refused") {
      acceptedBoth++;
      // The agent's text of the result, made from the base's text, is the one made anew.
      const out = validatePatched(base, { remove, put });
      assert.equal(patchedText(base, manifestText(base), out), manifestText(out), `round ${round}`);
    }
  }
  // The cases must cover both answers, or the comparison proves little.
  assert.equal(agreed, 3000);
  assert.ok(acceptedBoth > 300 && acceptedBoth < 2700, `accepted ${acceptedBoth} of 3000`);
});
