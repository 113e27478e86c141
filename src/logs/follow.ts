/**
 * Logs of every container of the targets' pods, each line prefixed `pod/container `,
 * following restarts and pods that start later (each new container instance gets a
 * stream of its own, from its start). Used by `snapdeploy logs` and inside `dev`.
 */
import { type KubeConfig, Log } from "@kubernetes/client-node";
import { Writable } from "node:stream";
import { type ContainerInstance, type ContainerWatch, type PodSet, watchContainers } from "../pods/watch.js";

export interface FollowOptions {
  /** Keep streaming (and pick up new instances); false: print what there is and end. */
  follow: boolean;
  /** Only lines newer than this many seconds (for the instances running at the start). */
  sinceSeconds?: number;
  /** Lines from the end of each instance's log at the start (all when unset). */
  tail?: number;
  /** Receives whole lines, already prefixed. */
  write(line: string): void;
  onError?(e: Error): void;
}

export interface LogFollower {
  /** Resolves when every stream ended (follow: false), or after close(). */
  done: Promise<void>;
  close(): void;
}

export async function followLogs(kc: KubeConfig, sets: PodSet[], opts: FollowOptions): Promise<LogFollower> {
  const log = new Log(kc);
  const streams = new Map<string, AbortController>();
  /** Instances with a stream opened or opening: the watch reports one again when it turns ready. */
  const following = new Set<string>();
  /** Every stream opened, for close(): one whose pod went away may never end by itself. */
  const opened = new Set<AbortController>();
  const watches: ContainerWatch[] = [];
  const pending = new Set<Promise<void>>();
  let closed = false;
  let started = false;

  const open = (c: ContainerInstance) => {
    if (closed || following.has(c.containerId)) return;
    following.add(c.containerId);
    const prefix = `${c.pod}/${c.container} `;
    let rest = "";
    const sink = new Writable({
      write(chunk: Buffer, _enc, cb) {
        const text = rest + chunk.toString("utf8");
        const lines = text.split("\n");
        rest = lines.pop() ?? "";
        for (const l of lines) opts.write(prefix + l);
        cb();
      },
      final(cb) {
        if (rest) opts.write(prefix + rest);
        cb();
      },
    });
    // Instances that start after the command started are shown from their beginning.
    const fromStart = started;
    const p = log
      .log(c.namespace, c.pod, c.container, sink, {
        follow: opts.follow,
        ...(fromStart ? {} : { sinceSeconds: opts.sinceSeconds, tailLines: opts.tail }),
      })
      .then(
        (a) =>
          new Promise<void>((resolve) => {
            streams.set(c.containerId, a);
            opened.add(a);
            if (closed) a.abort();
            sink.on("finish", resolve);
            sink.on("close", resolve);
            a.signal.addEventListener("abort", () => resolve(), { once: true });
          }),
      )
      .catch((e: Error) => {
        // A container that stopped between the listing and the request has no stream: not a failure.
        if (!/not found|ContainerCreating|terminated/i.test(e.message)) opts.onError?.(e);
      })
      .finally(() => pending.delete(p));
    pending.add(p);
  };

  for (const set of sets) {
    const w = await watchContainers(kc, set, {
      onRunning: open,
      onGone: (c) => {
        // The stream ends by itself when the container stops; forget it so a later
        // instance with the same name gets its own.
        streams.delete(c.containerId);
        following.delete(c.containerId);
      },
      onError: opts.onError,
    });
    watches.push(w);
    if (!opts.follow) w.close();
  }
  started = true;

  let stop: () => void = () => {};
  let closedNow: () => void = () => {};
  const closing = new Promise<void>((resolve) => {
    closedNow = resolve;
  });
  const done = (async () => {
    if (opts.follow) {
      await new Promise<void>((resolve) => {
        stop = resolve;
      });
    }
    // After close() nothing more is waited for.
    while (pending.size && !closed) await Promise.race([Promise.all([...pending]), closing]);
  })();

  return {
    done,
    close() {
      closed = true;
      for (const w of watches) w.close();
      for (const a of opened) a.abort();
      stop();
      closedNow();
    },
  };
}
