/**
 * Scans a working tree into the manifest of a build context: every path Docker would
 * send (after `.dockerignore`), with content hashes for files. A local stat cache makes
 * a rescan of an unchanged tree cost one lstat per path and no reads.
 */
import { createHash } from "node:crypto";
import { realpath, stat } from "node:fs/promises";
import { resolve } from "node:path";
import { UserError } from "../errors.js";
import { compareEntryPaths, type Entry, manifestText } from "../protocol/manifest.js";
import { collectGarbage } from "../util/memory.js";
import { readDockerignore } from "./dockerignore.js";
import { fingerprintFile, loadFingerprint, saveFingerprint, TreePrint } from "./fingerprint.js";
import { fsError, quote } from "./fs-errors.js";
import { hashAll, type ToHash } from "./hash.js";
import { type CacheRecord, defaultCacheFile, loadCache, RACY_MS, saveCache } from "./stat-cache.js";
import { checkLinkChains, type ScanStats, type Walk, walkDir, YIELD_EVERY_MS } from "./walk.js";

export { fingerprintFile } from "./fingerprint.js";
export { GC_EVERY, type HashFileOptions, type HashStat, hashFile } from "./hash.js";
export { defaultCacheFile } from "./stat-cache.js";
export { checkEntryPath, type ScanStats } from "./walk.js";

export interface ScanResult {
  /** The scanned directory: absolute, symlinks resolved. */
  root: string;
  /** Sorted by `compareEntryPaths`. */
  entries: Entry[];
  stats: ScanStats;
  /** manifestDigest(entries). */
  digest: string;
}

/**
 * A scanned tree whose manifest digest is known and whose file hashes may still be in the
 * stat cache (see scanSnapshot).
 */
export interface Snapshot {
  root: string;
  /** manifestDigest of the complete entries. */
  digest: string;
  stats: ScanStats;
  /**
   * The entries, sorted by `compareEntryPaths`, every file with its hash. The first call may
   * read the stat cache and hash files; it fails like a scan when the tree changed since.
   */
  entries(): Promise<Entry[]>;
  /**
   * The entries' canonical lines (protocol/manifest.ts: the text the digest hashes), once
   * entries() is complete: what the kept copy of the last sync is compared with.
   */
  manifestText(): Promise<string>;
  /** The paths of the regular files the context holds (no hashing needed). */
  files(): string[];
}

export interface ScanOptions {
  /** The context directory, absolute or relative to the working directory. */
  root: string;
  /** Where the stat cache lives; default `defaultCacheFile(root)`. Keep it outside the tree. */
  cacheFile?: string;
  /** Read and update the stat cache; default true. */
  useCache?: boolean;
  /** Receives warnings (a skipped special file, a cache that could not be saved); default: dropped. */
  onWarning?: (message: string) => void;
  /** Called now and then while the tree is walked, with the counts so far. */
  onProgress?: (stats: Readonly<ScanStats>) => void;
}

/**
 * Scans `opts.root`. Symlinks are recorded, never followed; sockets, FIFOs and devices are
 * skipped with a warning. Throws UserError("notFound") when the root does not exist and
 * UserError("input") for what cannot go into a context: a symlink leading out of the tree,
 * an unsupported path, an unreadable path, a file that changed while it was read, a bad
 * `.dockerignore` pattern.
 */
export async function scanTree(opts: ScanOptions): Promise<ScanResult> {
  const snapshot = await scanSnapshot(opts);
  const entries = await snapshot.entries();
  return { root: snapshot.root, entries, stats: snapshot.stats, digest: snapshot.digest };
}

/**
 * Scans like scanTree, but leaves the file hashes in the stat cache when it can: when every
 * path's lstat (type, mode, size, mtime, ctime, inode, link target) equals the previous
 * scan's, in the same order, the manifest is the previous one and so is its digest (kept
 * next to the stat cache with a fingerprint of those lstats). Nothing else is read then: a
 * no-op sync needs only the digest. `entries()` completes the hashes from the stat cache
 * when the manifest is needed after all, and checks that they give the same digest.
 */
export async function scanSnapshot(opts: ScanOptions): Promise<Snapshot> {
  const started = Date.now();
  const root = await resolveRoot(opts.root);
  const useCache = opts.useCache ?? true;
  const cacheFile = opts.cacheFile ?? defaultCacheFile(root);
  const treeFile = fingerprintFile(cacheFile);
  const [rules, previous] = await Promise.all([
    readDockerignore(root),
    useCache ? loadFingerprint(treeFile, root) : undefined,
  ]);
  const walk: Walk = {
    root,
    prefix: root.endsWith("/") ? root : `${root}/`,
    rules,
    files: [],
    stamps: [],
    warn: opts.onWarning ?? (() => {}),
    entries: [],
    text: "",
    stats: {
      files: 0,
      dirs: 0,
      symlinks: 0,
      bytes: 0,
      hashedFiles: 0,
      hashedBytes: 0,
      cacheHits: 0,
      ignored: 0,
    },
    links: [],
    print: new TreePrint(),
    racy: false,
    racyFrom: started - RACY_MS,
    yieldAt: performance.now() + YIELD_EVERY_MS,
    failed: false,
    progress: opts.onProgress,
  };
  try {
    await walkDir(walk, "");
  } catch (e) {
    walk.failed = true;
    throw e;
  }
  checkLinkChains(walk);
  // walk.entries are sorted once needed (completeHashes): a no-op needs only the fingerprint.
  const fingerprint = walk.print.digest();
  collectGarbage(walk.entries.length);
  const complete = () => completeHashes(walk, useCache ? cacheFile : undefined);
  const files = () => walk.files.map((e) => e.path);

  if (previous && !walk.racy && previous.fingerprint === fingerprint) {
    walk.stats.cacheHits = walk.stats.files; // every file is vouched for, through the fingerprint
    let completed: Promise<Entry[]> | undefined;
    const entries = async () => {
      walk.stats.cacheHits = 0;
      if ((await complete()) !== previous.digest) {
        // The stat cache no longer matches the tree the fingerprint vouched for (a file
        // changed since the walk, or the cache was replaced): the digest was wrong.
        throw new UserError("input", "the tree changed during the scan", {
          hint: "retry when nothing is writing to the tree",
        });
      }
      return walk.entries;
    };
    const all = () => {
      completed ??= entries();
      return completed;
    };
    return {
      root,
      digest: previous.digest,
      stats: walk.stats,
      files,
      entries: all,
      manifestText: async () => {
        await all();
        return walk.text;
      },
    };
  }
  const digest = await complete();
  if (useCache && !walk.racy) await saveFingerprint(treeFile, root, fingerprint, digest, walk.warn);
  return {
    root,
    digest,
    stats: walk.stats,
    files,
    entries: async () => walk.entries,
    manifestText: async () => walk.text,
  };
}

/**
 * Gives every file of the walk its hash: from the stat cache when it vouches for the file,
 * else by reading it; saves the cache when it changed. Returns the manifest digest.
 */
async function completeHashes(w: Walk, cacheFile: string | undefined): Promise<string> {
  w.entries.sort(compareEntryPaths);
  const cache = cacheFile ? await loadCache(cacheFile, w.root) : undefined;
  /** 1 for the files whose record the cache is to keep: found in it, or hashed and not racy. */
  const kept = new Uint8Array(w.files.length);
  const toHash: ToHash[] = [];
  let hits = 0;
  for (let i = 0; i < w.files.length; i++) {
    const entry = w.files[i] as Entry;
    const st = {
      size: entry.size,
      mtimeMs: w.stamps[3 * i] ?? 0,
      ctimeMs: w.stamps[3 * i + 1] ?? 0,
      ino: w.stamps[3 * i + 2] ?? 0,
    };
    const hash = cache?.hashOf(entry, st);
    if (hash === undefined) toHash.push({ entry, st, index: i });
    else {
      entry.hash = hash;
      kept[i] = 1;
      hits++;
    }
  }
  w.stats.cacheHits += hits;
  let newRecords = 0;
  try {
    newRecords = await hashAll(w, toHash, kept);
  } catch (e) {
    w.failed = true; // queued work does not start
    throw e;
  }
  collectGarbage(toHash.length);
  // Rewriting the whole cache for a few changed files costs more than hashing those few
  // again next time (files changed just before a scan are not cached anyway: RACY_MS), so
  // an existing cache is saved only when enough records came or went.
  const changed = Math.max(newRecords, (cache?.paths.length ?? 0) - hits);
  if (cacheFile && (!cache || changed > Math.max(SAVE_AFTER, w.files.length / 100))) {
    const records: CacheRecord[] = [];
    for (let i = 0; i < w.files.length; i++) {
      if (kept[i] === 0) continue;
      const entry = w.files[i] as Entry;
      const [mtimeMs = 0, ctimeMs = 0, ino = 0] = w.stamps.slice(3 * i, 3 * i + 3);
      records.push({ entry, st: { size: entry.size, mtimeMs, ctimeMs, ino } });
    }
    await saveCache(cacheFile, w.root, records, w.warn);
  }
  collectGarbage(w.entries.length);
  w.text = manifestText(w.entries);
  return createHash("sha256").update(w.text).digest("hex");
}

/** The stat cache is saved once more than this many records (or 1% of the files) changed. */
const SAVE_AFTER = 16;

async function resolveRoot(root: string): Promise<string> {
  const abs = resolve(root);
  try {
    const real = await realpath(abs);
    if (!(await stat(real)).isDirectory()) {
      throw new UserError("input", `the context ${quote(abs)} is not a directory`, {
        hint: "pass the directory that holds the Dockerfile",
      });
    }
    return real;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") {
      throw new UserError("notFound", `the context directory ${quote(abs)} does not exist`, { cause: e });
    }
    throw fsError(e, abs);
  }
}
