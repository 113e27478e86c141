/** Replacing a StatefulSet's pods that are stuck at a failed revision after its template is put back. */
import { AppsV1Api, CoreV1Api, type KubeConfig, type V1StatefulSet } from "@kubernetes/client-node";
import { apiError } from "../kube/client.js";
import type { RolloutTarget } from "./rollout.js";
import { targetLabel } from "./targets.js";

/** The revision a StatefulSet is updating its pods to, read before a rollback changes it. */
export async function updateRevision(kc: KubeConfig, t: RolloutTarget): Promise<string | undefined> {
  const sts = await kc
    .makeApiClient(AppsV1Api)
    .readNamespacedStatefulSet({ name: t.name, namespace: t.namespace })
    .catch(() => undefined);
  return sts?.status?.updateRevision;
}

/**
 * After a StatefulSet's template is put back, its controller still waits for the pods
 * of the failed revision to become ready before it replaces them (a known StatefulSet
 * limitation with ordered pod management), and they never will: the rollback would
 * not settle. Once the controller has seen the restored template, this deletes the
 * failed revision's pods that are not ready, so they are recreated from it. Ready
 * pods are left to the normal rolling update. Returns the deleted pods' names.
 */
export async function replaceStuckPods(
  kc: KubeConfig,
  t: RolloutTarget,
  failedRevision: string,
  timeoutMs = 30_000,
): Promise<string[]> {
  const apps = kc.makeApiClient(AppsV1Api);
  const core = kc.makeApiClient(CoreV1Api);
  const label = targetLabel(t);
  const end = Date.now() + timeoutMs;
  let sts: V1StatefulSet;
  for (;;) {
    sts = await apps.readNamespacedStatefulSet({ name: t.name, namespace: t.namespace }).catch((e) => {
      throw apiError(e, `read ${label} in namespace ${t.namespace}`);
    });
    if ((sts.status?.observedGeneration ?? 0) >= (sts.metadata?.generation ?? 0)) break;
    if (Date.now() > end) return [];
    await new Promise((r) => setTimeout(r, 300));
  }
  // Nothing was restored (same template): these pods are the current revision's.
  if (sts.status?.updateRevision === failedRevision) return [];
  const selector = [
    ...Object.entries(sts.spec?.selector?.matchLabels ?? {}).map(([k, v]) => `${k}=${v}`),
    `controller-revision-hash=${failedRevision}`,
  ].join(",");
  const pods = await core
    .listNamespacedPod({ namespace: t.namespace, labelSelector: selector })
    .catch((e) => {
      throw apiError(e, `list the pods of ${label} in namespace ${t.namespace}`);
    });
  const stuck = pods.items.filter(
    (p) =>
      !p.metadata?.deletionTimestamp &&
      !p.status?.conditions?.some((c) => c.type === "Ready" && c.status === "True"),
  );
  const deleted: string[] = [];
  for (const p of stuck) {
    const name = p.metadata?.name as string;
    try {
      await core.deleteNamespacedPod({ name, namespace: t.namespace });
      deleted.push(name);
    } catch (e) {
      if ((e as { code?: number }).code !== 404)
        throw apiError(e, `delete pod ${name} in namespace ${t.namespace}`);
    }
  }
  return deleted;
}
