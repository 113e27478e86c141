/** When a deploy has nothing to do: the targets already run the snapshot, rolled out. */
import assert from "node:assert/strict";
import { test } from "node:test";
import type { V1Deployment } from "@kubernetes/client-node";
import { runningSnapshot } from "../../src/deploy/running.js";
import type { ResolvedTarget } from "../../src/deploy/targets.js";

const REPO = "registry.example/team/app";
const DIGEST = `sha256:${"a".repeat(64)}`;

function target(
  name: string,
  opts: { snapshot?: string; image?: string; updated?: number; available?: number } = {},
): ResolvedTarget {
  const object: V1Deployment = {
    metadata: { name, generation: 3 },
    spec: {
      replicas: 2,
      selector: { matchLabels: { app: name } },
      template: {
        metadata: {
          annotations: opts.snapshot === undefined ? {} : { "snapdeploy.dev/snapshot": opts.snapshot },
        },
        spec: { containers: [{ name: "app", image: opts.image ?? `${REPO}@${DIGEST}` }] },
      },
    },
    status: {
      observedGeneration: 3,
      replicas: 2,
      updatedReplicas: opts.updated ?? 2,
      availableReplicas: opts.available ?? 2,
    },
  };
  return { kind: "Deployment", name, namespace: "ns", containers: ["app"], object };
}

test("targets that all run the same snapshot by digest, rolled out, run it", () => {
  assert.deepEqual(
    runningSnapshot([target("a", { snapshot: "s1" }), target("b", { snapshot: "s1" })], REPO),
    {
      snapshot: "s1",
    },
  );
});

test("anything else says why a deploy must go on", () => {
  const why = (ts: ResolvedTarget[]) => {
    const r = runningSnapshot(ts, REPO);
    return r.snapshot === undefined ? r.why : `runs ${r.snapshot}`;
  };
  assert.match(why([target("a")]), /deployment\/a runs no snapshot/);
  assert.match(
    why([target("a", { snapshot: "s1" }), target("b", { snapshot: "s2" })]),
    /different snapshots/,
  );
  assert.match(
    why([target("a", { snapshot: "s1", image: `${REPO}:latest` })]),
    /runs registry\.example\/team\/app:latest, not/,
  );
  assert.match(
    why([target("a", { snapshot: "s1", image: `other/repo@${DIGEST}` })]),
    /not registry\.example/,
  );
  assert.match(why([target("a", { snapshot: "s1", available: 1 })]), /still rolling out/);
  assert.match(why([target("a", { snapshot: "s1", updated: 1 })]), /still rolling out/);
  assert.match(why([]), /no targets/);
});
