/**
 * Deploy targets: which workloads (Deployments, StatefulSets) and which of their
 * containers a snapshot feeds. Resolution reads the live objects and fails with the
 * list of what exists when a name is wrong.
 */
import {
  AppsV1Api,
  CoreV1Api,
  type KubeConfig,
  type V1Deployment,
  type V1StatefulSet,
} from "@kubernetes/client-node";
import { UserError } from "../errors.js";
import { apiError } from "../kube/client.js";
import { parseTarget, type TargetKind, type TargetSpec, targetLabel } from "./target-spec.js";

export { parseTarget, type TargetKind, type TargetSpec, targetLabel };

export interface ResolvedTarget {
  kind: TargetKind;
  name: string;
  namespace: string;
  containers: string[];
  object: V1Deployment | V1StatefulSet;
}

export async function ensureNamespace(kc: KubeConfig, namespace: string): Promise<void> {
  try {
    await kc.makeApiClient(CoreV1Api).readNamespace({ name: namespace });
  } catch (e) {
    if ((e as { code?: number }).code === 404) {
      throw new UserError("notFound", `namespace ${namespace} does not exist`, {
        hint: "pass -n/--namespace (the workloads' namespace), or set deploy.namespace in snapdeploy.yaml",
      });
    }
    // Reading namespaces may be forbidden while the namespace exists: go on and let the target lookup tell.
    if ((e as { code?: number }).code !== 403) throw apiError(e, `read namespace ${namespace}`);
  }
}

export async function resolveTarget(
  kc: KubeConfig,
  namespace: string,
  spec: TargetSpec,
): Promise<ResolvedTarget> {
  const apps = kc.makeApiClient(AppsV1Api);
  let object: V1Deployment | V1StatefulSet;
  try {
    object =
      spec.kind === "Deployment"
        ? await apps.readNamespacedDeployment({ name: spec.name, namespace })
        : await apps.readNamespacedStatefulSet({ name: spec.name, namespace });
  } catch (e) {
    if ((e as { code?: number }).code === 404) {
      const list =
        spec.kind === "Deployment"
          ? await apps.listNamespacedDeployment({ namespace }).catch(() => undefined)
          : await apps.listNamespacedStatefulSet({ namespace }).catch(() => undefined);
      const names = (list?.items ?? []).map((i) => i.metadata?.name).filter(Boolean);
      throw new UserError("notFound", `${targetLabel(spec)} not found in namespace ${namespace}`, {
        hint: names.length
          ? `${spec.kind}s there: ${names.join(", ")}`
          : `there are no ${spec.kind}s in namespace ${namespace}`,
      });
    }
    throw apiError(e, `read ${targetLabel(spec)} in namespace ${namespace}`, kc.getCurrentCluster()?.server);
  }
  const all = (object.spec?.template.spec?.containers ?? []).map((c) => c.name);
  const containers = spec.containers?.length ? spec.containers : all.slice(0, 1);
  const wrong = containers.filter((c) => !all.includes(c));
  if (wrong.length) {
    throw new UserError("notFound", `${targetLabel(spec)} has no container named ${wrong.join(", ")}`, {
      hint: `its containers: ${all.join(", ")}`,
    });
  }
  return { kind: spec.kind, name: spec.name, namespace, containers, object };
}

/** The namespace for targets: flag, then snapdeploy.yaml, then the kubeconfig context, then "default". */
export function targetNamespace(kc: KubeConfig, flag?: string, configured?: string): string {
  return flag ?? configured ?? kc.getContextObject(kc.getCurrentContext())?.namespace ?? "default";
}
