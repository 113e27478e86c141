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
import { UserError } from "../errors.js";
import { apiError } from "../kube/client.js";
import { type AppliedObject, applyObject, DiscoveringObjectApi, FIELD_MANAGER } from "../kube/apply.js";
import { annotateWorkload, type ChangedWorkload, type ManifestObject } from "./manifests.js";
import { type ResolvedTarget, type TargetKind, targetLabel } from "./targets.js";

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
  const annotations = templateAnnotations(images, stamp);
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

export interface ManifestSet {
  /** Every object to apply, the image already substituted. */
  objects: ManifestObject[];
  /** The workloads among `objects` (same object references) that got the new image. */
  changed: ChangedWorkload[];
  /** For namespaced objects that name none. */
  namespace: string;
}

export interface AppliedManifests {
  applied: AppliedObject[];
  /** The Deployments and StatefulSets that got the new image, as applied. */
  targets: ResolvedTarget[];
  /** Other workloads that got the new image (DaemonSets, Jobs, ...): applied, not watched. */
  unwatched: string[];
}

/**
 * Applies the user's manifests with server-side apply (field manager snapdeploy).
 * Namespaced objects without a namespace get `namespace`; the workloads that got the
 * new image are stamped like pointTargets stamps targets. Every object is first sent
 * as a server-side dry run, so a refusal (RBAC, validation, admission) changes
 * nothing; then they are applied in order. `onTarget` sees each Deployment or
 * StatefulSet that got the image as it was before (object {} if it is new), just
 * before it is applied, so its history entry is written before the change.
 */
export async function applyManifests(
  kc: KubeConfig,
  set: ManifestSet,
  stamp: Stamp,
  onTarget?: (before: ResolvedTarget) => Promise<void> | void,
): Promise<AppliedManifests> {
  const api = kc.makeApiClient(DiscoveringObjectApi);
  const server = kc.getCurrentCluster()?.server;
  const changed = new Map(set.changed.map((c) => [c.object, c]));
  const plan: { object: ManifestObject; containers?: string[]; before?: ResolvedTarget["object"] }[] = [];
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
      });
    }
    plan.push({ object, containers });
  }
  for (const p of plan) {
    const r = await applyObject(kc, api, p.object, { dryRun: true });
    p.before = r.before as ResolvedTarget["object"] | undefined;
  }
  const out: AppliedManifests = { applied: [], targets: [], unwatched: [] };
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
