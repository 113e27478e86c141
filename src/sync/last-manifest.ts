/**
 * The manifest this machine last sent for a workspace, kept in the local cache so that the
 * next sync can send only its difference from it: the agent names the digest its workspace
 * holds, and when that is the one kept here, a diff is enough (protocol/manifest.ts).
 *
 * One file per tree and workspace: a header line {"v","digest"}, then one entry per line in
 * manifest order. Read a slice at a time and compared with the new manifest as it is read,
 * so neither the file nor the old entries are ever held whole; the digest of what was read
 * is checked against the header before the diff is used.
 */
import { createHash, randomBytes } from "node:crypto";
import { closeSync, mkdirSync, openSync, readSync, renameSync, rmSync, writeSync } from "node:fs";
import { dirname } from "node:path";
import { compareEntryPaths, type Entry, type ManifestDiff } from "../protocol/manifest.js";
import { cacheDir } from "../util/cache.js";

const VERSION = 1;

/** Where the manifest last sent from `root` to the workspace user/project is kept. */
export function lastManifestFile(root: string, user: string, project: string): string {
  const id = createHash("sha256").update(`${root}\n${user}\n${project}`).digest("hex").slice(0, 16);
  return cacheDir("sent", `${id}.jsonl`);
}

/** Lines of a file, a slice at a time. */
function* lines(file: string): Generator<string> {
  const fd = openSync(file, "r");
  try {
    const buf = Buffer.allocUnsafe(1 << 20);
    let rest = "";
    for (;;) {
      const n = readSync(fd, buf, 0, buf.length, null);
      if (n === 0) break;
      const text = rest + buf.toString("utf8", 0, n);
      const parts = text.split("\n");
      rest = parts.pop() as string;
      yield* parts;
    }
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

const canonical = (e: Entry) =>
  `${e.type} ${e.mode.toString(8)} ${e.size} ${e.hash ?? e.target ?? "-"} ${e.path}\n`;

/**
 * The diff from the kept manifest to `to` (sorted), when the kept one has digest `base`;
 * undefined when there is none, it is another, or the file is damaged.
 */
export function diffFromKept(file: string, base: string, to: readonly Entry[]): ManifestDiff | undefined {
  try {
    const it = lines(file);
    const head = it.next();
    if (head.done) return undefined;
    const h = JSON.parse(head.value) as { v?: unknown; digest?: unknown };
    if (h.v !== VERSION || h.digest !== base) {
      it.return(undefined);
      return undefined;
    }
    const hash = createHash("sha256");
    let slice = "";
    const remove: string[] = [];
    const put: Entry[] = [];
    let j = 0;
    let prev: string | undefined;
    for (const line of it) {
      const a = JSON.parse(line) as Entry;
      if (typeof a.path !== "string" || (prev !== undefined && !(prev < a.path))) return undefined;
      prev = a.path;
      slice += canonical(a);
      if (slice.length >= 1 << 16) {
        hash.update(slice);
        slice = "";
      }
      // Everything new that sorts before a is put; a itself is kept, changed or removed.
      while (j < to.length && compareEntryPaths(to[j] as Entry, a) < 0) put.push(to[j++] as Entry);
      const b = to[j];
      if (b && b.path === a.path) {
        if (canonical(b) !== canonical(a)) put.push(b);
        j++;
      } else remove.push(a.path);
    }
    while (j < to.length) put.push(to[j++] as Entry);
    hash.update(slice);
    return hash.digest("hex") === base ? { remove, put } : undefined;
  } catch {
    return undefined; // missing or damaged: the whole manifest is sent
  }
}

/** Keeps `entries` (digest `digest`) as the manifest last sent; failures only cost the next diff. */
export function keepManifest(file: string, digest: string, entries: readonly Entry[]): void {
  const tmp = `${file}.${process.pid}.${randomBytes(6).toString("hex")}.tmp`;
  try {
    mkdirSync(dirname(file), { recursive: true });
    const fd = openSync(tmp, "w", 0o600);
    try {
      writeSync(fd, `${JSON.stringify({ v: VERSION, digest })}\n`);
      for (let i = 0; i < entries.length; i += 2000) {
        const body = entries
          .slice(i, i + 2000)
          .map((e) => JSON.stringify(e))
          .join("\n");
        writeSync(fd, `${body}\n`);
      }
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, file);
  } catch {
    rmSync(tmp, { force: true });
  }
}
