/**
 * Whether the user's objects (--manifests) are the ones snapdeploy last applied: each
 * workload it stamps carries the digest of the whole set as applied (image substituted,
 * before the stamp), so the next deploy of the same tree and the same files can tell
 * "nothing to do" without applying anything.
 */
import { createHash } from "node:crypto";
import { ANNOTATION } from "../annotations.js";
import type { ResolvedTarget } from "../targets.js";
import type { ResourceObject } from "./object.js";

/** What is applied: the objects (image substituted) and the namespace of those that name none. */
export interface AppliedSet {
  objects: ResourceObject[];
  namespace: string;
}

/** JSON with object keys sorted: the same objects give the same text whatever their key order. */
function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(",")}]`;
  if (value && typeof value === "object") {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonical(v)}`).join(",")}}`;
  }
  return JSON.stringify(value) ?? "null";
}

/** sha256 of the set as it is applied: every object (image substituted) and the default namespace. */
export function manifestsDigest(set: AppliedSet): string {
  const h = createHash("sha256");
  h.update(canonical({ namespace: set.namespace, objects: set.objects }));
  return h.digest("hex");
}

/**
 * Why the live workloads were not deployed from exactly `set`, or undefined when each of
 * them carries its digest. `targets` are the set's Deployments and StatefulSets as read
 * from the cluster.
 */
export function manifestsChanged(targets: readonly ResolvedTarget[], set: AppliedSet): string | undefined {
  const digest = manifestsDigest(set);
  for (const t of targets) {
    const applied = t.object.metadata?.annotations?.[ANNOTATION.manifests];
    if (applied !== digest)
      return `${t.kind.toLowerCase()}/${t.name} ${applied ? "was deployed from other manifests" : "was not deployed from these manifests"}`;
  }
  return undefined;
}
