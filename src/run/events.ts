/**
 * What the API server tells about a run that does not start: the warning events of its
 * pod (or of the Job, when the Job controller was refused a pod), and the timeout error.
 */
import type { CoreV1Api, CoreV1Event } from "@kubernetes/client-node";
import { UserError } from "../errors.js";

/** Warning events that say why a pod does not start; others (e.g. kubelet DNS notices) are noise here. */
const START_EVENTS = new Set([
  "Failed",
  "BackOff",
  "FailedMount",
  "FailedAttachVolume",
  "FailedCreatePodSandBox",
  "FailedCreate",
]);

/** Those warning events of one object, oldest first, as "Reason: message" (what kubectl describe shows). */
export async function startWarnings(
  core: CoreV1Api,
  namespace: string,
  kind: string,
  name: string,
  /** Leaves out events that only repeat this. */
  known = "",
): Promise<string[]> {
  let events: CoreV1Event[];
  try {
    events = (
      await core.listNamespacedEvent({
        namespace,
        fieldSelector: `involvedObject.kind=${kind},involvedObject.name=${name},type=Warning`,
      })
    ).items;
  } catch {
    return [];
  }
  const when = (e: CoreV1Event) =>
    (e.lastTimestamp ?? e.eventTime ?? e.metadata?.creationTimestamp)?.valueOf() ?? 0;
  const lines = events
    .filter((e) => START_EVENTS.has(e.reason ?? "") && !repeats(e.message ?? "", known))
    .sort((a, b) => Number(when(a)) - Number(when(b)))
    .map((e) => `${e.reason}: ${e.message?.trim()}`);
  return [...new Set(lines)].slice(-3);
}

/** An event message that says no more than `known` or than a bare reason ("Error: ImagePullBackOff"). */
function repeats(message: string, known: string): boolean {
  const core = message.trim().replace(/^(Error: |Failed to pull image "[^"]*": )/, "");
  return /^\w+$/.test(core) || known.includes(core);
}

/** The command did not start within the start timeout; `note` is the last thing the wait told. */
export function notStarted(job: string, seconds: number, note: string | undefined): UserError {
  return new UserError("timeout", `job ${job}: the command did not start within ${seconds}s`, {
    details: note ? [note] : undefined,
    hint: note?.startsWith("unschedulable")
      ? "ask for fewer resources with --cpu/--memory, or pass a longer --start-timeout"
      : "pass a longer --start-timeout if it is only slow",
  });
}
