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
  object: {},
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
    assert.equal(p.target, target);
  });

  test("with --to: that revision's image in every named container", () => {
    const p = planRollback(target, history, 1);
    assert.deepEqual(p.images, { app: "reg/web@sha256:1", worker: "reg/web@sha256:1" });
    assert.equal(p.what, "revision 1");
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
