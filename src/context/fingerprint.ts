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

/** The fingerprint being computed during a walk. */
export class TreePrint {
  private readonly hash = createHash("sha256");
  /** Lines not yet hashed: hashed a slice of ~64 KB at a time. */
  private slice = "";

  /**
   * Adds a path's line to the walk's fingerprint: everything its manifest entry derives from
   * (type and mode bits, a link's target) and, for a file, what vouches for its content in
   * the stat cache (size, mtime, ctime, inode). A directory's timestamps are left out: they
   * change with every file created in it, ignored ones included, and say nothing about the
   * manifest.
   */
  add(rel: string, st: Stats, target: string): void {
    const vouch = st.isFile() ? `${st.size} ${st.mtimeMs} ${st.ctimeMs} ${st.ino}` : target;
    this.slice += `${st.mode} ${vouch}\0${rel}\n`;
    if (this.slice.length >= 1 << 16) {
      this.hash.update(this.slice);
      this.slice = "";
    }
  }

  /** The fingerprint of every path added. */
  digest(): string {
    this.hash.update(this.slice);
    return this.hash.digest("hex");
  }
}

/** Where the fingerprint and digest of the last scan are kept, next to the stat cache `cacheFile`. */
export function fingerprintFile(cacheFile: string): string {
  return `${cacheFile.replace(/\.json$/, "")}.tree.json`;
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
