/**
 * Points targets at an image: a strategic-merge patch of the named containers'
 * images plus pod-template annotations that say which snapshot, who, which commit,
 * and when. Every patch is first sent as a server-side dry run for all targets, so
 * a refusal (RBAC, validation) changes nothing rather than half the targets.
 */
import { AppsV1Api, type KubeConfig, PatchStrategy, setHeaderOptions } from "@kubernetes/client-node";
import { FIELD_MANAGER } from "../kube/apply.js";
import { apiError } from "../kube/client.js";
import type { ResolvedTarget } from "./targets.js";

import { ANNOTATION, OWNER_LABEL, PERSONAL_LABEL } from "./annotations.js";

export { ANNOTATION, OWNER_LABEL, PERSONAL_LABEL };

export interface Stamp {
  /** The snapshot the images are; null removes the annotation (images of no known snapshot). */
  snapshot?: string | null;
  user: string;
  commit?: string;
  dirty?: boolean;
  cause: string;
}

/** The images the target's named containers (and init containers) run now. */
export function currentImages(t: ResolvedTarget): Record<string, string> {
  const out: Record<string, string> = {};
  const spec = t.object.spec?.template.spec;
  for (const c of [...(spec?.initContainers ?? []), ...(spec?.containers ?? [])])
    if (t.containers.includes(c.name)) out[c.name] = c.image ?? "";
  return out;
}

/** The pod-template annotations of a deploy: which snapshot and image, who, which commit, when. */
export function templateAnnotations(images: Record<string, string>, stamp: Stamp): Record<string, string> {
  const annotations: Record<string, string> = {
    [ANNOTATION.user]: stamp.user,
    [ANNOTATION.time]: new Date().toISOString(),
    [ANNOTATION.image]: Object.values(images)[0] ?? "",
    [ANNOTATION.commit]: stamp.commit ?? "",
    [ANNOTATION.dirty]: String(stamp.dirty ?? false),
  };
  if (stamp.snapshot) annotations[ANNOTATION.snapshot] = stamp.snapshot;
  return annotations;
}

/** The patch for `t`; names of the target's init containers go to initContainers. */
function patchBody(t: ResolvedTarget, images: Record<string, string>, stamp: Stamp) {
  const annotations: Record<string, string | null> = templateAnnotations(images, stamp);
  // A strategic-merge patch deletes a key whose value is null.
  if (stamp.snapshot === null) annotations[ANNOTATION.snapshot] = null;
  const init = new Set((t.object.spec?.template.spec?.initContainers ?? []).map((c) => c.name));
  const list = (wantInit: boolean) =>
    Object.entries(images)
      .filter(([name]) => init.has(name) === wantInit)
      .map(([name, image]) => ({ name, image }));
  const containers = list(false);
  const initContainers = list(true);
  return {
    metadata: { annotations: { [ANNOTATION.changeCause]: stamp.cause } },
    spec: {
      template: {
        metadata: { annotations },
        spec: {
          ...(containers.length ? { containers } : {}),
          ...(initContainers.length ? { initContainers } : {}),
        },
      },
    },
  };
}

async function patchOne(kc: KubeConfig, t: ResolvedTarget, body: object, dryRun: boolean) {
  const apps = kc.makeApiClient(AppsV1Api);
  const opts = setHeaderOptions("Content-Type", PatchStrategy.StrategicMergePatch);
  const req = {
    name: t.name,
    namespace: t.namespace,
    body,
    fieldManager: FIELD_MANAGER,
    dryRun: dryRun ? "All" : undefined,
  };
  try {
    if (t.kind === "Deployment") await apps.patchNamespacedDeployment(req, opts);
    else await apps.patchNamespacedStatefulSet(req, opts);
  } catch (e) {
    throw apiError(
      e,
      `patch ${t.kind === "Deployment" ? "deployments" : "statefulsets"}/${t.name} in namespace ${t.namespace}`,
    );
  }
}

/** Dry-runs every patch, then applies them. */
export async function pointTargets(
  kc: KubeConfig,
  targets: { target: ResolvedTarget; images: Record<string, string> }[],
  stamp: Stamp,
  onApplied?: (t: ResolvedTarget) => Promise<void> | void,
): Promise<void> {
  for (const { target, images } of targets)
    await patchOne(kc, target, patchBody(target, images, stamp), true);
  for (const { target, images } of targets) {
    await onApplied?.(target);
    await patchOne(kc, target, patchBody(target, images, stamp), false);
  }
}
