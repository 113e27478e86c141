/**
 * snapdeploy deploy / history / rollback / personal against real workloads in the
 * local cluster: what gets served, how failures are explained, and what the
 * history records.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { promises as fs } from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import {
  CLI,
  DOCKER,
  eventually,
  installServer,
  kubectl,
  must,
  mustKubectl,
  REGISTRY_CA_FLAGS,
  REGISTRY_NODE,
  snapdeploy,
  tempNamespace,
  uninstallServer,
  uniqueName,
  kubeconfigWithRules,
  sleep,
  exitOf,
} from "../helpers/cluster.js";
import { served, servedSoon, startClient, pushPlaceholder, webApp, webWorkload } from "../helpers/web.js";

let server = "";
let ns = "";
let dropNs = async () => {};
const dirs: string[] = [];
// One repository for every run (base layers pushed once); RUN_ID makes each run's snapshots new.
const repo = `${REGISTRY_NODE}/e2e/web`;
const RUN_ID = `${uniqueName("run")}\n`;
let PLACEHOLDER = "";

before(async () => {
  server = await installServer("e2e-deploy", REGISTRY_CA_FLAGS);
  ({ ns, cleanup: dropNs } = await tempNamespace("e2e-apps"));
  // The workloads start on an image of the same app that answers "placeholder".
  PLACEHOLDER = await pushPlaceholder(dirs, RUN_ID);
  await startClient(ns);
});
after(async () => {
  await dropNs();
  await uninstallServer(server);
  for (const d of dirs) await fs.rm(d, { recursive: true, force: true });
});

/** A Deployment (and Service) that snapdeploy will point at snapshots. */
const workload = (name: string, opts: { containers?: string[]; replicas?: number } = {}) =>
  webWorkload(ns, name, PLACEHOLDER, opts);

/**
 * Waits (briefly) until the Service answers `expected`: a finished rollout can still
 * have old pods terminating, and kube-proxy follows endpoint changes within seconds.
 */
const deploy = (dir: string, args: string[]) =>
  snapdeploy([
    "deploy",
    "--server-namespace",
    server,
    "--user",
    "alice",
    "--project",
    "web",
    "-r",
    repo,
    "-n",
    ns,
    "-C",
    dir,
    ...args,
  ]);

const image = async (name: string, container = "web") =>
  (
    await mustKubectl([
      "-n",
      ns,
      "get",
      "deploy",
      name,
      "-o",
      `jsonpath={.spec.template.spec.containers[?(@.name=="${container}")].image}`,
    ])
  ).trim();

describe("deploy", () => {
  test("deploy, change a file, deploy again: the new content is served and history shows both", async () => {
    await workload("hello");
    const dir = await webApp(dirs, RUN_ID, "first version\n");
    const r1 = await deploy(dir, ["-t", "hello"]);
    assert.equal(r1.code, 0, r1.stderr);
    // The command returns only once the rollout is really done.
    await servedSoon(ns, "hello", "first version\n");
    await fs.writeFile(path.join(dir, "greeting.txt"), "second version\n");
    const r2 = await deploy(dir, ["-t", "hello"]);
    assert.equal(r2.code, 0, r2.stderr);
    await servedSoon(ns, "hello", "second version\n");
    assert.match(await image("hello"), new RegExp(`^${repo}@sha256:[0-9a-f]{64}$`));
    const tmpl = JSON.parse(await mustKubectl(["-n", ns, "get", "deploy", "hello", "-o", "json"]));
    const ann = tmpl.spec.template.metadata.annotations;
    assert.equal(ann["snapdeploy.dev/user"], "alice");
    assert.match(ann["snapdeploy.dev/snapshot"], /^[0-9a-f]{64}$/);
    assert.ok(
      "snapdeploy.dev/commit" in ann && "snapdeploy.dev/dirty" in ann && "snapdeploy.dev/time" in ann,
    );
    assert.match(
      tmpl.metadata.annotations["kubernetes.io/change-cause"],
      /snapdeploy deploy snapshot [0-9a-f]{12} by alice/,
    );

    const h = await snapdeploy(["history", "-t", "hello", "-n", ns]);
    assert.equal(h.code, 0, h.stderr);
    assert.match(h.stdout, /^\s+2\s+deploy\s+[0-9a-f]{12}\s+alice .* succeeded$/m);
    assert.match(h.stdout, /^\s+1\s+deploy\s+[0-9a-f]{12}\s+alice .* succeeded$/m);
  });

  test("a bad image fails fast with the ImagePullBackOff diagnosis", async () => {
    await workload("pull");
    const t0 = Date.now();
    const r = await snapdeploy([
      "deploy",
      "-t",
      "pull",
      "-n",
      ns,
      "--image",
      `${REGISTRY_NODE}/e2e/does-not-exist:v1`,
      "--user",
      "alice",
    ]);
    assert.ok(Date.now() - t0 < 30_000, `took ${Date.now() - t0} ms`);
    assert.equal(r.code, 10, r.stderr);
    assert.match(
      r.stderr,
      /deployment\/pull failed to roll out: pod pull-\S+: container web cannot pull image \S+does-not-exist:v1 \((ErrImagePull|ImagePullBackOff)\)/,
    );
    assert.match(r.stderr, /not found|failed to pull/i);
    const h = await snapdeploy(["history", "-t", "pull", "-n", ns]);
    assert.match(h.stdout, /failed: /);
  });

  test("a crashing app shows its exit code and last log lines; --rollback-on-failure restores the old image", async () => {
    await workload("crash");
    const good = await webApp(dirs, RUN_ID, "stable\n");
    assert.equal((await deploy(good, ["-t", "crash"])).code, 0);
    const before = await image("crash");
    // One stream only: the runtime copies stdout and stderr separately, so lines of the two
    // can reach the log in either order (seen: the stderr line landing before the last stdout ones).
    const crashing = await webApp(dirs, RUN_ID, "unused\n", {
      "server.js": [
        "for (let i = 1; i <= 30; i++) console.error('boot line ' + i);",
        "console.error('fatal: no database');",
        "process.exit(4);",
        "",
      ].join("\n"),
    });
    const r = await deploy(crashing, ["-t", "crash", "--rollback-on-failure", "--timeout", "90"]);
    assert.equal(r.code, 10, r.stderr);
    assert.match(r.stderr, /container web exited with code 4/);
    assert.match(r.stderr, /\| fatal: no database/);
    assert.match(r.stderr, /\| boot line 30/);
    assert.doesNotMatch(r.stderr, /\| boot line 5\n/, "only the last 20 lines");
    assert.match(r.stderr, /the previous images were restored/);
    assert.equal(await image("crash"), before);
    await mustKubectl(["-n", ns, "rollout", "status", "deployment/crash", "--timeout=60s"]);
    await servedSoon(ns, "crash", "stable\n");
    const h = await snapdeploy(["history", "-t", "crash", "-n", ns]);
    assert.match(h.stdout, /rolled back/);
  });

  test("one snapshot feeds two targets (a scheduler and its workers)", async () => {
    await workload("scheduler");
    await workload("workers", { replicas: 2 });
    const dir = await webApp(dirs, RUN_ID, "shared image\n");
    const r = await deploy(dir, ["-t", "scheduler", "-t", "deployment/workers:web"]);
    assert.equal(r.code, 0, r.stderr);
    const a = await image("scheduler");
    assert.equal(await image("workers"), a);
    await servedSoon(ns, "workers", "shared image\n");
  });

  test("--personal deploys to the user's own copy and leaves the shared Deployment and Service alone", async () => {
    await workload("shared");
    const sharedBefore = JSON.parse(await mustKubectl(["-n", ns, "get", "deploy", "shared", "-o", "json"]));
    const dir = await webApp(dirs, RUN_ID, "my prototype\n");
    const r = await deploy(dir, ["-t", "shared", "--personal"]);
    assert.equal(r.code, 0, r.stderr);
    const sharedAfter = JSON.parse(await mustKubectl(["-n", ns, "get", "deploy", "shared", "-o", "json"]));
    assert.equal(sharedAfter.metadata.generation, sharedBefore.metadata.generation);
    assert.equal(sharedAfter.spec.template.spec.containers[0].image, PLACEHOLDER);
    const copy = JSON.parse(await mustKubectl(["-n", ns, "get", "deploy", "shared-alice", "-o", "json"]));
    assert.equal(copy.metadata.labels["snapdeploy.dev/owner"], "alice");
    assert.match(copy.spec.template.spec.containers[0].image, new RegExp(`^${repo}@`));
    // The shared Service keeps serving only the shared pods.
    const endpoints = await mustKubectl([
      "-n",
      ns,
      "get",
      "endpointslices",
      "-l",
      "kubernetes.io/service-name=shared",
      "-o",
      "jsonpath={.items[*].endpoints[*].targetRef.name}",
    ]);
    assert.doesNotMatch(endpoints, /shared-alice/);
    for (let i = 0; i < 5; i++) assert.equal(await served(ns, "shared"), "placeholder\n");
    const del = await snapdeploy(["personal", "delete", "-n", ns, "--user", "alice"]);
    assert.equal(del.code, 0, del.stderr);
    assert.match(del.stdout, /deleted deployment\/shared-alice/);
    assert.notEqual((await kubectl(["-n", ns, "get", "deploy", "shared-alice"])).code, 0);
  });

  test("Ctrl-C during a rollout: exit 130, the new spec stays, the old pod serves, history says interrupted", async () => {
    await workload("slow");
    // An image of the app that runs but never listens: its pods never pass the readiness
    // probe, so the rollout stays in progress (nothing to diagnose) until the deploy's timeout.
    const neverReady = `${REGISTRY_NODE}/e2e/web:${uniqueName("never-ready")}`;
    const dir = await webApp(dirs, RUN_ID, "never served\n", {
      "server.js": "console.log('up, never listening');\nsetInterval(() => {}, 60_000);\n",
    });
    await must(DOCKER, ["build", "-q", "-t", neverReady, dir]);
    await must(DOCKER, ["push", "-q", neverReady]);
    const child = spawn(
      process.execPath,
      [CLI, "deploy", "-t", "slow", "-n", ns, "--image", neverReady, "--user", "alice", "--timeout", "600"],
      { stdio: ["ignore", "pipe", "pipe"] },
    );
    let stderr = "";
    child.stderr.on("data", (d) => {
      stderr += d;
    });
    const exited = exitOf(child);
    try {
      await eventually(
        "the deploy to update the target",
        async () => /updated deployment\/slow/.test(stderr),
        60_000,
      );
      // The rollout is under way when the signal comes: a pod of the new image runs, not ready.
      await eventually(
        "a running, unready pod of the new image",
        async () => {
          const pods = JSON.parse(
            await mustKubectl(["-n", ns, "get", "pods", "-l", "app=slow", "-o", "json"]),
          );
          return pods.items.some(
            (p: {
              spec: { containers: { image: string }[] };
              status: { containerStatuses?: { ready: boolean; state: { running?: object } }[] };
            }) =>
              p.spec.containers[0]?.image === neverReady &&
              p.status.containerStatuses?.[0]?.state.running !== undefined &&
              p.status.containerStatuses[0].ready === false,
          );
        },
        120_000,
      );
      assert.equal(child.exitCode, null, `the deploy ended before the interrupt: ${stderr}`);
      child.kill("SIGINT");
      // It must exit by itself (nothing left open keeps it alive).
      const code = await Promise.race([exited, sleep(30_000).then(() => "still running after 30 s")]);
      assert.equal(code, 130, stderr);
    } finally {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
    }
    assert.match(stderr, /interrupted: the targets were updated but their rollout was not awaited/);
    // What it leaves behind: the new spec applied, the old pod still the one serving, and
    // a history entry that says the rollout was interrupted (not "in progress").
    assert.equal(await image("slow"), neverReady);
    assert.equal(await served(ns, "slow"), "placeholder\n");
    const h = await snapdeploy(["history", "-t", "slow", "-n", ns]);
    assert.equal(h.code, 0, h.stderr);
    assert.match(h.stdout, /^\s+1\s+deploy\s+.*\binterrupted\b/m);
    assert.doesNotMatch(h.stdout, /in progress|succeeded|failed/);
  });
});

describe("bad input", () => {
  before(async () => workload("hello"));

  test("a missing target lists the Deployments in the namespace (exit 5)", async () => {
    const r = await snapdeploy([
      "deploy",
      "-t",
      "nope",
      "-n",
      ns,
      "--image",
      `x.example/y@sha256:${"0".repeat(64)}`,
    ]);
    assert.equal(r.code, 5, r.stderr);
    assert.match(r.stderr, /deployment\/nope not found in namespace/);
    assert.match(r.stderr, /Deployments there: .*hello/);
  });

  test("a wrong container name lists the containers (exit 5)", async () => {
    const r = await snapdeploy(["deploy", "-t", "hello:nope", "-n", ns, "--image", "x.example/y:1"]);
    assert.equal(r.code, 5, r.stderr);
    assert.match(r.stderr, /has no container named nope/);
    assert.match(r.stderr, /its containers: web/);
  });

  test("a missing namespace is named (exit 5)", async () => {
    const r = await snapdeploy(["deploy", "-t", "hello", "-n", "no-such-ns", "--image", "x.example/y:1"]);
    assert.equal(r.code, 5, r.stderr);
    assert.match(r.stderr, /namespace no-such-ns does not exist/);
  });

  test("no permission to patch names the verb and resource (exit 4), and nothing changes", async () => {
    // Every right a deploy uses except patching the workload: reading it and what its
    // rollout makes, and writing its history.
    const { kubeconfig, serviceAccount } = await kubeconfigWithRules(ns, [
      { group: "apps", resources: ["deployments", "replicasets"], verbs: ["get", "list", "watch"] },
      { group: "", resources: ["pods", "pods/log", "events"], verbs: ["get", "list", "watch"] },
      { group: "", resources: ["configmaps"], verbs: ["get", "list", "watch", "create", "update", "patch"] },
    ]);
    const historyOf = async () =>
      (
        await kubectl([
          "-n",
          ns,
          "get",
          "configmap",
          "snapdeploy-history-deployment-hello",
          "-o",
          "jsonpath={.data.entries}",
        ])
      ).stdout;
    const before = await image("hello");
    const historyBefore = await historyOf();
    const deployAs = (img: string) =>
      snapdeploy(["deploy", "--kubeconfig", kubeconfig, "-t", "hello", "--image", img, "--user", "alice"]);
    const r = await deployAs(`${REGISTRY_NODE}/e2e/x:1`);
    assert.equal(r.code, 4, r.stderr);
    assert.match(r.stderr, new RegExp(`not allowed to patch deployments/hello in namespace ${ns}`));
    assert.equal(await image("hello"), before);
    assert.equal(await historyOf(), historyBefore, "the history is untouched");
    // The patch was the only right missing: with it, the same user's deploy goes through.
    await mustKubectl([
      "-n",
      ns,
      "create",
      "role",
      `${serviceAccount}-patch`,
      "--verb=patch",
      "--resource=deployments",
    ]);
    await mustKubectl([
      "-n",
      ns,
      "create",
      "rolebinding",
      `${serviceAccount}-patch`,
      `--role=${serviceAccount}-patch`,
      `--serviceaccount=${ns}:${serviceAccount}`,
    ]);
    const ok = await deployAs(PLACEHOLDER);
    assert.equal(ok.code, 0, ok.stderr);
  });

  test("an unreachable cluster and a missing context are clear errors (exit 3)", async () => {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), "snapdeploy-kc-"));
    const kubeconfig = path.join(dir, "config");
    await fs.writeFile(
      kubeconfig,
      JSON.stringify({
        apiVersion: "v1",
        kind: "Config",
        clusters: [{ name: "c", cluster: { server: "https://127.0.0.1:1" } }],
        users: [{ name: "u", user: { token: "x" } }],
        contexts: [{ name: "c", context: { cluster: "c", user: "u" } }],
        "current-context": "c",
      }),
    );
    const r = await snapdeploy([
      "deploy",
      "--kubeconfig",
      kubeconfig,
      "-t",
      "hello",
      "--image",
      "x.example/y:1",
    ]);
    assert.equal(r.code, 3, r.stderr);
    assert.match(r.stderr, /cannot reach the Kubernetes API server/);
    const r2 = await snapdeploy(["deploy", "--context", "nope", "-t", "hello", "--image", "x.example/y:1"]);
    assert.equal(r2.code, 3, r2.stderr);
    assert.match(r2.stderr, /context "nope" is not in the kubeconfig/);
  });
});
