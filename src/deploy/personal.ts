/** A user's personal copies of shared workloads: applying one, removing them (and their history). */
import {
  AppsV1Api,
  CoreV1Api,
  type KubeConfig,
  KubernetesObjectApi,
  PatchStrategy,
  type V1Deployment,
  type V1StatefulSet,
} from "@kubernetes/client-node";
import { FIELD_MANAGER } from "../kube/apply.js";
import { apiError } from "../kube/client.js";
import { historyName } from "./history.js";
import { ANNOTATION, OWNER_LABEL, PERSONAL_LABEL, type Stamp, templateAnnotations } from "./patch.js";
import { personalLabelValue, personalName } from "./personal-name.js";
import { type ResolvedTarget, type TargetSpec, targetLabel } from "./targets.js";

/**
 * A user's own copy of a shared workload: `<name>-<user>` (see personalName), one replica, labelled
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
      out[k] = selectedKeys.has(k) ? personalLabelValue(v, user) : v;
    out[OWNER_LABEL] = user;
    return out;
  };
  const name = personalName(t.name, user, t.kind);
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

export async function deletePersonalCopies(
  kc: KubeConfig,
  namespace: string,
  user: string,
  only: TargetSpec[],
): Promise<string[]> {
  const apps = kc.makeApiClient(AppsV1Api);
  const core = kc.makeApiClient(CoreV1Api);
  const labelSelector = `${OWNER_LABEL}=${user},${PERSONAL_LABEL}=true`;
  const wanted = (kind: string, name: string) =>
    !only.length || only.some((o) => o.kind === kind && personalName(o.name, user, o.kind) === name);
  const removed: string[] = [];
  try {
    for (const d of (await apps.listNamespacedDeployment({ namespace, labelSelector })).items) {
      const name = d.metadata?.name as string;
      if (!wanted("Deployment", name)) continue;
      await apps.deleteNamespacedDeployment({ name, namespace, propagationPolicy: "Background" });
      await core
        .deleteNamespacedConfigMap({ name: historyName("Deployment", name), namespace })
        .catch(() => {});
      removed.push(`deployment/${name}`);
    }
    for (const s of (await apps.listNamespacedStatefulSet({ namespace, labelSelector })).items) {
      const name = s.metadata?.name as string;
      if (!wanted("StatefulSet", name)) continue;
      await apps.deleteNamespacedStatefulSet({ name, namespace, propagationPolicy: "Background" });
      await core
        .deleteNamespacedConfigMap({ name: historyName("StatefulSet", name), namespace })
        .catch(() => {});
      removed.push(`statefulset/${name}`);
    }
  } catch (e) {
    throw apiError(e, `delete personal copies in namespace ${namespace}`);
  }
  return removed;
}
