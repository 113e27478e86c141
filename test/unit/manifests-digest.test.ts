/** The digest that tells a deploy of the same manifests from a changed one (pure). */
import assert from "node:assert/strict";
import { test } from "node:test";
import { manifestsChanged, manifestsDigest } from "../../src/deploy/resources/digest.js";
import type { ResourceObject } from "../../src/deploy/resources/object.js";
import type { ResolvedTarget } from "../../src/deploy/targets.js";

const deployment = (replicas: number): ResourceObject =>
  ({
    apiVersion: "apps/v1",
    kind: "Deployment",
    metadata: { name: "web", labels: { app: "web", tier: "front" } },
    spec: { replicas, template: { spec: { containers: [{ name: "web", image: "r/web@sha256:aa" }] } } },
  }) as unknown as ResourceObject;

test("the same objects give the same digest whatever their key order; any change gives another", () => {
  const a = manifestsDigest({ namespace: "ns", objects: [deployment(1)] });
  const reordered = deployment(1);
  reordered.metadata = { labels: { tier: "front", app: "web" }, name: "web" } as ResourceObject["metadata"];
  assert.equal(manifestsDigest({ namespace: "ns", objects: [reordered] }), a);
  assert.match(a, /^[0-9a-f]{64}$/);
  assert.notEqual(manifestsDigest({ namespace: "ns", objects: [deployment(2)] }), a);
  assert.notEqual(manifestsDigest({ namespace: "other", objects: [deployment(1)] }), a);
  const image = deployment(1);
  const [container] = (image.spec as { template: { spec: { containers: { image: string }[] } } }).template
    .spec.containers;
  assert.ok(container);
  container.image = "r/web@sha256:bb";
  assert.notEqual(manifestsDigest({ namespace: "ns", objects: [image] }), a);
});

test("manifestsChanged names a workload without the digest, or deployed from other objects", () => {
  const set = { namespace: "ns", objects: [deployment(1)] };
  const live = (annotation?: string): ResolvedTarget => ({
    kind: "Deployment",
    name: "web",
    namespace: "ns",
    containers: ["web"],
    object: { metadata: { annotations: annotation ? { "snapdeploy.dev/manifests": annotation } : {} } },
  });
  assert.equal(manifestsChanged([live(manifestsDigest(set))], set), undefined);
  assert.equal(manifestsChanged([live()], set), "deployment/web was not deployed from these manifests");
  assert.equal(
    manifestsChanged([live("0".repeat(64))], set),
    "deployment/web was deployed from other manifests",
  );
});
