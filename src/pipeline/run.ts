/**
 * A one-off run: the workload whose pod template the Job copies (checked before
 * anything is built), then the Job made from it with the snapshot image, followed to
 * its end unless detached.
 */
import type { KubeConfig } from "@kubernetes/client-node";
import { randomBytes } from "node:crypto";
import type { Writable } from "node:stream";
import { UserError } from "../errors.js";
import {
  ensureNamespace,
  parseTarget,
  type ResolvedTarget,
  resolveTarget,
  type TargetSpec,
  targetLabel,
  targetNamespace,
} from "../deploy/targets.js";
import type { V1EnvVar } from "@kubernetes/client-node";
import type { IndexedOutcome } from "../run/indexes.js";
import { buildRunJob, type FanOut, runJobName } from "../run/job.js";
import type { ExitStatus } from "../run/pod.js";
import type { Reporter } from "../ui/reporter.js";

/** The workload --target names, else the first of deploy.targets. Pure: checked before the cluster is asked. */
export function runTargetSpec(flag: string | undefined, configured: TargetSpec[]): TargetSpec {
  const spec = flag ? parseTarget(flag) : configured[0];
  if (!spec) {
    throw new UserError("usage", "no target given: the Job is made from a workload's pod template", {
      hint: "pass --target deployment/NAME, or list it under deploy.targets in snapdeploy.yaml",
    });
  }
  return spec;
}

/** The workload whose pod template the Job is made from, and the container it keeps. */
export interface RunTarget {
  target: ResolvedTarget;
  namespace: string;
  container: string;
}

/** `spec` resolved in the namespace -n, deploy.namespace or the context names. */
export async function resolveRunTarget(
  kc: KubeConfig,
  spec: TargetSpec,
  namespaceFlag?: string,
  configuredNamespace?: string,
): Promise<RunTarget> {
  const namespace = targetNamespace(kc, namespaceFlag, configuredNamespace);
  await ensureNamespace(kc, namespace);
  const target = await resolveTarget(kc, namespace, spec);
  return { target, namespace, container: target.containers[0] as string };
}

export interface RunSnapshotRequest extends RunTarget {
  image: string;
  command: string[];
  user: string;
  cpu?: string;
  memory?: string;
  env: V1EnvVar[];
  ttlSeconds: number;
  startTimeoutSeconds: number;
  detach: boolean;
  /** An Indexed Job (--parallel/--completions) instead of a single pod. */
  fanOut?: FanOut;
  /** Where the command's output goes. */
  output: Writable;
}

/**
 * Creates the Job; unless detached, follows it and returns the command's exit, or with a
 * fan-out every index's outcome.
 */
export async function runSnapshot(
  kc: KubeConfig,
  req: RunSnapshotRequest,
  reporter: Reporter,
): Promise<{ name: string; exit?: ExitStatus; indexed?: IndexedOutcome }> {
  const { target, container } = req;
  const name = runJobName(target.name, randomBytes(3).toString("hex"));
  const template = target.object.spec?.template;
  if (!template) throw new UserError("input", `${targetLabel(target)} has no pod template`);
  const { job, warnings } = buildRunJob({
    name,
    template,
    container,
    image: req.image,
    command: req.command,
    user: req.user,
    target: `${targetLabel(target)}:${container}`,
    cpu: req.cpu,
    memory: req.memory,
    env: req.env,
    ttlSeconds: req.ttlSeconds,
    fanOut: req.fanOut,
  });
  for (const w of warnings) reporter.warn(w);
  const runRequest = {
    namespace: req.namespace,
    job,
    container,
    detach: req.detach,
    startTimeoutSeconds: req.startTimeoutSeconds,
    output: req.output,
  };
  if (req.fanOut) {
    const { runIndexedJob } = await import("../run/parallel.js");
    return { name, indexed: await runIndexedJob(kc, runRequest, reporter) };
  }
  const { runJob } = await import("../run/run.js");
  return { name, exit: await runJob(kc, runRequest, reporter) };
}
