/**
 * The build-context scanner on real temporary trees: .dockerignore semantics, the entries
 * of the manifest, what it refuses, and the stat cache.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdirSync, writeFileSync } from "node:fs";
import {
  chmod,
  lstat,
  mkdir,
  mkdtemp,
  readdir,
  readFile,
  realpath,
  rm,
  symlink,
  utimes,
  writeFile,
} from "node:fs/promises";
import { createServer } from "node:net";
import { homedir, tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { type TestContext, test } from "node:test";
import { fileURLToPath } from "node:url";
import { UserError } from "../../src/errors.js";
import { compareEntryPaths, type Entry, manifestDigest } from "../../src/protocol/manifest.js";
import {
  checkEntryPath,
  defaultCacheFile,
  hashFile,
  type ScanOptions,
  scanSnapshot,
  scanTree,
} from "../../src/context/scan.js";
import { loadCache } from "../../src/context/stat-cache.js";

const PROJECT = fileURLToPath(new URL("../..", import.meta.url));
const SCAN_MODULE = new URL("../../src/context/scan.ts", import.meta.url).href;
/** Seconds since the epoch, an hour ago: old enough for the stat cache to keep a file. */
const PAST = Math.floor(Date.now() / 1000) - 3600;

const sha256 = (data: string | Buffer) => createHash("sha256").update(data).digest("hex");
const paths = (entries: Entry[]) => entries.map((e) => e.path);

/** A temporary directory, removed after the test. */
async function tempDir(t: TestContext): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "snapdeploy-scan-"));
  t.after(async () => {
    // rm(1) also copes with paths longer than PATH_MAX
    if (spawnSync("rm", ["-rf", dir]).status !== 0) await rm(dir, { recursive: true, force: true });
  });
  return dir;
}

/** A tree from `spec`: a key ending in '/' is a directory, any other a file with that content. */
async function tree(t: TestContext, spec: Record<string, string>): Promise<string> {
  const root = await tempDir(t);
  for (const [rel, content] of Object.entries(spec)) {
    const abs = join(root, rel);
    if (rel.endsWith("/")) {
      await mkdir(abs, { recursive: true });
    } else {
      await mkdir(dirname(abs), { recursive: true });
      await writeFile(abs, content);
    }
  }
  return root;
}

/** Sets the mtime of every file below `root` an hour back. */
async function age(root: string): Promise<void> {
  for (const d of await readdir(root, { recursive: true, withFileTypes: true })) {
    if (d.isFile()) await utimes(join(d.parentPath, d.name), PAST, PAST);
  }
}

function scan(root: string, opts: Partial<ScanOptions> = {}) {
  return scanTree({ root, useCache: false, ...opts });
}

/** Asserts `promise` rejects with UserError("input") whose message (and hint) match. */
async function rejectsInput(promise: Promise<unknown>, message: RegExp, hint?: RegExp): Promise<void> {
  await assert.rejects(promise, (e: unknown) => {
    assert.ok(e instanceof UserError, `expected a UserError, got ${e}`);
    assert.equal(e.code, "input");
    assert.match(e.message, message);
    if (hint) assert.match(e.hint ?? "", hint);
    return true;
  });
}

// --- .dockerignore ---------------------------------------------------------------------------

test(".dockerignore: comments, **, exceptions, anchoring, directories, case, literal characters", async (t) => {
  const root = await tree(t, {
    ".dockerignore": [
      "\uFEFF/secret.txt", // a byte order mark is not part of the first pattern
      "# a comment",
      "#keep.txt",
      "**/*.log",
      "build/",
      "docs/*",
      "!docs/README.md",
      "node_modules",
      "Src",
      "c++",
      "constructor",
      "",
    ].join("\n"),
    Dockerfile: "FROM scratch\n",
    "#keep.txt": "",
    "keep.txt": "",
    "secret.txt": "",
    "sub/secret.txt": "",
    "a.log": "",
    "sub/deep/b.log": "",
    "sub/c.txt": "",
    "build/out.bin": "",
    "build/nested/x": "",
    "docs/README.md": "",
    "docs/other.md": "",
    "node_modules/pkg/index.js": "",
    "src/main.ts": "",
    "c++": "",
    cxx: "",
    constructor: "",
  });
  const r = await scan(root);
  assert.deepEqual(paths(r.entries), [
    "#keep.txt",
    ".dockerignore",
    "Dockerfile",
    "cxx",
    "docs",
    "docs/README.md",
    "keep.txt",
    "src",
    "src/main.ts",
    "sub",
    "sub/c.txt",
    "sub/deep",
    "sub/secret.txt",
  ]);
  // secret.txt, a.log, sub/deep/b.log, docs/other.md, c++, constructor, and build and
  // node_modules once each: no exception can reach below them, so they are not listed.
  assert.equal(r.stats.ignored, 8);
});

test(".dockerignore: an exception below an ignored directory brings the path and its parents", async (t) => {
  const root = await tree(t, {
    ".dockerignore": "vendor\n!vendor/keep/me.txt\ncache\n!**/*.keep\n",
    "vendor/keep/me.txt": "",
    "vendor/keep/other.txt": "",
    "vendor/drop.txt": "",
    "cache/a/b.keep": "",
    "cache/c.txt": "",
  });
  const r = await scan(root);
  assert.deepEqual(paths(r.entries), [
    ".dockerignore",
    "cache",
    "cache/a",
    "cache/a/b.keep",
    "vendor",
    "vendor/keep",
    "vendor/keep/me.txt",
  ]);
});

test(".git at the root is never sent; Dockerfile and .dockerignore always are", async (t) => {
  const root = await tree(t, {
    ".dockerignore": "*\n!.git\n!.git/**\n!sub\n",
    Dockerfile: "FROM scratch\n",
    "other.txt": "",
    ".git/HEAD": "ref: refs/heads/main\n",
    ".git/objects/ab": "",
    "sub/.git": "gitdir: ../.git/modules/sub\n",
  });
  const r = await scan(root);
  assert.deepEqual(paths(r.entries), [".dockerignore", "Dockerfile", "sub", "sub/.git"]);
});

test(".dockerignore: an invalid pattern is an input error", async (t) => {
  const root = await tree(t, { ".dockerignore": "ok\n[unclosed\n" });
  await rejectsInput(scan(root), /\.dockerignore has an invalid pattern/);
});

// --- entries ---------------------------------------------------------------------------------

test("entries: files with sha256, directories (empty ones too), symlinks not followed, sorted", async (t) => {
  const root = await tree(t, { "a.txt": "hello", "bin/run.sh": "#!/bin/sh\n", "empty/": "" });
  await symlink("a.txt", join(root, "link"));
  await symlink("bin", join(root, "dirlink"));
  await symlink("../a.txt", join(root, "bin/up"));
  await chmod(join(root, "a.txt"), 0o640);
  await chmod(join(root, "bin/run.sh"), 0o4755);
  await chmod(join(root, "bin"), 0o750);
  await chmod(join(root, "empty"), 0o700);
  const linkMode = (await lstat(join(root, "link"))).mode & 0o7777;

  const r = await scan(root);
  assert.equal(r.root, await realpath(root));
  assert.deepEqual(r.entries, [
    { path: "a.txt", type: "file", mode: 0o640, size: 5, hash: sha256("hello") },
    { path: "bin", type: "dir", mode: 0o750, size: 0 },
    { path: "bin/run.sh", type: "file", mode: 0o4755, size: 10, hash: sha256("#!/bin/sh\n") },
    { path: "bin/up", type: "symlink", mode: linkMode, size: 8, target: "../a.txt" },
    { path: "dirlink", type: "symlink", mode: linkMode, size: 3, target: "bin" },
    { path: "empty", type: "dir", mode: 0o700, size: 0 },
    { path: "link", type: "symlink", mode: linkMode, size: 5, target: "a.txt" },
  ]);
  assert.deepEqual(r.stats, {
    files: 2,
    dirs: 2,
    symlinks: 3,
    bytes: 15,
    hashedFiles: 2,
    hashedBytes: 15,
    cacheHits: 0,
    ignored: 0,
  });

  // A root given through a symlink is scanned as its target, with the same result.
  const alias = join(await tempDir(t), "alias");
  await symlink(root, alias);
  const again = await scan(alias);
  assert.equal(again.root, r.root);
  assert.equal(manifestDigest(again.entries), manifestDigest(r.entries));
});

test("the root must exist and be a directory", async (t) => {
  const dir = await tempDir(t);
  await assert.rejects(
    scan(join(dir, "missing")),
    (e: unknown) => e instanceof UserError && e.code === "notFound",
  );
  await writeFile(join(dir, "file"), "");
  await rejectsInput(scan(join(dir, "file")), /is not a directory/);
});

test("a symlink leading out of the tree is an input error naming the link and its target", async (t) => {
  const abs = await tree(t, { "a.txt": "" });
  await symlink("/etc/passwd", join(abs, "passwd"));
  await rejectsInput(scan(abs), /"passwd".*"\/etc\/passwd"/, /\.dockerignore.*relative/);

  const rel = await tree(t, { "sub/x": "" });
  await symlink("../../outside", join(rel, "sub/out"));
  await rejectsInput(scan(rel), /symlink "sub\/out" points outside the tree: "\.\.\/\.\.\/outside"/);

  // Links to the root itself, or ignored links, are fine.
  const ok = await tree(t, { ".dockerignore": "sub/out\n", "sub/x": "" });
  await symlink("../../outside", join(ok, "sub/out"));
  await symlink("..", join(ok, "sub/top"));
  await symlink(".", join(ok, "self"));
  assert.deepEqual(paths((await scan(ok)).entries), [".dockerignore", "self", "sub", "sub/top", "sub/x"]);
});

test("a chain of symlinks that each stay inside but together climb out is refused, like the agent does", async (t) => {
  const viaDir = await tree(t, { "d/": "" });
  await symlink("..", join(viaDir, "d/up"));
  await symlink("d/up/..", join(viaDir, "x"));
  await rejectsInput(
    scan(viaDir),
    /symlink "x" leads outside the tree through the link d\/up: "d\/up\/\.\."/,
  );

  // Two hops: l1 -> d/l2/.., d/l2 -> e/l3, d/e/l3 -> ../.. (the root).
  const twoLinks = await tree(t, { "d/e/": "" });
  await symlink("d/l2/..", join(twoLinks, "l1"));
  await symlink("e/l3", join(twoLinks, "d/l2"));
  await symlink("../..", join(twoLinks, "d/e/l3"));
  await rejectsInput(scan(twoLinks), /symlink "l1" leads outside the tree through the link d\/l2/);

  const loop = await tree(t, {});
  await symlink("q/x", join(loop, "p"));
  await symlink("p/x", join(loop, "q"));
  await rejectsInput(scan(loop), /more than 40 links/);

  // Chains that stay inside are fine, and so is a chain through a link .dockerignore leaves out.
  const ok = await tree(t, { ".dockerignore": "out\n", "d/": "", "e/f": "" });
  await symlink("..", join(ok, "d/up"));
  await symlink("d/up/e/f", join(ok, "y"));
  await symlink("d/up", join(ok, "z"));
  await symlink("../..", join(ok, "e/out2"));
  await rm(join(ok, "e/out2"));
  await symlink("/", join(ok, "out"));
  await symlink("out/..", join(ok, "w"));
  assert.deepEqual(paths((await scan(ok)).entries), [
    ".dockerignore",
    "d",
    "d/up",
    "e",
    "e/f",
    "w",
    "y",
    "z",
  ]);
});

test("sockets and FIFOs are skipped with a warning naming them", async (t) => {
  const root = await tree(t, { "a.txt": "" });
  assert.equal(spawnSync("mkfifo", [join(root, "pipe")]).status, 0);
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(join(root, "sock"), resolve));
  t.after(() => server.close());

  const warnings: string[] = [];
  const r = await scan(root, { onWarning: (m) => warnings.push(m) });
  assert.deepEqual(paths(r.entries), ["a.txt"]);
  assert.equal(warnings.length, 2);
  assert.ok(
    warnings.some((w) => /"pipe".*FIFO/.test(w)),
    warnings.join("\n"),
  );
  assert.ok(
    warnings.some((w) => /"sock".*socket/.test(w)),
    warnings.join("\n"),
  );
});

// --- unsupported paths -----------------------------------------------------------------------

test("a path with a newline or carriage return is an input error naming it, unless ignored", async (t) => {
  const nl = await tree(t, { "dir/bad\nname": "" });
  await rejectsInput(scan(nl), /unsupported path "dir\/bad\\nname"/, /\.dockerignore/);
  const cr = await tree(t, { "bad\rname": "" });
  await rejectsInput(scan(cr), /unsupported path "bad\\rname"/);
  const ignored = await tree(t, { ".dockerignore": "dir\n", "dir/bad\nname": "" });
  assert.deepEqual(paths((await scan(ignored)).entries), [".dockerignore"]);
});

test("NUL bytes, segments over 255 bytes and paths over 4096 bytes are refused", () => {
  const refuses = (rel: string, message: RegExp) =>
    assert.throws(
      () => checkEntryPath(rel),
      (e: unknown) => e instanceof UserError && e.code === "input" && message.test(e.message),
    );
  refuses("a/b\0c", /NUL/);
  refuses(`a/${"é".repeat(128)}/b`, /name longer than 255 bytes/); // 128 characters, 256 bytes
  refuses(`${"a/".repeat(2048)}b`, /longer than 4096 bytes/);
  checkEntryPath(`a/${"é".repeat(127)}x/b`); // 255 bytes is fine
  checkEntryPath(`${"a/".repeat(2047)}b`); // 4095 bytes is fine
});

test("a real path over 4096 bytes is an input error", async (t) => {
  const root = await tempDir(t);
  const segment = "d".repeat(250);
  const cwd = process.cwd();
  try {
    // Created step by step: no single system call may name a path longer than PATH_MAX.
    process.chdir(root);
    for (let i = 0; i < 17; i++) {
      mkdirSync(segment);
      process.chdir(segment);
    }
    writeFileSync("f", "");
  } finally {
    process.chdir(cwd);
  }
  await rejectsInput(scan(root), /longer than 4096 bytes/);
});

// --- unreadable paths ------------------------------------------------------------------------

type Outcome = { ok: true } | { ok: false; code: string; message: string; hint?: string };

/**
 * Scans `root` as the unprivileged user `nobody` in a child process: mode 000 denies
 * nothing to root, so a test running as root needs another user to see the denial.
 */
function scanAsNobody(root: string): Outcome {
  const code = `import(${JSON.stringify(SCAN_MODULE)})
    .then((m) => m.scanTree({ root: ${JSON.stringify(root)}, useCache: false }))
    .then(() => ({ ok: true }), (e) => ({ ok: false, code: e.code, message: e.message, hint: e.hint }))
    .then((outcome) => console.log(JSON.stringify(outcome)));`;
  const args = ["--import", "tsx", "-e", code];
  const opts = { cwd: PROJECT, encoding: "utf8" as const };
  const haveRunuser = spawnSync("runuser", ["--version"]).status === 0;
  const r = haveRunuser
    ? spawnSync("runuser", ["-u", "nobody", "--", process.execPath, ...args], opts)
    : spawnSync(process.execPath, args, { ...opts, uid: 65534, gid: 65534 });
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout.trim().split("\n").at(-1) ?? "");
}

test("an unreadable directory or file is an input error naming it", async (t) => {
  const root = await tree(t, { "ok.txt": "", "locked.txt": "secret", "secret/inner.txt": "" });
  const asRoot = process.getuid?.() === 0;
  await chmod(root, 0o755); // the scanning user must reach the tree
  await chmod(join(root, "locked.txt"), 0o000);
  await chmod(join(root, "secret"), 0o000);
  const scanWith = async (dockerignore: string): Promise<Outcome> => {
    await writeFile(join(root, ".dockerignore"), dockerignore);
    if (asRoot) return scanAsNobody(root);
    try {
      await scan(root);
      return { ok: true };
    } catch (e) {
      assert.ok(e instanceof UserError, String(e));
      return { ok: false, code: e.code, message: e.message, hint: e.hint };
    }
  };

  try {
    // Ignored, neither is opened (the directory is not even listed).
    assert.deepEqual(await scanWith("secret\nlocked.txt\n"), { ok: true });

    const dir = await scanWith("locked.txt\n");
    assert.equal(dir.ok, false);
    if (!dir.ok) {
      assert.equal(dir.code, "input");
      assert.match(dir.message, /cannot read "secret": permission denied/);
      assert.match(dir.hint ?? "", /fix its permissions or add it to \.dockerignore/);
    }

    const file = await scanWith("secret\n");
    assert.equal(file.ok, false);
    if (!file.ok) {
      assert.equal(file.code, "input");
      assert.match(file.message, /cannot read "locked\.txt": permission denied/);
    }
  } finally {
    // so that a non-root user can remove the tree
    await chmod(join(root, "secret"), 0o755);
    await chmod(join(root, "locked.txt"), 0o644);
  }
});

// --- files changing while read ---------------------------------------------------------------

test("hashFile: a file that changes while it is read is an input error", async (t) => {
  const root = await tree(t, { "f.txt": "0123456789", "g.txt": "0123456789" });
  const f = join(root, "f.txt");
  assert.equal(await hashFile(f, await lstat(f)), sha256("0123456789"));

  // grows between the read and the re-check
  await rejectsInput(
    hashFile(f, await lstat(f), { name: "f.txt", afterRead: () => writeFile(f, "0123456789 and more") }),
    /"f\.txt" changed during the scan/,
    /retry/,
  );
  // same size, new mtime
  const g = join(root, "g.txt");
  await utimes(g, PAST, PAST);
  await rejectsInput(
    hashFile(g, await lstat(g), { afterRead: () => utimes(g, PAST + 1, PAST + 1) }),
    /changed during the scan/,
  );
  // changed between the lstat and the read
  const before = await lstat(g);
  await writeFile(g, "short");
  await rejectsInput(hashFile(g, before), /changed during the scan/);
});

test("hashFile: a large file is streamed and hashed whole", async (t) => {
  const root = await tempDir(t);
  const big = Buffer.alloc(3 * 1024 * 1024 + 17, "abcdefg");
  await writeFile(join(root, "big"), big);
  assert.equal(await hashFile(join(root, "big"), await lstat(join(root, "big"))), sha256(big));
});

// --- stat cache ------------------------------------------------------------------------------

test("stat cache: an unchanged tree is not read again; a changed file is", async (t) => {
  const root = await tree(t, { "a.txt": "alpha", "sub/b.txt": "bravo", "sub/c.txt": "charlie" });
  const cacheFile = join(await tempDir(t), "cache", "scan.json");
  await age(root);

  const first = await scanTree({ root, cacheFile });
  assert.equal(first.stats.hashedFiles, 3);
  assert.equal(first.stats.cacheHits, 0);

  const second = await scanTree({ root, cacheFile });
  assert.equal(second.stats.hashedFiles, 0);
  assert.equal(second.stats.hashedBytes, 0);
  assert.equal(second.stats.cacheHits, second.stats.files);
  assert.deepEqual(second.entries, first.entries);
  // The stat cache and the fingerprint of the tree; no temporary files left.
  assert.deepEqual((await readdir(dirname(cacheFile))).sort(), ["scan.json", "scan.tree.json"]);

  // Same size and the old mtime again: the ctime still gives the change away.
  const b = join(root, "sub/b.txt");
  const old = await lstat(b);
  await writeFile(b, "BRAVO");
  await utimes(b, old.atime, old.mtime);
  const third = await scanTree({ root, cacheFile });
  assert.equal(third.stats.hashedFiles, 1);
  assert.equal(third.stats.cacheHits, 2);
  assert.equal(third.entries.find((e) => e.path === "sub/b.txt")?.hash, sha256("BRAVO"));
  assert.notEqual(manifestDigest(third.entries), manifestDigest(first.entries));

  // One changed record does not rewrite the cache: the file is hashed again when the
  // entries are needed, and the rest still comes from the cache.
  const fourth = await scanTree({ root, cacheFile });
  assert.equal(fourth.stats.hashedFiles, 1);
  assert.equal(fourth.stats.cacheHits, 2);
  assert.deepEqual(fourth.entries, third.entries);
});

test("stat cache: it is saved again once more than 16 records (or 1% of the files) changed", async (t) => {
  const files: Record<string, string> = {};
  for (let i = 0; i < 40; i++) files[`f${i}.txt`] = `file ${i}`;
  const root = await tree(t, files);
  const cacheFile = join(await tempDir(t), "scan.json");
  await age(root);
  await scanTree({ root, cacheFile });
  // Old mtimes on the edited files only (touching the others would change their ctime).
  const edit = async (n: number, text: string) => {
    for (let i = 0; i < n; i++) {
      await writeFile(join(root, `f${i}.txt`), text);
      await utimes(join(root, `f${i}.txt`), PAST, PAST);
    }
  };
  await edit(16, "changed once");
  assert.equal((await scanTree({ root, cacheFile })).stats.hashedFiles, 16);
  // Not saved: those 16 are hashed again.
  assert.equal((await scanTree({ root, cacheFile })).stats.hashedFiles, 16);
  await edit(17, "changed twice");
  assert.equal((await scanTree({ root, cacheFile })).stats.hashedFiles, 17);
  // Saved: nothing is hashed again.
  const after = await scanTree({ root, cacheFile });
  assert.equal(after.stats.hashedFiles, 0);
  assert.equal(after.stats.cacheHits, 40);
});

test("scanSnapshot: an unchanged tree gives the previous digest without reading the stat cache", async (t) => {
  const root = await tree(t, {
    ".dockerignore": "*.log\n",
    "a.txt": "alpha",
    "sub/b.txt": "bravo",
  });
  await symlink("../a.txt", join(root, "sub/link"));
  const cacheFile = join(await tempDir(t), "scan.json");
  await age(root);
  const first = await scanTree({ root, cacheFile });
  assert.equal(first.digest, manifestDigest(first.entries));

  // A file .dockerignore leaves out changes its folder's timestamps, not the manifest.
  await writeFile(join(root, "debug.log"), "noise");
  // Without a stat cache, only the fingerprint can vouch for the files.
  await writeFile(cacheFile, "not json");
  const fast = await scanSnapshot({ root, cacheFile });
  assert.equal(fast.digest, first.digest);
  assert.equal(fast.stats.hashedFiles, 0);
  assert.equal(fast.stats.cacheHits, fast.stats.files);
  // The entries are completed on demand (here by reading the files: the cache is gone).
  assert.deepEqual(await fast.entries(), first.entries);
  assert.equal(fast.stats.hashedFiles, 3);

  // A changed file changes the fingerprint: a full scan, and another digest.
  const b = join(root, "sub/b.txt");
  const old = await lstat(b);
  await writeFile(b, "BRAVO");
  await utimes(b, old.atime, old.mtime);
  const changed = await scanSnapshot({ root, cacheFile });
  assert.notEqual(changed.digest, first.digest);
  assert.equal(changed.digest, manifestDigest(await changed.entries()));
});

test("scanSnapshot: a digest the files do not give is refused when the entries are needed", async (t) => {
  const root = await tree(t, { "a.txt": "alpha", "b.txt": "bravo" });
  const cacheFile = join(await tempDir(t), "scan.json");
  await age(root);
  const first = await scanTree({ root, cacheFile });
  // The saved fingerprint still matches the tree, but the digest next to it is another tree's.
  const treeFile = join(dirname(cacheFile), "scan.tree.json");
  const saved = JSON.parse(await readFile(treeFile, "utf8"));
  await writeFile(treeFile, JSON.stringify({ ...saved, digest: sha256("another tree") }));
  const s = await scanSnapshot({ root, cacheFile });
  assert.equal(s.digest, sha256("another tree"));
  await rejectsInput(s.entries(), /the tree changed during the scan/);
  // The next scan is a full one again and gives the right digest.
  await writeFile(treeFile, "{}");
  assert.equal((await scanSnapshot({ root, cacheFile })).digest, first.digest);
});

test("stat cache: recently modified files are not cached (racily clean)", async (t) => {
  const root = await tree(t, { "old.txt": "old" });
  await age(root);
  await writeFile(join(root, "new.txt"), "new"); // mtime: now
  const cacheFile = join(await tempDir(t), "scan.json");
  let real = "";
  for (let i = 0; i < 2; i++) {
    const r = await scanTree({ root, cacheFile });
    assert.equal(r.stats.hashedFiles, i === 0 ? 2 : 1);
    assert.equal(r.stats.cacheHits, i === 0 ? 0 : 1);
    real = r.root;
  }
  assert.deepEqual((await loadCache(cacheFile, real))?.paths, ["old.txt"]);
});

test("stat cache: a corrupt cache file or one for another tree is ignored", async (t) => {
  const root = await tree(t, { "a.txt": "alpha" });
  await age(root);
  const cacheFile = join(await tempDir(t), "scan.json");
  await writeFile(cacheFile, "{ not json");
  const r = await scanTree({ root, cacheFile });
  assert.equal(r.stats.hashedFiles, 1);
  assert.equal((await scanTree({ root, cacheFile })).stats.cacheHits, 1); // rewritten

  const other = await tree(t, { "a.txt": "alpha" });
  await age(other);
  const o = await scanTree({ root: other, cacheFile });
  assert.equal(o.stats.cacheHits, 0);
  assert.equal(o.stats.hashedFiles, 1);
});

test("stat cache: useCache false neither reads nor writes it", async (t) => {
  const root = await tree(t, { "a.txt": "alpha" });
  await age(root);
  const cacheFile = join(await tempDir(t), "scan.json");
  await scanTree({ root, cacheFile, useCache: false });
  await assert.rejects(lstat(cacheFile), { code: "ENOENT" });
});

test("defaultCacheFile: under $XDG_CACHE_HOME or ~/.cache, named after the real path of the root", async (t) => {
  const root = await tempDir(t);
  const alias = join(await tempDir(t), "alias");
  await symlink(root, alias);
  const id = sha256(await realpath(root)).slice(0, 16);
  const saved = process.env.XDG_CACHE_HOME;
  t.after(() => {
    if (saved === undefined) delete process.env.XDG_CACHE_HOME;
    else process.env.XDG_CACHE_HOME = saved;
  });
  process.env.XDG_CACHE_HOME = "/var/cache/me";
  assert.equal(defaultCacheFile(root), `/var/cache/me/snapdeploy/scan/${id}.stat`);
  assert.equal(defaultCacheFile(alias), defaultCacheFile(root));
  process.env.XDG_CACHE_HOME = "relative/ignored";
  assert.equal(defaultCacheFile(root), join(homedir(), ".cache", "snapdeploy", "scan", `${id}.stat`));
});

test("stat cache: rescanning a 2,000-file tree hashes nothing", async (t) => {
  const root = await tempDir(t);
  for (let d = 0; d < 20; d++) {
    await mkdir(join(root, `d${d}`));
    await Promise.all(
      Array.from({ length: 100 }, (_, i) => writeFile(join(root, `d${d}`, `f${i}.txt`), `${d}/${i}\n`)),
    );
  }
  await age(root);
  const cacheFile = join(await tempDir(t), "scan.json");
  const first = await scanTree({ root, cacheFile });
  assert.equal(first.stats.files, 2000);
  assert.equal(first.stats.hashedFiles, 2000);
  const second = await scanTree({ root, cacheFile });
  assert.equal(second.stats.hashedFiles, 0);
  assert.equal(second.stats.cacheHits, 2000);
  assert.equal(manifestDigest(second.entries), manifestDigest(first.entries));
});

// --- digest ----------------------------------------------------------------------------------

test("compareEntryPaths orders by UTF-16 code units; manifestDigest hashes the canonical lines", () => {
  const sorted = ["B", "a", "a b", "a-b", "a/b", "a/b/c", "ab", "é"].map((path) => ({ path }));
  assert.deepEqual([...sorted].reverse().sort(compareEntryPaths), sorted);

  const entries: Entry[] = [
    { path: "bin", type: "dir", mode: 0o755, size: 0 },
    { path: "bin/a b", type: "file", mode: 0o644, size: 2, hash: sha256("hi") },
    { path: "link", type: "symlink", mode: 0o777, size: 7, target: "bin/a b" },
  ];
  const lines = ["dir 755 0 - bin", `file 644 2 ${sha256("hi")} bin/a b`, "symlink 777 7 bin/a b link"];
  const text = lines.map((l) => `${l}\n`).join("");
  assert.equal(manifestDigest(entries), sha256(text));
  assert.equal(manifestDigest([]), sha256(""));
  // Many entries (hashed in several slices) give the hash of all their lines, in order.
  const many: Entry[] = Array.from({ length: 3000 }, (_, i) => ({
    path: `src/é-${"x".repeat(i % 90)}/${i}`,
    type: "file",
    mode: 0o644,
    size: i,
    hash: sha256(String(i)),
  }));
  const manyText = many.map((e) => `file 644 ${e.size} ${e.hash} ${e.path}\n`).join("");
  assert.ok(manyText.length > 3 * 65536);
  assert.equal(manifestDigest(many), sha256(manyText));
});
