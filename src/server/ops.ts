/**
 * `snapdeploy server install | status | uninstall`.
 */
import { AppsV1Api, CoreV1Api, type KubeConfig, KubernetesObjectApi } from "@kubernetes/client-node";
import { UserError } from "../errors.js";
import { accessFromKubeConfig, type ClusterAccess } from "../kube/access.js";
import { applyObjects } from "../kube/apply.js";
import { apiError } from "../kube/client.js";
import { findServerPod, isReady, withAgent } from "./connect.js";
import { diagnose } from "./diagnose.js";
import { type BuilderMode, DATA_CLAIM, SERVER_NAME, type ServerOptions, serverObjects } from "./objects.js";

const ENFORCE = "pod-security.kubernetes.io/enforce";

/**
 * The objects to apply. A namespace that exists with a Pod Security level of its own
 * (an admin's choice) keeps it: its labels are left out, and a refusal is explained.
 */
async function objectsFor(kc: KubeConfig, o: ServerOptions) {
  const objects = serverObjects(o);
  const live = await kc
    .makeApiClient(CoreV1Api)
    .readNamespace({ name: o.namespace })
    .catch(() => undefined);
  const theirs = live?.metadata?.labels?.[ENFORCE];
  const ours = objects[0]?.metadata?.labels?.[ENFORCE];
  if (
    !theirs ||
    theirs === ours ||
    live?.metadata?.managedFields?.some(
      (f) => f.manager === "snapdeploy" && JSON.stringify(f.fieldsV1 ?? {}).includes(ENFORCE),
    )
  ) {
    return objects;
  }
  const ns = objects[0] as (typeof objects)[number];
  const labels = Object.fromEntries(
    Object.entries(ns.metadata?.labels ?? {}).filter(([k]) => !k.startsWith("pod-security.kubernetes.io/")),
  );
  return [{ ...ns, metadata: { ...ns.metadata, labels } }, ...objects.slice(1)];
}

/** Waits until the build server's Deployment has rolled out and its pod is ready. */
export async function waitReady(
  kc: KubeConfig,
  namespace: string,
  timeoutMs: number,
  onProgress?: (s: string) => void,
  builder?: BuilderMode,
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
    const problem = await diagnose(kc, namespace, builder, pods);
    if (problem) throw problem;
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
  const applied = await applyObjects(kc, await objectsFor(kc, o));
  await waitReady(kc, o.namespace, opts.timeoutMs, opts.onProgress, o.builder);
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
