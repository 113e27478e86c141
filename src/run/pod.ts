/**
 * Reading a run's pod: has the command started, will it never start (and why), and how
 * did it end. Pure functions of the pod object.
 */
import type { V1ContainerStatus, V1Pod } from "@kubernetes/client-node";

export type StartState =
  /** Still on its way; `note` says what it waits for when that is worth telling (unschedulable). */
  | { kind: "pending"; note?: string }
  /** The command runs or already ran: its logs can be read. */
  | { kind: "started" }
  /** It will not start without someone changing something. */
  | { kind: "failed"; message: string };

/**
 * Waiting reasons the kubelet keeps retrying but which need a fix: a wrong or unpullable
 * image, a missing ConfigMap/Secret/key, a container runtime refusal.
 */
const STUCK = new Set([
  "ErrImagePull",
  "ImagePullBackOff",
  "InvalidImageName",
  "ErrImageNeverPull",
  "CreateContainerConfigError",
  "CreateContainerError",
]);

export function startState(pod: V1Pod, container: string): StartState {
  const status = pod.status;
  const main = status?.containerStatuses?.find((s) => s.name === container);
  if (main?.state?.running || main?.state?.terminated) return { kind: "started" };

  for (const s of [...(status?.initContainerStatuses ?? []), ...(main ? [main] : [])]) {
    const what = s.name === container ? `container ${s.name}` : `init container ${s.name}`;
    const waiting = s.state?.waiting;
    if (waiting?.reason && STUCK.has(waiting.reason)) {
      return {
        kind: "failed",
        message: `${what}: ${waiting.reason}${waiting.message ? `: ${waiting.message}` : ""}`,
      };
    }
    const done = s.state?.terminated;
    if (done && done.exitCode !== 0 && s.name !== container) {
      return { kind: "failed", message: `${what} exited with code ${done.exitCode}${reasonText(done)}` };
    }
  }
  if (status?.phase === "Failed") {
    return {
      kind: "failed",
      message: `the pod failed before the command started${status.reason ? `: ${status.reason}` : ""}${status.message ? `: ${status.message}` : ""}`,
    };
  }
  const scheduled = status?.conditions?.find((c) => c.type === "PodScheduled");
  if (scheduled?.status === "False" && scheduled.reason === "Unschedulable") {
    return { kind: "pending", note: `unschedulable: ${scheduled.message ?? "no node fits the pod"}` };
  }
  return { kind: "pending" };
}

export interface ExitStatus {
  code: number;
  /** Set when it says more than the code: OOMKilled, StartError, ... */
  reason?: string;
  message?: string;
}

/** The target container's exit, once it has terminated. */
export function exitStatus(pod: V1Pod, container: string): ExitStatus | undefined {
  const s: V1ContainerStatus | undefined = pod.status?.containerStatuses?.find((c) => c.name === container);
  const t = s?.state?.terminated;
  if (!t) return undefined;
  const plain = t.reason === "Completed" || t.reason === "Error";
  return {
    code: t.exitCode,
    reason: plain ? undefined : t.reason,
    message: plain ? undefined : t.message?.trim() || undefined,
  };
}

function reasonText(t: { reason?: string; message?: string }): string {
  if (!t.reason || t.reason === "Error") return "";
  return ` (${t.reason}${t.message ? `: ${t.message.trim()}` : ""})`;
}
