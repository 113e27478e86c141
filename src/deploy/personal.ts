/** Removing a user's personal copies (and their history). */
import { AppsV1Api, CoreV1Api, type KubeConfig } from "@kubernetes/client-node";
import { apiError } from "../kube/client.js";
import { OWNER_LABEL, PERSONAL_LABEL } from "./apply.js";
import { historyName } from "./history.js";
import type { TargetSpec } from "./targets.js";

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
    !only.length || only.some((o) => o.kind === kind && `${o.name}-${user}`.slice(0, 63) === name);
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
