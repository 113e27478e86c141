/**
 * The build server's own garbage collection: the gc operation (ops/gc.ts), run by the agent
 * every so often as `server install --gc-every/--gc-older-than/--gc-keep-cache` set it, so a
 * volume nobody tends does not fill up. Each pass is the same as `snapdeploy gc`: a workspace
 * in use (locked) is skipped, and the blob store is held exclusively while it is planned.
 */
import { GC_ENV } from "../protocol/constants.js";
import type { AgentContext } from "./context.js";
import { gc } from "./ops/gc.js";

export interface GcSchedule {
  everySeconds: number;
  olderThanSeconds: number;
  keepCacheBytes?: number;
}

const whole = (v: string | undefined) => (v !== undefined && /^\d+$/.test(v) ? Number(v) : undefined);

/** The schedule the environment asks for; undefined: no periodic pass (unset, 0, or not a number). */
export function gcScheduleFromEnv(env: NodeJS.ProcessEnv): GcSchedule | undefined {
  const everySeconds = whole(env[GC_ENV.every]);
  const olderThanSeconds = whole(env[GC_ENV.olderThan]);
  if (!everySeconds || olderThanSeconds === undefined) return undefined;
  const keepCacheBytes = whole(env[GC_ENV.keepCache]);
  return { everySeconds, olderThanSeconds, ...(keepCacheBytes !== undefined ? { keepCacheBytes } : {}) };
}

/** Runs a pass every schedule.everySeconds (never two at once); the timer does not keep the process alive. */
export function startGcSchedule(ctx: AgentContext, s: GcSchedule): () => void {
  let running = false;
  const pass = async () => {
    if (running) return;
    running = true;
    try {
      await gc(ctx, {
        t: "gc",
        olderThanSeconds: s.olderThanSeconds,
        ...(s.keepCacheBytes !== undefined ? { keepCacheBytes: s.keepCacheBytes } : {}),
      });
    } catch (e) {
      ctx.log(`gc: the periodic pass failed: ${(e as Error).message}`);
    } finally {
      running = false;
    }
  };
  const timer = setInterval(() => void pass(), s.everySeconds * 1000);
  timer.unref();
  ctx.log(
    `gc: every ${s.everySeconds} s, workspaces unused for ${s.olderThanSeconds} s${s.keepCacheBytes !== undefined ? `, builder cache down to ${s.keepCacheBytes} bytes` : ""}`,
  );
  return () => clearInterval(timer);
}
