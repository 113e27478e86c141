/**
 * The agent must not trust the client. These tests speak the sync protocol directly
 * (through the real exec transport into a real build server) with manifests no
 * honest client sends, and check each is refused with a clear error and that
 * nothing was written outside the workspace.
 */
import assert from "node:assert/strict";
import { deflateRawSync } from "node:zlib";
import { after, before, test } from "node:test";
import { loadClusterAccess } from "../../src/kube/access.js";
import { withAgent } from "../../src/server/connect.js";
import { FRAME_DATA } from "../../src/protocol/frames.js";
import { inServer, installServer, uninstallServer } from "../helpers/cluster.js";

let ns = "";
before(async () => {
  ns = await installServer("e2e-input");
  // A marker outside the data volume: an escape would overwrite or add next to it.
  await inServer(ns, "echo original > /tmp/marker");
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
    /points outside the workspace/,
  ],
  [
    "a file written through a symlink",
    [{ path: "l", type: "symlink", mode: 0o777, size: 1, target: "." }, file("l/x")],
    /parent l is not a directory/,
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

test("nothing was written outside the workspaces", async () => {
  assert.equal((await inServer(ns, "cat /tmp/marker")).trim(), "original");
  const listing = await inServer(
    ns,
    "ls -A /data; ls -A /data/workspaces; ls /escape.txt /data/escape.txt 2>&1 || true",
  );
  assert.doesNotMatch(listing, /mallory/, "no workspace may be created for refused manifests");
  assert.match(listing, /No such file/);
});
