/**
 * The running containers of a workload's pods, followed as they come and go: a pod
 * that starts later (scale-up, eviction, a crash restart's new container) is reported
 * when its container runs, with its container ID, so callers can tell a new instance
 * from one they have seen. Used by live update (to bring new instances up to date), logs
 * and port-forward. Driven by a watch, restarted when the API server ends it.
 */
import { CoreV1Api, type KubeConfig, type V1Pod, Watch } from "@kubernetes/client-node";
import { watchRefusal } from "../kube/api-errors.js";
import { apiError } from "../kube/client.js";

export interface ContainerInstance {
  namespace: string;
  pod: string;
  podUid: string;
  container: string;
  /** The runtime's ID of this instance of the container: a restart gives a new one. */
  containerId: string;
  /** Pod annotations (the snapshot a pod was made from is one of them). */
  annotations: Record<string, string>;
  /** The pod's Ready condition. */
  ready: boolean;
}

export interface PodSet {
  namespace: string;
  /** A label selector, e.g. "app=web". */
  selector: string;
  /** Which containers to report; empty: all. */
  containers: string[];
}

export interface ContainerEvents {
  /** A container instance runs (reported once per instance, and again when its pod's readiness changes). */
  onRunning(c: ContainerInstance): void;
  /** A reported instance stopped, or its pod went away. */
  onGone?(c: ContainerInstance): void;
  onError?(e: Error): void;
}

export interface ContainerWatch {
  /** The instances running now. */
  current(): ContainerInstance[];
  close(): void;
}

/** Lists the matching pods once, then follows them. */
export async function watchContainers(
  kc: KubeConfig,
  set: PodSet,
  events: ContainerEvents,
): Promise<ContainerWatch> {
  const running = new Map<string, ContainerInstance>();
  let closed = false;
  let abort: AbortController | undefined;

  const update = (pod: V1Pod, deleted: boolean) => {
    const name = pod.metadata?.name ?? "";
    const seen = new Set<string>();
    if (!deleted && !pod.metadata?.deletionTimestamp) {
      for (const c of instancesOf(set, pod)) {
        const key = `${name}/${c.container}`;
        seen.add(key);
        const before = running.get(key);
        if (before && before.containerId === c.containerId && before.ready === c.ready) continue;
        if (before && before.containerId !== c.containerId) events.onGone?.(before);
        running.set(key, c);
        events.onRunning(c);
      }
    }
    for (const [key, c] of running) {
      if (c.pod === name && !seen.has(key)) {
        running.delete(key);
        events.onGone?.(c);
      }
    }
  };

  let list: { items: V1Pod[]; metadata?: { resourceVersion?: string } };
  try {
    list = await kc
      .makeApiClient(CoreV1Api)
      .listNamespacedPod({ namespace: set.namespace, labelSelector: set.selector });
  } catch (e) {
    throw apiError(e, `list pods in namespace ${set.namespace}`);
  }
  for (const p of list.items) update(p, false);

  const watch = new Watch(kc);
  const start = (resourceVersion?: string) => {
    if (closed) return;
    watch
      .watch(
        `/api/v1/namespaces/${set.namespace}/pods`,
        { labelSelector: set.selector, ...(resourceVersion ? { resourceVersion } : {}) },
        (type, pod: V1Pod) => update(pod, type === "DELETED"),
        (err) => {
          if (closed) return;
          const denied = watchRefusal(
            err,
            { resource: "pods", group: "", namespace: set.namespace },
            `watch pods in namespace ${set.namespace}`,
          );
          // Refused: said once; asking again every second would change nothing.
          if (denied) return events.onError?.(denied);
          if (err && (err as { code?: number }).code !== undefined) events.onError?.(err as Error);
          // The API server ends watches after a while; a fresh one starts from now.
          setTimeout(() => start(), err ? 1000 : 0).unref();
        },
      )
      .then(
        (a) => {
          if (closed) a.abort();
          else abort = a;
        },
        (e: Error) => {
          events.onError?.(e);
          if (!closed) setTimeout(() => start(), 1000).unref();
        },
      );
  };
  start(list.metadata?.resourceVersion);

  return {
    current: () => [...running.values()],
    close() {
      closed = true;
      abort?.abort();
    },
  };
}

function instancesOf(set: PodSet, pod: V1Pod): ContainerInstance[] {
  const ready = pod.status?.conditions?.some((c) => c.type === "Ready" && c.status === "True") ?? false;
  const out: ContainerInstance[] = [];
  for (const s of pod.status?.containerStatuses ?? []) {
    if (set.containers.length && !set.containers.includes(s.name)) continue;
    if (!s.state?.running || !s.containerID) continue;
    out.push({
      namespace: set.namespace,
      pod: pod.metadata?.name ?? "",
      podUid: pod.metadata?.uid ?? "",
      container: s.name,
      containerId: s.containerID,
      annotations: pod.metadata?.annotations ?? {},
      ready,
    });
  }
  return out;
}
