/**
 * The agent trusts nothing the client sends. A manifest is accepted only when every
 * entry, materialized under the workspace root in sorted order, can write nowhere
 * else: relative '/'-separated paths without '.', '..' or empty segments, no NUL,
 * bounded lengths, only files/dirs/symlinks, every parent a directory entry of the
 * same manifest (so nothing is ever written through a symlink), and symlink targets
 * that stay inside the tree.
 */
import path from "node:path/posix";
import type { Entry } from "../protocol/manifest.js";
import { NAME_PATTERN } from "../protocol/constants.js";

export class InvalidInput extends Error {
  override name = "InvalidInput";
}

const HASH = /^[0-9a-f]{64}$/;
const MAX_SEGMENT = 255;
const MAX_PATH = 4096;

export function validateName(kind: "user" | "project", value: unknown): string {
  if (typeof value !== "string" || !NAME_PATTERN.test(value)) {
    throw new InvalidInput(
      `invalid ${kind} name ${JSON.stringify(value)}: use 1-63 lowercase letters, digits, '.', '_' or '-', starting and ending with a letter or digit`,
    );
  }
  return value;
}

export function validatePath(p: unknown): string {
  if (typeof p !== "string" || p.length === 0) throw new InvalidInput("empty path in manifest");
  const shown = () => JSON.stringify(p);
  if (p.includes("\0")) throw new InvalidInput(`path ${shown()} contains a NUL byte`);
  if (p.startsWith("/")) throw new InvalidInput(`absolute path ${shown()} is not allowed`);
  // UTF-8 takes at most 3 bytes per UTF-16 unit, so short paths need no byte count.
  const short = p.length * 3 <= MAX_SEGMENT;
  if (!short && Buffer.byteLength(p) > MAX_PATH)
    throw new InvalidInput(`path ${shown().slice(0, 80)}… is longer than ${MAX_PATH} bytes`);
  for (const seg of p.split("/")) {
    if (seg === "" || seg === "." || seg === "..")
      throw new InvalidInput(`path ${shown()} has a '${seg}' segment`);
    if (!short && Buffer.byteLength(seg) > MAX_SEGMENT)
      throw new InvalidInput(`path ${shown()} has a name longer than ${MAX_SEGMENT} bytes`);
  }
  return p;
}

/** A symlink target must be relative and, resolved from the link's directory, stay in the tree. */
export function validateSymlink(linkPath: string, target: unknown): string {
  if (typeof target !== "string" || target.length === 0)
    throw new InvalidInput(`symlink ${linkPath} has no target`);
  if (target.includes("\0")) throw new InvalidInput(`symlink ${linkPath} target contains a NUL byte`);
  if (target.startsWith("/")) throw new InvalidInput(`symlink ${linkPath} points to absolute path ${target}`);
  if (Buffer.byteLength(target) > MAX_PATH) throw new InvalidInput(`symlink ${linkPath} target is too long`);
  const resolved = path.normalize(path.join(path.dirname(linkPath), target));
  if (resolved === ".." || resolved.startsWith("../")) {
    throw new InvalidInput(`symlink ${linkPath} -> ${target} points outside the workspace`);
  }
  return target;
}

/** Checks a whole manifest (entries sorted by path) and returns it typed. */
export function validateManifest(raw: unknown, maxEntries = 2_000_000): Entry[] {
  if (!Array.isArray(raw)) throw new InvalidInput("manifest is not a list");
  if (raw.length > maxEntries)
    throw new InvalidInput(`manifest has ${raw.length} entries, more than ${maxEntries}`);
  const types = new Map<string, Entry["type"]>();
  let prev: string | undefined;
  const out: Entry[] = [];
  for (const r of raw as Record<string, unknown>[]) {
    if (!r || typeof r !== "object") throw new InvalidInput("manifest entry is not an object");
    const p = validatePath(r.path);
    if (prev !== undefined && !(prev < p))
      throw new InvalidInput(`manifest is not sorted or has a duplicate at ${p}`);
    prev = p;
    const parent = path.dirname(p);
    if (parent !== "." && types.get(parent) !== "dir") {
      throw new InvalidInput(`${p}: its parent ${parent} is not a directory in the manifest`);
    }
    const mode = r.mode;
    if (typeof mode !== "number" || !Number.isInteger(mode) || mode < 0 || mode > 0o7777) {
      throw new InvalidInput(`${p}: invalid mode ${String(mode)}`);
    }
    const size = r.size;
    if (typeof size !== "number" || !Number.isSafeInteger(size) || size < 0) {
      throw new InvalidInput(`${p}: invalid size ${String(size)}`);
    }
    // Kept as sent (it is part of the digest); setuid/setgid/sticky are dropped when written.
    const e: Entry = { path: p, type: r.type as Entry["type"], mode, size };
    if (r.type === "file") {
      if (typeof r.hash !== "string" || !HASH.test(r.hash))
        throw new InvalidInput(`${p}: invalid content hash`);
      e.hash = r.hash;
    } else if (r.type === "symlink") {
      e.target = validateSymlink(p, r.target);
    } else if (r.type !== "dir") {
      throw new InvalidInput(
        `${p}: unsupported entry type ${JSON.stringify(r.type)} (only files, directories and symlinks)`,
      );
    }
    types.set(p, e.type);
    out.push(e);
  }
  return out;
}
