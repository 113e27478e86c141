/**
 * The agent's validation of what a client sends: manifests (paths, types, order, parents,
 * symlink targets and chains of symlinks), names, image references and secret ids. The
 * path rules are protocol/paths.ts, shared with the scan.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { InvalidInput } from "../../src/agent/errors.js";
import { imageLabels, validateName, validateRef, validateSecrets } from "../../src/agent/validate.js";
import { validateManifest } from "../../src/agent/validate-manifest.js";
import { linkChainProblem, pathProblem } from "../../src/protocol/paths.js";

const HASH = "a".repeat(64);
const file = (path: string, extra: Record<string, unknown> = {}) => ({
  path,
  type: "file",
  mode: 0o644,
  size: 1,
  hash: HASH,
  ...extra,
});
const dir = (path: string) => ({ path, type: "dir", mode: 0o755, size: 0 });
const link = (path: string, target: string) => ({
  path,
  type: "symlink",
  mode: 0o777,
  size: Buffer.byteLength(target),
  target,
});

function refused(entries: unknown, message: RegExp) {
  assert.throws(
    () => validateManifest(entries),
    (e: unknown) => e instanceof InvalidInput && message.test(e.message),
    `expected ${message} for ${JSON.stringify(entries).slice(0, 200)}`,
  );
}

test("a well-formed manifest is accepted as it is", () => {
  const entries = [
    dir("d"),
    link("d/up", ".."),
    file("d/x"),
    dir("e"),
    link("e/f", "../d/x"),
    link("self", "."),
    link("y", "d/up/e/f"),
  ];
  assert.deepEqual(validateManifest(entries), entries);
  assert.deepEqual(validateManifest([]), []);
});

test("paths: '..', '.', empty segments, absolute, NUL, newline, over-long names and paths are refused", () => {
  refused([file("../escape")], /path "\.\.\/escape" has a '\.\.' segment/);
  refused([dir("a"), file("a/../../escape")], /has a '\.\.' segment/);
  refused([file("./a")], /has a '\.' segment/);
  refused([file("a//b")], /has a '' segment/);
  refused([file("a/")], /has a '' segment/);
  refused([file("/etc/passwd")], /is an absolute path/);
  refused([file("evil\u0000.txt")], /NUL byte/);
  refused([file("a\nb")], /newline or carriage return/);
  refused([file("a\rb")], /newline or carriage return/);
  refused([file(`${"n".repeat(256)}`)], /name longer than 255 bytes/);
  refused([file(`${"é".repeat(128)}`)], /name longer than 255 bytes/); // 128 characters, 256 bytes
  refused([file(`${"d/".repeat(2048)}x`)], /longer than 4096 bytes/);
  refused([{ ...file("x"), path: 7 }], /empty path/);
  refused([{ ...file("x"), path: "" }], /empty path/);
  // The limits themselves are fine.
  assert.equal(pathProblem("n".repeat(255)), undefined);
  assert.equal(pathProblem(`${"a/".repeat(2047)}b`), undefined);
});

test("entries: only files, directories and symlinks, sorted, unique, parents that are directories", () => {
  refused([{ path: "dev", type: "chardev", mode: 0o644, size: 0 }], /unsupported entry type "chardev"/);
  refused([{ path: "dev", type: "blockdev", mode: 0o644, size: 0 }], /unsupported entry type/);
  refused([{ path: "p", type: "fifo", mode: 0o644, size: 0 }], /unsupported entry type/);
  refused([file("b"), file("a")], /not sorted/);
  refused([file("a"), file("a")], /duplicate at a/);
  refused([file("a/b")], /parent a is not a directory/);
  refused([file("a"), file("a/b")], /parent a is not a directory/);
  refused([link("l", "."), file("l/x")], /parent l is not a directory/);
  refused([file("x", { hash: "nothex" })], /invalid content hash/);
  refused([file("x", { mode: 0o10000 })], /invalid mode/);
  refused([file("x", { size: -1 })], /invalid size/);
  refused("not a list", /not a list/);
  refused([null], /not an object/);
  assert.throws(() => validateManifest([file("a"), file("b")], 1), /more than 1/);
});

test("symlink targets: relative and inside the tree, on their own", () => {
  refused([link("l", "/etc")], /symlink l -> \/etc points to an absolute path/);
  refused([link("l", "..")], /points outside the tree/);
  refused([dir("a"), link("a/l", "../../etc")], /points outside the tree/);
  refused([link("l", "")], /has no target/);
  refused([{ ...link("l", "x"), target: undefined }], /has no target/);
  refused([link("l", "a\u0000b")], /NUL byte/);
  refused([link("l", "a/".repeat(2049))], /target longer than 4096 bytes/);
});

test("symlink chains that each stay inside but together climb out are refused", () => {
  // d/up -> .. is the root; x -> d/up/.. is the root's parent.
  refused(
    [dir("d"), link("d/up", ".."), link("x", "d/up/..")],
    /symlink x -> d\/up\/\.\. leads outside the tree through the link d\/up/,
  );
  // The order in the manifest does not matter: the link named later is resolved too.
  refused([link("a", "s/b/.."), dir("s"), link("s/b", "..")], /symlink a -> s\/b\/\.\. leads outside/);
  // Two hops: l1 -> d/l2/.., d/l2 -> e/l3, d/e/l3 -> ../.. (the root).
  refused(
    [dir("d"), dir("d/e"), link("d/e/l3", "../.."), link("d/l2", "e/l3"), link("l1", "d/l2/..")],
    /symlink l1 .* through the link d\/l2/,
  );
  // A link further down: b/c -> .. (b), a -> b/c/../.. (the root's parent).
  refused([link("a", "b/c/../.."), dir("b"), link("b/c", "..")], /leads outside the tree/);
  // Cycles and chains longer than 40 links.
  refused([link("p", "q/x"), link("q", "p/x")], /more than 40 links/);
  refused([link("p", "p/x")], /more than 40 links/);
  const chain = Array.from({ length: 42 }, (_, i) =>
    link(`l${String(i).padStart(2, "0")}`, `l${String(i + 1).padStart(2, "0")}`),
  );
  refused(chain, /more than 40 links/);
});

test("linkChainProblem resolves like the kernel: a link's target replaces it before a following '..'", () => {
  const links = new Map([
    ["d/up", ".."],
    ["x", "d/up/.."],
    ["y", "d/up/d/up"],
    ["z", "d/x/.."],
  ]);
  assert.match(linkChainProblem(links, "x") ?? "", /through the link d\/up/);
  assert.equal(linkChainProblem(links, "y"), undefined); // root/d/up = root
  assert.equal(linkChainProblem(links, "z"), undefined); // d/x is no link: lexically d
  assert.equal(linkChainProblem(links, "d/up"), undefined);
  assert.equal(linkChainProblem(links, "missing"), undefined);
});

test("user and project names", () => {
  assert.equal(validateName("user", "alice"), "alice");
  for (const bad of ["../root", "a/b", "", "A", "-a", "a-", "x".repeat(64), 7, undefined]) {
    assert.throws(() => validateName("project", bad), /invalid project name/, String(bad));
  }
});

test("image references: host/repository:tag only", () => {
  for (const ok of [
    "127.0.0.1:5000/team/app:snap-1",
    "registry.example.com/a/b_c:v1.2",
    "localhost/app:t",
    "[::1]:5000/app:t",
  ]) {
    assert.equal(validateRef(ok), ok);
  }
  for (const bad of [
    "app:tag",
    "--help",
    "registry.example.com/Team/app:t",
    "registry.example.com/app:t@x",
    "registry.example.com/app:-t",
    "registry.example.com/app:t/x",
    "registry.example.com/../app:t",
    "registry.example.com/app:",
    "reg istry.example.com/app:t",
    undefined,
  ]) {
    assert.throws(
      () => validateRef(bad),
      (e: unknown) => e instanceof InvalidInput,
      String(bad),
    );
  }
});

test("secret ids: one plain name each", () => {
  assert.deepEqual(validateSecrets([{ id: "npm_token", data: "eA==" }]), [{ id: "npm_token", data: "eA==" }]);
  assert.deepEqual(validateSecrets(undefined), []);
  for (const id of [".", "..", "a/b", "", "x".repeat(65), "a b", 3, undefined]) {
    assert.throws(() => validateSecrets([{ id, data: "" }]), /invalid secret id/, String(id));
  }
  assert.throws(() => validateSecrets("x"), /not a list/);
});

describe("imageLabels: what a build's image says about itself", () => {
  const snapshot = "ab".repeat(32);
  const build = {
    user: "alice",
    ref: `registry.example.com/team/app:snap-${snapshot.slice(0, 32)}`,
    buildServer: "pod/snapdeploy-build-server-1",
    now: new Date("2026-12-02T10:00:00Z"),
  };
  test("the CLI's labels, checked, with the agent's time and the build server added", () => {
    const sent = {
      "dev.snapdeploy.user": "alice",
      "dev.snapdeploy.created": "1999-01-01T00:00:00Z",
      "dev.snapdeploy.snapshot": snapshot,
    };
    assert.deepEqual(imageLabels(sent, build), {
      "dev.snapdeploy.user": "alice",
      "dev.snapdeploy.created": "2026-12-02T10:00:00.000Z",
      "dev.snapdeploy.snapshot": snapshot,
      "dev.snapdeploy.build-server": "pod/snapdeploy-build-server-1",
    });
    // None sent: the workspace's user and the agent's own facts still label the image.
    assert.equal(imageLabels(undefined, build)["dev.snapdeploy.user"], "alice");
  });
  test("a claim that does not match the build is refused", () => {
    const refused = (labels: unknown, pattern: RegExp) =>
      assert.throws(
        () => imageLabels(labels, build),
        (e: Error) => e instanceof InvalidInput && pattern.test(e.message),
      );
    refused({ "dev.snapdeploy.user": "bob" }, /names bob, but the build is of alice's workspace/);
    refused({ "dev.snapdeploy.snapshot": "cd".repeat(32) }, /is not the snapshot tag snap-/);
    refused({ "dev.snapdeploy.snapshot": "../x" }, /is not the snapshot tag/);
    refused({ "org.opencontainers.image.source": "x" }, /is not one the build server sets/);
    refused({ "dev.snapdeploy.build-server": "pod/elsewhere" }, /is not one the build server sets/);
    refused({ "dev.snapdeploy.created": "yesterday" }, /is not a time/);
    refused({ "dev.snapdeploy.user": 7 }, /is not a string/);
    refused(["a"], /not a map/);
  });
});
