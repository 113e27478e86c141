/** When a StatefulSet rollout counts as done: the way `kubectl rollout status` decides it. */
import assert from "node:assert/strict";
import { test } from "node:test";
import type { V1StatefulSet } from "@kubernetes/client-node";
import { rolloutState } from "../../src/deploy/rollout-state.js";

function sts(
  status: NonNullable<V1StatefulSet["status"]>,
  opts: { replicas?: number; partition?: number; onDelete?: boolean; generation?: number } = {},
): V1StatefulSet {
  return {
    metadata: { generation: opts.generation ?? 2 },
    spec: {
      replicas: opts.replicas ?? 3,
      selector: {},
      serviceName: "db",
      template: {},
      updateStrategy: opts.onDelete
        ? { type: "OnDelete" }
        : { type: "RollingUpdate", rollingUpdate: { partition: opts.partition ?? 0 } },
    },
    status: { observedGeneration: 2, ...status },
  };
}

test("a StatefulSet waits for the new spec to be seen, all pods ready, all pods updated", () => {
  const state = (w: V1StatefulSet) => rolloutState("StatefulSet", w);
  assert.equal(state(sts({ replicas: 3, readyReplicas: 3 }, { generation: 3 })).done, false);
  assert.match(
    state(sts({ replicas: 3, readyReplicas: 2, updatedReplicas: 3 })).message,
    /2 of 3 pods ready/,
  );
  const midway = state(
    sts({ replicas: 3, readyReplicas: 3, updatedReplicas: 1, currentRevision: "a", updateRevision: "b" }),
  );
  assert.equal(midway.done, false);
  assert.match(midway.message, /1 of 3 pods at the new revision/);
  assert.equal(
    state(
      sts({ replicas: 3, readyReplicas: 3, updatedReplicas: 3, currentRevision: "b", updateRevision: "b" }),
    ).done,
    true,
  );
});

test("a partition: done once the pods from the partition ordinal up are updated", () => {
  const w = (updated: number) =>
    rolloutState(
      "StatefulSet",
      sts(
        {
          replicas: 3,
          readyReplicas: 3,
          updatedReplicas: updated,
          currentRevision: "a",
          updateRevision: "b",
        },
        { partition: 2 },
      ),
    );
  assert.equal(w(0).done, false);
  const done = w(1);
  assert.equal(done.done, true, "current and update revisions never meet while a partition holds pods back");
  assert.match(done.message, /partition 2/);
});

test("OnDelete: nothing to wait for", () => {
  const s = rolloutState("StatefulSet", sts({ replicas: 3 }, { onDelete: true }));
  assert.equal(s.done, true);
  assert.match(s.message, /OnDelete/);
});
