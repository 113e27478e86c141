/**
 * The stat cache: the hash of every regular file as last hashed, with the lstat fields
 * that vouch for it (size, mtimeMs, ctimeMs, inode, mode), kept outside the tree so that a
 * rescan reads only the files that changed.
 *
 * One binary file, records in walk order: the numbers as float64 (what lstat gives), the
 * hashes as 32 bytes, the paths as UTF-8 each ended by NUL. Loading it is one read and no
 * parsing per record, and a rescan meets the records in the order it walks.
 */
import { createHash, randomBytes } from "node:crypto";
import { closeSync, openSync, realpathSync, type Stats, writeSync } from "node:fs";
import { mkdir, readFile, rename, rm } from "node:fs/promises";
import { dirname, resolve } from "node:path";
import type { Entry } from "../protocol/manifest.js";
import { cacheDir } from "../util/cache.js";
import { quote } from "./fs-errors.js";

/**
 * Version of the stat cache and fingerprint files. Bump it whenever what a scan includes
 * (ignore rules, entry fields) or how it fingerprints changes: a fingerprint vouches for a
 * manifest only as this code computes it.
 */
export const CACHE_VERSION = 2;
/**
 * Files modified this recently before the scan started (or later) are not cached: they may
 * change again without their size or timestamps changing at the filesystem's granularity.
 */
export const RACY_MS = 2000;
export const SHA256_HEX = /^[0-9a-f]{64}$/;

/** The lstat fields of a file that vouch for its cached hash. */
export type FileStamp = Pick<Stats, "size" | "mtimeMs" | "ctimeMs" | "ino">;

/** The file's first bytes, then the version (uint32 LE). */
const MAGIC = "SDSTAT\n\0";
/** Numbers per record: size, mtimeMs, ctimeMs, ino, mode. */
const NUMBERS = 5;
const HASH_BYTES = 32;

/**
 * The default stat cache file for `root`: `$XDG_CACHE_HOME` (if absolute) or `~/.cache`, then
 * `snapdeploy/scan/<first 16 hex of sha256(absolute real path of root)>.stat`.
 */
export function defaultCacheFile(root: string): string {
  let real = resolve(root);
  try {
    real = realpathSync.native(real);
  } catch {
    // a missing root still gets a stable name
  }
  const id = createHash("sha256").update(real).digest("hex").slice(0, 16);
  return cacheDir("scan", `${id}.stat`);
}

/** A loaded stat cache. */
export class StatCache {
  private index?: Map<string, number>;
  private cursor = 0;

  constructor(
    /** The records' paths, in the order they were saved. */
    readonly paths: string[],
    private readonly numbers: Float64Array,
    private readonly hashes: Buffer,
  ) {}

  /**
   * The hash of `entry` (a regular file with lstat `st`) when its record's size, mtime,
   * ctime, inode and mode are unchanged. The record is looked for first right after the
   * one found last: a rescan walks in the order the records were saved.
   */
  hashOf(entry: Entry, st: FileStamp): string | undefined {
    let i = this.cursor;
    if (this.paths[i] !== entry.path) {
      this.index ??= new Map(this.paths.map((p, j) => [p, j]));
      i = this.index.get(entry.path) ?? -1;
      if (i < 0) return undefined;
    }
    this.cursor = i + 1;
    const n = this.numbers;
    const k = i * NUMBERS;
    if (
      n[k] !== st.size ||
      n[k + 1] !== st.mtimeMs ||
      n[k + 2] !== st.ctimeMs ||
      n[k + 3] !== st.ino ||
      n[k + 4] !== entry.mode
    ) {
      return undefined;
    }
    return this.hashes.toString("hex", i * HASH_BYTES, (i + 1) * HASH_BYTES);
  }
}

/** The cache written for `root`; undefined when missing, unreadable or invalid. */
export async function loadCache(file: string, root: string): Promise<StatCache | undefined> {
  try {
    return decodeCache(await readFile(file), root);
  } catch {
    return undefined; // a cache is only an optimisation: rescan
  }
}

/** The header: magic, version, record count, root's byte length, root; padded to 8 bytes. */
function header(root: string, count: number): Buffer {
  const rootBytes = Buffer.from(root);
  const size = MAGIC.length + 12 + rootBytes.length;
  const b = Buffer.alloc(Math.ceil(size / 8) * 8);
  b.write(MAGIC, 0, "latin1");
  b.writeUInt32LE(CACHE_VERSION, MAGIC.length);
  b.writeUInt32LE(count, MAGIC.length + 4);
  b.writeUInt32LE(rootBytes.length, MAGIC.length + 8);
  rootBytes.copy(b, MAGIC.length + 12);
  return b;
}

function decodeCache(data: Buffer, root: string): StatCache | undefined {
  if (data.length < MAGIC.length + 12 || data.toString("latin1", 0, MAGIC.length) !== MAGIC) return undefined;
  if (data.readUInt32LE(MAGIC.length) !== CACHE_VERSION) return undefined;
  const count = data.readUInt32LE(MAGIC.length + 4);
  const rootLength = data.readUInt32LE(MAGIC.length + 8);
  const rootEnd = MAGIC.length + 12 + rootLength;
  if (rootEnd > data.length || data.toString("utf8", MAGIC.length + 12, rootEnd) !== root) return undefined;
  const numbersAt = Math.ceil(rootEnd / 8) * 8;
  const hashesAt = numbersAt + count * NUMBERS * 8;
  const pathsAt = hashesAt + count * HASH_BYTES;
  if (pathsAt > data.length) return undefined;
  // A Float64Array needs an offset that is a multiple of 8 in its buffer: copy when it is not.
  const raw = data.subarray(numbersAt, hashesAt);
  const numbers =
    (raw.byteOffset & 7) === 0
      ? new Float64Array(raw.buffer, raw.byteOffset, count * NUMBERS)
      : new Float64Array(new Uint8Array(raw).buffer);
  const paths = data.toString("utf8", pathsAt).split("\0");
  if (paths.pop() !== "" || paths.length !== count) return undefined;
  return new StatCache(paths, numbers, data.subarray(hashesAt, pathsAt));
}

/** A record to save: a file entry with its hash, and the stamp its hash was taken at. */
export interface CacheRecord {
  entry: Entry;
  st: FileStamp;
}

/** Replaces the cache file atomically (temporary file + rename); failures are warnings. */
export async function saveCache(
  file: string,
  root: string,
  records: CacheRecord[],
  warn: (message: string) => void,
): Promise<void> {
  const tmp = `${file}.${process.pid}.${randomBytes(6).toString("hex")}.tmp`;
  try {
    await mkdir(dirname(file), { recursive: true });
    const numbers = new Float64Array(records.length * NUMBERS);
    const hashes = Buffer.alloc(records.length * HASH_BYTES);
    const paths: string[] = [];
    records.forEach(({ entry, st }, i) => {
      numbers.set([st.size, st.mtimeMs, st.ctimeMs, st.ino, entry.mode], i * NUMBERS);
      hashes.write(entry.hash as string, i * HASH_BYTES, "hex");
      paths.push(`${entry.path}\0`);
    });
    const fd = openSync(tmp, "w", 0o600);
    try {
      writeSync(fd, header(root, records.length));
      writeSync(fd, new Uint8Array(numbers.buffer));
      writeSync(fd, hashes);
      writeSync(fd, paths.join(""));
    } finally {
      closeSync(fd);
    }
    await rename(tmp, file);
  } catch (e) {
    await rm(tmp, { force: true }).catch(() => {});
    warn(`could not save the scan cache ${quote(file)}: ${(e as Error).message}`);
  }
}
