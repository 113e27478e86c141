/**
 * The manifest this machine last sent for a workspace, kept in the local cache so that the
 * next sync can send only its difference from it: the agent names the digest its workspace
 * holds, and when that is the one kept here, a diff is enough (protocol/manifest.ts).
 *
 * One file per tree and workspace: a header line {"v","digest"}, then the manifest's
 * canonical lines (protocol/manifest.ts), the very bytes its digest hashes: the file checks
 * itself with one hash, and the new manifest's canonical text is compared with it as bytes.
 * What lies between their common start and common end is all that differs: only those
 * lines are looked at, so a one-file change among 100k entries parses two lines. A
 * manifest with a symlink whose target holds a newline (a line of its own, then) is not
 * kept: its next sync sends the whole manifest.
 */
import { createHash, randomBytes } from "node:crypto";
import {
  closeSync,
  mkdirSync,
  openSync,
  readFileSync,
  readSync,
  renameSync,
  rmSync,
  writeSync,
} from "node:fs";
import { dirname } from "node:path";
import { compareEntryPaths, type Entry, type ManifestDiff, manifestText } from "../protocol/manifest.js";
import { cacheDir } from "../util/cache.js";

const VERSION = 2;

/**
 * Where the manifest last sent from `root` to the workspace user/project is kept, per build
 * server data volume (its hello's id): another volume holds other workspaces.
 */
export function lastManifestFile(root: string, user: string, project: string, volume = ""): string {
  const id = createHash("sha256")
    .update(`${root}\n${user}\n${project}\n${volume}`)
    .digest("hex")
    .slice(0, 16);
  return cacheDir("sent", `${id}.jsonl`);
}

/** The digest of the manifest kept in `file` (its header line); undefined when there is none. */
export function keptDigest(file: string): string | undefined {
  try {
    const fd = openSync(file, "r");
    const buf = Buffer.allocUnsafe(512);
    let n: number;
    try {
      n = readSync(fd, buf, 0, buf.length, 0);
    } finally {
      closeSync(fd);
    }
    const end = buf.subarray(0, n).indexOf(10);
    if (end < 0) return undefined;
    const h = JSON.parse(buf.toString("utf8", 0, end)) as { v?: unknown; digest?: unknown };
    return h.v === VERSION && typeof h.digest === "string" ? h.digest : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The path of a kept canonical line, "type mode size hash-or-target path": after the fourth
 * space, since only a symlink's target may hold spaces, and its byte length is the size.
 */
function linePath(line: string): string | undefined {
  let i = -1;
  for (let k = 0; k < 3; k++) {
    i = line.indexOf(" ", i + 1);
    if (i < 0) return undefined;
  }
  const [type, , size] = line.slice(0, i).split(" ");
  if (type !== "symlink") {
    const j = line.indexOf(" ", i + 1);
    return j < 0 ? undefined : line.slice(j + 1);
  }
  // The target: `size` bytes from i + 1.
  const rest = Buffer.from(line.slice(i + 1), "utf8");
  const n = Number(size);
  if (!Number.isSafeInteger(n) || rest[n] !== 32) return undefined;
  return rest.subarray(n + 1).toString("utf8");
}

/** Bytes from the start that `a` and `b` have in common. */
function commonStart(a: Buffer, b: Buffer): number {
  const n = Math.min(a.length, b.length);
  const CHUNK = 1 << 16;
  let i = 0;
  while (i + CHUNK <= n && a.subarray(i, i + CHUNK).equals(b.subarray(i, i + CHUNK))) i += CHUNK;
  while (i < n && a[i] === b[i]) i++;
  return i;
}

/** Bytes from the end that `a` and `b` have in common, at most `max`. */
function commonEnd(a: Buffer, b: Buffer, max: number): number {
  const CHUNK = 1 << 16;
  let k = 0;
  while (
    k + CHUNK <= max &&
    a.subarray(a.length - k - CHUNK, a.length - k).equals(b.subarray(b.length - k - CHUNK, b.length - k))
  )
    k += CHUNK;
  while (k < max && a[a.length - 1 - k] === b[b.length - 1 - k]) k++;
  return k;
}

/** The number of newlines in `b` from `start` to `end`. */
function newlines(b: Buffer, start: number, end: number): number {
  let n = 0;
  for (let i = b.indexOf(10, start); i >= 0 && i < end; i = b.indexOf(10, i + 1)) n++;
  return n;
}

/**
 * The diff from the kept manifest to `to` (sorted; `text` its canonical lines), when the
 * kept one has digest `base`; undefined when there is none, it is another, or the file is
 * damaged.
 */
export function diffFromKept(
  file: string,
  base: string,
  to: readonly Entry[],
  text: string = manifestText(to),
): ManifestDiff | undefined {
  try {
    const data = readFileSync(file);
    const nl = data.indexOf(10);
    if (nl < 0) return undefined;
    const h = JSON.parse(data.toString("utf8", 0, nl)) as { v?: unknown; digest?: unknown };
    if (h.v !== VERSION || h.digest !== base) return undefined;
    const old = data.subarray(nl + 1);
    // The body is the manifest's canonical lines: its hash is the digest.
    if (createHash("sha256").update(old).digest("hex") !== base) return undefined;
    const now = Buffer.from(text, "utf8");
    // Both are whole lines: what differs starts after a newline both have in common, and
    // ends with a newline both have in common.
    let start = commonStart(old, now);
    start = start === 0 ? 0 : old.lastIndexOf(10, start - 1) + 1;
    let end = commonEnd(old, now, Math.min(old.length, now.length) - start);
    const firstNl = old.indexOf(10, old.length - end);
    end = firstNl < 0 ? 0 : old.length - firstNl - 1;
    const first = newlines(now, 0, start); // index of the first entry that may differ
    const after = newlines(now, now.length - end, now.length); // entries alike at the end
    const oldLines = old.toString("utf8", start, old.length - end).split("\n");
    oldLines.pop(); // after the last newline
    const newLines = now.toString("utf8", start, now.length - end).split("\n");
    newLines.pop();
    const remove: string[] = [];
    const put: Entry[] = [];
    let j = first;
    const stop = to.length - after;
    if (newLines.length !== stop - first) return undefined; // a line is not an entry
    let prev: string | undefined;
    for (const line of oldLines) {
      const path = linePath(line);
      if (path === undefined || (prev !== undefined && !(prev < path))) return undefined;
      prev = path;
      // Everything new that sorts before it is put; the old entry is then changed or removed.
      while (j < stop && compareEntryPaths(to[j] as Entry, { path } as Entry) < 0) put.push(to[j++] as Entry);
      const c = to[j];
      if (j < stop && c && c.path === path) {
        if (newLines[j - first] !== line) put.push(c);
        j++;
      } else remove.push(path);
    }
    while (j < stop) put.push(to[j++] as Entry);
    return { remove, put };
  } catch {
    return undefined; // missing or damaged: the whole manifest is sent
  }
}

/**
 * Keeps `entries` (digest `digest`, `text` their canonical lines) as the manifest last
 * sent; failures only cost the next diff.
 */
export function keepManifest(
  file: string,
  digest: string,
  entries: readonly Entry[],
  text: string = manifestText(entries),
): void {
  const tmp = `${file}.${process.pid}.${randomBytes(6).toString("hex")}.tmp`;
  try {
    if (entries.some((e) => e.type === "symlink" && (e.target ?? "").includes("\n"))) {
      rmSync(file, { force: true });
      return;
    }
    mkdirSync(dirname(file), { recursive: true });
    const fd = openSync(tmp, "w", 0o600);
    try {
      writeSync(fd, `${JSON.stringify({ v: VERSION, digest })}\n`);
      writeSync(fd, text);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, file);
  } catch {
    rmSync(tmp, { force: true });
  }
}
