/**
 * What a deploy (or history, rollback) acts on, decided from the flags and
 * snapdeploy.yaml and checked against the cluster before anything is built: the
 * targets, or the user's own objects (--manifests / deploy.manifests: kubectl's word
 * for the user's YAML files, kept for the flag and the key).
 */
import type { KubeConfig } from "@kubernetes/client-node";
import path from "node:path";
import { UserError } from "../errors.js";
import { personalName } from "../deploy/personal-name.js";
import type { ResourceSet } from "../deploy/resources/apply.js";
import { imageRepository, requireImageUse, substituteImage } from "../deploy/resources/images.js";
import { loadResources } from "../deploy/resources/load.js";
import type { ResourceObject } from "../deploy/resources/object.js";
import {
  ensureNamespace,
  parseTarget,
  type ResolvedTarget,
  resolveTarget,
  type TargetSpec,
  targetNamespace,
} from "../deploy/targets.js";

export interface TargetChoice {
  /** --target values, as typed. */
  flags: string[];
  /** deploy.targets. */
  configured: TargetSpec[];
  namespaceFlag?: string;
  configuredNamespace?: string;
}

/** The targets named by flags, else by snapdeploy.yaml, resolved against the cluster. */
export async function resolveTargets(kc: KubeConfig, choice: TargetChoice): Promise<ResolvedTarget[]> {
  const specs = choice.flags.length ? choice.flags.map(parseTarget) : choice.configured;
  if (!specs.length) {
    throw new UserError("usage", "no deploy target given", {
      hint: "pass --target deployment/NAME[:container], or list deploy.targets in snapdeploy.yaml",
    });
  }
  const namespace = targetNamespace(kc, choice.namespaceFlag, choice.configuredNamespace);
  await ensureNamespace(kc, namespace);
  return await Promise.all(specs.map((s) => resolveTarget(kc, namespace, s)));
}

export interface ResourceChoice {
  /** --manifests. */
  flag?: string;
  /** deploy.manifests: used when neither --target nor --personal is given. */
  configured?: string;
  targetFlags: boolean;
  personal: boolean;
  /** --repository, image.repository, --image: the first given names the repository. */
  repositoryFlag?: string;
  configuredRepository?: string;
  image?: string;
  /** The project folder: paths are relative to it. */
  dir: string;
  namespaceFlag?: string;
  configuredNamespace?: string;
}

/** The user's objects, loaded and checked, and the repository whose containers get the snapshot. */
export interface DeployResources {
  objects: ResourceObject[];
  repository: string;
  /** The path they were loaded from, for messages. */
  where: string;
  namespace: string;
}

/**
 * With --manifests (or deploy.manifests when no --target and no --personal is given):
 * the user's objects, loaded and checked before anything is built. Undefined when
 * deploying to targets.
 */
export async function loadDeployResources(
  kc: KubeConfig,
  choice: ResourceChoice,
): Promise<DeployResources | undefined> {
  if (choice.flag && choice.targetFlags) {
    throw new UserError("usage", "--manifests and --target cannot be combined", {
      hint: "with --manifests, the Deployments and StatefulSets in the manifests that run the image are the targets",
    });
  }
  if (choice.flag && choice.personal) {
    throw new UserError("usage", "--manifests and --personal cannot be combined", {
      hint: "--personal makes copies of existing targets (-t); manifests name their own objects: give them your own names instead",
    });
  }
  const chosen = choice.flag ?? (choice.targetFlags || choice.personal ? undefined : choice.configured);
  if (!chosen) return undefined;
  const repository =
    choice.repositoryFlag ??
    choice.configuredRepository ??
    (choice.image ? imageRepository(choice.image) : undefined);
  if (!repository) {
    throw new UserError("usage", "no image repository given", {
      hint: "pass --repository registry.example.com/team/app, or set image.repository in snapdeploy.yaml: containers running it get the snapshot",
    });
  }
  // Relative to the project folder (-C), like --dockerfile and deploy.manifests.
  const where = path.resolve(choice.dir, chosen);
  const objects = loadResources(where).map((l) => l.object);
  requireImageUse(objects, repository, where);
  const namespace = targetNamespace(kc, choice.namespaceFlag, choice.configuredNamespace);
  await ensureNamespace(kc, namespace);
  return { objects, repository, where, namespace };
}

/** The objects to apply, `image` put into every container of the repository. */
export function withImage(r: DeployResources, image: string): ResourceSet {
  return { ...substituteImage(r.objects, r.repository, image, r.where), namespace: r.namespace };
}

/** The user's personal copies of `targets` (what --personal acts on), by their names. */
export function personalTargets(targets: ResolvedTarget[], user: string): ResolvedTarget[] {
  return targets.map((t) => ({ ...t, name: personalName(t.name, user, t.kind) }));
}

/**
 * The workloads a deploy of `r` would watch (its Deployments and StatefulSets that run the
 * repository), by namespace, for the no-op check; undefined when another kind of workload
 * runs it too (a DaemonSet, a Job: not watched, so it cannot be said to run the snapshot).
 */
export function manifestWorkloads(r: DeployResources): { namespace: string; spec: TargetSpec }[] | undefined {
  const { changed } = substituteImage(r.objects, r.repository, `${r.repository}:snapdeploy`, r.where);
  const out: { namespace: string; spec: TargetSpec }[] = [];
  for (const c of changed) {
    const o = c.object;
    if (o.apiVersion !== "apps/v1" || (o.kind !== "Deployment" && o.kind !== "StatefulSet")) return undefined;
    out.push({
      namespace: o.metadata.namespace ?? r.namespace,
      spec: { kind: o.kind, name: o.metadata.name, containers: c.containers },
    });
  }
  return out.length ? out : undefined;
}
