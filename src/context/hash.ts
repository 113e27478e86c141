/**
 * Hashing the files of a scan: small files from one synchronous read and a one-shot hash,
 * larger ones read asynchronously (in one read, or streamed in chunks), many at a time;
 * each checked against its lstat from the walk so a hash always describes one version
 * of the file.
 */
import { createHash, hash as oneShotHash } from "node:crypto";
import {
  close,
  closeSync,
  constants,
  fstat,
  fstatSync,
  open as fsOpen,
  read as fsRead,
  openSync,
  readSync,
  type Stats,
} from "node:fs";
import { promisify } from "node:util";
import type { Entry } from "../protocol/manifest.js";
import { collectGarbage } from "../util/memory.js";
import { changed, fsError } from "./fs-errors.js";
import type { FileStamp } from "./stat-cache.js";

/** File reads in flight per scan. */
const CONCURRENCY = 64;
/** Files smaller than this are hashed from one read; larger ones are streamed in chunks. */
const SMALL_FILE = 1 << 20;
/** Files hashed (or sent) between two forced collections on a large tree (see collectGarbage). */
export const GC_EVERY = 25_000;
/** Files up to this size are read with synchronous calls (see hashFile). */
const SYNC_READ = 256 << 10;
const CHUNK = 256 << 10;
// File descriptors through the callback API: an order of magnitude cheaper per call than
// fs/promises FileHandles, which matters when most files are a few kilobytes.
const openFd = promisify(fsOpen);
const readFd = promisify(fsRead);
const fstatFd = promisify(fstat);
const closeFd = promisify(close);

/** What hashing a file checks it against: its lstat from the walk. */
export type HashStat = Pick<Stats, "size" | "mtimeMs" | "ino">;

/** Hooks for `hashFile`. */
export interface HashFileOptions {
  /** The path as shown in error messages; default the file's path. */
  name?: string;
  /** Runs after the content was read and before the file is checked again. */
  afterRead?: () => void | Promise<void>;
}

/**
 * sha256 hex of the regular file `file`, whose lstat taken just before is `expected`. Does
 * not follow a symlink put in its place since. Throws UserError("input") when the file
 * changed between `expected` and the end of the read (size, mtime or inode differ, or a
 * different number of bytes was read): the hash would describe no single version of it.
 */
export async function hashFile(
  file: string,
  expected: HashStat,
  opts: HashFileOptions = {},
): Promise<string> {
  const name = opts.name ?? file;
  if (expected.size <= SYNC_READ) {
    // One-shot hashing: no Hash object (and its native state) per file, which for 100k
    // files is memory the garbage collector does not see until late.
    let digest: string;
    // Small files (most of a source tree) are read with synchronous calls: from the page
    // cache that takes microseconds, four trips through libuv's thread pool take more.
    try {
      const fd = openSync(file, constants.O_RDONLY | constants.O_NOFOLLOW);
      try {
        const buf = Buffer.allocUnsafe(expected.size);
        let read = 0;
        while (read < expected.size) {
          const n = readSync(fd, buf, read, expected.size - read, read);
          if (n === 0) break;
          read += n;
        }
        digest = oneShotHash("sha256", read === buf.length ? buf : buf.subarray(0, read), "hex");
        await opts.afterRead?.();
        checkUnchanged(name, read, fstatSync(fd), expected);
      } finally {
        closeSync(fd);
      }
    } catch (e) {
      throw fsError(e, name);
    }
    return digest;
  }
  const hash = createHash("sha256");
  try {
    const fd = await openFd(file, constants.O_RDONLY | constants.O_NOFOLLOW);
    try {
      // Reads exactly the size lstat reported: in one read when small, in chunks otherwise.
      // Growth or shrinkage shows in the size check below.
      const buf = Buffer.allocUnsafe(expected.size < SMALL_FILE ? expected.size : CHUNK);
      let read = 0;
      while (read < expected.size) {
        const { bytesRead } = await readFd(fd, buf, 0, Math.min(buf.length, expected.size - read), read);
        if (bytesRead === 0) break;
        hash.update(buf.subarray(0, bytesRead));
        read += bytesRead;
      }
      await opts.afterRead?.();
      checkUnchanged(name, read, await fstatFd(fd), expected);
    } finally {
      await closeFd(fd);
    }
  } catch (e) {
    throw fsError(e, name);
  }
  return hash.digest("hex");
}

/**
 * Throws when a file hashed from `read` bytes is not the one its lstat `expected`
 * described: a different size, mtime or inode afterwards, or fewer bytes than expected.
 */
function checkUnchanged(name: string, read: number, after: HashStat, expected: HashStat): void {
  if (
    read !== expected.size ||
    after.size !== expected.size ||
    after.mtimeMs !== expected.mtimeMs ||
    after.ino !== expected.ino
  ) {
    throw changed(name);
  }
}

/** A file to hash, with its lstat from the walk and its index among the walk's files. */
export interface ToHash {
  entry: Entry;
  st: FileStamp;
  index: number;
}

/** The state of a scan that hashing reads and updates. */
export interface HashRun {
  /** The root with a trailing '/'. */
  prefix: string;
  stats: { hashedFiles: number; hashedBytes: number };
  /** Files with an mtime at or after this are not cached. */
  racyFrom: number;
  /** Set when the scan failed: queued work does not start. */
  failed: boolean;
}

/**
 * Hashes `files`, CONCURRENCY at a time, and marks them in `kept` (by index) for the stat
 * cache unless racily clean. Returns how many it marked.
 */
export async function hashAll(w: HashRun, files: ToHash[], kept: Uint8Array): Promise<number> {
  let next = 0;
  let added = 0;
  const lane = async () => {
    while (next < files.length) {
      if (w.failed) throw new Error("scan aborted");
      const { entry, st, index } = files[next++] as ToHash;
      if (next % GC_EVERY === 0) collectGarbage(files.length);
      const hash = await hashFile(w.prefix + entry.path, st, { name: entry.path });
      entry.hash = hash;
      w.stats.hashedFiles++;
      w.stats.hashedBytes += st.size;
      if (st.mtimeMs < w.racyFrom) {
        kept[index] = 1;
        added++;
      }
    }
  };
  try {
    await Promise.all(Array.from({ length: CONCURRENCY }, lane));
  } catch (e) {
    w.failed = true;
    throw e;
  }
  return added;
}
