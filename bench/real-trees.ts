/**
 * Real trees for the sync benchmark, fetched from the npm registry at bench time, pinned to
 * exact versions and kept under ~/.cache/snapdeploy-bench (one folder per tree and version):
 *
 *   typescript  the published typescript@5.9.3 package (132 files, 23 MB)
 *   lodash      the published lodash@4.17.21 package (1,054 small files)
 *   deps-4k     a node_modules installed by `npm ci --ignore-scripts` from bench/trees/deps-4k
 *   deps-27k    the same from bench/trees/deps-27k (package.json + package-lock.json committed)
 *
 * The scenarios edit files in place; the original bytes of every edited file are journaled
 * first (`<tree>.edits`), and the next run restores them and removes the dependencies the
 * "dependency added" scenario added, so every run starts from the same tree without
 * fetching or installing it again.
 */
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import {
  appendFileSync,
  closeSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  readSync,
  renameSync,
  rmSync,
  writeFileSync,
  writeSync,
} from "node:fs";
import { readdir, stat } from "node:fs/promises";
import os from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { Fixture } from "./fixtures.js";

export const CACHE = join(os.homedir(), ".cache/snapdeploy-bench");
const TREES_SRC = fileURLToPath(new URL("./trees", import.meta.url));
/** The package the "dependency added" scenario adds (86 files, 2.1 MB). */
const ADDED_DEP = "axios@1.7.9";
const ADDED_PREFIX = "bench-added-";

type Source = { kind: "pack"; spec: string } | { kind: "lock"; dir: string };
export const REAL_TREES: Record<string, Source> = {
  typescript: { kind: "pack", spec: "typescript@5.9.3" },
  lodash: { kind: "pack", spec: "lodash@4.17.21" },
  "deps-4k": { kind: "lock", dir: "deps-4k" },
  "deps-27k": { kind: "lock", dir: "deps-27k" },
};

const npm = (args: string[], cwd: string) =>
  execFileSync("npm", [...args, "--no-audit", "--no-fund", "--loglevel=error"], {
    cwd,
    stdio: ["ignore", "pipe", "pipe"],
    timeout: 600_000,
    encoding: "utf8",
  });

/** A published package's tarball, fetched once into the cache; returns its path. */
function packed(spec: string): string {
  const tgz = join(CACHE, `${spec.replace("@", "-").replace("/", "-")}.tgz`);
  if (!existsSync(tgz)) {
    mkdirSync(CACHE, { recursive: true });
    const name = npm(["pack", spec, "--prefer-offline", "--pack-destination", CACHE], CACHE)
      .trim()
      .split("\n")
      .pop() as string;
    renameSync(join(CACHE, name), tgz);
  }
  return tgz;
}

/** Builds tree `name` into `dir` (a temporary folder, renamed when complete). */
function build(name: string, src: Source, dir: string, log: (line: string) => void) {
  const tmp = `${dir}.tmp`;
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true });
  if (src.kind === "pack") {
    log(`fixture ${name}: fetching ${src.spec}`);
    execFileSync("tar", ["-xzf", packed(src.spec), "-C", tmp, "--strip-components=1"]);
  } else {
    log(`fixture ${name}: npm ci --ignore-scripts from bench/trees/${src.dir}`);
    for (const f of ["package.json", "package-lock.json"])
      copyFileSync(join(TREES_SRC, src.dir, f), join(tmp, f));
    npm(["ci", "--ignore-scripts", "--prefer-offline"], tmp);
  }
  renameSync(tmp, dir);
}

/** Where tree `name` lives: keyed by what it is made from, so a changed pin makes a new tree. */
function treeDir(name: string, src: Source): string {
  const key =
    src.kind === "pack"
      ? (src.spec.split("@").pop() as string)
      : createHash("sha256")
          .update(readFileSync(join(TREES_SRC, src.dir, "package-lock.json")))
          .digest("hex")
          .slice(0, 12);
  return join(CACHE, `${name}-${key}`);
}

/** Puts back what the previous run's scenarios changed: edited bytes, added dependencies. */
function restore(dir: string) {
  const journal = `${dir}.edits`;
  if (existsSync(journal)) {
    const lines = readFileSync(journal, "utf8").split("\n").filter(Boolean).reverse();
    for (const line of lines) {
      const { path, head } = JSON.parse(line) as { path: string; head: string };
      const fd = openSync(join(dir, path), "r+");
      const b = Buffer.from(head, "base64");
      writeSync(fd, b, 0, b.length, 0);
      closeSync(fd);
    }
    rmSync(journal);
  }
  const nm = join(dir, "node_modules");
  if (existsSync(nm))
    for (const d of readdirSync(nm))
      if (d.startsWith(ADDED_PREFIX)) rmSync(join(nm, d), { recursive: true, force: true });
}

/** The tree's regular files, sorted by path, and how many symlinks it has. */
async function listFiles(
  dir: string,
): Promise<{ files: { path: string; size: number }[]; symlinks: number }> {
  const files: { path: string; size: number }[] = [];
  let symlinks = 0;
  const walk = async (rel: string) => {
    for (const d of await readdir(join(dir, rel), { withFileTypes: true })) {
      const p = rel ? `${rel}/${d.name}` : d.name;
      if (d.isDirectory()) await walk(p);
      else if (d.isFile()) files.push({ path: p, size: (await stat(join(dir, p))).size });
      else if (d.isSymbolicLink()) symlinks++;
    }
  };
  await walk("");
  return { files: files.sort((a, b) => (a.path < b.path ? -1 : 1)), symlinks };
}

/** Real tree `name`, built on first use; undefined (the reason logged) when it cannot be fetched. */
export async function realTree(name: string, log: (line: string) => void): Promise<Fixture | undefined> {
  const src = REAL_TREES[name] as Source;
  const dir = treeDir(name, src);
  try {
    if (!existsSync(dir)) build(name, src, dir, log);
    restore(dir);
    packed(ADDED_DEP);
  } catch (e) {
    log(`fixture ${name}: skipped, it could not be fetched: ${(e as Error).message.split("\n")[0]}`);
    return undefined;
  }
  const { files, symlinks } = await listFiles(dir);
  // The one-file edit: a file of about 10 KB (a source file a developer would touch).
  const edits = files.filter((f) => f.size >= 64);
  const one = edits.reduce((a, b) => (Math.abs(b.size - 10240) < Math.abs(a.size - 10240) ? b : a));
  const step = Math.max(1, Math.floor(edits.length / Math.ceil(files.length / 100)));
  log(`fixture ${name}: ${files.length} files in ${dir}`);
  return {
    name,
    dir,
    files: files.length,
    symlinks,
    bytes: files.reduce((n, f) => n + f.size, 0),
    excludes: ["/.git"],
    oneFile: one.path,
    onePercent: edits.filter((_, k) => k % step === 0).map((f) => f.path),
    writtenAt: Date.now(),
    journal: `${dir}.edits`,
  };
}

/**
 * The "dependency added" scenario's change: the pinned ADDED_DEP package extracted as
 * node_modules/bench-added-<nonce>, every file of 32 bytes or more stamped with the nonce so
 * its content is new to every store. Returns the number of files added.
 */
export function addDependency(f: Fixture, nonce: string): number {
  const dest = join(f.dir, "node_modules", `${ADDED_PREFIX}${nonce}`);
  mkdirSync(dest, { recursive: true });
  execFileSync("tar", ["-xzf", packed(ADDED_DEP), "-C", dest, "--strip-components=1"]);
  let n = 0;
  const stamp = Buffer.from(`/* dep ${nonce} */`.padEnd(32).slice(0, 32));
  const walk = (rel: string) => {
    for (const d of readdirSync(join(dest, rel), { withFileTypes: true })) {
      const p = join(dest, rel, d.name);
      if (d.isDirectory()) walk(join(rel, d.name));
      else if (d.isFile()) {
        n++;
        const fd = openSync(p, "r+");
        const probe = Buffer.alloc(32);
        if (readSync(fd, probe, 0, 32, 0) === 32) writeSync(fd, stamp, 0, 32, 0);
        closeSync(fd);
      }
    }
  };
  walk("");
  f.writtenAt = Date.now();
  return n;
}

/** Journals the first 32 bytes of each file (once per file) before the scenarios overwrite them. */
export function journalEdits(journal: string, dir: string, paths: string[]) {
  const seen = new Set(
    existsSync(journal)
      ? readFileSync(journal, "utf8")
          .split("\n")
          .filter(Boolean)
          .map((l) => (JSON.parse(l) as { path: string }).path)
      : [],
  );
  const lines: string[] = [];
  for (const path of paths) {
    if (seen.has(path)) continue;
    const fd = openSync(join(dir, path), "r");
    const head = Buffer.alloc(32);
    const got = readSync(fd, head, 0, 32, 0);
    closeSync(fd);
    lines.push(JSON.stringify({ path, head: head.subarray(0, got).toString("base64") }));
  }
  if (lines.length) appendFileSync(journal, `${lines.join("\n")}\n`);
  if (!existsSync(journal)) writeFileSync(journal, "");
}
