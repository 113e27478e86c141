/**
 * The stat cache: the hash of every regular file as last hashed, with the lstat fields
 * that vouch for it ([size, mtimeMs, ctimeMs, ino, mode, sha256] per path), kept outside
 * the tree so that a rescan reads only the files that changed.
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
export const CACHE_VERSION = 1;
/**
 * Files modified this recently before the scan started (or later) are not cached: they may
 * change again without their size or timestamps changing at the filesystem's granularity.
 */
export const RACY_MS = 2000;
export const SHA256_HEX = /^[0-9a-f]{64}$/;

/** [size, mtimeMs, ctimeMs, ino, mode, sha256] of a regular file as last hashed. */
export type CacheRecord = [number, number, number, number, number, string];
/** The lstat fields of a file that vouch for its cached hash. */
export type FileStamp = Pick<Stats, "size" | "mtimeMs" | "ctimeMs" | "ino">;

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

/**
 * The cached hash of a regular file whose size, mtime, ctime, inode and mode are unchanged;
 * its record goes into `fresh` (the cache to save).
 */
export function cachedHash(
  cached: Record<string, unknown>,
  entry: Entry,
  st: FileStamp,
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

/** The `files` of a cache written for `root`; undefined when missing, unreadable or invalid. */
export async function loadCache(file: string, root: string): Promise<Record<string, unknown> | undefined> {
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

/** Replaces the cache file atomically (temporary file + rename); failures are warnings. */
export async function saveCache(
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
