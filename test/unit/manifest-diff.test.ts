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
import { validateManifest } from "../../src/agent/validate-manifest.js";
import { WorkspaceLocks } from "../../src/agent/workspace.js";
import { scanTree } from "../../src/context/scan.js";
import { Connection } from "../../src/protocol/connection.js";
import {
  applyManifestDiff,
  compareEntryPaths,
  diffManifests,
  type Entry,
  manifestDigest,
  manifestText,
  parseManifestText,
} from "../../src/protocol/manifest.js";
import type { AgentMessage } from "../../src/protocol/messages.js";
import { diffFromKept, keepManifest } from "../../src/sync/last-manifest.js";
import { syncTree } from "../../src/sync/client.js";
import { INLINE_BLOBS_MAX } from "../../src/protocol/constants.js";

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

  // Names beyond ASCII, split between two reads of the file; symlinks whose targets hold
  // spaces: added, removed, changed and unchanged entries all come out as diffManifests says.
  // A first entry's name is lengthened until the reader's 1 MiB slice ends inside a character.
  let wide: Entry[] = [];
  for (let pad = 0; pad < 4; pad++) {
    wide = [
      file(`a${"x".repeat(pad)}`),
      ...Array.from({ length: 20_000 }, (_, i) => file(`ü${String(i).padStart(6, "0")}-名前`)),
      { path: "v/a link", type: "symlink", mode: 0o777, size: 9, target: "../a b cd" },
      { path: "v/b", type: "symlink", mode: 0o777, size: 5, target: "x y z" },
      { path: "v/c", type: "symlink", mode: 0o777, size: 1, target: "q" },
    ].sort(compareEntryPaths) as Entry[];
    keepManifest(kept, manifestDigest(wide), wide);
    if (((await readFile(kept))[1 << 20] ?? 0) >> 6 === 0b10) break; // a continuation byte
  }
  assert.equal(((await readFile(kept))[1 << 20] ?? 0) >> 6, 0b10);
  const changed = wide
    .filter((e) => e.path !== "v/c" && e.path !== "ü000002-名前")
    .map((e) => (e.path === "v/b" ? { ...e, size: 7, target: "x y z w" } : e))
    .concat([file("ü000002a-名前"), { path: "v/d e", type: "symlink", mode: 0o777, size: 3, target: "a b" }])
    .sort(compareEntryPaths) as Entry[];
  assert.deepEqual(diffFromKept(kept, manifestDigest(wide), changed), diffManifests(wide, changed));

  // A symlink target with a newline would be a line of its own: such a manifest is not kept.
  const odd = [...from, { path: "zz", type: "symlink", mode: 0o777, size: 3, target: "a\nb" }] as Entry[];
  keepManifest(kept, manifestDigest(odd), odd);
  assert.equal(diffFromKept(kept, manifestDigest(odd), to), undefined);
});

test("a canonical text reads back as its entries; what is not one is refused", () => {
  const entries = [
    file("a b/c d", H("e"), 7),
    link("l", "../x y"),
    { ...link("m", "名 前\nz"), size: Buffer.byteLength("名 前\nz") },
    dir("é"),
  ];
  assert.deepEqual(parseManifestText(manifestText(entries)), entries);
  assert.deepEqual(parseManifestText(""), []);
  for (const bad of ["file 644 1 x", "blob 644 1 - a\n", "file 9z 1 - a\n", "symlink 777 9 ab a\n"])
    assert.throws(() => parseManifestText(bad), TypeError, JSON.stringify(bad));
});

test("on random manifests and edits, the kept copy gives the diff diffManifests gives", async (t) => {
  const tmp = await mkdtemp(join(tmpdir(), "snapdeploy-kept-"));
  t.after(() => rm(tmp, { recursive: true, force: true }));
  const kept = join(tmp, "kept.jsonl");
  let seed = 20261203;
  const rand = (n: number) => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return seed % n;
  };
  const names = ["a", "b", "ab", "a b", "é", "名", "z", "zz", "m"];
  const entry = (path: string): Entry => {
    const k = rand(4);
    if (k === 0) {
      const target = ["x y", "../q", "名 前"][rand(3)] as string;
      return { ...link(path, target), size: Buffer.byteLength(target) };
    }
    if (k === 1) return { ...file(path, H("0123456789abcdef"[rand(16)] as string), rand(3)) };
    return file(path, H("0123456789abcdef"[rand(16)] as string), rand(1000));
  };
  const unique = (list: Entry[]) =>
    list.sort(compareEntryPaths).filter((e, i, a) => i === 0 || (a[i - 1] as Entry).path !== e.path);
  const randomManifest = () =>
    unique(Array.from({ length: rand(40) }, () => entry(`${names[rand(9)]}${rand(30)}/${names[rand(9)]}`)));
  let nonEmpty = 0;
  for (let round = 0; round < 400; round++) {
    const before = randomManifest();
    // Edits: some entries changed, removed or added, anywhere (the start and end too).
    const after = unique(
      before
        .filter(() => rand(8) !== 0)
        .map((e) => (rand(6) === 0 ? entry(e.path) : e))
        .concat(
          Array.from({ length: rand(4) }, () => entry(`${names[rand(9)]}${rand(30)}/${names[rand(9)]}`)),
        ),
    );
    // The agent reads its manifest files back from their canonical text.
    assert.deepEqual(parseManifestText(manifestText(after)), after, `round ${round}`);
    keepManifest(kept, manifestDigest(before), before);
    const d = diffFromKept(kept, manifestDigest(before), after);
    assert.deepEqual(d, diffManifests(before, after), `round ${round}`);
    if (d && d.put.length + d.remove.length > 0) nonEmpty++;
  }
  assert.ok(nonEmpty > 200, `only ${nonEmpty} rounds changed anything`);
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
  const syncOnce = async (tree: string, kept: string, inline = false) => {
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
        inline,
      });
      return { r, log: logs.at(-1) ?? "" };
    } finally {
      s.destroy();
    }
  };
  /** A connection to the agent for driving its side by hand. */
  const session = async () => {
    const s = createConnection(path);
    t.after(() => s.destroy());
    await new Promise((r) => s.once("connect", r));
    return new Connection(s);
  };
  return { syncOnce, ctx, session };
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
  const { session } = await agent(t, root);
  const { deflateRawSync } = await import("node:zlib");
  // The agent's side alone, driven by hand.
  const conn = await session();
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

/** A tree of `n` small files in ten folders under `tree`. */
async function smallTree(tree: string, n: number) {
  const { mkdir } = await import("node:fs/promises");
  for (let i = 0; i < n; i++) {
    await mkdir(join(tree, `d${i % 10}`), { recursive: true });
    await writeFile(join(tree, `d${i % 10}/f${i}.txt`), `file ${i} `.repeat(20));
  }
}

/** A temporary folder with an agent, a tree of `n` small files and the client's kept copy. */
async function setup(t: TestContext, prefix: string, n: number) {
  const root = await mkdtemp(join(tmpdir(), prefix));
  t.after(() => rm(root, { recursive: true, force: true }));
  const tree = join(root, "tree");
  const kept = join(root, "kept.jsonl");
  await smallTree(tree, n);
  return { root, tree, kept, ...(await agent(t, root)) };
}

test("inline: a change goes with its diff and blobs at once, when the workspace holds what was sent last", async (t) => {
  const { root, tree, kept, syncOnce } = await setup(t, "snapdeploy-inline-", 300);
  // Nothing kept yet: the agent is asked, as without inline.
  const first = await syncOnce(tree, kept, true);
  assert.equal(first.r.added, 300);
  assert.match(first.log, /manifest \(whole\)/);

  await writeFile(join(tree, "d3/f3.txt"), "changed");
  await writeFile(join(tree, "d5/f5.txt"), "changed"); // the same content: sent once
  const second = await syncOnce(tree, kept, true);
  assert.deepEqual([second.r.added, second.r.changed, second.r.removed], [0, 2, 0]);
  assert.match(second.log, /manifest \(inline diff: 0 removed, 2 put\)/);
  assert.match(second.log, /1 blobs, 47 bytes \(1 inline\)/); // 40 bytes of record header
  assert.equal(second.r.blobs, 1);
  assert.equal(second.r.blobBytes, 7);
  const ws = join(root, "data/workspaces/u/p/current");
  assert.equal(await readFile(join(ws, "d3/f3.txt"), "utf8"), "changed");
  assert.equal(await readFile(join(ws, "d5/f5.txt"), "utf8"), "changed");

  // A content the store already has, under a new name: inline too, nothing new stored.
  await writeFile(join(tree, "copy.txt"), "changed");
  const third = await syncOnce(tree, kept, true);
  assert.equal(third.r.added, 1);
  assert.match(third.log, /manifest \(inline diff: 0 removed, 1 put\)/);
  assert.equal(await readFile(join(ws, "copy.txt"), "utf8"), "changed");
});

test("inline: when the workspace holds something else, the diff is dropped and the manifest asked for", async (t) => {
  const { root, tree, kept, syncOnce } = await setup(t, "snapdeploy-inline-other-", 50);
  const other = join(root, "other.jsonl");
  await syncOnce(tree, kept, true);
  // Another machine (its own kept copy) syncs a change: the workspace moves on.
  await writeFile(join(tree, "d1/f1.txt"), "from elsewhere");
  await syncOnce(tree, other, true);
  // This machine's kept copy names the old manifest; its inline diff cannot apply.
  await writeFile(join(tree, "d2/f2.txt"), "from here");
  const r = await syncOnce(tree, kept, true);
  assert.deepEqual([r.r.added, r.r.changed, r.r.removed], [0, 1, 0]);
  assert.match(r.log, /manifest \(whole\)/);
  const ws = join(root, "data/workspaces/u/p/current");
  assert.equal(await readFile(join(ws, "d2/f2.txt"), "utf8"), "from here");
  assert.equal(await readFile(join(ws, "d1/f1.txt"), "utf8"), "from elsewhere");

  // And when the workspace already holds the snapshot, the inline diff ends in a no-op.
  const stale = join(root, "stale.jsonl");
  await writeFile(stale, await readFile(other));
  const noop = await syncOnce(tree, stale, true);
  assert.equal(noop.r.noop, true);
});

test("inline: contents over the inline limit wait for the agent's need", async (t) => {
  const { root, tree, kept, syncOnce } = await setup(t, "snapdeploy-inline-big-", 20);
  await syncOnce(tree, kept, true);
  const { randomBytes } = await import("node:crypto");
  const big = randomBytes(INLINE_BLOBS_MAX + 1);
  await writeFile(join(tree, "big.bin"), big);
  const r = await syncOnce(tree, kept, true);
  assert.equal(r.r.added, 1);
  assert.match(r.log, /manifest \(inline diff: 0 removed, 1 put\)/);
  assert.doesNotMatch(r.log, /inline\)/); // the blob went after the need
  assert.equal(r.r.blobBytes, big.length);
  assert.deepEqual(await readFile(join(root, "data/workspaces/u/p/current/big.bin")), big);
});

test("inline: the agent refuses a base that is no digest, and inline blobs over the limit", async (t) => {
  const { tree, kept, syncOnce, session } = await setup(t, "snapdeploy-inline-bad-", 5);
  const first = await syncOnce(tree, kept);
  const { deflateRawSync } = await import("node:zlib");
  const a = await session();
  await a.send({ t: "sync", user: "u", project: "p", digest: H("0"), client: "test", base: "../x" });
  await assert.rejects(a.expect("need"), /invalid base "\.\.\/x": expected a SHA-256/);

  // A diff that names 5 MB of new content, with inline blobs: refused before any is read.
  const held = first.r.digest;
  const put = [{ path: "huge.bin", type: "file", mode: 0o644, size: INLINE_BLOBS_MAX + 1, hash: H("a") }];
  const next = applyManifestDiff((await scanTree({ root: tree, useCache: false })).entries, {
    remove: [],
    put,
  });
  const b = await session();
  const digest = manifestDigest(next as Entry[]);
  await b.send({ t: "sync", user: "u", project: "p", digest, client: "test", base: held, blobs: true });
  await b.sendData(deflateRawSync(Buffer.from(JSON.stringify({ remove: [], put }))));
  await b.send({ t: "manifest-end", base: held });
  await assert.rejects(b.expect("need"), /inline blobs of 4194305 bytes exceed 4194304/);
});
