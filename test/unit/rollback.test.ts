/** Planning a rollback from a target's history (pipeline/rollback.ts): pure, no cluster. */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { HistoryEntry } from "../../src/deploy/history.js";
import type { ResolvedTarget } from "../../src/deploy/targets.js";
import { UserError } from "../../src/errors.js";
import { planRollback } from "../../src/pipeline/rollback.js";

const target: ResolvedTarget = {
  kind: "Deployment",
  name: "web",
  namespace: "apps",
  containers: ["app", "worker"],
  object: {
    spec: {
      selector: {},
      template: { spec: { containers: [{ name: "app" }, { name: "worker" }, { name: "sidecar" }] } },
    },
  },
};

function entry(revision: number, image: string, previous: Record<string, string>): HistoryEntry {
  return {
    revision,
    action: "deploy",
    image,
    previous,
    user: "alice",
    time: "2024-01-01T00:00:00Z",
    outcome: "succeeded",
  };
}

const history = [
  entry(1, "reg/web@sha256:1", { app: "reg/web:0", worker: "reg/web:0" }),
  entry(2, "reg/web@sha256:2", { app: "reg/web@sha256:1", worker: "reg/web@sha256:1" }),
];

function rejects(f: () => unknown, code: string, message: RegExp) {
  assert.throws(f, (e: unknown) => {
    assert.ok(e instanceof UserError, String(e));
    assert.equal(e.code, code);
    assert.match(e.message, message);
    return true;
  });
}

describe("planRollback", () => {
  test("without --to: the images recorded before the last entry", () => {
    const p = planRollback(target, history);
    assert.deepEqual(p.images, { app: "reg/web@sha256:1", worker: "reg/web@sha256:1" });
    assert.equal(p.what, "the images before revision 2");
    assert.deepEqual(p.target, target);
  });

  test("with --to: that revision's image in every container it recorded a previous image of", () => {
    const p = planRollback(target, history, 1);
    assert.deepEqual(p.images, { app: "reg/web@sha256:1", worker: "reg/web@sha256:1" });
    assert.deepEqual(p.target.containers, ["app", "worker"]);
    assert.equal(p.what, "revision 1");
  });

  test("with --to: the containers and images the revision recorded, whatever -t named", () => {
    // Deployed with -t web:worker; rolled back with -t web (its first container, app).
    const only = { ...target, containers: ["app"] };
    const entries = [
      { ...entry(1, "reg/web@sha256:1", { worker: "reg/web:0" }), images: { worker: "reg/web@sha256:1" } },
      {
        ...entry(2, "reg/web@sha256:2", { worker: "reg/web@sha256:1" }),
        images: { worker: "reg/web@sha256:2" },
      },
    ];
    const p = planRollback(only, entries, 1);
    assert.deepEqual(p.images, { worker: "reg/web@sha256:1" });
    assert.deepEqual(p.target.containers, ["worker"]);
    // A rollback entry records one image per container: all of them are restored.
    const mixed = {
      ...entry(3, "reg/a", { app: "x", sidecar: "y" }),
      images: { app: "reg/a", sidecar: "reg/b" },
    };
    assert.deepEqual(planRollback(only, [mixed], 3).images, { app: "reg/a", sidecar: "reg/b" });
    // An entry that recorded neither (a personal copy created by it): the containers -t names.
    assert.deepEqual(planRollback(only, [entry(4, "reg/c", {})], 4).images, { app: "reg/c" });
  });

  test("the restored images' snapshot, from the entry that deployed them; null when none did", () => {
    const named = [
      { ...history[0], snapshot: "s1" },
      { ...history[1], snapshot: "s2" },
    ] as HistoryEntry[];
    assert.equal(planRollback(target, named).snapshot, "s1");
    assert.equal(planRollback(target, named, 2).snapshot, "s2");
    // A rollback entry carries the snapshot it restored: rolling it back finds s2 again.
    const after = [
      ...named,
      {
        ...entry(3, "reg/web@sha256:1", { app: "reg/web@sha256:2", worker: "reg/web@sha256:2" }),
        action: "rollback",
        snapshot: "s1",
      },
    ] as HistoryEntry[];
    assert.equal(planRollback(target, after).snapshot, "s2");
    // Images of an entry that names no snapshot (a deploy of --image): none is claimed.
    assert.equal(planRollback(target, history).snapshot, null);
    // Images no entry deployed (the workload's own, before its first deploy): none either.
    assert.equal(planRollback(target, [named[1] as HistoryEntry]).snapshot, null);
  });

  test("a recorded container no longer in the workload is refused before anything changes", () => {
    const entries = [
      { ...entry(1, "reg/web@sha256:1", { old: "reg/web:0" }), images: { old: "reg/web@sha256:1" } },
    ];
    rejects(
      () => planRollback(target, entries, 1),
      "notFound",
      /no container named old any more, which revision 1/,
    );
    rejects(() => planRollback(target, entries), "notFound", /no container named old any more/);
  });

  test("a revision that is not in the history is refused, listing those that are", () => {
    rejects(() => planRollback(target, history, 7), "notFound", /no history revision 7/);
    try {
      planRollback(target, history, 7);
    } catch (e) {
      assert.match((e as UserError).hint ?? "", /revisions: 1, 2/);
    }
    rejects(() => planRollback(target, [], 1), "notFound", /deployment\/web has no history revision 1/);
  });

  test("no history, or a last entry with nothing before it (a created workload), is refused", () => {
    rejects(() => planRollback(target, []), "notFound", /no earlier image recorded/);
    rejects(
      () => planRollback(target, [...history, entry(3, "reg/web@sha256:3", {})]),
      "notFound",
      /no earlier image recorded/,
    );
  });
});
