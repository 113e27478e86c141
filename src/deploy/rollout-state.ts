/** When a rollout is done, decided the way `kubectl rollout status` decides it (pure: no API calls). */
import type { V1Deployment, V1StatefulSet } from "@kubernetes/client-node";
import type { TargetKind } from "./targets.js";

type Workload = V1Deployment | V1StatefulSet;

/** Desired, updated and ready replicas of a workload, as its status says. */
export function replicaCounts(w: Workload): { desired: number; updated: number; ready: number } {
  return {
    desired: w.spec?.replicas ?? 1,
    updated: w.status?.updatedReplicas ?? 0,
    ready: w.status?.readyReplicas ?? 0,
  };
}

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
