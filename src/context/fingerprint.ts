/**
 * The fingerprint of a walk: a hash over every included path's lstat, in walk order.
 * When it equals the previous scan's, the manifest is the previous one, and so is its
 * digest, kept next to the stat cache (see scanSnapshot).
 */
import { createHash, randomBytes } from "node:crypto";
import type { Stats } from "node:fs";
import { mkdir, readFile, rename, rm, writeFile } from "node:fs/promises";
import { dirname } from "node:path";
import { quote } from "./fs-errors.js";
import { CACHE_VERSION, SHA256_HEX } from "./stat-cache.js";

/** Entries per block of the fingerprint: their numbers and their names are hashed together. */
const BLOCK = 1024;
/** Numbers per entry: mode, and for a file size, mtimeMs, ctimeMs and inode (else zeros). */
const NUMBERS = 5;

/**
 * The fingerprint being computed during a walk. An entry's numbers go into a Float64Array
 * and are hashed as they are: turning each into text cost more than the lstat that gave it
 * (a fractional mtimeMs is a long decimal), ~20 ms of a 10,000-file walk.
 */
export class TreePrint {
  private readonly hash = createHash("sha256");
  private readonly numbers = new Float64Array(BLOCK * NUMBERS);
  private readonly bytes = new Uint8Array(this.numbers.buffer);
  private count = 0;
  /** The block's names: a path, NUL, and for a link its target and NUL (neither holds a NUL). */
  private names = "";

  /**
   * Adds a path to the walk's fingerprint: everything its manifest entry derives from (type
   * and mode bits, a link's target) and, for a file, what vouches for its content in the stat
   * cache (size, mtime, ctime, inode). A directory's timestamps are left out: they change with
   * every file created in it, ignored ones included, and say nothing about the manifest.
   */
  add(rel: string, st: Stats, target: string): void {
    const n = this.numbers;
    const i = this.count * NUMBERS;
    n[i] = st.mode;
    if (st.isFile()) {
      n[i + 1] = st.size;
      n[i + 2] = st.mtimeMs;
      n[i + 3] = st.ctimeMs;
      n[i + 4] = st.ino;
    } else {
      n.fill(0, i + 1, i + NUMBERS);
    }
    this.names += target === "" ? `${rel}\0` : `${rel}\0${target}\0`;
    if (++this.count === BLOCK) this.flush();
  }

  private flush(): void {
    this.hash.update(this.bytes.subarray(0, this.count * NUMBERS * 8));
    this.hash.update(this.names);
    this.count = 0;
    this.names = "";
  }

  /** The fingerprint of every path added. */
  digest(): string {
    this.flush();
    return this.hash.digest("hex");
  }
}

/** Where the fingerprint and digest of the last scan are kept, next to the stat cache `cacheFile`. */
export function fingerprintFile(cacheFile: string): string {
  return `${cacheFile.replace(/\.[^./]*$/, "")}.tree.json`;
}

/** The previous scan's fingerprint and manifest digest for `root`; undefined when unusable. */
export async function loadFingerprint(
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
export async function saveFingerprint(
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
