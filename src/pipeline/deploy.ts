/**
 * Rolling targets to an image: record history, patch (or apply personal copies, or
 * apply the user's objects, --manifests), watch every rollout, and on failure explain it and
 * optionally put the previous images back. Ctrl-C marks the history entries "interrupted".
 */
import type { KubeConfig } from "@kubernetes/client-node";
import { UserError } from "../errors.js";
import { History, type HistoryEntry } from "../deploy/history.js";
import { currentImages, pointTargets, type Stamp } from "../deploy/patch.js";
import { applyPersonalCopy } from "../deploy/personal.js";
import { personalName } from "../deploy/personal-name.js";
import { applyResources, type ResourceSet } from "../deploy/resources/apply.js";
import { waitForRollout } from "../deploy/rollout.js";
import { type ResolvedTarget, resolveTarget, targetLabel } from "../deploy/targets.js";
import type { Replicas } from "../ui/events.js";
import type { Reporter } from "../ui/reporter.js";
import { restoreImages } from "./rollback.js";

export interface RolloutRequest {
  targets: ResolvedTarget[];
  /**
   * Apply the user's objects (--manifests; image already substituted) instead of patching
   * `targets`: the Deployments and StatefulSets among them that got the image become the targets.
   */
  resources?: ResourceSet;
  image: string;
  stamp: Stamp;
  action: HistoryEntry["action"];
  personal: boolean;
  rollbackOnFailure: boolean;
  /** Put the previous images back when interrupted during the rollout too (dev's Ctrl-C). */
  rollbackOnInterrupt?: boolean;
  timeoutMs: number;
  /** Interrupts like Ctrl-C. */
  signal?: AbortSignal;
}

export interface RolloutReport {
  target: string;
  revision: number;
  image: string;
  outcome: string;
}

export async function rollTargets(
  kc: KubeConfig,
  req: RolloutRequest,
  reporter: Reporter,
): Promise<RolloutReport[]> {
  const abort = new AbortController();
  const onSigint = () => abort.abort();
  process.once("SIGINT", onSigint);
  req.signal?.addEventListener("abort", onSigint, { once: true });
  const started: { target: ResolvedTarget; history: History; entry: HistoryEntry }[] = [];
  try {
    if (req.resources && (req.personal || req.targets.length))
      throw new Error("the user's objects are deployed on their own, without targets or personal copies");
    let targets = req.targets;
    const images = (t: ResolvedTarget) => Object.fromEntries(t.containers.map((c) => [c, req.image]));
    const begin = async (t: ResolvedTarget) => {
      const history = new History(kc, t.namespace, t);
      const entry = await history.begin({
        action: req.action,
        snapshot: req.stamp.snapshot ?? undefined,
        image: req.image,
        images: images(t),
        previous: currentImages(t),
        user: req.stamp.user,
        commit: req.stamp.commit,
        dirty: req.stamp.dirty,
        time: new Date().toISOString(),
      });
      started.push({ target: t, history, entry });
    };
    if (req.resources) {
      const r = await applyResources(kc, req.resources, req.stamp, begin);
      for (const a of r.applied) reporter.info(`${a.kind.toLowerCase()}/${a.name} ${a.outcome}`);
      for (const t of r.targets)
        reporter.info(`${targetLabel(t)} (${t.containers.join(", ")}) now runs ${req.image}`);
      for (const u of r.unwatched)
        reporter.info(`${u} now runs ${req.image} (only Deployments and StatefulSets are watched)`);
      targets = r.targets;
    } else if (req.personal) {
      const copies: ResolvedTarget[] = [];
      for (const t of targets) {
        const name = personalName(t.name, req.stamp.user, t.kind);
        // The copy may not exist yet: its history starts with no previous image.
        const existing = await resolveTarget(kc, t.namespace, {
          kind: t.kind,
          name,
          containers: t.containers,
        }).catch(() => undefined);
        await begin(existing ?? { ...t, name, object: {} as ResolvedTarget["object"] });
        copies.push(await applyPersonalCopy(kc, t, images(t), req.stamp));
        reporter.info(`applied personal copy ${targetLabel({ kind: t.kind, name })}`);
      }
      targets = copies;
    } else {
      await pointTargets(
        kc,
        targets.map((t) => ({ target: t, images: images(t) })),
        req.stamp,
        begin,
      );
      for (const t of targets)
        reporter.info(`updated ${targetLabel(t)} (${t.containers.join(", ")}) to ${req.image}`);
    }

    const rollout = reporter.phase("rollout");
    const replicas: Record<string, Replicas> = {};
    const results = await Promise.allSettled(
      targets.map((t) =>
        waitForRollout(kc, t, {
          timeoutMs: req.timeoutMs,
          onProgress: (m, r) => {
            replicas[targetLabel(t)] = r;
            rollout.update({ target: targetLabel(t), replicas: r }, m);
          },
          signal: abort.signal,
        }),
      ),
    );
    if (results.some((r) => r.status === "rejected")) rollout.fail();
    else rollout.end({ targets: replicas });
    const failures = results.flatMap((r, i) =>
      r.status === "rejected" ? [{ i, error: r.reason as Error }] : [],
    );
    if (!failures.length) {
      for (const s of started) await s.history.finish(s.entry.revision, "succeeded");
      return started.map((s) => ({
        target: targetLabel(s.target),
        revision: s.entry.revision,
        image: req.image,
        outcome: "succeeded",
      }));
    }
    const interrupted = abort.signal.aborted;
    const first = failures[0]?.error as Error;
    for (const s of started) {
      await s.history
        .finish(
          s.entry.revision,
          interrupted ? "interrupted" : "failed",
          interrupted
            ? "interrupted while waiting for the rollout; the new spec stays applied"
            : first.message,
        )
        .catch(() => {});
    }
    if (interrupted && !req.rollbackOnInterrupt) {
      throw new UserError(
        "interrupted",
        "interrupted: the targets were updated but their rollout was not awaited",
        {
          hint: "see: snapdeploy history; undo with: snapdeploy rollback",
        },
      );
    }
    if ((req.rollbackOnFailure || (interrupted && req.rollbackOnInterrupt)) && !req.personal) {
      reporter.warn(`rolling back: ${interrupted ? "interrupted during the rollout" : first.message}`);
      const created: string[] = [];
      for (const s of started) {
        const previous = s.entry.previous;
        if (!Object.keys(previous).length) {
          // Only a deploy of the user's objects (--manifests) can create a workload: it has
          // no earlier image to go back to.
          created.push(targetLabel(s.target));
          reporter.warn(
            `${targetLabel(s.target)} was created by this deploy: there is no previous image to restore; it stays as applied`,
          );
          continue;
        }
        await restoreImages(
          kc,
          s.target,
          previous,
          { ...req.stamp, cause: `snapdeploy rollback after failed deploy of ${req.image}` },
          reporter,
        );
        await waitForRollout(kc, s.target, {
          timeoutMs: req.timeoutMs,
          onProgress: (m) => reporter.info(m),
        }).catch((e) =>
          reporter.warn(`rollback of ${targetLabel(s.target)} did not settle: ${(e as Error).message}`),
        );
        await s.history.finish(s.entry.revision, "rolled back", first.message);
      }
      const u = first instanceof UserError ? first : undefined;
      const restored = created.length
        ? `the previous images were restored where there were any (${created.join(", ")} had none: created by this deploy)`
        : "the previous images were restored";
      throw new UserError(interrupted ? "interrupted" : "rollout", `${first.message}; ${restored}`, {
        details: u?.details,
        hint: created.length
          ? `delete ${created.join(", ")} or fix them and deploy again${u?.hint ? `; ${u.hint}` : ""}`
          : u?.hint,
      });
    }
    throw first;
  } finally {
    process.off("SIGINT", onSigint);
    req.signal?.removeEventListener("abort", onSigint);
  }
}
