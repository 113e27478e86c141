/**
 * Points targets at an image: a strategic-merge patch of the named containers'
 * images plus pod-template annotations that say which snapshot, who, which commit,
 * and when. Every patch is first sent as a server-side dry run for all targets, so
 * a refusal (RBAC, validation) changes nothing rather than half the targets.
 */
import {
  AppsV1Api,
  CoreV1Api,
  type KubeConfig,
  KubernetesObjectApi,
  PatchStrategy,
  setHeaderOptions,
  type V1Deployment,
  type V1StatefulSet,
} from "@kubernetes/client-node";
import { apiError } from "../kube/client.js";
import { FIELD_MANAGER } from "../server/ops.js";
import { type ResolvedTarget, targetLabel } from "./targets.js";

export const ANNOTATION = {
  snapshot: "snapdeploy.dev/snapshot",
  image: "snapdeploy.dev/image",
  user: "snapdeploy.dev/user",
  commit: "snapdeploy.dev/commit",
  dirty: "snapdeploy.dev/dirty",
  time: "snapdeploy.dev/time",
  changeCause: "kubernetes.io/change-cause",
};
export const OWNER_LABEL = "snapdeploy.dev/owner";
export const PERSONAL_LABEL = "snapdeploy.dev/personal";

export interface Stamp {
  snapshot?: string;
  user: string;
  commit?: string;
  dirty?: boolean;
  cause: string;
}

/** The images the target's named containers run now. */
export function currentImages(t: ResolvedTarget): Record<string, string> {
  const out: Record<string, string> = {};
  for (const c of t.object.spec?.template.spec?.containers ?? [])
    if (t.containers.includes(c.name)) out[c.name] = c.image ?? "";
  return out;
}

function templateAnnotations(images: Record<string, string>, stamp: Stamp): Record<string, string> {
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

function patchBody(images: Record<string, string>, stamp: Stamp) {
  const annotations = templateAnnotations(images, stamp);
  return {
    metadata: { annotations: { [ANNOTATION.changeCause]: stamp.cause } },
    spec: {
      template: {
        metadata: { annotations },
        spec: { containers: Object.entries(images).map(([name, image]) => ({ name, image })) },
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
  for (const { target, images } of targets) await patchOne(kc, target, patchBody(images, stamp), true);
  for (const { target, images } of targets) {
    await onApplied?.(target);
    await patchOne(kc, target, patchBody(images, stamp), false);
  }
}

/**
 * A user's own copy of a shared workload: `<name>-<user>`, one replica, labelled
 * with its owner, and with the labels that shared Services select on changed, so
 * no shared Service sends it traffic. Created or updated with server-side apply.
 */
export async function applyPersonalCopy(
  kc: KubeConfig,
  t: ResolvedTarget,
  images: Record<string, string>,
  stamp: Stamp,
): Promise<ResolvedTarget> {
  const user = stamp.user;
  const services = await kc
    .makeApiClient(CoreV1Api)
    .listNamespacedService({ namespace: t.namespace })
    .catch((e) => {
      throw apiError(e, `list services in namespace ${t.namespace}`);
    });
  const podLabels = t.object.spec?.template.metadata?.labels ?? {};
  const selectedKeys = new Set<string>();
  for (const s of services.items) {
    const sel = s.spec?.selector ?? {};
    const keys = Object.keys(sel);
    if (keys.length && keys.every((k) => podLabels[k] === sel[k])) for (const k of keys) selectedKeys.add(k);
  }
  const relabel = (labels: Record<string, string> = {}) => {
    const out: Record<string, string> = {};
    for (const [k, v] of Object.entries(labels))
      out[k] = selectedKeys.has(k) ? `${v}-${user}`.slice(0, 63) : v;
    out[OWNER_LABEL] = user;
    return out;
  };
  const name = `${t.name}-${user}`.slice(0, 63);
  const src = t.object as V1Deployment & V1StatefulSet;
  const spec = structuredClone(src.spec) as NonNullable<V1Deployment["spec"]> & { serviceName?: string };
  spec.replicas = 1;
  spec.selector = { ...spec.selector, matchLabels: relabel(spec.selector?.matchLabels) };
  spec.template = {
    ...spec.template,
    metadata: {
      ...spec.template.metadata,
      labels: relabel(spec.template.metadata?.labels),
      annotations: { ...spec.template.metadata?.annotations, ...templateAnnotations(images, stamp) },
    },
  };
  for (const c of spec.template.spec?.containers ?? []) if (images[c.name]) c.image = images[c.name];
  const copy = {
    apiVersion: "apps/v1",
    kind: t.kind,
    metadata: {
      name,
      namespace: t.namespace,
      labels: { ...(src.metadata?.labels ?? {}), [OWNER_LABEL]: user, [PERSONAL_LABEL]: "true" },
      annotations: { "snapdeploy.dev/copy-of": targetLabel(t), [ANNOTATION.changeCause]: stamp.cause },
    },
    spec,
  };
  const api = KubernetesObjectApi.makeApiClient(kc);
  try {
    const applied = (await api.patch(
      copy,
      undefined,
      undefined,
      FIELD_MANAGER,
      true,
      PatchStrategy.ServerSideApply,
    )) as V1Deployment | V1StatefulSet;
    return { ...t, name, object: applied };
  } catch (e) {
    throw apiError(
      e,
      `apply ${t.kind === "Deployment" ? "deployments" : "statefulsets"}/${name} in namespace ${t.namespace}`,
    );
  }
}
