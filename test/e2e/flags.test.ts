/**
 * A bad flag value changes nothing: for every command, an otherwise working command line
 * with one bad value is refused with exit 2 (naming the flag and the value), and the
 * workloads, their history, Jobs and namespaces read back exactly as before. And the
 * values people type are taken: `deploy --timeout 2m`, `-n` naming the workloads.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import {
  deploymentImage,
  kubectl,
  mustKubectl,
  NODE_BASE_IMAGE,
  NODE_TOOLS_IMAGE,
  REGISTRY_NODE,
  sleepingDeployment,
  snapdeploy,
  tempNamespace,
  uniqueName,
  jsonResult,
} from "../helpers/cluster.js";

const BASE = NODE_BASE_IMAGE;
const OTHER = NODE_TOOLS_IMAGE;

let ns = "";
let dropNs = async () => {};

before(async () => {
  ({ ns, cleanup: dropNs } = await tempNamespace("e2e-flags"));
  await sleepingDeployment(ns, "web", ["web", "worker"]);
});
after(async () => {
  await dropNs();
});

/**
 * What a command could change, read back: every Deployment, ReplicaSet, Job and ConfigMap
 * of the namespace with its resourceVersion and generation, and the cluster's Active namespaces.
 */
async function state(): Promise<string> {
  const objects = await mustKubectl([
    "-n",
    ns,
    "get",
    "deployments,replicasets,jobs,configmaps",
    "-o",
    'jsonpath={range .items[*]}{.kind}/{.metadata.name} rv={.metadata.resourceVersion} gen={.metadata.generation}{"\\n"}{end}',
  ]);
  // The Active ones: a namespace an earlier test deleted may finish going meanwhile, while a
  // command that deletes one (server uninstall --purge) turns it Terminating at once.
  const namespaces = await mustKubectl([
    "get",
    "namespaces",
    "-o",
    'jsonpath={range .items[?(@.status.phase=="Active")]}{.metadata.name}{"\\n"}{end}',
  ]);
  return `${objects}\n${namespaces}`;
}

/** Runs `args`, which must be refused with exit 2 and `message`, and checks that nothing changed. */
async function refused(args: string[], message: RegExp) {
  const before = await state();
  const r = await snapdeploy(args);
  assert.equal(r.code, 2, `${args.join(" ")}: exit ${r.code}\n${r.stderr}`);
  assert.match(r.stderr, message, args.join(" "));
  assert.doesNotMatch(r.stderr, /\n\s+at /);
  assert.equal(await state(), before, `${args.join(" ")} changed the cluster`);
}

const deployArgs = () => ["deploy", "-t", "web:worker", "-n", ns, "--image", OTHER, "--user", "alice"];

describe("a bad flag value changes nothing in the cluster", () => {
  test("deploy --timeout 5x (it used to patch, then fail with NaNs)", async () => {
    await refused([...deployArgs(), "--timeout", "5x"], /'--timeout <duration>' argument '5x' is invalid/);
    await refused([...deployArgs(), "--manifests", "no-such-dir"], /--manifests no-such-dir: no such file/);
    await refused(
      [...deployArgs(), "-C", "/no/such/project"],
      /'-C, --dir <path>' argument '\/no\/such\/project'/,
    );
  });

  test("deploy --timeout 2m is taken, -n names the workloads' namespace", async () => {
    const r = await snapdeploy([...deployArgs(), "--timeout", "2m", "-o", "json"]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(await deploymentImage(ns, "web", "worker"), OTHER);
    assert.doesNotMatch(r.stderr, /warning/);
  });

  test("rollback --timeout, --to", async () => {
    const rollback = ["rollback", "-t", "web", "-n", ns];
    await refused([...rollback, "--timeout", "1.5m"], /'--timeout <duration>' argument '1.5m' is invalid/);
    await refused([...rollback, "--to", "first"], /'--to <revision>' argument 'first' is invalid/);
    await refused([...rollback, "--to", "0"], /'--to <revision>' argument '0' is invalid/);
  });

  test("run --ttl, --start-timeout, --cpu, --env: no Job", async () => {
    const run = ["run", "-t", "web", "-n", ns, "--image", BASE, "--user", "alice"];
    await refused([...run, "--ttl", "1d", "--", "true"], /'--ttl <duration>' argument '1d' is invalid/);
    await refused(
      [...run, "--start-timeout", "soon", "--", "true"],
      /'--start-timeout <duration>' argument 'soon'/,
    );
    await refused([...run, "--cpu", "2 cores", "--", "true"], /'--cpu <quantity>' argument '2 cores'/);
    await refused([...run, "--env", "NOVALUE", "--", "true"], /'--env <KEY=VALUE>' argument 'NOVALUE'/);
  });

  test("dev --timeout, --port", async () => {
    const dev = ["dev", "-t", "web", "-n", ns, "--user", "alice", "-r", `${REGISTRY_NODE}/e2e/flags`];
    await refused([...dev, "--timeout", "-1"], /'--timeout <duration>' argument '-1' is invalid/);
    await refused([...dev, "--port", "8080:http"], /'--port <LOCAL:REMOTE>' argument '8080:http' is invalid/);
  });

  test("personal delete -t, history and logs and port-forward values", async () => {
    // A personal copy to keep.
    const copy = await snapdeploy([...deployArgs(), "--personal"]);
    assert.equal(copy.code, 0, copy.stderr);
    await refused(
      ["personal", "delete", "-n", ns, "--user", "alice", "-t", "web:"],
      /argument 'web:' is invalid/,
    );
    await refused(["personal", "delete", "-n", ns, "--user", "Alice"], /'--user <name>' argument 'Alice'/);
    await refused(["history", "-t", "web", "-n", "No_Such"], /'-n, --namespace <ns>' argument 'No_Such'/);
    await refused(["logs", "-t", "web", "-n", ns, "--tail", "ten"], /'--tail <lines>' argument 'ten'/);
    await refused(["logs", "-t", "web", "-n", ns, "--since", "1.5h"], /'--since <duration>' argument '1.5h'/);
    await refused(
      ["port-forward", "99999", "-t", "web", "-n", ns],
      /value '99999' is invalid for argument 'ports'/,
    );
  });

  test("server install --timeout (it used to never time out), uninstall with a bad -C", async () => {
    const fresh = uniqueName("e2e-flags-server");
    const install = ["server", "install", "-n", fresh, "--image", BASE];
    await refused([...install, "--timeout", "5mins"], /'--timeout <duration>' argument '5mins' is invalid/);
    await refused([...install, "--max-builds", "many"], /'--max-builds <n>' argument 'many'/);
    await refused([...install, "--size", "lots"], /'--size <quantity>' argument 'lots'/);
    // --purge would delete the namespace: it is still there.
    await refused(["server", "uninstall", "-n", ns, "--purge", "-C", "/no/such"], /'-C, --dir <path>'/);
    assert.equal((await kubectl(["get", "namespace", fresh])).code, 1);
  });

  test("sync and build values", async () => {
    await refused(
      ["sync", "--server-namespace", ns, "--project", "My App"],
      /'--project <name>' argument 'My App'/,
    );
    await refused(
      ["build", "--server-namespace", ns, "--platform", "x86"],
      /'--platform <platform>' argument 'x86'/,
    );
  });
});

describe("the old spellings, for one release", () => {
  test("--target-namespace works with a deprecation warning on stderr", async () => {
    const r = await snapdeploy(["history", "-t", "web", "--target-namespace", ns, "-o", "json"]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /^warning: --target-namespace is deprecated .* use -n\/--namespace/m);
    assert.ok(jsonResult(r.stdout)["deployment/web"].length >= 1);
  });

  test("-n and --target-namespace disagreeing is refused (an old command line naming the server with -n)", async () => {
    await refused(
      [
        "deploy",
        "-n",
        "snapdeploy",
        "--target-namespace",
        ns,
        "-t",
        "web",
        "--image",
        BASE,
        "--user",
        "alice",
      ],
      /-n\/--namespace snapdeploy and --target-namespace .* disagree/,
    );
  });
});
