/**
 * The manifest this machine last sent for a workspace, kept in the local cache so that the
 * next sync can send only its difference from it: the agent names the digest its workspace
 * holds, and when that is the one kept here, a diff is enough (protocol/manifest.ts).
 *
 * One file per tree and workspace: a header line {"v","digest"}, then the manifest's
 * canonical lines (protocol/manifest.ts), the very bytes its digest hashes: the file checks
 * itself with one hash, and an entry the new manifest has unchanged is one string compare,
 * not a parse. Read a slice at a time and compared with the new manifest as it is read, so
 * the file is never held whole. A manifest with a symlink whose target holds a newline
 * (a line of its own, then) is not kept: its next sync sends the whole manifest.
 */
import { createHash, randomBytes } from "node:crypto";
import { closeSync, mkdirSync, openSync, readSync, renameSync, rmSync, writeSync } from "node:fs";
import { dirname } from "node:path";
import { StringDecoder } from "node:string_decoder";
import { canonicalLine, compareEntryPaths, type Entry, type ManifestDiff } from "../protocol/manifest.js";
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

/**
 * The file's lines, a slice at a time; `onBytes` sees the bytes after the first line as read
 * (the body, hashed as it goes).
 */
function* lines(file: string, onBytes: (b: Buffer) => void): Generator<string> {
  const fd = openSync(file, "r");
  try {
    const buf = Buffer.allocUnsafe(1 << 20);
    // A character may be split between two reads: the decoder keeps its first bytes.
    const decoder = new StringDecoder("utf8");
    let rest = "";
    let header = true;
    for (;;) {
      const n = readSync(fd, buf, 0, buf.length, null);
      if (n === 0) break;
      const chunk = buf.subarray(0, n);
      if (header) {
        const nl = chunk.indexOf(10);
        if (nl >= 0) {
          header = false;
          onBytes(chunk.subarray(nl + 1));
        }
      } else onBytes(chunk);
      const text = rest + decoder.write(chunk);
      const parts = text.split("\n");
      rest = parts.pop() as string;
      yield* parts;
    }
    rest += decoder.end();
    if (rest) yield rest;
  } finally {
    closeSync(fd);
  }
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

/**
 * The diff from the kept manifest to `to` (sorted), when the kept one has digest `base`;
 * undefined when there is none, it is another, or the file is damaged.
 */
export function diffFromKept(file: string, base: string, to: readonly Entry[]): ManifestDiff | undefined {
  try {
    const hash = createHash("sha256");
    const it = lines(file, (b) => hash.update(b));
    const head = it.next();
    if (head.done) return undefined;
    const h = JSON.parse(head.value) as { v?: unknown; digest?: unknown };
    if (h.v !== VERSION || h.digest !== base) {
      it.return(undefined);
      return undefined;
    }
    const remove: string[] = [];
    const put: Entry[] = [];
    let j = 0;
    let prev: string | undefined;
    for (const line of it) {
      const b = to[j];
      // The same line: the same entry, unchanged (most lines, when little changed).
      const text = b && canonicalLine(b);
      if (b && text && text.length === line.length + 1 && text.startsWith(line)) {
        prev = b.path;
        j++;
        continue;
      }
      const path = linePath(line);
      if (path === undefined || (prev !== undefined && !(prev < path))) return undefined;
      prev = path;
      // Everything new that sorts before it is put; the old entry is then changed or removed.
      while (j < to.length && compareEntryPaths(to[j] as Entry, { path } as Entry) < 0)
        put.push(to[j++] as Entry);
      const c = to[j];
      if (c && c.path === path) {
        if (canonicalLine(c) !== `${line}\n`) put.push(c);
        j++;
      } else remove.push(path);
    }
    while (j < to.length) put.push(to[j++] as Entry);
    // The body is the manifest's canonical lines: its hash is the digest.
    return hash.digest("hex") === base ? { remove, put } : undefined;
  } catch {
    return undefined; // missing or damaged: the whole manifest is sent
  }
}

/** Keeps `entries` (digest `digest`) as the manifest last sent; failures only cost the next diff. */
export function keepManifest(file: string, digest: string, entries: readonly Entry[]): void {
  const tmp = `${file}.${process.pid}.${randomBytes(6).toString("hex")}.tmp`;
  try {
    if (entries.some((e) => e.type === "symlink" && (e.target ?? "").includes("\n"))) {
      rmSync(file, { force: true });
      return;
    }
    mkdirSync(dirname(file), { recursive: true });
    const fd = openSync(tmp, "w", 0o600);
    try {
      let slice = `${JSON.stringify({ v: VERSION, digest })}\n`;
      for (const e of entries) {
        slice += canonicalLine(e);
        if (slice.length >= 1 << 16) {
          writeSync(fd, slice);
          slice = "";
        }
      }
      writeSync(fd, slice);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, file);
  } catch {
    rmSync(tmp, { force: true });
  }
}
