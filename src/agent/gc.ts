/**
 * Garbage collection of the data volume: workspaces unused for a while and the blobs
 * that no remaining workspace names. A plan is made first (what goes, what it frees),
 * then carried out — or, for a dry run, only reported; the same code computes both, so
 * a dry run lists exactly what the collection after it removes when nothing happened in
 * between. Space is counted as the disk blocks of the files whose every hard link goes:
 * workspace files are hard links to their blobs, so removing a workspace frees little on
 * its own, and its blobs free the rest once nothing else names them.
 */
import { lstatSync, promises as fs, readdirSync, type Stats } from "node:fs";
import path from "node:path";
import type { GcWorkspace } from "../protocol/messages.js";
import type { AgentContext } from "./context.js";
import { Workspace } from "./workspace.js";

export interface GcPlan {
  workspaces: (GcWorkspace & { release: () => void })[];
  skipped: { user: string; project: string; reason: string }[];
  blobs: string[];
  blobBytes: number;
  /** Workspaces and blobs together. */
  freed: number;
}

/** Every workspace on the volume. */
async function allWorkspaces(ctx: AgentContext): Promise<Workspace[]> {
  const out: Workspace[] = [];
  for (const user of await fs.readdir(ctx.workspacesDir).catch(() => [] as string[])) {
    for (const project of await fs.readdir(path.join(ctx.workspacesDir, user)).catch(() => [] as string[]))
      out.push(new Workspace(ctx.workspacesDir, user, project));
  }
  return out;
}

/**
 * The workspaces unused since `before` (each locked for the caller, who releases it;
 * one whose lock is held is skipped), the blobs nothing else names and what they free.
 * Call it with the blob store held exclusively (StoreGate), so no sync is between
 * choosing the blobs it relies on and materializing its tree.
 */
export async function planGc(ctx: AgentContext, before: Date): Promise<GcPlan> {
  const plan: GcPlan = { workspaces: [], skipped: [], blobs: [], blobBytes: 0, freed: 0 };
  const keep = new Set<string>();
  const gone: Workspace[] = [];
  for (const ws of await allWorkspaces(ctx)) {
    const used = await ws.lastUsed();
    const key = `${ws.user}/${ws.project}`;
    // A workspace without a record (a first sync was interrupted) is idle since its folder's mtime.
    const last =
      used ??
      (await fs.stat(ws.dir).then(
        (s) => s.mtime,
        () => new Date(),
      ));
    if (last >= before) {
      await ws.referencedBlobs(keep);
      continue;
    }
    const release = ctx.locks.tryAcquire(key, "garbage collection");
    if (!release) {
      plan.skipped.push({
        user: ws.user,
        project: ws.project,
        reason: `in use (${ctx.locks.holder(key) ?? "locked"})`,
      });
      await ws.referencedBlobs(keep);
      continue;
    }
    gone.push(ws);
    plan.workspaces.push({
      user: ws.user,
      project: ws.project,
      lastUsed: last.toISOString(),
      bytes: 0,
      release,
    });
  }
  plan.blobs = ctx.blobs.hashes().filter((h) => !keep.has(h));

  // Which inodes go entirely: every link of theirs is among the paths removed.
  const inodes = new Map<number, { st: Stats; links: number; owner: number }>();
  const note = (st: Stats, owner: number) => {
    const i = inodes.get(st.ino);
    if (i) i.links++;
    else inodes.set(st.ino, { st, links: 1, owner });
  };
  // Blobs first: an inode that is a blob counts for the blobs, even if a workspace links it too.
  const BLOBS = -1;
  for (const h of plan.blobs) {
    const st = lstatSync(ctx.blobs.path(h), { throwIfNoEntry: false });
    if (st) note(st, BLOBS);
  }
  gone.forEach((ws, n) => {
    walk(ws.dir, (st) => note(st, n));
  });
  for (const { st, links, owner } of inodes.values()) {
    if (links < st.nlink) continue;
    const size = st.blocks * 512;
    plan.freed += size;
    // A file only its workspace holds (a copy, a manifest) counts for the workspace.
    if (owner === BLOBS) plan.blobBytes += size;
    else (plan.workspaces[owner] as GcWorkspace).bytes += size;
  }
  return plan;
}

/** Calls `fn` with the lstat of `dir` and of everything below it. */
function walk(dir: string, fn: (st: Stats) => void): void {
  const st = lstatSync(dir, { throwIfNoEntry: false });
  if (!st) return;
  fn(st);
  if (!st.isDirectory()) return;
  for (const name of readdirSync(dir)) walk(path.join(dir, name), fn);
}

/** Carries the plan out: the workspaces' folders, then the blobs. Releases the workspaces' locks. */
export async function runGc(ctx: AgentContext, plan: GcPlan): Promise<void> {
  try {
    for (const w of plan.workspaces) {
      await fs.rm(path.join(ctx.workspacesDir, w.user, w.project), { recursive: true, force: true });
      // A user folder left empty goes too.
      await fs.rmdir(path.join(ctx.workspacesDir, w.user)).catch(() => {});
    }
    for (const h of plan.blobs) ctx.blobs.remove(h);
  } finally {
    releaseAll(plan);
  }
}

export function releaseAll(plan: GcPlan): void {
  for (const w of plan.workspaces) w.release();
}
