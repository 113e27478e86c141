/**
 * Creating a run's Job and seeing it through: wait for its pod to start (or say why it
 * cannot), stream its output, and report the command's exit code.
 *
 * Exit codes of failures here (see src/errors.ts):
 * - input (6): the API server refused the Job as invalid (e.g. a bad --env name);
 * - rollout (10): the pod will not start without a fix (image cannot be pulled, missing
 *   ConfigMap/Secret, the Job's pod is refused, an init container failed) or vanished,
 *   the same code as a deploy whose pods do not come up;
 * - timeout (11): not started within the start timeout (e.g. unschedulable all along);
 * - interrupted (130): Ctrl-C.
 * A Job that cannot start, or is interrupted, is deleted: nothing is left pending in the
 * cluster. Once its command runs, a failure to watch it leaves it running.
 * The command's own exit code is returned, not thrown: it is the caller's to pass on.
 */
import { BatchV1Api, CoreV1Api, type KubeConfig, Log, type V1Job } from "@kubernetes/client-node";
import { PassThrough, type Writable } from "node:stream";
import { setTimeout as sleep } from "node:timers/promises";
import { UserError } from "../errors.js";
import { apiError } from "../kube/client.js";
import type { Reporter } from "../ui/reporter.js";
import { notStarted, startWarnings } from "./events.js";
import { RUN_LABEL } from "./job.js";
import { type ExitStatus, exitStatus, startState } from "./pod.js";

/** How often pod state is read while waiting; the API server is asked nothing heavier than one pod list. */
const POLL_MS = 500;
/** After the container ended, how long its log stream may take to deliver the rest. */
const DRAIN_MS = 5_000;
/** How often events are read while a pod does not start. */
const EVENTS_MS = 3_000;

export interface RunRequest {
  namespace: string;
  job: V1Job;
  container: string;
  detach: boolean;
  startTimeoutSeconds: number;
  /** Where the command's output goes (stdout). */
  output: Writable;
}

/** Creates the Job; unless detached, follows it to the end and returns the command's exit. */
export async function runJob(
  kc: KubeConfig,
  req: RunRequest,
  reporter: Reporter,
): Promise<ExitStatus | undefined> {
  return await superviseJob(kc, req, reporter, async (started, signal) => {
    const pod = await waitForStart(kc, req, reporter, signal);
    started();
    return await follow(kc, req, pod, reporter, signal);
  });
}

/**
 * Creates req.job and, unless detached, runs `watch` on it until it returns. `watch` calls
 * `started` once a command runs: before that any failure deletes the Job (nothing is left
 * pending); after it, a failure to watch leaves the Job running. Ctrl-C (`signal`) deletes it.
 */
export async function superviseJob<T>(
  kc: KubeConfig,
  req: { namespace: string; job: V1Job; detach: boolean },
  reporter: Reporter,
  watch: (started: () => void, signal: AbortSignal) => Promise<T>,
): Promise<T | undefined> {
  const name = req.job.metadata?.name as string;
  const { namespace } = req;
  const abort = new AbortController();
  const onSigint = () => abort.abort();
  if (!req.detach) process.once("SIGINT", onSigint);
  try {
    await createJob(kc, namespace, req.job);
    if (req.detach) return undefined;
    reporter.info(`job ${name} created in namespace ${namespace}`);
    let started = false;
    try {
      return await watch(() => {
        started = true;
      }, abort.signal);
    } catch (e) {
      if (abort.signal.aborted) {
        const deleted = await deleteJob(kc, namespace, name);
        throw new UserError(
          "interrupted",
          `interrupted: ${deleted ? "deleted" : "could not delete"} job ${name}`,
        );
      }
      if (!started) {
        // A Job that cannot start would sit there pending; nothing of it is worth keeping.
        const deleted = await deleteJob(kc, namespace, name);
        if (!(e instanceof UserError)) throw e;
        const note = deleted ? `job ${name} deleted` : `could not delete job ${name}`;
        throw new UserError(e.code, e.message, {
          details: [...(e.details ?? []), `(${note})`],
          hint: e.hint,
        });
      }
      if (!(e instanceof UserError)) throw e;
      // The command may still be running fine: it is not stopped because watching it failed.
      throw new UserError(e.code, e.message, {
        details: e.details,
        hint:
          e.hint ?? `job ${name} was left alone; follow it with: kubectl -n ${namespace} logs -f job/${name}`,
      });
    }
  } finally {
    process.off("SIGINT", onSigint);
  }
}

async function createJob(kc: KubeConfig, namespace: string, job: V1Job): Promise<void> {
  try {
    await kc.makeApiClient(BatchV1Api).createNamespacedJob({ namespace, body: job });
  } catch (e) {
    const err = apiError(
      e,
      `create job ${job.metadata?.name} in namespace ${namespace}`,
      kc.getCurrentCluster()?.server,
    );
    // Invalid: something given on the command line (or taken from the template) does not fit a Job.
    if ((e as { code?: number }).code === 422) throw new UserError("input", err.message, { cause: e });
    throw err;
  }
}

/** Deletes the Job and (in the background) its pod; false if that failed. */
export async function deleteJob(kc: KubeConfig, namespace: string, name: string): Promise<boolean> {
  try {
    await kc
      .makeApiClient(BatchV1Api)
      .deleteNamespacedJob({ name, namespace, propagationPolicy: "Background" });
    return true;
  } catch (e) {
    return (e as { code?: number }).code === 404;
  }
}

/** Streams the started pod's output to req.output and returns its exit once it has terminated. */
async function follow(
  kc: KubeConfig,
  req: RunRequest,
  pod: string,
  reporter: Reporter,
  signal: AbortSignal,
): Promise<ExitStatus> {
  const core = kc.makeApiClient(CoreV1Api);
  const name = req.job.metadata?.name as string;
  const { namespace, container } = req;

  const readPod = async () => {
    try {
      return await core.readNamespacedPod({ name: pod, namespace });
    } catch (e) {
      if ((e as { code?: number }).code === 404)
        throw new UserError("rollout", `pod ${pod} of job ${name} was deleted before the command finished`);
      throw apiError(e, `read pod ${pod} in namespace ${namespace}`);
    }
  };

  // The log stream ends when the container does; its end is not trusted alone (a broken
  // connection just stops it), so the container's state is read alongside.
  const stream = new PassThrough();
  stream.pipe(req.output, { end: false });
  const ended = new Promise<"ended">((resolve) => {
    stream.once("end", () => resolve("ended"));
    stream.once("close", () => resolve("ended"));
    stream.once("error", () => resolve("ended"));
  });
  const logs = await new Log(kc).log(namespace, pod, container, stream, { follow: true }).catch((e) => {
    throw apiError(e, `read the logs of pod ${pod}`);
  });
  let exit: ExitStatus | undefined;
  try {
    for (;;) {
      const r = await within(ended, 2_000, signal);
      const p = await readPod();
      exit = exitStatus(p, container);
      if (r === "ended") break;
      if (exit) {
        await within(ended, DRAIN_MS, signal);
        break;
      }
      if (p.status?.phase === "Failed") break;
    }
  } finally {
    logs.abort();
    stream.unpipe(req.output);
  }
  const deadline = Date.now() + DRAIN_MS;
  let warned = false;
  while (!exit) {
    const p = await readPod();
    exit = exitStatus(p, container);
    if (exit) break;
    if (p.status?.phase === "Failed") {
      throw new UserError("rollout", `pod ${pod} failed${p.status.reason ? `: ${p.status.reason}` : ""}`, {
        details: p.status.message ? [p.status.message] : undefined,
      });
    }
    if (!warned && Date.now() > deadline) {
      reporter.warn(`the log stream of pod ${pod} ended early; waiting for the command to finish`);
      warned = true;
    }
    await sleep(warned ? 2_000 : POLL_MS, undefined, { signal });
  }
  return exit;
}

/** Resolves with p, or "timeout" after ms (or throws once `signal` aborts); the timer does not outlive the call (it would delay the exit). */
export async function within<T>(p: Promise<T>, ms: number, signal: AbortSignal): Promise<T | "timeout"> {
  const done = new AbortController();
  try {
    return await Promise.race([
      p,
      sleep(ms, "timeout" as const, { signal: AbortSignal.any([signal, done.signal]) }),
    ]);
  } finally {
    done.abort();
  }
}

/** Polls the Job's pod until its command started; returns the pod's name. */
async function waitForStart(
  kc: KubeConfig,
  req: RunRequest,
  reporter: Reporter,
  signal: AbortSignal,
): Promise<string> {
  const core = kc.makeApiClient(CoreV1Api);
  const name = req.job.metadata?.name as string;
  const { namespace } = req;
  const started = Date.now();
  const deadline = started + req.startTimeoutSeconds * 1000;
  let eventsRead = started;
  let lastNote: string | undefined;
  for (;;) {
    let pods: Awaited<ReturnType<CoreV1Api["listNamespacedPod"]>>;
    try {
      pods = await core.listNamespacedPod({ namespace, labelSelector: `${RUN_LABEL}=${name}` });
    } catch (e) {
      throw apiError(e, `list pods in namespace ${namespace}`);
    }
    const pod = pods.items.sort(
      (a, b) =>
        (b.metadata?.creationTimestamp?.getTime() ?? 0) - (a.metadata?.creationTimestamp?.getTime() ?? 0),
    )[0];
    // Events are read now and then only: they explain a wait, they do not end it.
    const readEvents = Date.now() - eventsRead > EVENTS_MS;
    if (readEvents) eventsRead = Date.now();
    let note: string | undefined;
    if (pod?.metadata?.name) {
      const state = startState(pod, req.container);
      if (state.kind === "started") return pod.metadata.name;
      if (state.kind === "failed") {
        throw new UserError("rollout", `job ${name}: the command cannot start: ${state.message}`, {
          details: await startWarnings(core, namespace, "Pod", pod.metadata.name, state.message),
        });
      }
      // E.g. a volume that cannot be mounted keeps the pod in ContainerCreating, told only by events.
      note =
        state.note ??
        (readEvents ? (await startWarnings(core, namespace, "Pod", pod.metadata.name)).at(-1) : lastNote);
    } else if (readEvents) {
      // No pod yet: the Job controller may have been refused one (quota, pod security).
      const refused = (await startWarnings(core, namespace, "Job", name)).at(-1);
      if (refused) throw new UserError("rollout", `job ${name}: its pod was refused: ${refused}`);
    }
    if (note && note !== lastNote) reporter.info(`job ${name}: waiting: ${note}`);
    lastNote = note;
    if (Date.now() > deadline) {
      throw notStarted(name, req.startTimeoutSeconds, lastNote);
    }
    await sleep(POLL_MS, undefined, { signal });
  }
}
