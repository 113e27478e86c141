/**
 * A kubeconfig split over two files in KUBECONFIG, as kubectl users keep them (one file of
 * clusters and users, one of contexts): both the Kubernetes client's path (history) and
 * the direct path (server status) reach the cluster through the merge.
 */
import assert from "node:assert/strict";
import { promises as fs } from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before, test } from "node:test";
import { stringify } from "yaml";
import {
  mustKubectl,
  sleepingDeployment,
  snapdeploy,
  tempNamespace,
  jsonResult,
} from "../helpers/cluster.js";

let ns = "";
let dropNs = async () => {};
let dir = "";

before(async () => {
  ({ ns, cleanup: dropNs } = await tempNamespace("e2e-kubeconfig"));
  await sleepingDeployment(ns, "web", ["web"]);
  dir = await fs.mkdtemp(path.join(os.tmpdir(), "snapdeploy-kubeconfig-"));
});
after(async () => {
  await dropNs();
  if (dir) await fs.rm(dir, { recursive: true, force: true });
});

test("KUBECONFIG=credentials:contexts works on both paths; the context's namespace comes from the second file", async () => {
  const full = JSON.parse(await mustKubectl(["config", "view", "--raw", "--flatten", "-o", "json"]));
  const credentials = path.join(dir, "credentials");
  const contexts = path.join(dir, "contexts");
  await fs.writeFile(
    credentials,
    stringify({ apiVersion: "v1", kind: "Config", clusters: full.clusters, users: full.users }),
  );
  const context = full.contexts.find((c: { name: string }) => c.name === full["current-context"]);
  await fs.writeFile(
    contexts,
    stringify({
      apiVersion: "v1",
      kind: "Config",
      "current-context": "split",
      contexts: [{ name: "split", context: { ...context.context, namespace: ns } }],
    }),
  );
  const env = { ...process.env, KUBECONFIG: `${credentials}:${contexts}` };
  // No -n: the workloads' namespace is the merged context's.
  const history = await snapdeploy(["history", "-t", "web", "-o", "json"], { env });
  assert.equal(history.code, 0, history.stderr);
  assert.deepEqual(jsonResult(history.stdout), { "deployment/web": [] });
  // The direct path lists the namespace's pods: no build server there (exit 7), but the cluster answered.
  const status = await snapdeploy(["server", "status", "-n", ns], { env });
  assert.equal(status.code, 7, status.stderr);
  assert.match(status.stdout, new RegExp(`build server in ${ns}: not ready \\(not installed\\)`));
});
