/**
 * cluster/up is idempotent, cluster/down leaves the machine clean, and the cluster
 * comes back after down + up. Runs last: it takes the real cluster down.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { ROOT, TOOLS_IMAGE, must, mustKubectl, run, uniqueName } from "../../helpers/cluster.js";

const script = (name: string) => `${ROOT}/cluster/${name}`;

test("a second cluster/up with everything running returns quickly", async () => {
  const t0 = Date.now();
  const r = await run(script("up"), []);
  assert.equal(r.code, 0, r.stderr);
  assert.ok(Date.now() - t0 < 20_000, `warm up took ${Date.now() - t0} ms`);
  assert.match(r.stderr, /cluster is up/);
  // Nothing was restarted or knocked over by rewriting its configuration.
  await new Promise((res) => setTimeout(res, 2000));
  const status = await run(script("status"), []);
  assert.equal(status.code, 0, status.stdout);
});

test("cluster/down stops everything and cleans up; cluster/up brings it back", async () => {
  const down = await run(script("down"), []);
  assert.equal(down.code, 0, down.stderr);

  const status = await run(script("status"), []);
  assert.notEqual(status.code, 0, "status must report a stopped cluster");
  assert.doesNotMatch(status.stdout, /running/);
  const links = await must("ip", ["-br", "link"]);
  assert.doesNotMatch(links, /snapd0|snapd-cni0|docker0/);
  const mounts = readFileSync("/proc/mounts", "utf8");
  assert.doesNotMatch(mounts, /snapdeploy-cluster/);
  const netns = await run("ip", ["netns", "list"]);
  assert.doesNotMatch(netns.stdout, /cni-/);
  const pgrep = await run("pgrep", ["-f", "kube-apiserver|kubelet|etcd --name|containerd-shim-runc-v2"]);
  assert.equal(pgrep.stdout.trim(), "", "no cluster process may survive down");

  const up = await run(script("up"), []);
  assert.equal(up.code, 0, up.stderr);
  const ready = await mustKubectl([
    "get",
    "node",
    "-o",
    'jsonpath={.items[0].status.conditions[?(@.type=="Ready")].status}',
  ]);
  assert.equal(ready, "True");
  const name = uniqueName("after-restart");
  const out = await mustKubectl([
    "run",
    name,
    "--rm",
    "-i",
    "--restart=Never",
    `--image=${TOOLS_IMAGE}`,
    "--pod-running-timeout=2m",
    "--",
    "echo",
    "back",
  ]);
  assert.match(out, /back/);
});
