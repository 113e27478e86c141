/**
 * cluster/up is idempotent, cluster/down leaves the machine clean, and the cluster
 * comes back after down + up. Runs last: it takes the real cluster down.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import {
  eventually,
  kubectl,
  must,
  mustKubectl,
  ROOT,
  run,
  TOOLS_IMAGE,
  tempNamespace,
  uniqueName,
} from "../../helpers/cluster.js";

const script = (name: string) => `${ROOT}/cluster/${name}`;

/** The cluster's processes as cluster/status reports them: name -> pid. */
async function clusterPids(): Promise<Record<string, string>> {
  const status = await run(script("status"), []);
  assert.equal(status.code, 0, status.stdout + status.stderr);
  const pids = Object.fromEntries(
    [...status.stdout.matchAll(/^(\S+)\s+running \(pid (\d+)\)$/gm)].map((m) => [m[1], m[2]]),
  );
  assert.ok(Object.keys(pids).length >= 10, `processes in: ${status.stdout}`);
  return pids;
}

/** What a restart of a pod or its container would change. */
async function podState(ns: string, name: string) {
  const p = JSON.parse(await mustKubectl(["-n", ns, "get", "pod", name, "-o", "json"]));
  const c = p.status.containerStatuses?.[0] ?? {};
  return {
    uid: p.metadata.uid,
    containerID: c.containerID,
    restartCount: c.restartCount,
    startedAt: c.state?.running?.startedAt,
    ready: c.ready,
  };
}

test("a second cluster/up with everything running returns quickly and restarts nothing", async () => {
  const { ns, cleanup } = await tempNamespace("e2e-restart");
  try {
    // A pod whose container must keep running through the second up.
    await mustKubectl(
      ["-n", ns, "apply", "-f", "-"],
      JSON.stringify({
        apiVersion: "v1",
        kind: "Pod",
        metadata: { name: "witness" },
        spec: {
          terminationGracePeriodSeconds: 1,
          containers: [{ name: "c", image: TOOLS_IMAGE, command: ["sleep", "3600"] }],
        },
      }),
    );
    await mustKubectl(["-n", ns, "wait", "--for=condition=Ready", "pod/witness", "--timeout=120s"]);
    const pidsBefore = await clusterPids();
    const podBefore = await podState(ns, "witness");

    const t0 = Date.now();
    const r = await run(script("up"), []);
    assert.equal(r.code, 0, r.stderr);
    assert.ok(Date.now() - t0 < 20_000, `warm up took ${Date.now() - t0} ms`);
    assert.match(r.stderr, /cluster is up/);

    // Nothing was restarted or knocked over by rewriting its configuration. Compared once
    // the kubelet has renewed its node lease after up finished: it has gone on working
    // with whatever up left behind.
    const upDone = Date.now();
    const node = (await mustKubectl(["get", "nodes", "-o", "jsonpath={.items[0].metadata.name}"])).trim();
    await eventually(
      "the kubelet to renew its node lease after up",
      async () => {
        const renew = await mustKubectl([
          "-n",
          "kube-node-lease",
          "get",
          "lease",
          node,
          "-o",
          "jsonpath={.spec.renewTime}",
        ]);
        return Date.parse(renew.trim()) > upDone;
      },
      60_000,
    );
    assert.deepEqual(await clusterPids(), pidsBefore, "a cluster process was restarted");
    assert.deepEqual(await podState(ns, "witness"), podBefore, "the pod was restarted");
  } finally {
    await cleanup();
  }
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
  // A pod run to completion and its log read: `kubectl run -i --rm` attaches after the
  // container starts and can miss the output of one that exits at once.
  const name = uniqueName("after-restart");
  await mustKubectl([
    "-n",
    "default",
    "run",
    name,
    "--restart=Never",
    `--image=${TOOLS_IMAGE}`,
    "--",
    "echo",
    "back",
  ]);
  try {
    const phase = await eventually(
      "the pod after restart to finish",
      async () => {
        const p = await mustKubectl(["-n", "default", "get", "pod", name, "-o", "jsonpath={.status.phase}"]);
        return p === "Succeeded" || p === "Failed" ? p : undefined;
      },
      120_000,
    );
    assert.equal(phase, "Succeeded");
    assert.match(await mustKubectl(["-n", "default", "logs", name]), /back/);
  } finally {
    await kubectl(["-n", "default", "delete", "pod", name, "--wait=false"]);
  }
});
