/** What deploy and run act on, decided from flags and snapdeploy.yaml (the parts that need no cluster). */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { KubeConfig } from "@kubernetes/client-node";
import type { ResolvedTarget } from "../../src/deploy/targets.js";
import { UserError } from "../../src/errors.js";
import {
  loadDeployResources,
  personalTargets,
  type ResourceChoice,
} from "../../src/pipeline/deploy-input.js";
import { runTargetSpec } from "../../src/pipeline/run.js";

/** Never asked: every case here is decided before the cluster is. */
const kc = {} as KubeConfig;
const choice: ResourceChoice = { targetFlags: false, personal: false, dir: "/nonexistent" };

async function rejects(p: Promise<unknown>, code: string, message: RegExp) {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(e instanceof UserError, String(e));
    assert.equal(e.code, code);
    assert.match(e.message, message);
    return true;
  });
}

describe("loadDeployResources", () => {
  test("--manifests cannot be combined with --target or --personal", async () => {
    await rejects(
      loadDeployResources(kc, { ...choice, flag: "k8s", targetFlags: true }),
      "usage",
      /--manifests and --target/,
    );
    await rejects(
      loadDeployResources(kc, { ...choice, flag: "k8s", personal: true }),
      "usage",
      /--manifests and --personal/,
    );
  });

  test("deploy.manifests is not used when --target or --personal is given, nor when unset", async () => {
    assert.equal(
      await loadDeployResources(kc, { ...choice, configured: "k8s", targetFlags: true }),
      undefined,
    );
    assert.equal(await loadDeployResources(kc, { ...choice, configured: "k8s", personal: true }), undefined);
    assert.equal(await loadDeployResources(kc, choice), undefined);
  });

  test("needs an image repository: --repository, image.repository, or that of --image", async () => {
    await rejects(loadDeployResources(kc, { ...choice, configured: "k8s" }), "usage", /no image repository/);
    // With a repository the path is loaded next: here it does not exist.
    for (const extra of [
      { repositoryFlag: "reg/app" },
      { configuredRepository: "reg/app" },
      { image: "reg/app@sha256:1" },
    ]) {
      await rejects(
        loadDeployResources(kc, { ...choice, configured: "k8s", ...extra }),
        "input",
        /do not exist/,
      );
    }
  });
});

describe("personalTargets", () => {
  test("renames each target to the user's copy, keeping the rest", () => {
    const t = {
      kind: "StatefulSet",
      name: "db",
      namespace: "n",
      containers: ["c"],
      object: {},
    } as ResolvedTarget;
    assert.deepEqual(personalTargets([t], "alice"), [{ ...t, name: "db-alice" }]);
  });
});

describe("runTargetSpec", () => {
  test("--target, else the first of deploy.targets, else a usage error", () => {
    assert.deepEqual(runTargetSpec("statefulset/db:main", []), {
      kind: "StatefulSet",
      name: "db",
      containers: ["main"],
    });
    const configured = [
      { kind: "Deployment" as const, name: "a" },
      { kind: "Deployment" as const, name: "b" },
    ];
    assert.equal(runTargetSpec(undefined, configured), configured[0]);
    assert.throws(() => runTargetSpec(undefined, []), /no target given/);
  });
});
