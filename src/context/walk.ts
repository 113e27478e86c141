/**
 * The walk of a scan: lists the tree, applies `.dockerignore` and the `.git` rule, lstats
 * every included path and records its entry (files still without their hash), the
 * stamps the stat cache needs and the fingerprint's lines.
 */
import { type Dirent, lstatSync, readdirSync, readlinkSync, type Stats } from "node:fs";
import { UserError } from "../errors.js";
import { compareEntryPaths, type Entry } from "../protocol/manifest.js";
import {
  escapingLink,
  MAX_PATH_BYTES,
  MAX_SEGMENT_BYTES,
  pathProblem,
  targetProblem,
} from "../protocol/paths.js";
import type { IgnoreRules } from "./dockerignore.js";
import type { TreePrint } from "./fingerprint.js";
import { fsError, quote } from "./fs-errors.js";
import { LARGE_JOB, largeJob } from "../util/memory.js";

/** The walk runs at most this long between two turns of the event loop. */
export const YIELD_EVERY_MS = 5;
/** Root-level names the build always needs, whatever `.dockerignore` says. */
const ALWAYS_SENT = new Set(["Dockerfile", ".dockerignore"]);
const NEWLINE = /[\n\r]/;

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

export interface Walk {
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
  /** The entries' canonical lines, once sorted and hashed (see scanSnapshot). */
  text: string;
  stats: ScanStats;
  /** The symlinks, checked together once the walk is done (checkLinkChains). */
  links: Entry[];
  /** The fingerprint of the walk: every entry's lstat, in walk order (see scanSnapshot). */
  print: TreePrint;
  /** A file was modified within RACY_MS of the scan: the fingerprint cannot be trusted next time. */
  racy: boolean;
  /** When the walk next yields to the event loop (performance.now()). */
  yieldAt: number;
  /** Files with an mtime at or after this are not cached. */
  racyFrom: number;
  failed: boolean;
  /** Told the counts so far each time the walk yields. */
  progress?: (stats: Readonly<ScanStats>) => void;
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
export async function walkDir(w: Walk, rel: string): Promise<boolean> {
  if (performance.now() >= w.yieldAt) {
    w.progress?.(w.stats);
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
  // The directory above passed: a listed name (never empty, '.', '..', or holding '/' or NUL)
  // needs the whole check only when it is long or holds a newline.
  if (d.name.length * 3 > MAX_SEGMENT_BYTES || rel.length * 3 > MAX_PATH_BYTES || NEWLINE.test(d.name))
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
      w.print.add(rel, st, "");
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
    const problem = targetProblem(rel, target);
    if (problem) throw linkRefused(rel, target, problem);
    const entry: Entry = { path: rel, type: "symlink", mode, size: Buffer.byteLength(target), target };
    w.entries.push(entry);
    w.links.push(entry);
    w.stats.symlinks++;
    w.print.add(rel, st, target);
    return true;
  }
  if (st.isFile()) {
    const entry: Entry = { path: rel, type: "file", mode, size: st.size };
    w.entries.push(entry);
    w.stats.files++;
    w.stats.bytes += st.size;
    if (w.files.push(entry) === LARGE_JOB) largeJob();
    w.stamps.push(st.mtimeMs, st.ctimeMs, st.ino);
    if (st.mtimeMs >= w.racyFrom) w.racy = true;
    w.print.add(rel, st, "");
    return true;
  }
  w.warn(`skipping ${quote(rel)}: a ${specialKind(st)} cannot be part of a build context`);
  return false;
}

function specialKind(st: Stats): string {
  if (st.isSocket()) return "socket";
  if (st.isFIFO()) return "FIFO";
  if (st.isBlockDevice()) return "block device";
  if (st.isCharacterDevice()) return "character device";
  return "special file";
}

/**
 * Throws UserError("input") for a relative path that cannot be part of a context (see
 * protocol/paths.ts: the agent applies the same rules): one with a newline, carriage
 * return or NUL, a segment over 255 bytes or over 4096 bytes in all (UTF-8).
 */
export function checkEntryPath(rel: string): void {
  const problem = pathProblem(rel);
  if (problem) {
    throw new UserError("input", `unsupported path ${quote(rel)}: it ${problem}`, {
      hint: "rename it or add it to .dockerignore",
    });
  }
}

/**
 * Throws UserError("input") when a symlink of the walk, followed through the others,
 * leads out of the tree: the agent refuses such a manifest (protocol/paths.ts), and
 * Docker would not find what it names either. Checked once the walk is done, in path
 * order; a tree without symlinks costs nothing.
 */
export function checkLinkChains(w: Walk): void {
  if (w.links.length === 0) return;
  w.links.sort(compareEntryPaths);
  const leaving = escapingLink(new Map(w.links.map((e) => [e.path, e.target as string])));
  if (leaving) throw linkRefused(leaving.path, leaving.target, leaving.problem);
}

function linkRefused(rel: string, target: string, problem: string): UserError {
  return new UserError("input", `symlink ${quote(rel)} ${problem}: ${quote(target)}`, {
    hint: "add it to .dockerignore or make it a relative link to a path inside the tree",
  });
}
