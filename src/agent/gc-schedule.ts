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

/** setInterval's longest delay (2^31-1 ms); a longer one fires at once, again and again. */
export const MAX_GC_EVERY_SECONDS = Math.floor((2 ** 31 - 1) / 1000);

const whole = (v: string | undefined) => (v !== undefined && /^\d+$/.test(v) ? Number(v) : undefined);

/**
 * The schedule the environment asks for; undefined: no periodic pass (unset, 0, or not a number).
 * An interval beyond what a timer can hold (about 24.8 days) is held to that.
 */
export function gcScheduleFromEnv(env: NodeJS.ProcessEnv): GcSchedule | undefined {
  const everySeconds = whole(env[GC_ENV.every]);
  const olderThanSeconds = whole(env[GC_ENV.olderThan]);
  if (!everySeconds || olderThanSeconds === undefined) return undefined;
  const keepCacheBytes = whole(env[GC_ENV.keepCache]);
  return {
    everySeconds: Math.min(everySeconds, MAX_GC_EVERY_SECONDS),
    olderThanSeconds,
    ...(keepCacheBytes !== undefined ? { keepCacheBytes } : {}),
  };
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
