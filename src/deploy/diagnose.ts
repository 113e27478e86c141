/**
 * Why pods of a new revision do not come up: image pulls (with the registry's answer
 * from the kubelet's events), containers that cannot be created, crashes and OOM kills
 * (with the last log lines), scheduling, failing readiness probes.
 */
import { CoreV1Api, type KubeConfig, type V1Pod } from "@kubernetes/client-node";

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
export async function readinessProblem(kc: KubeConfig, pods: V1Pod[]): Promise<string[]> {
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
