/**
 * Waits for a rollout the way `kubectl rollout status` decides it (observed
 * generation, updated/ready/available replicas, the Progressing condition), driven
 * by watches rather than polling. While it waits it looks at the pods of the *new*
 * revision and fails fast with the reason when one cannot come up.
 */
import {
  AppsV1Api,
  CoreV1Api,
  type KubeConfig,
  type V1Deployment,
  type V1Pod,
  type V1StatefulSet,
  Watch,
} from "@kubernetes/client-node";
import { UserError } from "../errors.js";
import { apiError } from "../kube/client.js";
import { type TargetKind, targetLabel } from "./targets.js";

export interface RolloutTarget {
  kind: TargetKind;
  name: string;
  namespace: string;
}

type Workload = V1Deployment | V1StatefulSet;

/** Where a rollout stands: done, or a line saying what it waits for. */
export function rolloutState(
  kind: TargetKind,
  w: Workload,
): { done: boolean; message: string; failed?: string } {
  const gen = w.metadata?.generation ?? 0;
  const observed = w.status?.observedGeneration ?? 0;
  const want = w.spec?.replicas ?? 1;
  if (observed < gen) return { done: false, message: "waiting for the controller to see the new spec" };
  if (kind === "Deployment") {
    const s = (w as V1Deployment).status ?? {};
    const progressing = s.conditions?.find((c) => c.type === "Progressing");
    if (progressing?.reason === "ProgressDeadlineExceeded") {
      return {
        done: false,
        message: "progress deadline exceeded",
        failed: progressing.message ?? "progress deadline exceeded",
      };
    }
    const updated = s.updatedReplicas ?? 0;
    if (updated < want) return { done: false, message: `${updated} of ${want} updated replicas` };
    if ((s.replicas ?? 0) > updated)
      return { done: false, message: `${(s.replicas ?? 0) - updated} old replicas pending termination` };
    if ((s.availableReplicas ?? 0) < updated)
      return { done: false, message: `${s.availableReplicas ?? 0} of ${updated} updated replicas available` };
    return { done: true, message: `${updated} of ${want} updated replicas available` };
  }
  // StatefulSets: as `kubectl rollout status` decides it. All replicas ready, then the
  // pods from the partition ordinal up at the new revision (partition 0: all of them).
  // Without rollingUpdate settings (the API server always fills them in) only equal
  // current and update revisions mean done.
  const st = w as V1StatefulSet;
  const s = st.status ?? { replicas: 0 };
  if (st.spec?.updateStrategy?.type === "OnDelete")
    return { done: true, message: "OnDelete strategy: pods update only when they are deleted" };
  if (observed === 0) return { done: false, message: "waiting for the controller to see the new spec" };
  const ready = s.readyReplicas ?? 0;
  if (ready < want) return { done: false, message: `${ready} of ${want} pods ready` };
  const updated = s.updatedReplicas ?? 0;
  const rolling = st.spec?.updateStrategy?.rollingUpdate;
  if (rolling) {
    const partition = rolling.partition ?? 0;
    const goal = Math.max(want - partition, 0);
    if (updated < goal) return { done: false, message: `${updated} of ${goal} pods at the new revision` };
    return {
      done: true,
      message: partition
        ? `${updated} of ${goal} pods at the new revision (partition ${partition}: the pods below it stay)`
        : `${want} of ${want} pods ready at the new revision`,
    };
  }
  if (s.updateRevision !== s.currentRevision)
    return { done: false, message: `${updated} of ${want} pods at the new revision` };
  return { done: true, message: `${want} of ${want} pods ready at the new revision` };
}

export interface PodProblem {
  pod: string;
  reason: string;
  message: string;
  details: string[];
}

const IMAGE_PULL = ["ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull"];
const CONFIG = ["CreateContainerConfigError", "CreateContainerError"];

/** Why a pod of the new revision cannot come up, if it cannot. */
export async function diagnosePod(kc: KubeConfig, pod: V1Pod): Promise<PodProblem | undefined> {
  const core = kc.makeApiClient(CoreV1Api);
  const name = pod.metadata?.name ?? "?";
  const ns = pod.metadata?.namespace ?? "default";
  for (const cs of [...(pod.status?.initContainerStatuses ?? []), ...(pod.status?.containerStatuses ?? [])]) {
    const waiting = cs.state?.waiting;
    if (waiting?.reason && IMAGE_PULL.includes(waiting.reason)) {
      const warningsNow = async () =>
        (
          (
            await core
              .listNamespacedEvent({ namespace: ns, fieldSelector: `involvedObject.name=${name}` })
              .catch(() => undefined)
          )?.items ?? []
        ).filter((e) => e.type === "Warning");
      let warnings = await warningsNow();
      // The status can change before the kubelet's event is written: look once more.
      if (!warnings.some((e) => /failed to pull/i.test(e.message ?? ""))) {
        await new Promise((r) => setTimeout(r, 1000));
        warnings = await warningsNow();
      }
      // The kubelet's "Failed to pull image ..." event carries the registry's answer.
      const failed =
        warnings.filter((e) => /failed to pull/i.test(e.message ?? "")).at(-1) ??
        warnings.filter((e) => /pull|image/i.test(e.message ?? "")).at(-1);
      return {
        pod: name,
        reason: waiting.reason,
        message: `container ${cs.name} cannot pull image ${cs.image}`,
        details: [failed?.message ?? waiting.message ?? waiting.reason],
      };
    }
    if (waiting?.reason && CONFIG.includes(waiting.reason)) {
      return {
        pod: name,
        reason: waiting.reason,
        message: `container ${cs.name} cannot be created`,
        details: [waiting.message ?? waiting.reason],
      };
    }
    const term = cs.state?.terminated ?? (cs.restartCount > 0 ? cs.lastState?.terminated : undefined);
    if (term && (term.exitCode !== 0 || term.reason === "OOMKilled")) {
      const logsOf = (previous: boolean) =>
        core
          .readNamespacedPodLog({ name, namespace: ns, container: cs.name, previous, tailLines: 20 })
          .catch(() => "");
      let logs = await logsOf(!cs.state?.terminated);
      if (cs.state?.terminated) {
        // The kubelet may have restarted the container between our reading the pod and its
        // log: the log read was then the new instance's, and the one diagnosed is "previous".
        const now = await core.readNamespacedPod({ name, namespace: ns }).catch(() => undefined);
        const again = now?.status?.containerStatuses?.find((c) => c.name === cs.name);
        if ((again?.restartCount ?? cs.restartCount) > cs.restartCount) logs = await logsOf(true);
      }
      const oom = term.reason === "OOMKilled";
      const limit = pod.spec?.containers.find((c) => c.name === cs.name)?.resources?.limits?.memory;
      return {
        pod: name,
        reason: oom
          ? "OOMKilled"
          : cs.state?.waiting?.reason === "CrashLoopBackOff"
            ? "CrashLoopBackOff"
            : "Error",
        message: oom
          ? `container ${cs.name} was killed for using too much memory (OOMKilled${limit ? `, limit ${limit}` : ""})`
          : `container ${cs.name} exited with code ${term.exitCode}${cs.restartCount ? ` (restarted ${cs.restartCount} times)` : ""}`,
        details: String(logs ?? "")
          .split("\n")
          .filter((l, i, a) => l !== "" || i < a.length - 1)
          .slice(-20)
          .map((l) => `| ${l}`),
      };
    }
  }
  const sched = pod.status?.conditions?.find((c) => c.type === "PodScheduled" && c.status === "False");
  if (sched?.reason === "Unschedulable") {
    return {
      pod: name,
      reason: "Unschedulable",
      message: "the pod cannot be scheduled",
      details: [sched.message ?? ""],
    };
  }
  return undefined;
}

/** Why pods of the new revision are running but not ready (for the timeout message). */
async function readinessProblem(kc: KubeConfig, pods: V1Pod[]): Promise<string[]> {
  const core = kc.makeApiClient(CoreV1Api);
  const out: string[] = [];
  for (const p of pods) {
    const ready = p.status?.conditions?.some((c) => c.type === "Ready" && c.status === "True");
    if (ready || p.status?.phase !== "Running") continue;
    const events = await core
      .listNamespacedEvent({
        namespace: p.metadata?.namespace ?? "",
        fieldSelector: `involvedObject.name=${p.metadata?.name}`,
      })
      .catch(() => undefined);
    const unhealthy = (events?.items ?? []).filter((e) => e.reason === "Unhealthy").at(-1);
    out.push(
      `pod ${p.metadata?.name}: running but not ready${unhealthy?.message ? `: ${unhealthy.message}` : ""}`,
    );
  }
  return out;
}

/** Label selector of the pods of the workload's newest revision, once it is known. */
async function newRevisionSelector(
  kc: KubeConfig,
  t: RolloutTarget,
  w: Workload,
): Promise<string | undefined> {
  const base = Object.entries(w.spec?.selector?.matchLabels ?? {}).map(([k, v]) => `${k}=${v}`);
  if (t.kind === "StatefulSet") {
    const rev = (w as V1StatefulSet).status?.updateRevision;
    return rev ? [...base, `controller-revision-hash=${rev}`].join(",") : undefined;
  }
  const revision = w.metadata?.annotations?.["deployment.kubernetes.io/revision"];
  const rsList = await kc
    .makeApiClient(AppsV1Api)
    .listNamespacedReplicaSet({ namespace: t.namespace, labelSelector: base.join(",") });
  const rs = rsList.items.find(
    (r) =>
      r.metadata?.ownerReferences?.some((o) => o.uid === w.metadata?.uid) &&
      r.metadata?.annotations?.["deployment.kubernetes.io/revision"] === revision,
  );
  const hash = rs?.metadata?.labels?.["pod-template-hash"];
  return hash ? [...base, `pod-template-hash=${hash}`].join(",") : undefined;
}

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

export async function waitForRollout(
  kc: KubeConfig,
  t: RolloutTarget,
  opts: { timeoutMs: number; onProgress: (message: string) => void; signal?: AbortSignal },
): Promise<void> {
  const label = targetLabel(t);
  const plural = t.kind === "Deployment" ? "deployments" : "statefulsets";
  const watch = new Watch(kc);
  const aborts: AbortController[] = [];
  let latest: Workload | undefined;
  let podSelector: string | undefined;
  let podWatchFor: string | undefined;
  const pods = new Map<string, V1Pod>();

  return await new Promise<void>((resolve, reject) => {
    let settled = false;
    const finish = (err?: Error) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      for (const a of aborts) a.abort();
      opts.signal?.removeEventListener("abort", onAbort);
      if (err) reject(err);
      else resolve();
    };
    const onAbort = () => finish(new UserError("interrupted", `interrupted while waiting for ${label}`));
    // A watch that connects after we finished is closed at once: an open watch
    // would keep the process alive.
    const keep = (a: AbortController) => {
      if (settled) a.abort();
      else aborts.push(a);
    };
    opts.signal?.addEventListener("abort", onAbort, { once: true });

    const checkPod = async (p: V1Pod) => {
      // A pod being deleted (scaled down, replaced) is not a failure of the new revision.
      if (p.metadata?.deletionTimestamp) return;
      const problem = await diagnosePod(kc, p).catch(() => undefined);
      if (problem && !settled) {
        finish(
          new UserError(
            "rollout",
            `${label} failed to roll out: pod ${problem.pod}: ${problem.message} (${problem.reason})`,
            {
              details: problem.details,
            },
          ),
        );
      }
    };

    const watchPods = (selector: string) => {
      if (podWatchFor === selector) return;
      podWatchFor = selector;
      pods.clear();
      void watch
        .watch(
          `/api/v1/namespaces/${t.namespace}/pods`,
          { labelSelector: selector },
          (type, obj: V1Pod) => {
            const name = obj.metadata?.name ?? "";
            if (type === "DELETED") pods.delete(name);
            else {
              pods.set(name, obj);
              void checkPod(obj);
            }
          },
          () => {
            // The watch ended (server timeout): start it again while still waiting.
            if (!settled) {
              podWatchFor = undefined;
              watchPods(selector);
            }
          },
        )
        .then(keep)
        .catch(() => {});
    };

    const evaluate = async (w: Workload) => {
      latest = w;
      const state = rolloutState(t.kind, w);
      if (state.failed) {
        const details = await readinessProblem(kc, [...pods.values()]);
        finish(new UserError("rollout", `${label} failed to roll out: ${state.failed}`, { details }));
        return;
      }
      opts.onProgress(`${label}: ${state.message}`);
      if (state.done) {
        finish();
        return;
      }
      // Until the controller has seen the new spec, "newest revision" still means the old one.
      if ((w.status?.observedGeneration ?? 0) < (w.metadata?.generation ?? 0)) return;
      podSelector = await newRevisionSelector(kc, t, w).catch(() => undefined);
      if (podSelector) watchPods(podSelector);
    };

    const watchWorkload = () => {
      void watch
        .watch(
          `/apis/apps/v1/namespaces/${t.namespace}/${plural}`,
          { fieldSelector: `metadata.name=${t.name}` },
          (type, obj: Workload) => {
            if (type === "DELETED")
              finish(new UserError("rollout", `${label} was deleted during the rollout`));
            else void evaluate(obj);
          },
          () => {
            if (!settled) watchWorkload();
          },
        )
        .then(keep)
        .catch((e) => finish(e as Error));
    };

    const timer = setTimeout(async () => {
      const state = latest ? rolloutState(t.kind, latest) : undefined;
      const details = await readinessProblem(kc, [...pods.values()]).catch(() => []);
      finish(
        new UserError(
          "rollout",
          `${label} did not finish rolling out within ${Math.round(opts.timeoutMs / 1000)}s${state ? `: ${state.message}` : ""}`,
          {
            details,
            hint: `see: kubectl -n ${t.namespace} describe ${t.kind.toLowerCase()} ${t.name}`,
          },
        ),
      );
    }, opts.timeoutMs);
    watchWorkload();
  });
}
