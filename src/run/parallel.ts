/**
 * An Indexed run (`run --parallel N --completions M`): the Job's pods followed as they start,
 * each one's output streamed with its index in front (`[2] ...`), each index's exit read from
 * its pod, and the outcome of every index once the Job has finished.
 *
 * Failures of snapdeploy's own, as for a single run (src/run/run.ts): until the first index's
 * command runs, one that cannot start (rollout, 10), a refused pod (10) or the start timeout
 * (11) deletes the Job. The start timeout covers only that first start: later pods may wait
 * for earlier ones to free the nodes, which can take as long as the commands run. An index
 * whose pod cannot start later (it never will: same template) also ends the run with 10 and
 * deletes the Job, since it would otherwise never finish. Ctrl-C deletes the Job (130).
 */
import { BatchV1Api, CoreV1Api, type KubeConfig, type V1Job, type V1Pod } from "@kubernetes/client-node";
import { setTimeout as sleep } from "node:timers/promises";
import { UserError } from "../errors.js";
import { apiError } from "../kube/client.js";
import type { Reporter } from "../ui/reporter.js";
import { notStarted, startWarnings } from "./events.js";
import { INDEX_ANNOTATION, type IndexedOutcome, indexedOutcome, parseIndexList } from "./indexes.js";
import { RUN_LABEL } from "./job.js";
import { type ExitStatus, exitStatus, startState } from "./pod.js";
import { PrefixedLogs } from "./prefixed.js";
import { deleteJob, type RunRequest, superviseJob } from "./run.js";

/** How often the Job's pods and the Job are read: two list/get calls, whatever the number of pods. */
const POLL_MS = 1_000;
/** After the Job finished, how long the log streams may take to deliver the rest. */
const DRAIN_MS = 5_000;
/** How often events are read while no index has started. */
const EVENTS_MS = 3_000;

/** Creates the Indexed Job; unless detached, follows every index to the end. */
export async function runIndexedJob(
  kc: KubeConfig,
  req: RunRequest,
  reporter: Reporter,
): Promise<IndexedOutcome | undefined> {
  return await superviseJob(kc, req, reporter, (started, signal) =>
    followIndexed(kc, req, reporter, started, signal),
  );
}

async function followIndexed(
  kc: KubeConfig,
  req: RunRequest,
  reporter: Reporter,
  started: () => void,
  signal: AbortSignal,
): Promise<IndexedOutcome> {
  const core = kc.makeApiClient(CoreV1Api);
  const batch = kc.makeApiClient(BatchV1Api);
  const name = req.job.metadata?.name as string;
  const { namespace, container } = req;
  const completions = req.job.spec?.completions ?? 1;
  const logs = new PrefixedLogs(kc, namespace, container, req.output);
  /** Each index's exit, from its newest pod that has one. */
  const exits = new Map<number, ExitStatus & { created: number }>();
  const told = new Set<string>();
  let anyStarted = false;
  const deadline = Date.now() + req.startTimeoutSeconds * 1000;
  let eventsRead = Date.now();
  let lastNote: string | undefined;

  const listPods = async (): Promise<V1Pod[]> => {
    try {
      return (await core.listNamespacedPod({ namespace, labelSelector: `${RUN_LABEL}=${name}` })).items;
    } catch (e) {
      throw apiError(e, `list pods in namespace ${namespace}`);
    }
  };
  const readJob = async (): Promise<V1Job | undefined> => {
    try {
      return await batch.readNamespacedJob({ name, namespace });
    } catch (e) {
      if ((e as { code?: number }).code === 404) return undefined;
      throw apiError(e, `read job ${name} in namespace ${namespace}`);
    }
  };
  /** Records exits, opens log streams; returns a note on what a pending pod waits for. */
  const visit = async (pods: V1Pod[], readEvents: boolean): Promise<string | undefined> => {
    let note: string | undefined;
    for (const pod of pods) {
      const index = podIndex(pod);
      const podName = pod.metadata?.name;
      const uid = pod.metadata?.uid;
      if (index === undefined || !podName || !uid) continue;
      // Evicted or preempted: the Job runs its index again on a new pod (the pod failure policy).
      const disrupted = (pod.status?.conditions ?? []).some(
        (c) => c.type === "DisruptionTarget" && c.status === "True",
      );
      const state = startState(pod, container);
      if (state.kind === "started") {
        logs.follow(podName, uid, `[${index}] `);
        if (!anyStarted) {
          anyStarted = true;
          started();
        }
      } else if (state.kind === "failed" && !disrupted) {
        const details = await startWarnings(core, namespace, "Pod", podName, state.message);
        // Before the first start the supervisor deletes the Job; after it, that is done here.
        if (anyStarted) {
          const deleted = await deleteJob(kc, namespace, name);
          details.push(`(${deleted ? `job ${name} deleted` : `could not delete job ${name}`})`);
        }
        throw new UserError("rollout", `job ${name}: index ${index} cannot start: ${state.message}`, {
          details,
        });
      } else if (state.kind === "pending" && !anyStarted && !note) {
        note =
          state.note ??
          (readEvents ? (await startWarnings(core, namespace, "Pod", podName)).at(-1) : lastNote);
      }
      const exit = disrupted ? undefined : exitStatus(pod, container);
      const created = pod.metadata?.creationTimestamp?.getTime() ?? 0;
      if (exit && (exits.get(index)?.created ?? -1) <= created) {
        exits.set(index, { ...exit, created });
        if (exit.code !== 0 && !told.has(uid)) {
          told.add(uid);
          reporter.info(`job ${name}: index ${index} exited with code ${exit.code}`);
        }
      }
    }
    return note;
  };

  try {
    let status: { completed: number[]; failed: number[] } | undefined;
    for (;;) {
      const pods = await listPods();
      const readEvents = !anyStarted && Date.now() - eventsRead > EVENTS_MS;
      if (readEvents) eventsRead = Date.now();
      const note = await visit(pods, readEvents);
      if (!pods.length && readEvents) {
        // No pod yet: the Job controller may have been refused one (quota, pod security).
        const refused = (await startWarnings(core, namespace, "Job", name)).at(-1);
        if (refused) throw new UserError("rollout", `job ${name}: its pods were refused: ${refused}`);
      }
      if (note && note !== lastNote) reporter.info(`job ${name}: waiting: ${note}`);
      lastNote = note;

      const job = await readJob();
      if (!job) {
        // Deleted once finished (--ttl 0), or by someone else: the exits read so far are all there is.
        if (exits.size === completions) break;
        throw new UserError("rollout", `job ${name} was deleted before every index finished`, {
          hint: "--ttl keeps a finished Job and its pods; check who else deletes Jobs in the namespace",
        });
      }
      if (finished(job)) {
        // A pod's last state may have come after the listing above.
        await visit(await listPods(), false);
        status = {
          completed: parseIndexList(job.status?.completedIndexes),
          failed: parseIndexList(job.status?.failedIndexes),
        };
        break;
      }
      if (!anyStarted && Date.now() > deadline) throw notStarted(name, req.startTimeoutSeconds, lastNote);
      await sleep(POLL_MS, undefined, { signal });
    }
    await logs.drain(DRAIN_MS, signal);
    return indexedOutcome(completions, exits, status);
  } finally {
    logs.close();
  }
}

/** The Job's terminal condition (Complete or Failed), set once its pods have all ended. */
function finished(job: V1Job): boolean {
  return (job.status?.conditions ?? []).some(
    (c) => (c.type === "Complete" || c.type === "Failed") && c.status === "True",
  );
}

function podIndex(pod: V1Pod): number | undefined {
  const v = pod.metadata?.annotations?.[INDEX_ANNOTATION] ?? pod.metadata?.labels?.[INDEX_ANNOTATION];
  return v !== undefined && /^\d+$/.test(v) ? Number(v) : undefined;
}
