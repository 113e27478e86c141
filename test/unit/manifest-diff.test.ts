/**
 * Manifests sent as a diff against the one the workspace holds: the diff and its
 * application (protocol/manifest.ts), the client's kept copy of what it sent last
 * (sync/last-manifest.ts), and whole syncs between the real client (syncTree) and the
 * real agent operation over a Unix socket, on real temporary trees, blob store and
 * workspace. Only the Kubernetes transport is left out (the e2e tests cover it).
 */
import assert from "node:assert/strict";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { createConnection, createServer, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type TestContext, test } from "node:test";
import { BlobStore, StoreGate } from "../../src/agent/blobs.js";
import type { AgentContext } from "../../src/agent/context.js";
import { sync } from "../../src/agent/ops/sync.js";
import { validateManifest } from "../../src/agent/validate.js";
import { WorkspaceLocks } from "../../src/agent/workspace.js";
import { scanTree } from "../../src/context/scan.js";
import { Connection } from "../../src/protocol/connection.js";
import { applyManifestDiff, diffManifests, type Entry, manifestDigest } from "../../src/protocol/manifest.js";
import type { AgentMessage } from "../../src/protocol/messages.js";
import { diffFromKept, keepManifest } from "../../src/sync/last-manifest.js";
import { syncTree } from "../../src/sync/client.js";

const H = (c: string) => c.repeat(64);
const file = (path: string, hash = H("a"), size = 1): Entry => ({
  path,
  type: "file",
  mode: 0o644,
  size,
  hash,
});
const dir = (path: string): Entry => ({ path, type: "dir", mode: 0o755, size: 0 });
const link = (path: string, target: string): Entry => ({
  path,
  type: "symlink",
  mode: 0o777,
  size: target.length,
  target,
});

const from: Entry[] = [file("a"), dir("d"), file("d/x"), file("d/y"), link("l", "a"), file("z")];
const to: Entry[] = [
  file("a", H("b")), // changed content
  file("b"), // added
  dir("d"), // d/x removed
  file("d/y"),
  dir("l"), // a symlink became a directory
  file("l/in"),
  file("z"),
  file("zz"), // added at the end
];

test("a diff applied to its base gives the new manifest, the same digest", () => {
  const d = diffManifests(from, to);
  assert.deepEqual(d.remove, ["d/x"]);
  assert.deepEqual(
    d.put.map((e) => e.path),
    ["a", "b", "l", "l/in", "zz"],
  );
  const out = validateManifest(applyManifestDiff(from, JSON.parse(JSON.stringify(d))));
  assert.equal(manifestDigest(out), manifestDigest(to));
  assert.deepEqual(applyManifestDiff(to, diffManifests(to, to)), to);
  assert.deepEqual(applyManifestDiff([], diffManifests([], to)), to);
  assert.deepEqual(applyManifestDiff(to, diffManifests(to, [])), []);
});

test("a diff of the wrong shape, or one removing what the base lacks, is refused", () => {
  assert.throws(() => applyManifestDiff(from, null), /needs the lists remove and put/);
  assert.throws(() => applyManifestDiff(from, { remove: [] }), /needs the lists remove and put/);
  assert.throws(() => applyManifestDiff(from, { remove: ["nope"], put: [] }), /removes nope/);
  // Removals out of order cannot be matched either.
  assert.throws(() => applyManifestDiff(from, { remove: ["z", "a"], put: [] }), /removes a/);
  // Puts out of order make an unsorted manifest, which validation refuses.
  const unsorted = applyManifestDiff(from, { remove: [], put: [file("zzz"), file("b")] });
  assert.throws(() => validateManifest(unsorted), /not sorted/);
  // A put is checked like any entry.
  const escaping = applyManifestDiff(from, { remove: [], put: [file("../x")] });
  assert.throws(() => validateManifest(escaping), /'\.\.' segment/);
});

test("the kept manifest gives the diff only for its own digest, and not when damaged", async (t) => {
  const tmp = await mkdtemp(join(tmpdir(), "snapdeploy-kept-"));
  t.after(() => rm(tmp, { recursive: true, force: true }));
  const kept = join(tmp, "kept.jsonl");
  assert.equal(diffFromKept(kept, manifestDigest(from), to), undefined); // nothing kept yet
  keepManifest(kept, manifestDigest(from), from);
  assert.deepEqual(diffFromKept(kept, manifestDigest(from), to), diffManifests(from, to));
  assert.equal(diffFromKept(kept, manifestDigest(to), to), undefined); // the agent holds another
  // An entry changed on disk no longer hashes to the header's digest.
  await writeFile(kept, (await readFile(kept, "utf8")).replace(H("a"), H("c")));
  assert.equal(diffFromKept(kept, manifestDigest(from), to), undefined);
  await writeFile(kept, "not json\n");
  assert.equal(diffFromKept(kept, manifestDigest(from), to), undefined);
  // Many entries: read across the reader's slices.
  const big = Array.from({ length: 30_000 }, (_, i) => file(`f${String(i).padStart(6, "0")}`));
  keepManifest(kept, manifestDigest(big), big);
  const next = big.map((e, i) => (i === 12_345 ? { ...e, hash: H("d") } : e));
  assert.deepEqual(diffFromKept(kept, manifestDigest(big), next), { remove: [], put: [next[12_345]] });
});

/** An agent serving its sync operation on a Unix socket, with its store and workspaces in `root`. */
async function agent(t: TestContext, root: string) {
  const blobs = new BlobStore(join(root, "data/blobs"));
  await blobs.init();
  const logs: string[] = [];
  const ctx = {
    blobs,
    store: new StoreGate(),
    locks: new WorkspaceLocks(),
    workspacesDir: join(root, "data/workspaces"),
    log: (l: string) => logs.push(l),
  } as unknown as AgentContext;
  const sockets: Socket[] = [];
  const server = createServer((s) => {
    sockets.push(s);
    const conn = new Connection<AgentMessage>(s);
    void (async () => {
      try {
        const op = await conn.expect("sync");
        await sync(conn, ctx, op);
      } catch (e) {
        await conn.send({ t: "error", code: "input", message: (e as Error).message }).catch(() => {});
      }
    })();
  });
  const path = join(root, "agent.sock");
  await new Promise<void>((r) => server.listen(path, r));
  t.after(() => {
    for (const s of sockets) s.destroy();
    server.close();
  });
  /** One sync of `tree` by the real client; returns its result and the agent's log line. */
  const syncOnce = async (tree: string, kept: string) => {
    const scan = await scanTree({ root: tree, useCache: false });
    const s = createConnection(path);
    await new Promise((r) => s.once("connect", r));
    const conn = new Connection(s);
    try {
      const r = await syncTree(conn, {
        root: scan.root,
        user: "u",
        project: "p",
        digest: scan.digest,
        entries: async () => scan.entries,
        client: "test",
        kept,
      });
      return { r, log: logs.at(-1) ?? "" };
    } finally {
      s.destroy();
    }
  };
  return { syncOnce, ctx };
}

test("the client sends a diff when the workspace holds what it sent last, else the whole manifest", async (t) => {
  const root = await mkdtemp(join(tmpdir(), "snapdeploy-diffsync-"));
  t.after(() => rm(root, { recursive: true, force: true }));
  const tree = join(root, "tree");
  const kept = join(root, "kept.jsonl");
  const { syncOnce } = await agent(t, root);
  await rm(tree, { recursive: true, force: true });
  const { mkdir } = await import("node:fs/promises");
  for (let i = 0; i < 300; i++) {
    await mkdir(join(tree, `d${i % 10}`), { recursive: true });
    await writeFile(join(tree, `d${i % 10}/f${i}.txt`), `file ${i} `.repeat(20));
  }
  const first = await syncOnce(tree, kept);
  assert.equal(first.r.added, 300);
  assert.match(first.log, /manifest \(whole\)/);

  await writeFile(join(tree, "d3/f3.txt"), "changed");
  const second = await syncOnce(tree, kept);
  assert.deepEqual([second.r.added, second.r.changed, second.r.removed], [0, 1, 0]);
  assert.match(second.log, /manifest \(diff: 0 removed, 1 put\)/);
  assert.ok(second.r.sentBytes < 400, `a one-file diff sync sent ${second.r.sentBytes} bytes`);
  const ws = join(root, "data/workspaces/u/p/current");
  assert.equal(await readFile(join(ws, "d3/f3.txt"), "utf8"), "changed");

  // A damaged kept copy: the whole manifest goes, and the sync still succeeds.
  await writeFile(kept, "garbage\n");
  await rm(join(tree, "d4/f4.txt"));
  const third = await syncOnce(tree, kept);
  assert.deepEqual([third.r.added, third.r.changed, third.r.removed], [0, 0, 1]);
  assert.match(third.log, /manifest \(whole\)/);
  // Kept again by that sync: the next change is a diff again.
  await writeFile(join(tree, "new.txt"), "new");
  const fourth = await syncOnce(tree, kept);
  assert.equal(fourth.r.added, 1);
  assert.match(fourth.log, /manifest \(diff: 0 removed, 1 put\)/);
  assert.equal(await readFile(join(ws, "new.txt"), "utf8"), "new");
});

test("the agent refuses a diff against a manifest its workspace does not hold", async (t) => {
  const root = await mkdtemp(join(tmpdir(), "snapdeploy-diffbad-"));
  t.after(() => rm(root, { recursive: true, force: true }));
  const { ctx } = await agent(t, root);
  const { deflateRawSync } = await import("node:zlib");
  // The agent's side alone, driven by hand over a socket pair.
  const server = createServer((s) => {
    const conn = new Connection<AgentMessage>(s);
    void conn
      .expect("sync")
      .then((op) => sync(conn, ctx, op))
      .catch((e) => conn.send({ t: "error", code: "input", message: (e as Error).message }));
  });
  const path = join(root, "raw.sock");
  await new Promise<void>((r) => server.listen(path, r));
  t.after(() => server.close());
  const s = createConnection(path);
  t.after(() => s.destroy());
  const conn = new Connection(s);
  await conn.send({ t: "sync", user: "u", project: "q", digest: H("0"), client: "test" });
  const offer = await conn.expect("send-manifest");
  assert.equal(offer.have, null);
  assert.equal(offer.diff, false); // nothing to diff against
  await conn.sendData(deflateRawSync(Buffer.from(JSON.stringify({ remove: [], put: [] }))));
  await conn.send({ t: "manifest-end", base: H("1") });
  await assert.rejects(
    conn.expect("need"),
    /a manifest diff against 1{64}, which this workspace does not hold/,
  );
});
