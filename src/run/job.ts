/**
 * The Job of a one-off run, derived from a workload's pod template so the command sees
 * what the workload sees: env, volumes and mounts, service account, scheduling,
 * pull secrets. Only the target container is kept, pointed at the snapshot, with the
 * user's command as its entrypoint. Pure: no API calls, so it is unit-tested as is.
 */
import type { V1Container, V1EnvVar, V1Job, V1PodTemplateSpec } from "@kubernetes/client-node";
import { UserError } from "../errors.js";

export const RUN_LABEL = "snapdeploy.dev/run";
export const USER_LABEL = "snapdeploy.dev/user";
export const SNAPSHOT_ANNOTATION = "snapdeploy.dev/snapshot";
export const USER_ANNOTATION = "snapdeploy.dev/user";
export const COMMAND_ANNOTATION = "snapdeploy.dev/command";
export const TARGET_ANNOTATION = "snapdeploy.dev/target";

export interface RunJobInput {
  /** Job name, see runJobName. */
  name: string;
  /** The workload's pod template; it is copied, never modified. */
  template: V1PodTemplateSpec;
  /** The container to keep; every other regular container is dropped. */
  container: string;
  image: string;
  /** Replaces the image's entrypoint; the container's args are cleared. */
  command: string[];
  user: string;
  /** "deployment/web", recorded in an annotation. */
  target: string;
  /** Set as both request and limit when given. */
  cpu?: string;
  memory?: string;
  /** Appended to the container's env; an entry replaces any of the same name. */
  env?: V1EnvVar[];
  /** ttlSecondsAfterFinished: how long the finished Job and its pod (and logs) are kept. */
  ttlSeconds: number;
  /** An Indexed Job of this many indices (completions), this many pods at once; unset: one pod. */
  fanOut?: FanOut;
}

/** `run --parallel N --completions M`: M indices (0..M-1), at most N pods at once (N ≤ M). */
export interface FanOut {
  parallelism: number;
  completions: number;
}

/** The most --parallel and --completions accept: more pods than a backtest run should start by mistake. */
export const MAX_INDEXES = 1000;

/**
 * The fan-out --parallel and --completions ask for, or none (a single pod) when neither is given.
 * --parallel alone runs that many indices, all at once; --completions alone runs all its indices
 * at once too (a user asking for M shards expects M pods, not one after the other); a --parallel
 * above --completions is cut to it (no more pods than indices can run). Pure, so it is checked
 * before anything is built or created; the values were range-checked when the flags were parsed.
 */
export function fanOut(parallel: number | undefined, completions: number | undefined): FanOut | undefined {
  if (parallel === undefined && completions === undefined) return undefined;
  const m = completions ?? (parallel as number);
  for (const [flag, v] of [
    ["--parallel", parallel],
    ["--completions", m],
  ] as const) {
    if (v !== undefined && (!Number.isSafeInteger(v) || v < 1 || v > MAX_INDEXES))
      throw new UserError("usage", `${flag} ${v} is not a whole number from 1 to ${MAX_INDEXES}`);
  }
  return { parallelism: Math.min(parallel ?? m, m), completions: m };
}

export interface RunJob {
  job: V1Job;
  /** Parts of the template that could not be carried over, for the user to know. */
  warnings: string[];
}

export function buildRunJob(input: RunJobInput): RunJob {
  const warnings: string[] = [];
  const template = structuredClone(input.template);
  const spec = template.spec;
  const source = spec?.containers.find((c) => c.name === input.container);
  if (!spec || !source)
    throw new UserError("notFound", `the pod template has no container ${input.container}`);

  const container: V1Container = {
    ...source,
    image: input.image,
    // A digest never changes, so a node that has it need not ask the registry again.
    imagePullPolicy: input.image.includes("@") ? "IfNotPresent" : source.imagePullPolicy,
    command: [...input.command],
    args: undefined,
    ports: undefined,
    livenessProbe: undefined,
    readinessProbe: undefined,
    startupProbe: undefined,
    env: mergeEnv(source.env ?? [], input.env ?? []),
    resources: withResources(source.resources, input.cpu, input.memory),
  };

  // Mounts of StatefulSet volumeClaimTemplates have no volume in the pod template; the
  // claims belong to the StatefulSet's own pods, so the run goes without them.
  const volumes = new Set((spec.volumes ?? []).map((v) => v.name));
  const missing = (container.volumeMounts ?? []).filter((m) => !volumes.has(m.name));
  if (missing.length) {
    container.volumeMounts = container.volumeMounts?.filter((m) => volumes.has(m.name));
    warnings.push(
      `not mounted (no such volume in the pod template, e.g. a StatefulSet claim): ${missing
        .map((m) => `${m.name} at ${m.mountPath}`)
        .join(", ")}`,
    );
  }

  const labels = { [RUN_LABEL]: input.name, [USER_LABEL]: input.user };
  const annotations = {
    [SNAPSHOT_ANNOTATION]: input.image,
    [USER_ANNOTATION]: input.user,
    [COMMAND_ANNOTATION]: JSON.stringify(input.command),
    [TARGET_ANNOTATION]: input.target,
  };
  return {
    job: {
      apiVersion: "batch/v1",
      kind: "Job",
      metadata: { name: input.name, labels, annotations },
      spec: {
        ...(input.fanOut ? indexedSpec(input.fanOut) : { backoffLimit: 0 }),
        ttlSecondsAfterFinished: input.ttlSeconds,
        template: {
          // The workload's labels are dropped so that no Service or controller selects the run's pod;
          // its annotations stay (injectors such as secret agents key on them).
          metadata: { labels, annotations: { ...template.metadata?.annotations, ...annotations } },
          spec: {
            ...spec,
            containers: [container],
            restartPolicy: "Never",
          },
        },
      },
    },
    warnings,
  };
}

/**
 * An Indexed Job: each pod gets its index in JOB_COMPLETION_INDEX (set by Kubernetes). A failed
 * index is not retried (backoffLimitPerIndex 0: a backtest that failed once fails again, and a
 * silent retry would hide it and cost a second run) and does not stop the others (no
 * maxFailedIndexes: one run gives every index's result). backoffLimit is left unset: with a
 * per-index limit it is not the Job-wide failure count. A pod evicted or preempted (a node
 * drained, DisruptionTarget) is not its command's failure: ignored, so its index runs again.
 */
function indexedSpec(f: FanOut) {
  return {
    completionMode: "Indexed",
    completions: f.completions,
    parallelism: f.parallelism,
    backoffLimitPerIndex: 0,
    podFailurePolicy: {
      rules: [{ action: "Ignore", onPodConditions: [{ type: "DisruptionTarget", status: "True" }] }],
    },
  };
}

function mergeEnv(base: V1EnvVar[], extra: V1EnvVar[]): V1EnvVar[] | undefined {
  const names = new Set(extra.map((e) => e.name));
  const out = [...base.filter((e) => !names.has(e.name)), ...extra];
  return out.length ? out : undefined;
}

function withResources(
  base: V1Container["resources"],
  cpu: string | undefined,
  memory: string | undefined,
): V1Container["resources"] {
  const set: Record<string, string> = {};
  if (cpu) set.cpu = cpu;
  if (memory) set.memory = memory;
  if (!Object.keys(set).length) return base;
  return {
    ...base,
    requests: { ...base?.requests, ...set },
    limits: { ...base?.limits, ...set },
  };
}

/** "<target>-run-<6 hex>", at most 63 characters (the Job name is also a label value); the suffix is kept whole. */
export function runJobName(target: string, suffix: string): string {
  const tail = `-run-${suffix}`;
  const head = target.slice(0, 63 - tail.length).replace(/[^a-z0-9]+$/, "");
  return `${head}${tail}`;
}

/** Parses repeated KEY=VALUE flags; a later KEY wins. */
export function parseEnv(list: string[]): V1EnvVar[] {
  const byName = new Map<string, string>();
  for (const item of list) {
    const eq = item.indexOf("=");
    if (eq <= 0) throw new UserError("usage", `--env "${item}" must look like KEY=VALUE`);
    byName.delete(item.slice(0, eq));
    byName.set(item.slice(0, eq), item.slice(eq + 1));
  }
  return [...byName].map(([name, value]) => ({ name, value }));
}

/** Kubernetes resource quantities: 500m, 2, 1.5, 4Gi, 512M, 1e3. */
export function checkQuantity(value: string, flag: string): string {
  if (!/^[+]?(\d+(\.\d*)?|\.\d+)([KMGTPE]i|[numkMGTPE]|[eE][+-]?\d+)?$/.test(value)) {
    throw new UserError("usage", `${flag} "${value}" is not a Kubernetes quantity`, {
      hint: "e.g. --cpu 500m or --cpu 2, --memory 512Mi or --memory 4Gi",
    });
  }
  return value;
}
