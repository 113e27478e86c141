/**
 * The agent's workspace on real temporary directories: applyDiff brings a tree from one
 * manifest to another (adds, changes, removals, type changes, modes, links), a whole
 * sync through Workspace.update swaps trees, and the workspace locks serialize holders.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import {
  chmod,
  cp,
  lstat,
  mkdir,
  mkdtemp,
  readdir,
  readFile,
  readlink,
  rm,
  stat,
  writeFile,
} from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type TestContext, test } from "node:test";
import { BlobStore } from "../../src/agent/blobs.js";
import { applyDiff, Workspace, WorkspaceLocks } from "../../src/agent/workspace.js";
import { type Entry, manifestText } from "../../src/protocol/manifest.js";

const sha256 = (s: string) => createHash("sha256").update(s).digest("hex");

async function setup(t: TestContext) {
  const dir = await mkdtemp(join(tmpdir(), "snapdeploy-ws-"));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const blobs = new BlobStore(join(dir, "blobs"));
  await blobs.init();
  /** Puts `content` into the store and returns its file entry. */
  const put = (path: string, content: string, mode = 0o644): Entry => {
    const w = blobs.receive(sha256(content), Buffer.byteLength(content));
    w.write(Buffer.from(content));
    w.finish();
    return { path, type: "file", mode, size: Buffer.byteLength(content), hash: sha256(content) };
  };
  return { dir, blobs, put };
}
const dir = (path: string, mode = 0o755): Entry => ({ path, type: "dir", mode, size: 0 });
const link = (path: string, target: string): Entry => ({
  path,
  type: "symlink",
  mode: 0o777,
  size: target.length,
  target,
});

/** Every path below `root` with what it is: "file:<content>:<mode>", "dir:<mode>", "link:<target>". */
async function describe(
  root: string,
  prefix = "",
  out: Record<string, string> = {},
): Promise<Record<string, string>> {
  for (const name of (await readdir(join(root, prefix))).sort()) {
    const rel = prefix ? `${prefix}/${name}` : name;
    const abs = join(root, rel);
    const st = await lstat(abs);
    const mode = (st.mode & 0o777).toString(8);
    if (st.isSymbolicLink()) out[rel] = `link:${await readlink(abs)}`;
    else if (st.isDirectory()) {
      out[rel] = `dir:${mode}`;
      await describe(root, rel, out);
    } else out[rel] = `file:${await readFile(abs, "utf8")}:${mode}`;
  }
  return out;
}

test("applyDiff from nothing materializes the manifest: files, modes, empty and read-only dirs, links", async (t) => {
  const { dir: root, blobs, put } = await setup(t);
  const tree = join(root, "tree");
  await mkdir(tree);
  const to = [
    dir("bin"),
    put("bin/run", "#!/bin/sh\n", 0o755),
    dir("empty"),
    dir("ro", 0o555),
    put("ro/f", "x"),
    link("up", "bin/run"),
  ];
  await applyDiff(tree, [], to, blobs);
  assert.deepEqual(await describe(tree), {
    bin: "dir:755",
    "bin/run": "file:#!/bin/sh\n:755",
    empty: "dir:755",
    ro: "dir:555",
    "ro/f": "file:x:644",
    up: "link:bin/run",
  });
  // A 0644 file is a hard link to its blob; other modes are copies of their own.
  assert.equal((await stat(join(tree, "ro/f"))).ino, (await stat(blobs.path(sha256("x")))).ino);
  assert.notEqual(
    (await stat(join(tree, "bin/run"))).ino,
    (await stat(blobs.path(sha256("#!/bin/sh\n")))).ino,
  );
  await chmod(join(tree, "ro"), 0o755); // so that a normal user can remove the tree
});

test("applyDiff between manifests: adds, changes, removes, and changes of type in both directions", async (t) => {
  const { dir: root, blobs, put } = await setup(t);
  const tree = join(root, "tree");
  await mkdir(tree);
  const from = [
    put("a", "old a"),
    dir("d"),
    put("d/inner", "inner"),
    put("gone", "bye"),
    link("l", "a"),
    put("mode", "m"),
    put("was-file", "f"),
    dir("was-dir"),
    put("was-dir/x", "x"),
  ];
  await applyDiff(tree, [], from, blobs);
  const to = [
    put("a", "new a"),
    dir("d"),
    put("d/added", "added"),
    link("l", "d"),
    put("mode", "m", 0o600),
    dir("was-file"),
    put("was-file/y", "y"),
    link("was-dir", "d"),
  ];
  await applyDiff(tree, from, to, blobs);
  assert.deepEqual(await describe(tree), {
    a: "file:new a:644",
    d: "dir:755",
    "d/added": "file:added:644",
    l: "link:d",
    mode: "file:m:600",
    "was-dir": "link:d",
    "was-file": "dir:755",
    "was-file/y": "file:y:644",
  });
});

test("applyDiff refuses a file whose blob is missing from the store", async (t) => {
  const { dir: root, blobs } = await setup(t);
  const tree = join(root, "tree");
  await mkdir(tree);
  const missing: Entry = { path: "f", type: "file", mode: 0o644, size: 1, hash: "b".repeat(64) };
  await assert.rejects(applyDiff(tree, [], [missing], blobs), /missing from the store/);
});

test("Workspace.update refuses, as the client's input, a file whose size is not its stored content's; the current tree stays", async (t) => {
  const { dir: root, blobs, put } = await setup(t);
  const ws = new Workspace(join(root, "workspaces"), "alice", "p");
  await ws.update("d1", [put("a", "FROM scratch\n")], blobs);
  const tree = await ws.currentTree();
  const lying = { ...put("a", "FROM scratch\n"), size: 2 ** 53 - 1 };
  await assert.rejects(ws.update("d2", [lying], blobs), (e: Error) => {
    assert.equal(e.name, "InvalidInput");
    assert.match(
      e.message,
      /^a: size 9007199254740991 in the manifest, but content [0-9a-f]{64} is 13 bytes$/,
    );
    return true;
  });
  assert.equal(await ws.currentDigest(), "d1");
  assert.equal(await ws.currentTree(), tree);
  await ws.update("d3", [put("b", "b")], blobs);
  assert.deepEqual(await describe((await ws.currentTree()) as string), { b: "file:b:644" });
});

test("Workspace.update swaps trees: the previous tree stays intact until the switch, changes are summarized", async (t) => {
  const { dir: root, blobs, put } = await setup(t);
  const ws = new Workspace(join(root, "workspaces"), "alice", "p");
  const first = [put("a", "1"), put("b", "2")];
  const c1 = await ws.update("d1", first, blobs);
  assert.deepEqual(c1, { added: 2, changed: 0, removed: 0, sample: ["+ a", "+ b"] });
  assert.equal(await ws.currentDigest(), "d1");
  const tree1 = await ws.currentTree();
  const second = [put("a", "1!"), put("c", "3")];
  const c2 = await ws.update("d2", second, blobs);
  assert.deepEqual(c2, { added: 1, changed: 1, removed: 1, sample: ["~ a", "+ c", "- b"] });
  assert.notEqual(await ws.currentTree(), tree1);
  assert.deepEqual(await describe(tree1 as string), { a: "file:1:644", b: "file:2:644" });
  assert.deepEqual((await ws.currentManifest())?.entries, second);
  assert.equal((await ws.info())?.files, 2);
  // A dirty state file makes the tree unknown: it is rebuilt from scratch next time.
  await writeFile(join(ws.dir, "a.state.json"), JSON.stringify({ clean: false }));
  await ws.update("d3", [put("z", "z")], blobs);
  assert.deepEqual(await describe((await ws.currentTree()) as string), { z: "file:z:644" });
});

test("a workspace's manifest is kept as its canonical text; one an older agent kept as JSON still reads", async (t) => {
  const { dir: root, blobs, put } = await setup(t);
  const entries = [put("a b", "1"), put("c", "2")];
  const ws = new Workspace(join(root, "workspaces"), "alice", "p");
  await ws.update("d1", entries, blobs);
  const slot = await readlink(join(ws.dir, "current"));
  assert.equal(await readFile(join(ws.dir, `${slot}.manifest`), "utf8"), manifestText(entries));
  // The same workspace as an older agent left it, under another name (not in the agent's memory).
  const old = new Workspace(join(root, "workspaces"), "bob", "p");
  await cp(ws.dir, old.dir, { recursive: true, verbatimSymlinks: true });
  await rm(join(old.dir, `${slot}.manifest`));
  await writeFile(join(old.dir, `${slot}.manifest.json`), JSON.stringify(entries));
  const held = await old.currentManifest();
  assert.deepEqual(held, { digest: "d1", entries, text: manifestText(entries) });
  // Its next sync writes the text and drops the JSON.
  const next = [put("a b", "1"), put("d", "3")];
  await old.update("d2", next, blobs);
  await old.update("d3", entries, blobs);
  assert.equal(await readFile(join(old.dir, `${slot}.manifest`), "utf8"), manifestText(entries));
  await assert.rejects(stat(join(old.dir, `${slot}.manifest.json`)), { code: "ENOENT" });
});

test("workspace locks: one holder per key, waiters told who holds it and served in order", async () => {
  const locks = new WorkspaceLocks();
  const order: string[] = [];
  const release1 = await locks.acquire("u/p", "sync from one");
  const waits: string[] = [];
  const second = locks.acquire("u/p", "two", (holder) => waits.push(`two waits for ${holder}`));
  const third = locks.acquire("u/p", "three", (holder) => waits.push(`three waits for ${holder}`));
  // Another workspace is not blocked.
  (await locks.acquire("u/other", "elsewhere"))();
  second.then(() => order.push("two"));
  third.then(() => order.push("three"));
  await new Promise((r) => setImmediate(r));
  assert.equal(order.length, 0);
  assert.deepEqual(waits, ["two waits for sync from one", "three waits for sync from one"]);
  release1();
  const release2 = await second;
  release1(); // a second release is a no-op: it must not free the lock "two" holds now
  const fourth = locks.acquire("u/p", "four");
  fourth.then(() => order.push("four"));
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(order, ["two"]);
  assert.ok(waits.includes("three waits for two"), waits.join("; "));
  release2();
  (await third)();
  (await fourth)();
  assert.deepEqual(order, ["two", "three", "four"]);
});
