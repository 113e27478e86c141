/**
 * `snapdeploy server install | status | uninstall`.
 */
import {
  AppsV1Api,
  CoreV1Api,
  type KubeConfig,
  KubernetesObjectApi,
  type V1Pod,
} from "@kubernetes/client-node";
import { UserError } from "../errors.js";
import { accessFromKubeConfig, type ClusterAccess } from "../kube/access.js";
import { applyObjects } from "../kube/apply.js";
import { apiError } from "../kube/client.js";
import { findServerPod, isReady, withAgent } from "./connect.js";
import { DATA_CLAIM, SERVER_NAME, type ServerOptions, serverObjects } from "./objects.js";

function podProblem(p: V1Pod): string | undefined {
  for (const s of [...(p.status?.initContainerStatuses ?? []), ...(p.status?.containerStatuses ?? [])]) {
    const w = s.state?.waiting;
    if (
      w?.reason &&
      [
        "ImagePullBackOff",
        "ErrImagePull",
        "CrashLoopBackOff",
        "CreateContainerConfigError",
        "InvalidImageName",
        "CreateContainerError",
      ].includes(w.reason)
    ) {
      return `container ${s.name}: ${w.reason}${w.message ? `: ${w.message}` : ""}`;
    }
  }
  const unsched = p.status?.conditions?.find((c) => c.type === "PodScheduled" && c.status === "False");
  if (
    unsched?.message &&
    Date.now() - new Date(p.metadata?.creationTimestamp ?? Date.now()).getTime() > 30_000
  ) {
    return `not scheduled: ${unsched.message}`;
  }
  return undefined;
}

/** Waits until the build server's Deployment has rolled out and its pod is ready. */
export async function waitReady(
  kc: KubeConfig,
  namespace: string,
  timeoutMs: number,
  onProgress?: (s: string) => void,
) {
  const apps = kc.makeApiClient(AppsV1Api);
  const end = Date.now() + timeoutMs;
  let last = "";
  for (;;) {
    const d = await apps.readNamespacedDeployment({ name: SERVER_NAME, namespace }).catch((e) => {
      throw apiError(e, `read deployment ${namespace}/${SERVER_NAME}`);
    });
    const st = d.status ?? {};
    const done =
      (st.observedGeneration ?? 0) >= (d.metadata?.generation ?? 1) &&
      (st.updatedReplicas ?? 0) === 1 &&
      (st.availableReplicas ?? 0) === 1 &&
      (st.replicas ?? 0) === 1;
    const pods = await findServerPod(accessFromKubeConfig(kc), namespace);
    if (done && pods.some(isReady)) return;
    for (const p of pods) {
      const problem = podProblem(p);
      if (problem) {
        throw new UserError("server", `the build server pod ${p.metadata?.name} cannot start: ${problem}`, {
          hint:
            "check --image (it must be pullable by the cluster's nodes) and see: kubectl -n " +
            namespace +
            " describe pod " +
            p.metadata?.name,
        });
      }
    }
    const pvc = await kc
      .makeApiClient(CoreV1Api)
      .readNamespacedPersistentVolumeClaim({ name: DATA_CLAIM, namespace })
      .catch(() => undefined);
    const now =
      pvc?.status?.phase === "Pending"
        ? `waiting for volume claim ${DATA_CLAIM} to bind`
        : `waiting for the build server pod (${pods.map((p) => p.status?.phase).join(", ") || "none yet"})`;
    if (now !== last) onProgress?.(now);
    last = now;
    if (Date.now() > end) {
      throw new UserError(
        "timeout",
        `the build server did not become ready within ${Math.round(timeoutMs / 1000)}s: ${now}`,
        {
          hint:
            pvc?.status?.phase === "Pending"
              ? "the cluster needs a StorageClass or a free PersistentVolume for the claim; pass --storage-class"
              : `see: kubectl -n ${namespace} get pods,pvc`,
        },
      );
    }
    await new Promise((r) => setTimeout(r, 1000));
  }
}

export async function installServer(
  kc: KubeConfig,
  o: ServerOptions,
  opts: { timeoutMs: number; onProgress?: (s: string) => void },
) {
  const applied = await applyObjects(kc, serverObjects(o));
  await waitReady(kc, o.namespace, opts.timeoutMs, opts.onProgress);
  return applied;
}

export interface ServerStatus {
  namespace: string;
  ready: boolean;
  pod?: string;
  phase?: string;
  agent?: {
    version: string;
    builder: string;
    disk: { total: number; free: number };
    blobs: number;
    workspaces: { user: string; project: string; files: number; bytes: number; lastSync: string }[];
  };
}

export async function serverStatus(cluster: ClusterAccess, namespace: string): Promise<ServerStatus> {
  const pods = await findServerPod(cluster, namespace);
  const ready = pods.find(isReady);
  if (!ready) return { namespace, ready: false, pod: pods[0]?.metadata?.name, phase: pods[0]?.status?.phase };
  const agent = await withAgent(cluster, namespace, async (s) => {
    await s.conn.send({ t: "status" });
    return await s.conn.expect("status");
  });
  return {
    namespace,
    ready: true,
    pod: ready.metadata?.name,
    phase: ready.status?.phase,
    agent: {
      version: String(agent.agent),
      builder: String(agent.builder),
      disk: agent.disk as { total: number; free: number },
      blobs: Number(agent.blobs),
      workspaces: agent.workspaces as NonNullable<ServerStatus["agent"]>["workspaces"],
    },
  };
}

export async function uninstallServer(kc: KubeConfig, namespace: string, purge: boolean): Promise<string[]> {
  const api = KubernetesObjectApi.makeApiClient(kc);
  const removed: string[] = [];
  const del = async (apiVersion: string, kind: string, name: string, ns?: string) => {
    try {
      await api.delete(
        { apiVersion, kind, metadata: { name, namespace: ns } },
        undefined,
        undefined,
        undefined,
        undefined,
        "Foreground",
      );
      removed.push(`${kind} ${ns ? `${ns}/` : ""}${name}`);
    } catch (e) {
      if ((e as { code?: number }).code !== 404) throw apiError(e, `delete ${kind} ${name}`);
    }
  };
  await del("apps/v1", "Deployment", SERVER_NAME, namespace);
  await del("v1", "ServiceAccount", SERVER_NAME, namespace);
  if (purge) {
    await del("v1", "PersistentVolumeClaim", DATA_CLAIM, namespace);
    await del("v1", "Namespace", namespace);
  }
  return removed;
}
