/**
 * The Dockerfiles of a project tree, for `init` to offer: files named `Dockerfile`,
 * `Dockerfile.<x>`, `<x>.Dockerfile` or `Containerfile`, outside what `.dockerignore`
 * leaves out of the build context (and `.git`), since a build can only use a Dockerfile
 * the build server receives. The root's `Dockerfile` is always sent, as the scan does.
 */
import { readdirSync } from "node:fs";
import path from "node:path";
import { readDockerignore } from "../context/dockerignore.js";

const DOCKERFILE = /^(Dockerfile(\..+)?|.+\.Dockerfile|Containerfile)$/i;
/** How far down and how many entries the search looks at: a project's own files, not a disk. */
const MAX_DEPTH = 8;
const MAX_ENTRIES = 50_000;

/** Their paths relative to `root`, '/'-separated: the root's first, then shallower before deeper. */
export async function findDockerfiles(root: string): Promise<string[]> {
  const rules = await readDockerignore(root);
  const found: string[] = [];
  let seen = 0;
  const walk = (rel: string, depth: number) => {
    let entries: import("node:fs").Dirent[];
    try {
      entries = readdirSync(rel ? path.join(root, rel) : root, { withFileTypes: true });
    } catch {
      return; // an unreadable folder holds nothing init can offer
    }
    for (const d of entries) {
      if (++seen > MAX_ENTRIES) return;
      const r = rel ? `${rel}/${d.name}` : d.name;
      if (r === ".git") continue;
      const always = r === "Dockerfile";
      if (d.isDirectory()) {
        if (depth < MAX_DEPTH && !(rules.ignores(r) && rules.canPrune(r))) walk(r, depth + 1);
      } else if (d.isFile() && DOCKERFILE.test(d.name) && (always || !rules.ignores(r))) found.push(r);
    }
  };
  walk("", 0);
  const depth = (p: string) => p.split("/").length;
  return found.sort((a, b) =>
    a === "Dockerfile" ? -1 : b === "Dockerfile" ? 1 : depth(a) - depth(b) || a.localeCompare(b),
  );
}
