/**
 * The output of many pods into one stream, each line prefixed (`[2] `) and written whole, so
 * lines of different pods interleave but never mix. One log stream per pod, opened once its
 * command started, followed to the container's end.
 */
import { type KubeConfig, Log } from "@kubernetes/client-node";
import { Writable } from "node:stream";
import { within } from "./run.js";

/** A Writable that writes each line of what it gets to `out` behind `prefix`. */
export function lineSink(prefix: string, out: Writable): Writable {
  let rest = "";
  return new Writable({
    write(chunk: Buffer, _enc, cb) {
      const lines = (rest + chunk.toString("utf8")).split("\n");
      rest = lines.pop() ?? "";
      if (lines.length) out.write(lines.map((l) => `${prefix}${l}\n`).join(""));
      cb();
    },
    final(cb) {
      if (rest) out.write(`${prefix}${rest}\n`);
      rest = "";
      cb();
    },
  });
}

export class PrefixedLogs {
  private readonly log: Log;
  /** By pod UID: a pod that replaces another (same index) gets a stream of its own. */
  private readonly streams = new Map<string, { abort?: AbortController; done: Promise<void> }>();
  private closed = false;

  constructor(
    kc: KubeConfig,
    private readonly namespace: string,
    private readonly container: string,
    private readonly out: Writable,
  ) {
    this.log = new Log(kc);
  }

  /** Starts following the pod's container (once per pod); a refused request is tried again on the next call. */
  follow(pod: string, uid: string, prefix: string): void {
    if (this.closed || this.streams.has(uid)) return;
    const sink = lineSink(prefix, this.out);
    const entry: { abort?: AbortController; done: Promise<void> } = { done: Promise.resolve() };
    entry.done = this.log.log(this.namespace, pod, this.container, sink, { follow: true }).then(
      (abort) => {
        entry.abort = abort;
        if (this.closed) abort.abort();
        return new Promise<void>((resolve) => {
          sink.once("finish", resolve);
          sink.once("close", resolve);
          abort.signal.addEventListener("abort", () => resolve(), { once: true });
        });
      },
      () => {
        // E.g. the container was still being created when the pod said it runs: try again later.
        this.streams.delete(uid);
      },
    );
    this.streams.set(uid, entry);
  }

  /** Waits up to `ms` for every stream to deliver the rest of its output. */
  async drain(ms: number, signal: AbortSignal): Promise<void> {
    await within(Promise.all([...this.streams.values()].map((s) => s.done)), ms, signal);
  }

  close(): void {
    this.closed = true;
    for (const s of this.streams.values()) s.abort?.abort();
  }
}
