/**
 * Deploying the user's own objects (--manifests): server-side apply of all of them,
 * the workloads that run the snapshot stamped like patched targets.
 */
import type { KubeConfig } from "@kubernetes/client-node";
import { UserError } from "../../errors.js";
import { type AppliedObject, applyObject, DiscoveringObjectApi } from "../../kube/apply.js";
import { apiError } from "../../kube/client.js";
import { ANNOTATION, type Stamp, templateAnnotations } from "../patch.js";
import type { ResolvedTarget, TargetKind } from "../targets.js";
import type { ChangedWorkload } from "./images.js";
import { manifestsDigest } from "./digest.js";
import { annotateWorkload, type ResourceObject } from "./object.js";

export interface ResourceSet {
  /** Every object to apply, the image already substituted. */
  objects: ResourceObject[];
  /** The workloads among `objects` (same object references) that got the new image. */
  changed: ChangedWorkload[];
  /** For namespaced objects that name none. */
  namespace: string;
}

export interface AppliedResources {
  applied: AppliedObject[];
  /** The Deployments and StatefulSets that got the new image, as applied. */
  targets: ResolvedTarget[];
  /** Other workloads that got the new image (DaemonSets, Jobs, ...): applied, not watched. */
  unwatched: string[];
}

/**
 * Applies the user's objects with server-side apply (field manager snapdeploy).
 * Namespaced objects without a namespace get `namespace`; the workloads that got the
 * new image are stamped like pointTargets stamps targets. Every object is first sent
 * as a server-side dry run, so a refusal (RBAC, validation, admission) changes
 * nothing; then they are applied in order. `onTarget` sees each Deployment or
 * StatefulSet that got the image as it was before (object {} if it is new), just
 * before it is applied, so its history entry is written before the change.
 */
export async function applyResources(
  kc: KubeConfig,
  set: ResourceSet,
  stamp: Stamp,
  onTarget?: (before: ResolvedTarget) => Promise<void> | void,
): Promise<AppliedResources> {
  const api = kc.makeApiClient(DiscoveringObjectApi);
  const server = kc.getCurrentCluster()?.server;
  const changed = new Map(set.changed.map((c) => [c.object, c]));
  // Before the stamp: the next deploy of the same files and snapshot computes the same.
  const digest = manifestsDigest(set);
  const plan: { object: ResourceObject; containers?: string[]; before?: ResolvedTarget["object"] }[] = [];
  for (const o of set.objects) {
    const label = `${o.kind.toLowerCase()}/${o.metadata.name}`;
    const resource = await api.discover(o.apiVersion, o.kind).catch((e) => {
      if ((e as { code?: number }).code === 404) return undefined;
      throw apiError(e, `look up ${o.kind} in ${o.apiVersion} for ${label}`, server);
    });
    if (!resource) {
      throw new UserError("input", `the cluster does not serve ${o.kind} in ${o.apiVersion} (${label})`, {
        hint: "check apiVersion and kind in the manifests; a custom resource needs its CustomResourceDefinition installed first",
      });
    }
    const object = structuredClone(o);
    if (resource.namespaced) object.metadata.namespace ??= set.namespace;
    else delete object.metadata.namespace;
    const c = changed.get(o);
    const containers = c?.containers;
    if (c) {
      annotateWorkload(object, templateAnnotations({ image: c.image }, stamp), {
        [ANNOTATION.changeCause]: stamp.cause,
        [ANNOTATION.manifests]: digest,
      });
    }
    plan.push({ object, containers });
  }
  for (const p of plan) {
    const r = await applyObject(kc, api, p.object, { dryRun: true });
    p.before = r.before as ResolvedTarget["object"] | undefined;
  }
  const out: AppliedResources = { applied: [], targets: [], unwatched: [] };
  for (const p of plan) {
    const o = p.object;
    const target =
      p.containers && o.apiVersion === "apps/v1" && (o.kind === "Deployment" || o.kind === "StatefulSet")
        ? {
            kind: o.kind as TargetKind,
            name: o.metadata.name,
            namespace: o.metadata.namespace as string,
            containers: p.containers,
          }
        : undefined;
    if (target) await onTarget?.({ ...target, object: p.before ?? {} });
    const r = await applyObject(kc, api, o);
    out.applied.push({ kind: r.kind, name: r.name, outcome: r.outcome });
    if (target) out.targets.push({ ...target, object: r.after as ResolvedTarget["object"] });
    else if (p.containers) out.unwatched.push(`${o.kind.toLowerCase()}/${o.metadata.name}`);
  }
  return out;
}
