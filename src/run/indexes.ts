/**
 * The outcome of an Indexed run, index by index, and the one exit code the CLI gives for it.
 * Pure: the Job's status and the exits read from its pods go in, so it is unit-tested as is.
 *
 * The exit code is the command's own, as for a single run: that of the lowest-numbered failed
 * index (0 when every index succeeded). A failed index whose command never gave an exit code
 * (its pod failed around it) has none to pass on; when no failed index has one, `exitCode` is
 * undefined and the caller exits with snapdeploy's code for a run lost after it started.
 */
import type { ExitStatus } from "./pod.js";

/** The pod annotation (and, from Kubernetes 1.28, label) holding a pod's completion index. */
export const INDEX_ANNOTATION = "batch.kubernetes.io/job-completion-index";

export type IndexStatus = "succeeded" | "failed" | "not run";

export interface IndexResult {
  index: number;
  status: IndexStatus;
  /** The command's exit code in the index's last pod, when it got that far. */
  exitCode?: number;
  /** Set when it says more than the code: OOMKilled, ... */
  reason?: string;
  message?: string;
}

export interface IndexedOutcome {
  completions: number;
  indices: IndexResult[];
  /** The failed indices, ascending. */
  failed: number[];
  /** 0, the lowest failed index's exit code, or undefined (see the module comment). */
  exitCode: number | undefined;
}

/** "1,3-5,7" (Job status completedIndexes/failedIndexes) as [1, 3, 4, 5, 7]; "" or undefined as []. */
export function parseIndexList(text: string | undefined): number[] {
  const out: number[] = [];
  for (const part of (text ?? "").split(",")) {
    const m = /^\s*(\d+)(?:-(\d+))?\s*$/.exec(part);
    if (!m) continue;
    const from = Number(m[1]);
    const to = Number(m[2] ?? m[1]);
    for (let i = from; i <= to; i++) out.push(i);
  }
  return out;
}

/**
 * Every index's result. `completed`/`failed` are the Job's status lists when it was read to the
 * end, else undefined: then (the Job gone, e.g. --ttl 0) each index's result is its exit code.
 */
export function indexedOutcome(
  completions: number,
  exits: ReadonlyMap<number, ExitStatus>,
  status?: { completed: number[]; failed: number[] },
): IndexedOutcome {
  const completed = new Set(status?.completed);
  const failedSet = new Set(status?.failed);
  const indices: IndexResult[] = [];
  for (let index = 0; index < completions; index++) {
    const exit = exits.get(index);
    let s: IndexStatus;
    if (status) s = completed.has(index) ? "succeeded" : failedSet.has(index) ? "failed" : "not run";
    else s = !exit ? "not run" : exit.code === 0 ? "succeeded" : "failed";
    indices.push({
      index,
      status: s,
      ...(exit ? { exitCode: exit.code } : {}),
      ...(exit?.reason ? { reason: exit.reason, message: exit.message } : {}),
    });
  }
  const failed = indices.filter((r) => r.status === "failed").map((r) => r.index);
  const withCode = indices.find((r) => r.status === "failed" && r.exitCode !== undefined && r.exitCode !== 0);
  const exitCode = failed.length === 0 ? 0 : withCode?.exitCode;
  return { completions, indices, failed, exitCode };
}

/** How many indices are listed one by one in the summary line; the rest are counted. */
const LISTED = 10;

/**
 * The summary line: "6 of 6 indices succeeded", or "2 of 6 indices failed: index 1 exited with
 * code 2, index 4 exited with code 137 (OOMKilled)", with the indices that never ran counted.
 */
export function outcomeText(o: IndexedOutcome): string {
  const notRun = o.indices.filter((r) => r.status === "not run").length;
  const tail = notRun ? `; ${notRun} did not run` : "";
  if (!o.failed.length) {
    const ok = o.completions - notRun;
    return `${ok} of ${o.completions} ${o.completions === 1 ? "index" : "indices"} succeeded${tail}`;
  }
  const one = (r: IndexResult) => {
    const why = r.reason ? ` (${r.reason}${r.message ? `: ${r.message}` : ""})` : "";
    return r.exitCode !== undefined
      ? `index ${r.index} exited with code ${r.exitCode}${why}`
      : `index ${r.index} failed without an exit code${why}`;
  };
  const failed = o.indices.filter((r) => r.status === "failed");
  const listed = failed.slice(0, LISTED).map(one);
  if (failed.length > LISTED) listed.push(`and ${failed.length - LISTED} more`);
  return `${failed.length} of ${o.completions} ${o.completions === 1 ? "index" : "indices"} failed: ${listed.join(", ")}${tail}`;
}
