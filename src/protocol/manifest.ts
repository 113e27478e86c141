/**
 * The manifest: the list of a snapshot's paths (what the CLI scans, what the agent
 * materializes) and its digest, a content address for the tree: equal digests mean equal
 * build contexts. Both sides of the sync protocol use these definitions.
 */
import { createHash } from "node:crypto";

export type EntryType = "file" | "dir" | "symlink";

/** One path of the build context. */
export interface Entry {
  /** Relative to the root, '/'-separated, no leading './', never '' (the root is not an entry). */
  path: string;
  type: EntryType;
  /** Permission bits only (st_mode & 0o7777). */
  mode: number;
  /** Bytes for files, 0 for directories, byte length of the target for symlinks. */
  size: number;
  /** sha256 hex of the content; files only. */
  hash?: string;
  /** The link target as stored in the link; symlinks only. */
  target?: string;
}

/**
 * Sort order of manifest entries: `path` compared by UTF-16 code units (JavaScript's `<`
 * on strings), independent of locale. It is a total order on distinct paths, and a
 * directory sorts before everything inside it (a prefix sorts first), though not
 * necessarily right before it: "a" < "a-b" < "a/b". It equals UTF-8 byte order except
 * for characters above U+FFFF against U+E000–U+FFFF.
 */
export function compareEntryPaths(a: Pick<Entry, "path">, b: Pick<Entry, "path">): number {
  return a.path < b.path ? -1 : a.path > b.path ? 1 : 0;
}

/** An entry's line in the manifest digest: "type mode(octal) size hash-or-target-or-'-' path\n". */
export function canonicalLine(e: Entry): string {
  return `${e.type} ${e.mode.toString(8)} ${e.size} ${e.hash ?? e.target ?? "-"} ${e.path}\n`;
}

/**
 * sha256 hex of the canonical encoding of `entries`, in the order given (callers pass
 * them sorted by `compareEntryPaths`, as `scanTree` returns them). One line per entry:
 * `${type} ${mode in octal} ${size} ${hash ?? target ?? "-"} ${path}\n`. The encoding is
 * unambiguous because paths never contain a newline and a symlink's size is the byte
 * length of its target.
 */
export function manifestDigest(entries: readonly Entry[]): string {
  const hash = createHash("sha256");
  for (const slice of canonicalSlices(entries)) hash.update(slice);
  return hash.digest("hex");
}

/** The canonical encoding of `entries` (see manifestDigest): the text their digest hashes. */
export function manifestText(entries: readonly Entry[]): string {
  return [...canonicalSlices(entries)].join("");
}

const TYPES = new Set<string>(["file", "dir", "symlink"]);

/**
 * The entries of a canonical text (manifestText's output, trusted to be one), the inverse of
 * canonicalLine: the path follows the fourth field, and a symlink's target (which may hold
 * spaces) is `size` bytes long. Throws TypeError for a line that is not an entry's.
 */
export function parseManifestText(text: string): Entry[] {
  const out: Entry[] = [];
  let at = 0;
  while (at < text.length) {
    const a = text.indexOf(" ", at);
    const b = text.indexOf(" ", a + 1);
    const c = text.indexOf(" ", b + 1);
    const type = text.slice(at, a);
    const mode = Number.parseInt(text.slice(a + 1, b), 8);
    const size = Number(text.slice(b + 1, c));
    if (
      a < 0 ||
      b < 0 ||
      c < 0 ||
      !TYPES.has(type) ||
      !Number.isSafeInteger(mode) ||
      !Number.isSafeInteger(size)
    )
      throw new TypeError(`not a manifest line at offset ${at}`);
    let fieldEnd: number;
    if (type === "symlink") {
      // `size` UTF-8 bytes: as many characters when the target is ASCII.
      let target = text.slice(c + 1, c + 1 + size);
      while (Buffer.byteLength(target) > size) target = target.slice(0, -1);
      fieldEnd = c + 1 + target.length;
    } else fieldEnd = text.indexOf(" ", c + 1);
    const end = text.indexOf("\n", fieldEnd + 1);
    if (fieldEnd < 0 || text[fieldEnd] !== " " || end < 0)
      throw new TypeError(`not a manifest line at offset ${at}`);
    const field = text.slice(c + 1, fieldEnd);
    const path = text.slice(fieldEnd + 1, end);
    const e: Entry = { path, type: type as EntryType, mode, size };
    if (type === "file") e.hash = field;
    else if (type === "symlink") e.target = field;
    out.push(e);
    at = end + 1;
  }
  return out;
}

/**
 * The canonical lines of `entries` in slices of ~64 KB: one native call per slice rather than
 * per entry (a third of a 10k-entry digest's time), and no rope of 100k pieces to flatten.
 */
function* canonicalSlices(entries: readonly Entry[]): Generator<string> {
  let slice = "";
  for (const e of entries) {
    slice += canonicalLine(e);
    if (slice.length >= 1 << 16) {
      yield slice;
      slice = "";
    }
  }
  yield slice;
}

/**
 * A manifest as a change to another one both sides hold (known by its digest): the paths
 * that go away and the entries that are new or differ, each sorted by path. A sync of one
 * changed file among 100k sends two entries instead of 100k.
 */
export interface ManifestDiff {
  remove: string[];
  put: Entry[];
}

function sameEntry(a: Entry, b: Entry): boolean {
  return (
    a.type === b.type && a.mode === b.mode && a.size === b.size && a.hash === b.hash && a.target === b.target
  );
}

/** The diff from `from` to `to` (both sorted by `compareEntryPaths`). */
export function diffManifests(from: readonly Entry[], to: readonly Entry[]): ManifestDiff {
  const remove: string[] = [];
  const put: Entry[] = [];
  let i = 0;
  let j = 0;
  while (i < from.length || j < to.length) {
    const a = from[i];
    const b = to[j];
    const c = a === undefined ? 1 : b === undefined ? -1 : compareEntryPaths(a, b);
    if (c < 0) {
      remove.push((a as Entry).path);
      i++;
    } else if (c > 0) {
      put.push(b as Entry);
      j++;
    } else {
      if (!sameEntry(a as Entry, b as Entry)) put.push(b as Entry);
      i++;
      j++;
    }
  }
  return { remove, put };
}

/**
 * `base` (sorted) with `diff` applied, as raw entries for the receiver to validate like a
 * whole manifest (the diff is untrusted: a `put` out of order gives an unsorted result,
 * which validation refuses). Throws TypeError for a diff of the wrong shape, or one that
 * removes a path `base` does not hold.
 */
export function applyManifestDiff(base: readonly Entry[], diff: unknown): unknown[] {
  const d = diff as { remove?: unknown; put?: unknown };
  if (!d || typeof d !== "object" || !Array.isArray(d.remove) || !Array.isArray(d.put))
    throw new TypeError("a manifest diff needs the lists remove and put");
  const remove = d.remove as unknown[];
  const put = d.put as { path?: unknown }[];
  const out: unknown[] = [];
  let r = 0;
  let p = 0;
  for (const e of base) {
    // Puts that sort before this entry are inserted here; one with its path replaces it.
    while (p < put.length && typeof put[p]?.path === "string" && (put[p]?.path as string) < e.path)
      out.push(put[p++]);
    if (r < remove.length && remove[r] === e.path) {
      r++;
      continue;
    }
    if (p < put.length && put[p]?.path === e.path) {
      out.push(put[p++]);
      continue;
    }
    out.push(e);
  }
  while (p < put.length) out.push(put[p++]);
  if (r !== remove.length)
    throw new TypeError(
      `the manifest diff removes ${String(remove[r])}, which is not in the base or out of order`,
    );
  return out;
}
