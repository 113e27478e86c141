/**
 * The rules on the paths and symlink targets of a manifest, applied by both sides: the
 * CLI's scan refuses a tree that breaks them before sending anything, and the agent,
 * which trusts nothing the client sends, refuses a manifest that breaks them before
 * writing anything. Each rule returns why a string breaks it (a phrase to put after the
 * path's name) or undefined; each side words the error around it.
 *
 * A path is relative, '/'-separated, without '', '.' or '..' segments, without NUL,
 * newline or carriage return (the manifest digest is line-based), with names of at most
 * 255 bytes and at most 4096 bytes in all (UTF-8). A symlink's target is relative and,
 * resolved from the link's directory through the manifest's other links, stays in the
 * tree: so no chain of links that each stay inside can climb out together.
 */
import { posix } from "node:path";

export const MAX_SEGMENT_BYTES = 255;
export const MAX_PATH_BYTES = 4096;
/** Links followed when resolving one link's target (Linux follows at most 40 too). */
export const MAX_LINK_HOPS = 40;

/** A NUL, newline or carriage return; or an empty, '.' or '..' segment (a leading '/' included). */
const SUSPECT = /[\n\r\0]|(?:^|\/)\.{0,2}(?:\/|$)/;

/** Why `p` cannot be a path of a manifest, or undefined when it can. */
export function pathProblem(p: string): string | undefined {
  // One regular expression for every path: the scan calls this once per entry.
  if (SUSPECT.test(p)) {
    if (p.includes("\0")) return "contains a NUL byte";
    if (/[\n\r]/.test(p)) return "contains a newline or carriage return";
    if (p.startsWith("/")) return "is an absolute path";
    const seg = p.split("/").find((s) => s === "" || s === "." || s === "..");
    return `has a '${seg}' segment`;
  }
  // UTF-8 takes at most 3 bytes per UTF-16 unit, so short paths need no byte count.
  if (p.length * 3 <= MAX_SEGMENT_BYTES) return undefined;
  if (Buffer.byteLength(p) > MAX_PATH_BYTES) return `is longer than ${MAX_PATH_BYTES} bytes`;
  for (const seg of p.split("/")) {
    if (Buffer.byteLength(seg) > MAX_SEGMENT_BYTES)
      return `has a name longer than ${MAX_SEGMENT_BYTES} bytes`;
  }
  return undefined;
}

/**
 * Why `target` cannot be the target of the symlink at `link` (a valid path), taken on its
 * own, or undefined. See linkChainProblem for the links it may lead through.
 */
export function targetProblem(link: string, target: string): string | undefined {
  if (target.length === 0) return "has no target";
  if (target.includes("\0")) return "has a target with a NUL byte";
  if (target.startsWith("/")) return "points to an absolute path";
  if (target.length * 3 > MAX_PATH_BYTES && Buffer.byteLength(target) > MAX_PATH_BYTES)
    return `has a target longer than ${MAX_PATH_BYTES} bytes`;
  const resolved = posix.normalize(posix.join(posix.dirname(link), target));
  if (resolved === ".." || resolved.startsWith("../")) return "points outside the tree";
  return undefined;
}

/**
 * Why the symlink at `link` leads out of the tree (or nowhere) when its target is followed
 * through the other symlinks of the same tree, or undefined when it stays inside. `links`
 * maps every symlink's path to its target; each target must pass targetProblem. The
 * resolution is lexical, as the kernel does it: a component naming a link is replaced by
 * the link's target (relative to the link's directory) before any '..' after it applies,
 * so `d/up -> ..` with `x -> d/up/..` leads above the root. Refused as well: more than
 * MAX_LINK_HOPS links on the way (a cycle, or a chain no build would follow).
 */
export function linkChainProblem(links: ReadonlyMap<string, string>, link: string): string | undefined {
  const target = links.get(link);
  if (target === undefined) return undefined;
  const slash = link.lastIndexOf("/");
  // Parents are directories (the agent checks it; the scan walks them), so resolution
  // starts in the link's directory and only the components of targets can name links.
  let at = slash < 0 ? "" : link.slice(0, slash);
  const pending = target.split("/").reverse();
  let hops = 0;
  let via: string | undefined;
  for (let c = pending.pop(); c !== undefined; c = pending.pop()) {
    if (c === "" || c === ".") continue;
    if (c === "..") {
      if (at === "")
        return via ? `leads outside the tree through the link ${via}` : "points outside the tree";
      at = at.slice(0, Math.max(0, at.lastIndexOf("/")));
      continue;
    }
    const next = at === "" ? c : `${at}/${c}`;
    const through = links.get(next);
    if (through === undefined) {
      at = next;
      continue;
    }
    if (++hops > MAX_LINK_HOPS) return `leads through more than ${MAX_LINK_HOPS} links (a cycle?)`;
    via ??= next;
    if (through.startsWith("/")) return `leads to an absolute path through the link ${next}`;
    const parts = through.split("/");
    for (let i = parts.length - 1; i >= 0; i--) pending.push(parts[i] as string);
  }
  return undefined;
}

/** The first of `links` (in its order) that leads out of the tree through the others, with why. */
export function escapingLink(
  links: ReadonlyMap<string, string>,
): { path: string; target: string; problem: string } | undefined {
  for (const [path, target] of links) {
    const problem = linkChainProblem(links, path);
    if (problem) return { path, target, problem };
  }
  return undefined;
}
