/**
 * The inner loop of `snapdeploy dev`: deploy once, then for each batch of changes either
 * live-update the running containers or rebuild and roll out; a newer change cancels a
 * rebuild in flight; a failure is reported and the loop goes on. Container instances
 * that start later from the deployed image (crash restart, scale-up, eviction) lack the
 * live updates made since: they get every file live-updated since the last deploy (the
 * difference between the image's snapshot and the tree, as far as live update changed it).
 */
import { lstatSync } from "node:fs";
import path from "node:path";
import type { KubeConfig } from "@kubernetes/client-node";
import type { ClusterAccess } from "../kube/access.js";
import {
  type ContainerRef,
  type FileCopy,
  LiveUpdateUnsupported,
  putFiles,
  runIn,
} from "../live/container.js";
import { type ContainerInstance, type ContainerWatch, type PodSet, watchContainers } from "../pods/watch.js";
import { type CompiledRules, compileRules, type DevRules, planBatch } from "./plan.js";
import { type ChangeBatch, type TreeWatcher, watchTree } from "./watch.js";

/** What a deploy left running: the snapshot and where its containers are. */
export interface Deployed {
  snapshot: string;
  /** The annotation on pods that names their snapshot. */
  snapshotAnnotation: string;
  sets: PodSet[];
}

export interface LoopEvents {
  /** One line of what the loop did ("live update: 1 file into 2 containers in 0.21 s"). */
  say(line: string): void;
  /** A failure the loop goes on after. */
  failed(e: unknown): void;
  /** Every deploy's result, after it settled. */
  deployed?(d: Deployed): void;
}

export interface LoopOptions {
  root: string;
  rules: DevRules;
  dockerfile: string;
  kc: KubeConfig;
  cluster: ClusterAccess;
  /**
   * Syncs, builds and rolls out the tree as it is now (`force`: even when the targets
   * already run its snapshot); rejects on failure or when `signal` aborts.
   */
  deploy(signal: AbortSignal, force: boolean): Promise<Deployed>;
  events: LoopEvents;
  debounceMs?: number;
}

export interface DevLoop {
  /** Rebuild and redeploy now (the `r` key). */
  redeploy(reason: string): void;
  /** Resolves when the first deploy settled (successfully or not). */
  firstDeploy: Promise<void>;
  /** Stops watching; an in-flight deploy is cancelled. */
  close(): Promise<void>;
  /** Resolves when nothing is in flight and no batch is waiting. */
  idle(): Promise<void>;
}

export async function startLoop(opts: LoopOptions): Promise<DevLoop> {
  const compiled: CompiledRules = compileRules(opts.rules, opts.dockerfile);
  const { events } = opts;
  let deployed: Deployed | undefined;
  let pods: ContainerWatch[] = [];
  /** Live updates since the last deploy: tree path → container path, or null when deleted. */
  const liveSince = new Map<string, FileCopy & { deleted: boolean }>();
  /** Per container instance: how many live updates it has (liveGeneration when up to date). */
  const instanceGeneration = new Map<string, number>();
  let liveGeneration = 0;
  let closed = false;

  // Work runs one item at a time; batches that arrive meanwhile are merged.
  let queued: { batch: ChangeBatch; rebuild?: string; force?: boolean } | undefined;
  let inFlight: { abort: AbortController; kind: "deploy" | "live" } | undefined;
  let running: Promise<void> = Promise.resolve();
  let idleWaiters: (() => void)[] = [];

  const doDeploy = async (reason: string, force = false) => {
    const abort = new AbortController();
    inFlight = { abort, kind: "deploy" };
    events.say(`rebuild: ${reason}`);
    try {
      const d = await opts.deploy(abort.signal, force);
      deployed = d;
      liveSince.clear();
      liveGeneration = 0;
      instanceGeneration.clear();
      await followPods(d);
      events.deployed?.(d);
    } catch (e) {
      if (abort.signal.aborted && !closed) events.say("rebuild cancelled: a newer change came in");
      else if (!closed) events.failed(e);
    } finally {
      inFlight = undefined;
    }
  };

  const followPods = async (d: Deployed) => {
    for (const w of pods) w.close();
    pods = [];
    for (const set of d.sets) {
      pods.push(
        await watchContainers(opts.kc, set, {
          onRunning: (c) => void catchUp(c),
          onError: () => {},
        }),
      );
    }
  };

  const ofSnapshot = (c: ContainerInstance) =>
    deployed !== undefined && c.annotations[deployed.snapshotAnnotation] === deployed.snapshot;

  /** Brings a container instance that started from the image up to the live updates since. */
  const catchUp = async (c: ContainerInstance) => {
    if (closed || !ofSnapshot(c) || liveSince.size === 0) return;
    const have = instanceGeneration.get(c.containerId) ?? 0;
    if (have >= liveGeneration) return;
    instanceGeneration.set(c.containerId, liveGeneration);
    const put = [...liveSince.values()].filter((f) => !f.deleted);
    const remove = [...liveSince.values()].filter((f) => f.deleted);
    try {
      const t0 = performance.now();
      await putFiles(opts.cluster, refOf(c), opts.root, put, remove);
      events.say(
        `live update: ${c.pod}/${c.container} started from the image; brought up to date with ${count(put.length + remove.length, "file")} in ${secs(t0)}`,
      );
    } catch (e) {
      instanceGeneration.delete(c.containerId);
      events.failed(e);
    }
  };

  const liveUpdate = async (batch: ChangeBatch): Promise<string | undefined> => {
    const plan = planBatch(compiled, opts.rules.sync.length > 0, batch, (rel) => kindOf(opts.root, rel));
    if (plan.kind === "rebuild") return plan.reason;
    if (!deployed) return "nothing is deployed yet";
    const targets = pods.flatMap((w) => w.current()).filter(ofSnapshot);
    if (!targets.length) return "no running container of the targets runs the deployed snapshot";
    if (!plan.put.length && !plan.remove.length) return undefined;
    const t0 = performance.now();
    liveGeneration++;
    for (const f of plan.put) liveSince.set(f.rel, { ...f, deleted: false });
    for (const f of plan.remove) liveSince.set(f.rel, { ...f, deleted: true });
    let bytes = 0;
    try {
      const results = await Promise.all(
        targets.map(async (c) => {
          const r = await putFiles(opts.cluster, refOf(c), opts.root, plan.put, plan.remove);
          instanceGeneration.set(c.containerId, liveGeneration);
          return r.bytes;
        }),
      );
      bytes = results[0] ?? 0;
    } catch (e) {
      if (e instanceof LiveUpdateUnsupported)
        return `${e.message}: live update needs sh and tar in the container`;
      throw e;
    }
    const files = plan.put.length + plan.remove.length;
    events.say(
      `live update: ${count(files, "file")} into ${count(targets.length, "container")} in ${secs(t0)} (${bytes} bytes)`,
    );
    for (const cmd of plan.run) {
      for (const c of targets) {
        const r = await runIn(opts.cluster, refOf(c), cmd);
        const status = r.exitCode === 0 ? "ok" : `exit ${r.exitCode}`;
        events.say(`run in ${c.pod}/${c.container}: ${cmd} (${status})`);
        if (r.exitCode !== 0) for (const l of r.output.trimEnd().split("\n").slice(-10)) events.say(`  ${l}`);
      }
    }
    return undefined;
  };

  const pump = async () => {
    while (queued && !closed) {
      const item = queued;
      queued = undefined;
      if (item.rebuild) {
        await doDeploy(item.rebuild, item.force);
        continue;
      }
      inFlight = { abort: new AbortController(), kind: "live" };
      let reason: string | undefined;
      try {
        reason = await liveUpdate(item.batch);
      } catch (e) {
        if (!closed) events.failed(e);
      } finally {
        inFlight = undefined;
      }
      if (reason && !closed) {
        // Changes that came in meanwhile are part of what the rebuild takes along.
        const later = queued as typeof item | undefined;
        queued = { batch: merge(item.batch, later?.batch), rebuild: later?.rebuild ?? reason };
      }
    }
    const w = idleWaiters;
    idleWaiters = [];
    for (const f of w) f();
  };

  const enqueue = (batch: ChangeBatch, rebuild?: string, force?: boolean) => {
    queued = {
      batch: merge(queued?.batch, batch),
      rebuild: rebuild ?? queued?.rebuild,
      force: force || queued?.force,
    };
    // A newer change cancels a rebuild in flight: the next one includes it.
    if (inFlight?.kind === "deploy") {
      queued.rebuild ??= "changes during a rebuild";
      inFlight.abort.abort();
    }
    running = running.then(pump);
  };

  const first = (async () => {
    await doDeploy("first deploy");
  })();
  running = first;

  const watcher: TreeWatcher = await watchTree(opts.root, {
    debounceMs: opts.debounceMs,
    onBatch: (b) => enqueue(b),
    onError: (e) => events.failed(e),
  });

  return {
    firstDeploy: first,
    redeploy: (reason) => enqueue({ changed: [], deleted: [] }, reason, true),
    idle: () =>
      new Promise<void>((resolve) => {
        if (!queued && !inFlight) resolve();
        else idleWaiters.push(resolve);
      }),
    async close() {
      closed = true;
      inFlight?.abort.abort();
      await watcher.close();
      for (const w of pods) w.close();
      await running.catch(() => {});
    },
  };
}

function merge(a: ChangeBatch | undefined, b: ChangeBatch | undefined): ChangeBatch {
  const state = new Map<string, boolean>();
  for (const x of [a, b]) {
    if (!x) continue;
    for (const p of x.changed) state.set(p, true);
    for (const p of x.deleted) state.set(p, false);
  }
  const changed: string[] = [];
  const deleted: string[] = [];
  for (const [p, exists] of state) (exists ? changed : deleted).push(p);
  return { changed: changed.sort(), deleted: deleted.sort() };
}

function kindOf(root: string, rel: string): "file" | "dir" | "symlink" | "other" {
  try {
    const st = lstatSync(path.join(root, ...rel.split("/")));
    return st.isFile() ? "file" : st.isDirectory() ? "dir" : st.isSymbolicLink() ? "symlink" : "other";
  } catch {
    // Gone again since the event: the next batch reports the delete.
    return "dir";
  }
}

function refOf(c: ContainerInstance): ContainerRef {
  return { namespace: c.namespace, pod: c.pod, container: c.container };
}

function count(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? "" : "s"}`;
}

function secs(t0: number): string {
  return `${((performance.now() - t0) / 1000).toFixed(2)} s`;
}
