/**
 * A full garbage collection between the phases of a large job. The CLI holds one big
 * structure (the manifest) while it creates a lot of short-lived data around it; V8
 * lets its old generation grow well past the live size before collecting, so on a
 * 100k-file tree peak memory is mostly garbage. Collecting when a phase ends (tens of
 * milliseconds at that size) keeps the peak near the live size. No-op for small jobs.
 */
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";

let gc: (() => void) | undefined;

/** Collects garbage now when `items` (the size of the job) is large enough to matter. */
export function collectGarbage(items: number): void {
  if (items < 20_000) return;
  if (!gc) {
    setFlagsFromString("--expose-gc");
    gc = runInNewContext("gc") as () => void;
  }
  gc();
}
