/** The Deployments and StatefulSets of a namespace and their containers, for `init` to offer. */
import { type ClusterAccess, getJson } from "../kube/access.js";
import type { TargetKind } from "../deploy/target-spec.js";

export interface Workload {
  kind: TargetKind;
  name: string;
  containers: string[];
}

interface WorkloadList {
  items?: {
    metadata?: { name?: string };
    spec?: { template?: { spec?: { containers?: { name: string }[] } } };
  }[];
}

/** Both kinds in `namespace`, by kind then name. */
export async function listWorkloads(access: ClusterAccess, namespace: string): Promise<Workload[]> {
  const kinds: [TargetKind, string][] = [
    ["Deployment", "deployments"],
    ["StatefulSet", "statefulsets"],
  ];
  const lists = await Promise.all(
    kinds.map(([, plural]) =>
      getJson<WorkloadList>(
        access,
        `/apis/apps/v1/namespaces/${encodeURIComponent(namespace)}/${plural}`,
        `list ${plural} in namespace ${namespace}`,
      ),
    ),
  );
  return kinds.flatMap(([kind], i) =>
    (lists[i]?.items ?? [])
      .map((o) => ({
        kind,
        name: o.metadata?.name ?? "",
        containers: (o.spec?.template?.spec?.containers ?? []).map((c) => c.name),
      }))
      .filter((w) => w.name)
      .sort((a, b) => a.name.localeCompare(b.name)),
  );
}
