/**
 * The builder's layer cache: how big it is, and pruning it down to a size. BuildKit's
 * own daemon through `buildctl du` / `buildctl prune --keep-storage`; the Docker builders
 * (the node's daemon or the pod's dind) through the Engine API on their socket
 * (`GET /system/df`, `POST /build/prune?keep-storage=`), which counts in bytes. The
 * builder chooses which records go (least recently used first, never one in use).
 */
import { execFile } from "node:child_process";
import http from "node:http";
import type { AgentContext } from "./context.js";

export interface CacheUsage {
  size: number;
  reclaimable: number;
}

/** go-units' sizes as buildctl prints them: decimal (kB, MB, GB) or binary (KiB, MiB). */
export function parseHumanSize(text: string): number | undefined {
  const m = /^([\d.]+)\s*([kKMGTP]?i?)B$/.exec(text.trim());
  if (!m) return undefined;
  const unit = m[2] ?? "";
  const power = " KMGTP".indexOf((unit[0] ?? " ").toUpperCase());
  const base = unit.endsWith("i") ? 1024 : 1000;
  return Math.round(Number(m[1]) * base ** Math.max(0, power));
}

/** The "Reclaimable:" and "Total:" lines at the end of `buildctl du` (and "Total:" of prune). */
export function parseBuildctlTotals(out: string): { total?: number; reclaimable?: number } {
  const pick = (label: string) => {
    const m = new RegExp(`^${label}:\\s+(\\S+)\\s*$`, "m").exec(out);
    return m ? parseHumanSize(m[1] as string) : undefined;
  };
  return { total: pick("Total"), reclaimable: pick("Reclaimable") };
}

function buildctl(ctx: AgentContext, args: string[]): Promise<string> {
  const bk = ctx.buildkit as NonNullable<AgentContext["buildkit"]>;
  return new Promise((resolve, reject) => {
    execFile(bk.buildctl, ["--addr", bk.addr, ...args], { maxBuffer: 64 << 20 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`buildctl ${args[0]} failed: ${String(stderr).trim() || err.message}`));
      else resolve(String(stdout));
    });
  });
}

/** A request to the Docker daemon the builds use ($DOCKER_HOST, unix sockets only). */
function docker<T>(method: string, apiPath: string): Promise<T> {
  const host = process.env.DOCKER_HOST ?? "unix:///var/run/docker.sock";
  if (!host.startsWith("unix://"))
    return Promise.reject(new Error(`DOCKER_HOST ${host} is not a unix socket`));
  return new Promise((resolve, reject) => {
    const req = http.request({ socketPath: host.slice("unix://".length), path: apiPath, method }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (d: Buffer) => chunks.push(d));
      res.on("error", reject);
      res.on("end", () => {
        const body = Buffer.concat(chunks).toString("utf8");
        if ((res.statusCode ?? 0) >= 300)
          return reject(new Error(`docker ${method} ${apiPath}: ${res.statusCode} ${body.trim()}`));
        try {
          resolve(JSON.parse(body) as T);
        } catch (e) {
          reject(e);
        }
      });
    });
    req.on("error", reject);
    req.end();
  });
}

interface DockerDf {
  BuildCache?: { Size?: number; InUse?: boolean; Shared?: boolean }[] | null;
}

export async function cacheUsage(ctx: AgentContext): Promise<CacheUsage> {
  if (ctx.buildkit) {
    const t = parseBuildctlTotals(await buildctl(ctx, ["du"]));
    return { size: t.total ?? 0, reclaimable: t.reclaimable ?? t.total ?? 0 };
  }
  const df = await docker<DockerDf>("GET", "/system/df?type=build-cache");
  let size = 0;
  let reclaimable = 0;
  for (const r of df.BuildCache ?? []) {
    // Shared records are counted once by the daemon's own total too; in-use ones cannot go.
    if (r.Shared) continue;
    size += r.Size ?? 0;
    if (!r.InUse) reclaimable += r.Size ?? 0;
  }
  return { size, reclaimable };
}

/** Prunes the cache down to `keep` bytes; returns what was freed (as the builder reports it). */
export async function pruneCache(ctx: AgentContext, keep: number): Promise<number> {
  if (ctx.buildkit) {
    // buildctl takes megabytes.
    const mb = Math.floor(keep / 1e6);
    return parseBuildctlTotals(await buildctl(ctx, ["prune", "--keep-storage", String(mb)])).total ?? 0;
  }
  const r = await docker<{ SpaceReclaimed?: number }>(
    "POST",
    `/build/prune?keep-storage=${Math.floor(keep)}`,
  );
  return r.SpaceReclaimed ?? 0;
}
