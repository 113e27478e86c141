/**
 * The stat cache file (src/context/stat-cache.ts): what is saved is what a rescan finds, in
 * walk order or not; a record vouches only for the same size, times, inode and mode; a file
 * for another tree, of another version, or damaged is no cache.
 */
import assert from "node:assert/strict";
import { readFile, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { mkdtemp, rm } from "node:fs/promises";
import type { Entry } from "../../src/protocol/manifest.js";
import { type CacheRecord, loadCache, saveCache } from "../../src/context/stat-cache.js";

const hex = (n: number) => n.toString(16).padStart(2, "0").repeat(32);
const file = (path: string, n: number): Entry => ({ path, type: "file", mode: 0o644, size: n, hash: hex(n) });
const stamp = (n: number) => ({
  size: n,
  mtimeMs: 1796301556126.25 + n,
  ctimeMs: 1796301556127.5 + n,
  ino: 1000 + n,
});

async function saved(records: CacheRecord[], root = "/work/tree") {
  const dir = await mkdtemp(join(tmpdir(), "stat-cache-"));
  const path = join(dir, "scan.stat");
  const warnings: string[] = [];
  await saveCache(path, root, records, (w) => warnings.push(w));
  assert.deepEqual(warnings, []);
  return { path, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

test("records come back in walk order, and are found out of it too", async (t) => {
  const names = ["a.js", "dir/b.js", "dir/é ü.txt", "z"];
  const records = names.map((p, i) => ({ entry: file(p, i + 1), st: stamp(i + 1) }));
  const { path, cleanup } = await saved(records);
  t.after(cleanup);
  const cache = await loadCache(path, "/work/tree");
  assert.deepEqual(cache?.paths, names);
  // In order, then a file the cache never saw, then back and forth.
  for (const [i, p] of names.entries()) assert.equal(cache?.hashOf(file(p, i + 1), stamp(i + 1)), hex(i + 1));
  assert.equal(cache?.hashOf(file("new.js", 9), stamp(9)), undefined);
  assert.equal(cache?.hashOf(file("z", 4), stamp(4)), hex(4));
  assert.equal(cache?.hashOf(file("a.js", 1), stamp(1)), hex(1));
  assert.equal(cache?.hashOf(file("dir/é ü.txt", 3), stamp(3)), hex(3));
});

test("a record vouches only for the same size, mtime, ctime, inode and mode", async (t) => {
  const { path, cleanup } = await saved([{ entry: file("a.js", 5), st: stamp(5) }]);
  t.after(cleanup);
  const cache = await loadCache(path, "/work/tree");
  assert.ok(cache);
  const st = stamp(5);
  assert.equal(cache.hashOf(file("a.js", 5), st), hex(5));
  assert.equal(cache.hashOf(file("a.js", 6), { ...st, size: 6 }), undefined);
  assert.equal(cache.hashOf(file("a.js", 5), { ...st, mtimeMs: st.mtimeMs + 0.001 }), undefined);
  assert.equal(cache.hashOf(file("a.js", 5), { ...st, ctimeMs: st.ctimeMs + 1 }), undefined);
  assert.equal(cache.hashOf(file("a.js", 5), { ...st, ino: st.ino + 1 }), undefined);
  assert.equal(cache.hashOf({ ...file("a.js", 5), mode: 0o755 }, st), undefined);
});

test("an empty cache, one for another root, another version, or a damaged file", async (t) => {
  const empty = await saved([]);
  t.after(empty.cleanup);
  assert.deepEqual((await loadCache(empty.path, "/work/tree"))?.paths, []);

  const { path, cleanup } = await saved([{ entry: file("a.js", 1), st: stamp(1) }]);
  t.after(cleanup);
  assert.equal(await loadCache(path, "/work/other"), undefined);
  const good = await readFile(path);
  const damaged = async (data: Buffer) => {
    await writeFile(path, data);
    return loadCache(path, "/work/tree");
  };
  const version = Buffer.from(good);
  version.writeUInt32LE(1, 8);
  assert.equal(await damaged(version), undefined);
  assert.equal(await damaged(good.subarray(0, good.length - 1)), undefined); // the last NUL
  assert.equal(await damaged(good.subarray(0, 40)), undefined);
  assert.equal(await damaged(Buffer.from('{"v":1,"root":"/work/tree","files":{}}')), undefined);
  assert.equal(await damaged(Buffer.concat([good, Buffer.from("x\0")])), undefined); // a path too many
  assert.deepEqual((await damaged(good))?.paths, ["a.js"]);
});
