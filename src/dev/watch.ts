/**
 * Watching the working tree for `dev`: a native recursive watcher (@parcel/watcher:
 * inotify on Linux, FSEvents on macOS), filtered by the same rules as the scan
 * (`.dockerignore`, never `.git`), debounced into batches of changed paths. A change of
 * `.dockerignore` itself reloads the rules and is reported like any other path.
 */
import { createRequire } from "node:module";
import path from "node:path";
import { type IgnoreRules, readDockerignore } from "../context/dockerignore.js";

/** One debounced batch: paths relative to the root, '/'-separated, each once. */
export interface ChangeBatch {
  /** Created or modified (files, directories, symlinks). */
  changed: string[];
  /** Removed. A path both removed and created again within a batch counts as changed. */
  deleted: string[];
}

export interface WatchOptions {
  /** Quiet time after the last event before a batch is delivered. Default 80 ms. */
  debounceMs?: number;
  /** A batch is delivered at the latest this long after its first event, even while events go on. Default 1 s. */
  maxWaitMs?: number;
  onBatch: (batch: ChangeBatch) => void;
  onError?: (e: Error) => void;
}

export interface TreeWatcher {
  close(): Promise<void>;
}

/** Starts watching `root` (absolute). Resolves once the native watcher is subscribed. */
export async function watchTree(root: string, opts: WatchOptions): Promise<TreeWatcher> {
  // A native CommonJS module, not bundled: required from node_modules when `dev` starts
  // (require, not import(): the bundle runs as a script, see bin/snapdeploy.cjs).
  const watcher = createRequire(import.meta.url)("@parcel/watcher") as typeof import("@parcel/watcher");
  let rules: IgnoreRules = await readDockerignore(root);
  const debounceMs = opts.debounceMs ?? 80;
  const maxWaitMs = opts.maxWaitMs ?? 1000;
  // Latest event per path wins: true = exists (changed), false = deleted.
  let pending = new Map<string, boolean>();
  let quiet: NodeJS.Timeout | undefined;
  let deadline: NodeJS.Timeout | undefined;
  let closed = false;

  const flush = () => {
    clearTimeout(quiet);
    clearTimeout(deadline);
    quiet = deadline = undefined;
    if (pending.size === 0 || closed) return;
    const batch = pending;
    pending = new Map();
    const changed: string[] = [];
    const deleted: string[] = [];
    for (const [rel, exists] of batch) (exists ? changed : deleted).push(rel);
    opts.onBatch({ changed: changed.sort(), deleted: deleted.sort() });
  };

  const sub = await watcher.subscribe(
    root,
    (err, events) => {
      if (err) {
        opts.onError?.(err);
        return;
      }
      let reload = false;
      for (const ev of events) {
        const rel = relative(root, ev.path);
        if (rel === undefined || isGit(rel)) continue;
        if (rel === ".dockerignore") reload = true;
        else if (rules.ignores(rel)) continue;
        // A path re-created after a delete in the same batch exists; a create followed by
        // a delete does not.
        pending.set(rel, ev.type !== "delete");
      }
      const deliver = () => {
        if (pending.size === 0) return;
        clearTimeout(quiet);
        quiet = setTimeout(flush, debounceMs);
        deadline ??= setTimeout(flush, maxWaitMs);
      };
      if (!reload) return deliver();
      readDockerignore(root).then(
        (r) => {
          rules = r;
          deliver();
        },
        (e: Error) => {
          opts.onError?.(e);
          deliver();
        },
      );
    },
    { ignore: [".git"] },
  );

  return {
    async close() {
      closed = true;
      clearTimeout(quiet);
      clearTimeout(deadline);
      await sub.unsubscribe();
    },
  };
}

function relative(root: string, abs: string): string | undefined {
  const rel = path.relative(root, abs);
  if (rel === "" || rel.startsWith("..") || path.isAbsolute(rel)) return undefined;
  return rel.split(path.sep).join("/");
}

function isGit(rel: string): boolean {
  return rel === ".git" || rel.startsWith(".git/");
}
