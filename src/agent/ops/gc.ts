/**
 * The gc operation: removes (or, with dryRun, lists) workspaces unused for
 * olderThanSeconds, the blobs no remaining workspace names, and the builder's cache
 * beyond keepCacheBytes. Workspaces and blobs are planned and removed with the blob
 * store held exclusively, so the plan a dry run reports is what a collection removes.
 */
import { promises as fs } from "node:fs";
import type { GcReply, Message } from "../../protocol/messages.js";
import { cacheUsage, pruneCache } from "../builder-cache.js";
import type { AgentContext } from "../context.js";
import { InvalidInput } from "../errors.js";
import { planGc, releaseAll, runGc } from "../gc.js";

export async function gc(ctx: AgentContext, op: Message): Promise<GcReply> {
  const dryRun = op.dryRun === true;
  const olderThan = Number(op.olderThanSeconds);
  if (!Number.isSafeInteger(olderThan) || olderThan < 0)
    throw new InvalidInput("olderThanSeconds must be a whole number of seconds");
  const keep = op.keepCacheBytes === undefined ? undefined : Number(op.keepCacheBytes);
  if (keep !== undefined && (!Number.isSafeInteger(keep) || keep < 0))
    throw new InvalidInput("keepCacheBytes must be a whole number of bytes");

  const before = new Date(Date.now() - olderThan * 1000);
  const plan = await ctx.store.exclusive(async () => {
    const p = await planGc(ctx, before);
    if (dryRun) releaseAll(p);
    else await runGc(ctx, p);
    return p;
  });
  let cache: GcReply["cache"];
  if (keep !== undefined) {
    const usage = await cacheUsage(ctx);
    const freed = dryRun
      ? Math.min(usage.reclaimable, Math.max(0, usage.size - keep))
      : await pruneCache(ctx, keep);
    cache = { builder: ctx.builder, size: usage.size, keep, freed };
  }
  if (!dryRun)
    ctx.log(
      `gc: ${plan.workspaces.length} workspaces, ${plan.blobs.length} blobs, ${plan.freed} bytes freed${cache ? `; builder cache ${cache.freed} bytes` : ""}`,
    );
  const disk = await fs.statfs(ctx.dataDir);
  return {
    t: "gc",
    dryRun,
    workspaces: plan.workspaces.map(({ release: _, ...w }) => w),
    skipped: plan.skipped,
    blobs: { count: plan.blobs.length, bytes: plan.blobBytes },
    ...(cache ? { cache } : {}),
    freed: plan.freed,
    disk: { total: disk.blocks * disk.bsize, free: disk.bavail * disk.bsize },
  };
}
