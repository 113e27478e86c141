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
let large = false;

/** The size of a job (files, entries) from which memory is managed as below. */
export const LARGE_JOB = 20_000;

/**
 * Called as soon as a job is known to be large: from then on the young generation stops
 * growing, since at 16 MB semi-spaces it is mostly garbage on such a job (~20% of the peak on
 * a 100k-file no-op). A small job keeps V8's growth, which saves it 60% of its scavenges.
 */
export function largeJob(): void {
  if (large) return;
  large = true;
  changeFlags("--semi-space-growth-factor=1");
}

/** Collects garbage now when `items` (the size of the job) is large enough to matter. */
export function collectGarbage(items: number): void {
  if (items < LARGE_JOB) return;
  largeJob();
  if (!gc) {
    changeFlags("--expose-gc");
    gc = runInNewContext("gc") as () => void;
  }
  gc();
}

/**
 * Changes V8's flags, saying so first: bin/snapdeploy.cjs takes its code cache then, since V8
 * rejects a cache made under other flags than those the next process starts with.
 */
function changeFlags(flags: string): void {
  (process.emit as (event: string) => boolean).call(process, "snapdeploy:v8-flags");
  setFlagsFromString(flags);
}
