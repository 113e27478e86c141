/**
 * Waits for a rollout the way `kubectl rollout status` decides it (observed
 * generation, updated/ready/available replicas, the Progressing condition), driven
 * by watches rather than polling. While it waits it looks at the pods of the *new*
 * revision and fails fast with the reason when one cannot come up (diagnose.ts).
 */
import {
  AppsV1Api,
  type KubeConfig,
  type V1Deployment,
  type V1Pod,
  type V1StatefulSet,
  Watch,
} from "@kubernetes/client-node";
import { UserError } from "../errors.js";
import { watchRefusal } from "../kube/api-errors.js";
import { diagnosePod, readinessProblem } from "./diagnose.js";
import { replicaCounts, rolloutState } from "./rollout-state.js";
import { type TargetKind, targetLabel } from "./targets.js";

export interface RolloutTarget {
  kind: TargetKind;
  name: string;
  namespace: string;
}

type Workload = V1Deployment | V1StatefulSet;

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

export async function waitForRollout(
  kc: KubeConfig,
  t: RolloutTarget,
  opts: {
    timeoutMs: number;
    /** Each change: a line ("deployment/web: 1 of 2 updated replicas") and the replica counts. */
    onProgress: (message: string, replicas: { desired: number; updated: number; ready: number }) => void;
    signal?: AbortSignal;
  },
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

    // A watch that failed is started again after a pause (a refused one would spin), one
    // the server ended at once.
    const later = (start: () => void, err: unknown) => {
      if (err) setTimeout(() => !settled && start(), 1000).unref();
      else start();
    };

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
          (err) => {
            const denied = watchRefusal(
              err,
              { resource: "pods", group: "", namespace: t.namespace },
              `watch the pods of ${label} in namespace ${t.namespace}`,
            );
            if (denied) return finish(denied);
            // The watch ended (server timeout): start it again while still waiting.
            if (!settled) {
              podWatchFor = undefined;
              later(() => watchPods(selector), err);
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
      opts.onProgress(`${label}: ${state.message}`, replicaCounts(w));
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
          (err) => {
            const denied = watchRefusal(
              err,
              { resource: plural, group: "apps", namespace: t.namespace },
              `watch ${plural}/${t.name} in namespace ${t.namespace}`,
            );
            if (denied) return finish(denied);
            if (!settled) later(watchWorkload, err);
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
