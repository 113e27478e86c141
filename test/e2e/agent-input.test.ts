/**
 * The agent must not trust the client. These tests speak the protocol directly
 * (through the real transport into a real build server) with manifests and build
 * requests no honest client sends, and check each is refused as an input error with a
 * clear message and that nothing was written outside the workspace.
 */
import assert from "node:assert/strict";
import { mkdir, mkdtemp, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { deflateRawSync } from "node:zlib";
import { scanTree } from "../../src/context/scan.js";
import { UserError } from "../../src/errors.js";
import { loadClusterAccess } from "../../src/kube/access.js";
import { FRAME_DATA } from "../../src/protocol/frames.js";
import type { ClientMessage } from "../../src/protocol/messages.js";
import { withAgent } from "../../src/server/connect.js";
import { syncTree } from "../../src/sync/client.js";
import { eventually, inServer, installServer, REGISTRY_NODE, uninstallServer } from "../helpers/cluster.js";

let ns = "";
/** The manifest digest of the tree synced to the workspace builder/p for the build cases. */
let synced = "";
let dir = "";
before(async () => {
  ns = await installServer("e2e-input");
  // A marker outside the data volume: an escape would overwrite or add next to it.
  await inServer(ns, "echo original > /tmp/marker");
  // A workspace for the build cases: a Dockerfile, a link to it, and d/up -> .. (the root).
  dir = await mkdtemp(join(tmpdir(), "snapdeploy-input-"));
  await writeFile(join(dir, "Dockerfile"), "FROM scratch\n");
  await symlink("Dockerfile", join(dir, "lnk"));
  await mkdir(join(dir, "d"));
  await symlink("..", join(dir, "d/up"));
  const scan = await scanTree({ root: dir, useCache: false });
  synced = scan.digest;
  const cluster = await loadClusterAccess({});
  await withAgent(cluster, ns, (s) =>
    syncTree(s.conn, {
      root: scan.root,
      user: "builder",
      project: "p",
      digest: scan.digest,
      entries: async () => scan.entries,
      client: "test",
    }),
  );
});
after(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});
after(async () => uninstallServer(ns));

const HASH = "a".repeat(64);

/** Sends a raw manifest for user "mallory"; returns the agent's error message. */
async function sendManifest(entries: unknown[], names = { user: "mallory", project: "p" }): Promise<string> {
  const cluster = await loadClusterAccess({});
  try {
    await withAgent(cluster, ns, async (s) => {
      await s.conn.send({ t: "sync", ...names, digest: "0".repeat(64), client: "test" });
      await s.conn.expect("send-manifest");
      await s.conn.sendData(deflateRawSync(Buffer.from(JSON.stringify(entries))));
      await s.conn.send({ t: "manifest-end" });
      const f = await s.conn.next();
      throw new Error(
        `the agent accepted the manifest: ${JSON.stringify(f.kind === FRAME_DATA ? "data" : f.msg)}`,
      );
    });
  } catch (e) {
    return (e as Error).message;
  }
  throw new Error("unreachable");
}

const file = (path: string) => ({ path, type: "file", mode: 0o644, size: 1, hash: HASH });

const cases: [string, unknown[], RegExp][] = [
  ["a '..' segment", [file("../escape.txt")], /'\.\.' segment/],
  [
    "a deeper '..'",
    [{ path: "a", type: "dir", mode: 0o755, size: 0 }, file("a/../../escape.txt")],
    /'\.\.' segment/,
  ],
  ["an absolute path", [file("/tmp/marker")], /absolute path/],
  ["a NUL byte", [file("evil\u0000.txt")], /NUL byte/],
  ["an over-long name", [file(`${"n".repeat(300)}.txt`)], /longer than 255 bytes/],
  ["an over-long path", [file(`${"d/".repeat(2100)}x`)], /longer than 4096 bytes/],
  [
    "a symlink to an absolute path",
    [{ path: "l", type: "symlink", mode: 0o777, size: 4, target: "/etc" }],
    /absolute path/,
  ],
  [
    "a symlink escaping the tree",
    [{ path: "l", type: "symlink", mode: 0o777, size: 12, target: "../../../etc" }],
    /points outside the tree/,
  ],
  [
    "a file written through a symlink",
    [{ path: "l", type: "symlink", mode: 0o777, size: 1, target: "." }, file("l/x")],
    /parent l is not a directory/,
  ],
  [
    "a chain of symlinks climbing out (d/up -> .., x -> d/up/..)",
    [
      { path: "d", type: "dir", mode: 0o755, size: 0 },
      { path: "d/up", type: "symlink", mode: 0o777, size: 2, target: ".." },
      { path: "x", type: "symlink", mode: 0o777, size: 7, target: "d/up/.." },
    ],
    /symlink x -> d\/up\/\.\. leads outside the tree through the link d\/up/,
  ],
  [
    "a cycle of symlinks",
    [
      { path: "p", type: "symlink", mode: 0o777, size: 3, target: "q/x" },
      { path: "q", type: "symlink", mode: 0o777, size: 3, target: "p/x" },
    ],
    /more than 40 links/,
  ],
  ["a device file", [{ path: "dev", type: "chardev", mode: 0o644, size: 0 }], /unsupported entry type/],
  ["an empty segment", [file("a//b")], /'' segment/],
  ["unsorted entries", [file("b"), file("a")], /not sorted/],
];

for (const [what, entries, expected] of cases) {
  test(`a manifest with ${what} is refused`, async () => {
    const message = await sendManifest(entries);
    assert.match(message, expected);
  });
}

test("invalid user or project names are refused", async () => {
  assert.match(await sendManifest([], { user: "../root", project: "p" }), /invalid user name/);
  assert.match(await sendManifest([], { user: "ok", project: "a/b" }), /invalid project name/);
});

/**
 * Sends one build or check request (for the workspace synced above unless `msg` says
 * otherwise) and returns the error it was refused with; fails if the agent accepts it.
 */
async function refusal(msg: Record<string, unknown>): Promise<UserError> {
  const cluster = await loadClusterAccess({});
  try {
    await withAgent(cluster, ns, async (s) => {
      await s.conn.send(msg as unknown as ClientMessage);
      for (;;) {
        const m = await s.conn.expect();
        if (m.t !== "waiting" && m.t !== "queued")
          throw new Error(`the agent accepted it: ${JSON.stringify(m)}`);
      }
    });
  } catch (e) {
    if (e instanceof UserError) return e;
    throw e;
  }
  throw new Error("unreachable");
}

const REF = `${REGISTRY_NODE}/e2e/input:t1`;
const build = (fields: Record<string, unknown>) => ({
  t: "build",
  user: "builder",
  project: "p",
  manifest: synced,
  ref: REF,
  settings: {},
  ...fields,
});

const buildCases: [string, Record<string, unknown>, RegExp][] = [
  ["a ref without a registry host", { ref: "app:t1" }, /must start with a registry host/],
  [
    "a ref with an upper-case repository",
    { ref: `${REGISTRY_NODE}/E2E/input:t1` },
    /invalid image reference/,
  ],
  ["a ref with a bad tag", { ref: `${REGISTRY_NODE}/e2e/input:-t` }, /invalid image reference/],
  ["a ref that is an option", { ref: "--help" }, /must start with a registry host/],
  [
    "a Dockerfile above the workspace",
    { dockerfile: "../x" },
    /Dockerfile \.\.\/x is not a file in the synced tree/,
  ],
  ["an absolute Dockerfile", { dockerfile: "/etc/passwd" }, /Dockerfile \/etc\/passwd is not a file/],
  [
    "a Dockerfile through a link that climbs out",
    { dockerfile: "d/up/../../etc/passwd" },
    /Dockerfile d\/up\/\.\.\/\.\.\/etc\/passwd is not a file/,
  ],
  ["a Dockerfile through a link", { dockerfile: "d/up/Dockerfile" }, /is not a file in the synced tree/],
  ["a Dockerfile that is a symlink", { dockerfile: "lnk" }, /Dockerfile lnk is not a file/],
  ["the secret id '.'", { secrets: [{ id: ".", data: "" }] }, /invalid secret id "\."/],
  ["the secret id '..'", { secrets: [{ id: "..", data: "" }] }, /invalid secret id "\.\."/],
  ["the secret id 'a/b'", { secrets: [{ id: "a/b", data: "" }] }, /invalid secret id "a\/b"/],
  ["a snapshot the workspace does not hold", { manifest: "0".repeat(64) }, /the workspace changed/],
];

for (const [what, fields, expected] of buildCases) {
  test(`a build with ${what} is refused as an input error`, async () => {
    const e = await refusal(build(fields));
    assert.match(e.message, expected);
    assert.equal(e.code, "input", e.message);
  });
}

test("a check with a bad ref is refused as an input error", async () => {
  const e = await refusal({
    t: "check",
    ref: "app:t1",
    user: "builder",
    project: "p",
    manifest: synced,
    settings: {},
  });
  assert.match(e.message, /must start with a registry host/);
  assert.equal(e.code, "input");
});

test("a file changed after the scan (same size) is refused by the agent's hash check, naming the file", async () => {
  // The CLI checks only the size of what it sends; the agent hashes every blob it takes.
  const d = await mkdtemp(join(tmpdir(), "snapdeploy-changed-"));
  const kept = join(d, ".kept-manifest");
  await mkdir(join(d, "src"));
  await writeFile(join(d, ".dockerignore"), ".kept-manifest\n");
  await writeFile(join(d, "src/app.txt"), "version 1\n");
  const cluster = await loadClusterAccess({});
  const syncScanned = async (scan: Awaited<ReturnType<typeof scanTree>>, keep: string | false) =>
    await withAgent(cluster, ns, (s) =>
      syncTree(s.conn, {
        root: scan.root,
        user: "changer",
        project: "p",
        digest: scan.digest,
        entries: async () => scan.entries,
        client: "test",
        kept: keep,
        inline: s.inlineSync,
      }),
    );
  const refusedAsChanged = (sync: Promise<unknown>) =>
    assert.rejects(
      sync,
      (e: unknown) =>
        e instanceof UserError && /src\/app\.txt changed while it was being sent/.test(e.message),
    );
  try {
    // The whole manifest, then the blobs the agent asks for.
    const first = await scanTree({ root: d, useCache: false });
    await writeFile(join(d, "src/app.txt"), "version 2\n");
    await refusedAsChanged(syncScanned(first, false));
    const current = "/data/workspaces/changer/p/current";
    assert.equal(
      (await inServer(ns, `if [ -e ${current} ]; then echo present; else echo absent; fi`)).trim(),
      "absent",
      "a refused sync switches nothing",
    );
    // A good sync, then a diff with its blob inline: the same check, reported the same way.
    const good = await scanTree({ root: d, useCache: false });
    await syncScanned(good, kept);
    await writeFile(join(d, "src/app.txt"), "version 3\n");
    const third = await scanTree({ root: d, useCache: false });
    await writeFile(join(d, "src/app.txt"), "version 4\n");
    await refusedAsChanged(syncScanned(third, kept));
    const held = await inServer(ns, "cat /data/workspaces/changer/p/current/src/app.txt");
    assert.equal(held, "version 2\n", "the workspace keeps the last good sync");
  } finally {
    await rm(d, { recursive: true, force: true });
  }
});

test("the hello names the data volume, and the agent says the same id after it restarts", async () => {
  const cluster = await loadClusterAccess({});
  const volume = async () => await withAgent(cluster, ns, async (s) => s.volume);
  const before = await volume();
  assert.match(String(before), /^[0-9a-f-]{36}$/);
  assert.equal((await inServer(ns, "cat /data/volume-id")).trim(), before);
  // SIGTERM to the agent (PID 1 of its container): the container restarts on the same volume.
  await inServer(ns, "kill -TERM 1");
  const after = await eventually(
    "the restarted agent's hello",
    async () => await volume().catch(() => undefined),
  );
  assert.equal(after, before);
});

test("nothing was written outside the workspaces", async () => {
  assert.equal((await inServer(ns, "cat /tmp/marker")).trim(), "original");
  const listing = await inServer(ns, "ls -A /data/workspaces");
  assert.doesNotMatch(listing, /mallory/, "no workspace may be created for refused manifests");
  for (const path of ["/escape.txt", "/data/escape.txt", "/data/workspaces/escape.txt"]) {
    const found = await inServer(
      ns,
      `if [ -e ${path} ] || [ -L ${path} ]; then echo present; else echo absent; fi`,
    );
    assert.equal(found.trim(), "absent", `${path} must not exist`);
  }
});
