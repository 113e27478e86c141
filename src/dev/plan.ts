/**
 * What `dev` does with one batch of changed paths: put them straight into the running
 * containers (live update) or rebuild and roll out. Decided from the project's `dev`
 * rules before anything is touched; the plan names every file and where it goes.
 *
 * A sync rule `{src, dest}` maps tree paths to container paths the way Dockerfile's
 * `COPY <base> <dest>` does: `src` is a glob over the tree's paths ('/'-separated,
 * dotfiles included), its base is the part before the first glob segment, and a path goes
 * to `dest` + the path relative to that base (`app/**` → `/app`: `app/x/y.py` →
 * `/app/x/y.py`). A `src` without glob characters names a directory (everything below
 * it, relative to it) or a file (`dest` is then the file's own path).
 */
import { posix } from "node:path";
import picomatch from "picomatch";
import type { FileCopy } from "../live/container.js";
import type { ChangeBatch } from "./watch.js";

export interface SyncRule {
  src: string;
  dest: string;
}

export interface RunRule {
  cmd: string;
  /** Globs (see anyOf); the command runs when a live update put or deleted a matching path. Empty: always. */
  on?: string[];
}

export interface DevRules {
  sync: SyncRule[];
  /** Globs (see anyOf): a changed path matching any forces a rebuild. */
  rebuildOn: string[];
  run: RunRule[];
}

export type { FileCopy };

export type DevPlan =
  | { kind: "live"; put: FileCopy[]; remove: FileCopy[]; run: string[] }
  | { kind: "rebuild"; reason: string };

interface CompiledRule {
  rule: SyncRule;
  base: string;
  literal: boolean;
  matches: (rel: string) => boolean;
}

export interface CompiledRules {
  /** Where `rel` goes in the container, or undefined when no sync rule covers it. */
  destOf(rel: string): string | undefined;
  rebuildReason(rel: string): string | undefined;
  runFor(paths: readonly string[]): string[];
}

const GLOB_OPTS = { dot: true } as const;

export function compileRules(rules: DevRules, dockerfile: string): CompiledRules {
  const sync: CompiledRule[] = rules.sync.map((rule) => {
    const src = trimSlashes(rule.src);
    const scan = picomatch.scan(src);
    if (!scan.isGlob) {
      const matches = src === "" ? () => true : (rel: string) => rel === src || rel.startsWith(`${src}/`);
      return { rule, base: src, literal: true, matches };
    }
    return { rule, base: trimSlashes(scan.base), literal: false, matches: picomatch(src, GLOB_OPTS) };
  });
  const rebuild = rules.rebuildOn.map((g) => ({ glob: g, matches: anyOf([g]) }));
  const dockerfileRel = posix.normalize(dockerfile);
  const run = rules.run.map((r) => ({
    cmd: r.cmd,
    matches: r.on?.length ? anyOf(r.on) : undefined,
  }));
  return {
    destOf(rel) {
      for (const c of sync) {
        if (!c.matches(rel)) continue;
        if (c.literal && rel === c.base) return c.rule.dest;
        const below = c.base === "" ? rel : rel.slice(c.base.length + 1);
        const dest = posix.join(c.rule.dest, below);
        // posix.join of a relative tree path (no '..' segments) cannot leave dest; say so anyway.
        if (dest !== c.rule.dest && !dest.startsWith(`${posix.normalize(c.rule.dest).replace(/\/$/, "")}/`))
          return undefined;
        return dest;
      }
      return undefined;
    },
    rebuildReason(rel) {
      if (rel === dockerfileRel) return `${rel} changed (the Dockerfile)`;
      if (rel === ".dockerignore") return ".dockerignore changed";
      const hit = rebuild.find((r) => r.matches(rel));
      return hit ? `${rel} changed (dev.rebuildOn: ${hit.glob})` : undefined;
    },
    runFor(paths) {
      return run.filter((r) => !r.matches || paths.some((p) => r.matches?.(p))).map((r) => r.cmd);
    },
  };
}

/**
 * The plan for one batch. `isSymlink` tells which changed paths are symlinks now (they
 * need a rebuild: live update puts regular files only); directories are left out of
 * `put` by the caller's lstat (a directory arrives with the files in it).
 */
export function planBatch(
  rules: CompiledRules,
  hasSyncRules: boolean,
  batch: ChangeBatch,
  kindOf: (rel: string) => "file" | "dir" | "symlink" | "other",
): DevPlan {
  if (!hasSyncRules) return { kind: "rebuild", reason: "no dev.sync rules" };
  const all = [...batch.changed, ...batch.deleted];
  for (const rel of all) {
    const why = rules.rebuildReason(rel);
    if (why) return { kind: "rebuild", reason: why };
  }
  const put: FileCopy[] = [];
  const remove: FileCopy[] = [];
  for (const rel of batch.changed) {
    const kind = kindOf(rel);
    if (kind === "dir") continue;
    if (kind === "symlink")
      return { kind: "rebuild", reason: `${rel} is a symlink (live update puts regular files only)` };
    if (kind === "other") return { kind: "rebuild", reason: `${rel} is not a regular file` };
    const dest = rules.destOf(rel);
    if (!dest) return { kind: "rebuild", reason: `${rel} changed (not covered by a dev.sync rule)` };
    put.push({ rel, dest });
  }
  for (const rel of batch.deleted) {
    const dest = rules.destOf(rel);
    if (!dest) return { kind: "rebuild", reason: `${rel} was deleted (not covered by a dev.sync rule)` };
    remove.push({ rel, dest });
  }
  return { kind: "live", put, remove, run: rules.runFor(all) };
}

function trimSlashes(s: string): string {
  const t = s.replace(/^\.\/+/, "").replace(/\/+$/, "");
  return t === "." ? "" : t;
}

/**
 * A matcher for `globs` over tree paths. As in .gitignore, a glob without a slash matches
 * a path's last segment at any depth (`*.py`, `requirements.txt`); one with a slash
 * matches from the root.
 */
function anyOf(globs: string[]): (rel: string) => boolean {
  const ms = globs.map((g) => {
    const t = trimSlashes(g);
    return picomatch(t, { ...GLOB_OPTS, basename: !t.includes("/") });
  });
  return (rel) => ms.some((m) => m(rel));
}
