/**
 * A snapshot's id: a digest of everything that decides the image — the synced
 * manifest, the Dockerfile path, build args, target stage and platform. Equal ids
 * mean the same image can be reused, by anyone on the team.
 */
import { createHash } from "node:crypto";

export interface BuildSettings {
  dockerfile: string;
  buildArgs: Record<string, string>;
  target?: string;
  platform?: string;
}

export function snapshotId(manifestDigest: string, s: BuildSettings): string {
  const args = Object.keys(s.buildArgs)
    .sort()
    .map((k) => [k, s.buildArgs[k]]);
  const canonical = JSON.stringify({
    v: 1,
    manifest: manifestDigest,
    dockerfile: s.dockerfile,
    buildArgs: args,
    target: s.target ?? null,
    platform: s.platform ?? null,
  });
  return createHash("sha256").update(canonical).digest("hex");
}

/** The tag for a snapshot: the prefix plus the first 32 hex digits of its id. */
export function snapshotTag(id: string, prefix = "snap-"): string {
  return `${prefix}${id.slice(0, 32)}`;
}
