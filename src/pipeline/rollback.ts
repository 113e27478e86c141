/**
 * Putting targets back to earlier images: the ones before the last deploy, or those of
 * a history revision. Each rollback is recorded in the target's history like a deploy,
 * and waited for. A StatefulSet's pods stuck at the failed revision are replaced, or
 * the rollback would never settle (see replaceStuckPods).
 */
import type { KubeConfig } from "@kubernetes/client-node";
import { UserError } from "../errors.js";
import { History, type HistoryEntry, recordedImages } from "../deploy/history.js";
import { currentImages, pointTargets, type Stamp } from "../deploy/patch.js";
import { waitForRollout } from "../deploy/rollout.js";
import { replaceStuckPods, updateRevision } from "../deploy/stuck-pods.js";
import { type ResolvedTarget, targetLabel } from "../deploy/targets.js";
import type { Replicas } from "../ui/events.js";
import type { Reporter } from "../ui/reporter.js";

export interface RollbackPlan {
  target: ResolvedTarget;
  /** The image to restore, per container. */
  images: Record<string, string>;
  /** What is restored, for messages: "revision 3", "the images before revision 4". */
  what: string;
  /**
   * The snapshot those images were built from, when the history names it; null when it
   * does not (the template's snapshot annotation is then removed: a later deploy of any
   * tree must not take the restored images for the snapshot that was rolled back).
   */
  snapshot: string | null;
}

/** Whether `a` and `b` point the same containers at the same images. */
function sameImages(a: Record<string, string>, b: Record<string, string>): boolean {
  const ka = Object.keys(a);
  return ka.length === Object.keys(b).length && ka.every((k) => a[k] === b[k]);
}

/**
 * The snapshot of `images`: that of the newest entry before `before` (by position) that
 * pointed the same containers at exactly these images, when it names one.
 */
function snapshotOf(
  entries: HistoryEntry[],
  before: number,
  images: Record<string, string>,
  fallback: string[],
) {
  for (let i = before - 1; i >= 0; i--) {
    const e = entries[i] as HistoryEntry;
    if (sameImages(recordedImages(e, fallback), images)) return e.snapshot ?? null;
  }
  return null;
}

/**
 * What rolling `t` back restores, from its history: with `to`, the images revision `to`
 * recorded, in the containers it changed (not those -t names: a deploy of web:worker is
 * undone in worker); else the images recorded before the last entry. Every container to
 * restore must still be in the workload. Pure.
 */
export function planRollback(t: ResolvedTarget, entries: HistoryEntry[], to?: number): RollbackPlan {
  if (to !== undefined) {
    const e = entries.find((x) => x.revision === to);
    if (!e) {
      throw new UserError("notFound", `${targetLabel(t)} has no history revision ${to}`, {
        hint: `revisions: ${entries.map((x) => x.revision).join(", ") || "(none)"}; see: snapdeploy history`,
      });
    }
    const what = `revision ${e.revision}`;
    const images = recordedImages(e, t.containers);
    const snapshot = e.snapshot ?? snapshotOf(entries, entries.indexOf(e), images, t.containers);
    return { target: restoring(t, images, what), images, what, snapshot };
  }
  const last = entries.at(-1);
  if (!last || !Object.keys(last.previous).length) {
    throw new UserError("notFound", `${targetLabel(t)} has no earlier image recorded to roll back to`, {
      hint: "see: snapdeploy history",
    });
  }
  const what = `the images before revision ${last.revision}`;
  const snapshot = snapshotOf(entries, entries.length - 1, last.previous, t.containers);
  return { target: restoring(t, last.previous, what), images: last.previous, what, snapshot };
}

/** `t` with the containers `images` names, each checked to be in the workload still. */
function restoring(t: ResolvedTarget, images: Record<string, string>, what: string): ResolvedTarget {
  const spec = t.object.spec?.template.spec;
  const all = [...(spec?.initContainers ?? []), ...(spec?.containers ?? [])].map((c) => c.name);
  const gone = Object.keys(images).filter((c) => !all.includes(c));
  if (gone.length) {
    throw new UserError(
      "notFound",
      `${targetLabel(t)} has no container named ${gone.join(", ")} any more, which ${what} changed`,
      { hint: `its containers: ${all.join(", ") || "(none)"}; see: snapdeploy history` },
    );
  }
  return { ...t, containers: Object.keys(images) };
}

export interface RollbackRequest {
  targets: ResolvedTarget[];
  /** The history revision to restore; undefined: the images before the last deploy. */
  to?: number;
  user: string;
  timeoutMs: number;
}

export interface RollbackReport {
  target: string;
  image: string;
  revision: number;
  what: string;
}

/**
 * Plans every target's rollback first (so a missing revision changes nothing), then
 * rolls them back one after the other, each waited for; `onRolledBack` hears of each
 * as it settles. Stops at the first that fails, its history entry marked failed.
 */
export async function rollBack(
  kc: KubeConfig,
  req: RollbackRequest,
  reporter: Reporter,
  onRolledBack: (r: RollbackReport) => void,
): Promise<RollbackReport[]> {
  const plans: { plan: RollbackPlan; history: History }[] = [];
  for (const t of req.targets) {
    const history = new History(kc, t.namespace, t);
    plans.push({ plan: planRollback(t, await history.list(), req.to), history });
  }
  const reports: RollbackReport[] = [];
  for (const { plan, history } of plans) {
    const t = plan.target;
    const image = Object.values(plan.images)[0] ?? "";
    const entry = await history.begin({
      action: "rollback",
      ...(plan.snapshot ? { snapshot: plan.snapshot } : {}),
      image,
      images: plan.images,
      previous: currentImages(t),
      user: req.user,
      time: new Date().toISOString(),
    });
    await restoreImages(
      kc,
      t,
      plan.images,
      {
        user: req.user,
        snapshot: plan.snapshot,
        cause: `snapdeploy rollback to ${plan.what} by ${req.user}`,
      },
      reporter,
    );
    const rollout = reporter.phase("rollout");
    const label = targetLabel(t);
    let replicas: Replicas | undefined;
    try {
      await waitForRollout(kc, t, {
        timeoutMs: req.timeoutMs,
        onProgress: (m, r) => {
          replicas = r;
          rollout.update({ target: label, replicas: r }, m);
        },
      });
      rollout.end(replicas ? { targets: { [label]: replicas } } : {});
      await history.finish(entry.revision, "succeeded");
    } catch (e) {
      rollout.fail();
      await history.finish(entry.revision, "failed", (e as Error).message);
      throw e;
    }
    const report = { target: targetLabel(t), image, revision: entry.revision, what: plan.what };
    reports.push(report);
    onRolledBack(report);
  }
  return reports;
}

/**
 * Points `t` back at `images` (no history entry: the caller writes it). For a
 * StatefulSet, the revision it was updating to is read first, and its pods stuck at
 * that revision are replaced once the controller has seen the restored template.
 */
export async function restoreImages(
  kc: KubeConfig,
  t: ResolvedTarget,
  images: Record<string, string>,
  stamp: Stamp,
  reporter: Reporter,
): Promise<void> {
  const failedRevision = t.kind === "StatefulSet" ? await updateRevision(kc, t) : undefined;
  await pointTargets(kc, [{ target: t, images }], stamp);
  if (failedRevision) await unstick(kc, t, failedRevision, reporter);
}

/** After a StatefulSet's rollback: replaces its stuck pods of the failed revision (see replaceStuckPods). */
async function unstick(
  kc: KubeConfig,
  t: ResolvedTarget,
  failedRevision: string,
  reporter: Reporter,
): Promise<void> {
  try {
    const deleted = await replaceStuckPods(kc, t, failedRevision);
    if (deleted.length)
      reporter.info(
        `${targetLabel(t)}: deleted ${deleted.join(", ")} (not ready, failed revision) so they restart on the restored template`,
      );
  } catch (e) {
    reporter.warn(`${targetLabel(t)}: could not replace the failed revision's pods: ${(e as Error).message}`);
  }
}
