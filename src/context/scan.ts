/**
 * Scans a working tree into the manifest of a build context: every path Docker would
 * send (after `.dockerignore`), with content hashes for files. A local stat cache makes
 * a rescan of an unchanged tree cost one lstat per path and no reads.
 */
import { createHash, type Hash, hash as oneShotHash, randomBytes } from "node:crypto";
import {
  close,
  closeSync,
  constants,
  fstatSync,
  openSync,
  readSync,
  writeSync,
  type Dirent,
  fstat,
  open as fsOpen,
  read as fsRead,
  lstatSync,
  readdirSync,
  readlinkSync,
  realpathSync,
  type Stats,
} from "node:fs";
import { mkdir, readFile, realpath, rename, rm, stat, writeFile } from "node:fs/promises";
import { dirname, isAbsolute, posix, resolve } from "node:path";
import { promisify } from "node:util";
import { UserError } from "../errors.js";
import { cacheDir } from "../util/cache.js";
import { compareEntryPaths, type Entry, manifestDigest } from "../protocol/manifest.js";
import { collectGarbage } from "../util/memory.js";
import { type IgnoreRules, readDockerignore } from "./dockerignore.js";

/**
 * Counts for one scan. `files`/`dirs`/`symlinks` count entries; `bytes` is the total size of
 * the files; `hashedFiles`/`hashedBytes` what was actually read; `cacheHits` files whose hash
 * came from the stat cache; `ignored` paths left out by `.dockerignore` or the `.git` rule (an
 * ignored directory that is not walked counts once).
 */
export interface ScanStats {
  files: number;
  dirs: number;
  symlinks: number;
  bytes: number;
  hashedFiles: number;
  hashedBytes: number;
  cacheHits: number;
  ignored: number;
}

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
}

/** File reads in flight per scan. */
const CONCURRENCY = 64;
/** The walk runs at most this long between two turns of the event loop. */
const YIELD_EVERY_MS = 5;
/** Files smaller than this are hashed from one read; larger ones are streamed in chunks. */
const SMALL_FILE = 1 << 20;
/** Files hashed (or sent) between two forced collections on a large tree (see collectGarbage). */
export const GC_EVERY = 25_000;
/** Files up to this size are read with synchronous calls (see hashFile). */
const SYNC_READ = 256 << 10;
const CHUNK = 256 << 10;
/**
 * Files modified this recently before the scan started (or later) are not cached: they may
 * change again without their size or timestamps changing at the filesystem's granularity.
 */
const RACY_MS = 2000;
const MAX_SEGMENT_BYTES = 255;
const MAX_PATH_BYTES = 4096;
/** Root-level names the build always needs, whatever `.dockerignore` says. */
const ALWAYS_SENT = new Set(["Dockerfile", ".dockerignore"]);
/**
 * Version of the stat cache and fingerprint files. Bump it whenever what a scan includes
 * (ignore rules, entry fields) or how it fingerprints changes: a fingerprint vouches for a
 * manifest only as this code computes it.
 */
const CACHE_VERSION = 1;
// File descriptors through the callback API: an order of magnitude cheaper per call than
// fs/promises FileHandles, which matters when most files are a few kilobytes.
const openFd = promisify(fsOpen);
const readFd = promisify(fsRead);
const fstatFd = promisify(fstat);
const closeFd = promisify(close);
const SHA256_HEX = /^[0-9a-f]{64}$/;

/** What hashing a file checks it against: its lstat from the walk. */
export type HashStat = Pick<Stats, "size" | "mtimeMs" | "ino">;

/** [size, mtimeMs, ctimeMs, ino, mode, sha256] of a regular file as last hashed. */
type CacheRecord = [number, number, number, number, number, string];

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
    useCache ? loadTree(treeFile, root) : undefined,
  ]);
  const walk: Walk = {
    root,
    prefix: root.endsWith("/") ? root : `${root}/`,
    rules,
    files: [],
    stamps: [],
    warn: opts.onWarning ?? (() => {}),
    entries: [],
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
    print: createHash("sha256"),
    printSlice: "",
    racy: false,
    racyFrom: started - RACY_MS,
    yieldAt: performance.now() + YIELD_EVERY_MS,
    failed: false,
  };
  try {
    await walkDir(walk, "");
  } catch (e) {
    walk.failed = true;
    throw e;
  }
  walk.entries.sort(compareEntryPaths);
  walk.print.update(walk.printSlice);
  const fingerprint = walk.print.digest("hex");
  collectGarbage(walk.entries.length);
  const complete = () => completeHashes(walk, useCache ? cacheFile : undefined);

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
    return {
      root,
      digest: previous.digest,
      stats: walk.stats,
      entries: () => {
        completed ??= entries();
        return completed;
      },
    };
  }
  const digest = await complete();
  if (useCache && !walk.racy) await saveTree(treeFile, root, fingerprint, digest, walk.warn);
  return { root, digest, stats: walk.stats, entries: async () => walk.entries };
}

/**
 * Gives every file of the walk its hash: from the stat cache when it vouches for the file,
 * else by reading it; saves the cache when it changed. Returns the manifest digest.
 */
async function completeHashes(w: Walk, cacheFile: string | undefined): Promise<string> {
  const cached = (cacheFile ? await loadCache(cacheFile, w.root) : undefined) ?? {};
  const fresh = new Map<string, CacheRecord>();
  const toHash: ToHash[] = [];
  for (let i = 0; i < w.files.length; i++) {
    const entry = w.files[i] as Entry;
    const st = {
      size: entry.size,
      mtimeMs: w.stamps[3 * i] ?? 0,
      ctimeMs: w.stamps[3 * i + 1] ?? 0,
      ino: w.stamps[3 * i + 2] ?? 0,
    };
    const hash = cachedHash(cached, entry, st, fresh);
    if (hash === undefined) toHash.push({ entry, st });
    else {
      entry.hash = hash;
      w.stats.cacheHits++;
    }
  }
  let newRecords = 0;
  try {
    newRecords = await hashAll(w, toHash, fresh);
  } catch (e) {
    w.failed = true; // queued work does not start
    throw e;
  }
  collectGarbage(toHash.length);
  const unchanged = newRecords === 0 && fresh.size === Object.keys(cached).length;
  if (cacheFile && !unchanged) await saveCache(cacheFile, w.root, fresh, w.warn);
  collectGarbage(w.entries.length);
  return manifestDigest(w.entries);
}

/** Where the fingerprint and digest of the last scan are kept, next to the stat cache `cacheFile`. */
export function fingerprintFile(cacheFile: string): string {
  return `${cacheFile.replace(/\.json$/, "")}.tree.json`;
}

/**
 * The default stat cache file for `root`: `$XDG_CACHE_HOME` (if absolute) or `~/.cache`, then
 * `snapdeploy/scan/<first 16 hex of sha256(absolute real path of root)>.json`.
 */
export function defaultCacheFile(root: string): string {
  let real = resolve(root);
  try {
    real = realpathSync.native(real);
  } catch {
    // a missing root still gets a stable name
  }
  const id = createHash("sha256").update(real).digest("hex").slice(0, 16);
  return cacheDir("scan", `${id}.json`);
}

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

/**
 * Throws UserError("input") for a relative path that cannot be part of a context: one with a
 * newline, carriage return or NUL, a segment over 255 bytes or over 4096 bytes in all (UTF-8).
 */
export function checkEntryPath(rel: string): void {
  const hint = "rename it or add it to .dockerignore";
  if (/[\n\r\0]/.test(rel)) {
    const message = `unsupported path ${quote(rel)}: it contains a newline, carriage return or NUL`;
    throw new UserError("input", message, { hint });
  }
  // UTF-8 takes at most 3 bytes per UTF-16 unit, so short paths need no byte count.
  if (rel.length * 3 <= MAX_SEGMENT_BYTES) return;
  if (Buffer.byteLength(rel) > MAX_PATH_BYTES) {
    throw new UserError("input", `path too long (over ${MAX_PATH_BYTES} bytes): ${quote(rel)}`, { hint });
  }
  for (const segment of rel.split("/")) {
    if (Buffer.byteLength(segment) > MAX_SEGMENT_BYTES) {
      throw new UserError("input", `file name too long (over ${MAX_SEGMENT_BYTES} bytes) in ${quote(rel)}`, {
        hint,
      });
    }
  }
}

/** A file to hash, with its lstat from the walk. */
interface ToHash {
  entry: Entry;
  st: Pick<Stats, "size" | "mtimeMs" | "ctimeMs" | "ino">;
}

interface Walk {
  root: string;
  /** The root with a trailing '/'. */
  prefix: string;
  rules: IgnoreRules;
  /** The files: hashed from the cache or read once the walk is done (completeHashes). */
  files: Entry[];
  /**
   * The mtimeMs, ctimeMs and inode of files[i] at stamps[3i..3i+2]: numbers in one array
   * rather than an object per file (on 100k files, ~2.4 MB instead of ~11 MB).
   */
  stamps: number[];
  warn: (message: string) => void;
  entries: Entry[];
  stats: ScanStats;
  /** The fingerprint of the walk: every entry's lstat, in walk order (see scanSnapshot). */
  print: Hash;
  /** Fingerprint lines not yet hashed: hashed a slice of ~64 KB at a time. */
  printSlice: string;
  /** A file was modified within RACY_MS of the scan: the fingerprint cannot be trusted next time. */
  racy: boolean;
  /** When the walk next yields to the event loop (performance.now()). */
  yieldAt: number;
  /** Files with an mtime at or after this are not cached. */
  racyFrom: number;
  failed: boolean;
}

/**
 * Walks the directory `rel` ('' for the root); true when anything below it is included.
 *
 * Listing and lstat are synchronous: on metadata in the page cache they take
 * microseconds, less than a round trip through libuv's thread pool, and they are what a
 * no-op rescan spends its time on. The walk yields to the event loop every few
 * milliseconds so that work started next to it (the connection to the build server)
 * progresses while it runs. Reading contents for hashes stays asynchronous (hashAll).
 */
async function walkDir(w: Walk, rel: string): Promise<boolean> {
  if (performance.now() >= w.yieldAt) {
    await new Promise<void>((resolve) => setImmediate(resolve));
    w.yieldAt = performance.now() + YIELD_EVERY_MS;
  }
  let dirents: Dirent[];
  try {
    dirents = readdirSync(rel === "" ? w.root : w.prefix + rel, { withFileTypes: true });
  } catch (e) {
    throw fsError(e, rel === "" ? w.root : rel);
  }
  let included = false;
  for (const d of dirents) {
    const r = visit(w, rel === "" ? d.name : `${rel}/${d.name}`, d);
    if (r === true || (r !== false && (await r))) included = true;
  }
  return included;
}

/** Adds the entry for `rel` (and what is below it); true, or a promise of true, when anything was included. */
function visit(w: Walk, rel: string, d: Dirent): boolean | Promise<boolean> {
  if (rel === ".git") {
    w.stats.ignored++;
    return false;
  }
  const ignored = !ALWAYS_SENT.has(rel) && w.rules.ignores(rel);
  // An ignored directory is still walked when an exception may re-include something in it.
  if (ignored && !(d.isDirectory() && !w.rules.canPrune(rel))) {
    w.stats.ignored++;
    return false;
  }
  checkEntryPath(rel);
  const abs = w.prefix + rel;
  let st: Stats;
  try {
    st = lstatSync(abs);
  } catch (e) {
    throw fsError(e, rel);
  }
  const mode = st.mode & 0o7777;
  if (st.isDirectory()) {
    return walkDir(w, rel).then((below) => {
      // Included paths keep their parent directories, even ones .dockerignore matches.
      if (ignored && !below) {
        w.stats.ignored++;
        return false;
      }
      w.entries.push({ path: rel, type: "dir", mode, size: 0 });
      w.stats.dirs++;
      fingerprint(w, rel, st, "");
      return true;
    });
  }
  if (ignored) {
    w.stats.ignored++; // listed as a directory, replaced since
    return false;
  }
  if (st.isSymbolicLink()) {
    let target: string;
    try {
      target = readlinkSync(abs);
    } catch (e) {
      throw fsError(e, rel);
    }
    if (escapes(rel, target)) {
      throw new UserError(
        "input",
        `symlink ${quote(rel)} points outside the build context: ${quote(target)}`,
        { hint: "add it to .dockerignore or make it a relative link to a path inside the tree" },
      );
    }
    w.entries.push({ path: rel, type: "symlink", mode, size: Buffer.byteLength(target), target });
    w.stats.symlinks++;
    fingerprint(w, rel, st, target);
    return true;
  }
  if (st.isFile()) {
    const entry: Entry = { path: rel, type: "file", mode, size: st.size };
    w.entries.push(entry);
    w.stats.files++;
    w.stats.bytes += st.size;
    w.files.push(entry);
    w.stamps.push(st.mtimeMs, st.ctimeMs, st.ino);
    if (st.mtimeMs >= w.racyFrom) w.racy = true;
    fingerprint(w, rel, st, "");
    return true;
  }
  w.warn(`skipping ${quote(rel)}: a ${specialKind(st)} cannot be part of a build context`);
  return false;
}

/**
 * Adds a path's line to the walk's fingerprint: everything its manifest entry derives from
 * (type and mode bits, a link's target) and, for a file, what vouches for its content in
 * the stat cache (size, mtime, ctime, inode). A directory's timestamps are left out: they
 * change with every file created in it, ignored ones included, and say nothing about the
 * manifest.
 */
function fingerprint(w: Walk, rel: string, st: Stats, target: string): void {
  const vouch = st.isFile() ? `${st.size} ${st.mtimeMs} ${st.ctimeMs} ${st.ino}` : target;
  w.printSlice += `${st.mode} ${vouch}\0${rel}\n`;
  if (w.printSlice.length >= 1 << 16) {
    w.print.update(w.printSlice);
    w.printSlice = "";
  }
}

/**
 * The cached hash of a regular file whose size, mtime, ctime, inode and mode are unchanged;
 * its record goes into `fresh` (the cache to save).
 */
function cachedHash(
  cached: Record<string, unknown>,
  entry: Entry,
  st: ToHash["st"],
  fresh: Map<string, CacheRecord>,
): string | undefined {
  const rel = entry.path;
  const rec = Object.hasOwn(cached, rel) ? cached[rel] : undefined;
  if (
    !Array.isArray(rec) ||
    rec.length !== 6 ||
    rec[0] !== st.size ||
    rec[1] !== st.mtimeMs ||
    rec[2] !== st.ctimeMs ||
    rec[3] !== st.ino ||
    rec[4] !== entry.mode ||
    typeof rec[5] !== "string" ||
    !SHA256_HEX.test(rec[5])
  ) {
    return undefined;
  }
  fresh.set(rel, rec as CacheRecord);
  return rec[5];
}

/**
 * Hashes `files`, CONCURRENCY at a time, and records them in `fresh` unless racily clean.
 * Returns how many records it added.
 */
async function hashAll(w: Walk, files: ToHash[], fresh: Map<string, CacheRecord>): Promise<number> {
  let next = 0;
  let added = 0;
  const lane = async () => {
    while (next < files.length) {
      if (w.failed) throw new Error("scan aborted");
      const { entry, st } = files[next++] as ToHash;
      if (next % GC_EVERY === 0) collectGarbage(files.length);
      const hash = await hashFile(w.prefix + entry.path, st, { name: entry.path });
      entry.hash = hash;
      w.stats.hashedFiles++;
      w.stats.hashedBytes += st.size;
      if (st.mtimeMs < w.racyFrom) {
        fresh.set(entry.path, [st.size, st.mtimeMs, st.ctimeMs, st.ino, entry.mode, hash]);
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

/** True when the link at `rel` has an absolute target or one that leads above the root. */
function escapes(rel: string, target: string): boolean {
  if (isAbsolute(target)) return true;
  const resolved = posix.normalize(posix.join(posix.dirname(rel), target));
  return resolved === ".." || resolved.startsWith("../");
}

function specialKind(st: Stats): string {
  if (st.isSocket()) return "socket";
  if (st.isFIFO()) return "FIFO";
  if (st.isBlockDevice()) return "block device";
  if (st.isCharacterDevice()) return "character device";
  return "special file";
}

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

/** Maps a filesystem error about `name` to the UserError a user can act on; others pass through. */
function fsError(e: unknown, name: string): unknown {
  if (e instanceof UserError) return e;
  switch ((e as NodeJS.ErrnoException).code) {
    case "EACCES":
    case "EPERM":
      return new UserError("input", `cannot read ${quote(name)}: permission denied`, {
        hint: "fix its permissions or add it to .dockerignore",
        cause: e,
      });
    case "ENAMETOOLONG":
      return new UserError("input", `path too long: ${quote(name)}`, {
        hint: "shorten it or add it to .dockerignore",
        cause: e,
      });
    case "ENOENT":
      // readdir decodes names that are not UTF-8 lossily; such a name cannot be opened again.
      if (name.includes("\uFFFD")) {
        return new UserError("input", `the name of ${quote(name)} is not valid UTF-8`, {
          hint: "rename it or add it to .dockerignore",
          cause: e,
        });
      }
      return changed(name, e);
    case "ELOOP":
    case "EISDIR":
    case "ENOTDIR":
      return changed(name, e);
    default:
      return e;
  }
}

function changed(name: string, cause?: unknown): UserError {
  return new UserError("input", `${quote(name)} changed during the scan`, {
    hint: "retry when nothing is writing to the tree",
    cause,
  });
}

function quote(path: string): string {
  return JSON.stringify(path);
}

/** The `files` of a cache written for `root`; undefined when missing, unreadable or invalid. */
async function loadCache(file: string, root: string): Promise<Record<string, unknown> | undefined> {
  try {
    const data = JSON.parse(await readFile(file, "utf8"));
    if (data?.v === CACHE_VERSION && data.root === root && typeof data.files === "object" && data.files) {
      return data.files;
    }
  } catch {
    // a cache is only an optimisation: rescan
  }
  return undefined;
}

/** The previous scan's fingerprint and manifest digest for `root`; undefined when unusable. */
async function loadTree(
  file: string,
  root: string,
): Promise<{ fingerprint: string; digest: string } | undefined> {
  try {
    const data = JSON.parse(await readFile(file, "utf8"));
    if (
      data?.v === CACHE_VERSION &&
      data.root === root &&
      SHA256_HEX.test(String(data.fingerprint)) &&
      SHA256_HEX.test(String(data.digest))
    ) {
      return { fingerprint: data.fingerprint, digest: data.digest };
    }
  } catch {
    // only an optimisation: the scan reads the stat cache instead
  }
  return undefined;
}

/** Saves the fingerprint and digest of a scan (temporary file + rename); failures are warnings. */
async function saveTree(
  file: string,
  root: string,
  fingerprint: string,
  digest: string,
  warn: (message: string) => void,
): Promise<void> {
  const tmp = `${file}.${process.pid}.${randomBytes(6).toString("hex")}.tmp`;
  try {
    await mkdir(dirname(file), { recursive: true });
    await writeFile(tmp, JSON.stringify({ v: CACHE_VERSION, root, fingerprint, digest }), { mode: 0o600 });
    await rename(tmp, file);
  } catch (e) {
    await rm(tmp, { force: true }).catch(() => {});
    warn(`could not save the scan cache ${quote(file)}: ${(e as Error).message}`);
  }
}

/** Replaces the cache file atomically (temporary file + rename); failures are warnings. */
async function saveCache(
  file: string,
  root: string,
  records: Map<string, CacheRecord>,
  warn: (message: string) => void,
): Promise<void> {
  const tmp = `${file}.${process.pid}.${randomBytes(6).toString("hex")}.tmp`;
  try {
    await mkdir(dirname(file), { recursive: true });
    // The same JSON as one object would give, written a slice of records at a time:
    // for 100k files the whole text would be a 13 MB string next to its source.
    const fd = openSync(tmp, "w", 0o600);
    try {
      writeSync(fd, `{"v":${CACHE_VERSION},"root":${JSON.stringify(root)},"files":{`);
      let n = 0;
      let slice: string[] = [];
      for (const [rel, rec] of records) {
        slice.push(`${JSON.stringify(rel)}:${JSON.stringify(rec)}`);
        if (slice.length === 2000) {
          writeSync(fd, (n ? "," : "") + slice.join(","));
          n += slice.length;
          slice = [];
        }
      }
      writeSync(fd, `${n && slice.length ? "," : ""}${slice.join(",")}}}`);
    } finally {
      closeSync(fd);
    }
    await rename(tmp, file);
  } catch (e) {
    await rm(tmp, { force: true }).catch(() => {});
    warn(`could not save the scan cache ${quote(file)}: ${(e as Error).message}`);
  }
}
