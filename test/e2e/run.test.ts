/**
 * snapdeploy run against a real build server and cluster: a Job made from a Deployment's
 * pod template runs a command with the snapshot, sees the Deployment's env and ConfigMap,
 * streams its output and hands back its exit code.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { promises as fs } from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import {
  CLI,
  eventually,
  installServer,
  kubectl,
  mustKubectl,
  REGISTRY_CA_FLAGS,
  REGISTRY_NODE,
  snapdeploy,
  tempNamespace,
  uninstallServer,
  uniqueName,
  jsonEvents,
  jsonResult,
} from "../helpers/cluster.js";

const BASE = `${REGISTRY_NODE}/snapdeploy/debian:bookworm`;
/** Generous: the test machine is small and busy. */
const SLOW = { timeout: 600_000 };

let server = "";
let ns = "";
let cleanupNs = async () => {};
let dir = "";

before(async () => {
  server = await installServer("e2e-run", REGISTRY_CA_FLAGS);
  ({ ns, cleanup: cleanupNs } = await tempNamespace("e2e-run-apps"));
  await mustKubectl(
    ["-n", ns, "apply", "-f", "-"],
    `
apiVersion: v1
kind: ConfigMap
metadata: {name: web-config}
data: {file: "from the configmap"}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, labels: {app: web}}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
        - name: app
          image: ${BASE}
          command: [sleep, infinity]
          env: [{name: APP_MODE, value: shared}]
          ports: [{containerPort: 8080}]
          readinessProbe: {tcpSocket: {port: 8080}}
          volumeMounts: [{name: config, mountPath: /config}]
      volumes: [{name: config, configMap: {name: web-config}}]
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080}]
`,
  );
  dir = await fs.mkdtemp(path.join(os.tmpdir(), "snapdeploy-run-"));
  const files: Record<string, string> = {
    Dockerfile: `FROM ${BASE}\nCOPY script.sh /app/script.sh\n`,
    "script.sh": "#!/bin/sh from the snapshot\necho hello\n",
    // The target comes from the project's config: the first of deploy.targets.
    "snapdeploy.yaml": [
      "project: app",
      `image: {repository: ${REGISTRY_NODE}/e2e/${uniqueName("run")}}`,
      `deploy: {namespace: ${ns}, targets: [{name: web}]}`,
      "",
    ].join("\n"),
  };
  for (const [p, c] of Object.entries(files)) await fs.writeFile(path.join(dir, p), c);
});

after(async () => {
  await uninstallServer(server);
  await cleanupNs();
  if (dir) await fs.rm(dir, { recursive: true, force: true });
});

const runArgs = (extra: string[], command: string[]) => [
  "run",
  "--server-namespace",
  server,
  "--user",
  "alice",
  "-C",
  dir,
  ...extra,
  "--",
  ...command,
];
const run = (extra: string[], ...command: string[]) => snapdeploy(runArgs(extra, command));
const jobOf = (stderr: string) => {
  const name = /job (web-run-[0-9a-f]{6}) created/.exec(stderr)?.[1];
  assert.ok(name, `no job name in: ${stderr}`);
  return name;
};

describe("run", () => {
  test("the command's exit code is the CLI's, with a line saying whose it is", SLOW, async () => {
    const r = await run([], "sh", "-c", "echo about to fail; exit 3");
    assert.equal(r.code, 3, r.stderr);
    assert.equal(r.stdout, "about to fail\n");
    assert.match(r.stderr, /job web-run-[0-9a-f]{6}: command exited with code 3$/m);
    assert.doesNotMatch(r.stderr, /^error:/m);
  });

  test("-o json says whose exit code it is: the command's 3 is not snapdeploy's 3", SLOW, async () => {
    const r = await run(["-o", "json"], "sh", "-c", "echo to stderr in json; exit 3");
    assert.equal(r.code, 3, r.stderr);
    const doc = jsonResult(r.stdout);
    assert.equal(doc.exitCodeFrom, "command");
    assert.equal(doc.exitCode, 3);
    assert.match(doc.job, /^web-run-[0-9a-f]{6}$/);
    assert.match(r.stderr, /^to stderr in json$/m);
    const ok = await run(["-o", "json"], "true");
    assert.equal(ok.code, 0, ok.stderr);
    assert.deepEqual([jsonResult(ok.stdout).exitCodeFrom, jsonResult(ok.stdout).exitCode], ["command", 0]);
    // snapdeploy's own failure before the command starts: its code, and the document says so.
    const wrong = await run(["-o", "json", "--target", "deployment/nope"], "true");
    assert.equal(wrong.code, 5, wrong.stderr);
    // The result says whose code it is; the error event, as for every failure, comes last.
    const [result, error, ...more] = jsonEvents(wrong.stdout);
    assert.deepEqual(result, {
      event: "result",
      exitCode: 5,
      exitCodeFrom: "snapdeploy",
      error: `deployment/nope not found in namespace ${ns}`,
    });
    assert.deepEqual(
      [error?.event, error?.exitCode, error?.message, more],
      ["error", 5, `deployment/nope not found in namespace ${ns}`, []],
    );
    assert.match(wrong.stderr, /^error: deployment\/nope not found/m);
  });

  test("it sees the workload's env and ConfigMap and the snapshot's files", SLOW, async () => {
    // The snapshot built beforehand (by snapdeploy build, as another command would have).
    const built = await snapdeploy(["build", "--server-namespace", server, "--user", "alice", "-C", dir]);
    assert.equal(built.code, 0, built.stderr);
    const r = await run([], "sh", "-c", "echo $APP_MODE; cat /config/file; echo; head -1 /app/script.sh");
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, "shared\nfrom the configmap\n#!/bin/sh from the snapshot\n");
    assert.match(r.stderr, /already built/, "an existing snapshot is reused");
  });

  test("--env overrides the workload's variable", SLOW, async () => {
    const r = await run(
      ["--env", "APP_MODE=override", "--env", "EXTRA=1"],
      "sh",
      "-c",
      "echo $APP_MODE $EXTRA",
    );
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, "override 1\n");
  });

  test("--detach prints the Job's name; the Job expires and no Service selects its pod", SLOW, async () => {
    const r = await run(["--detach", "--ttl", "600", "--cpu", "50m", "--memory", "64Mi"], "true");
    assert.equal(r.code, 0, r.stderr);
    const name = r.stdout.trim();
    assert.match(name, /^web-run-[0-9a-f]{6}$/);
    const job = JSON.parse(await mustKubectl(["-n", ns, "get", "job", name, "-o", "json"]));
    assert.equal(job.spec.ttlSecondsAfterFinished, 600);
    assert.equal(job.spec.backoffLimit, 0);
    const pod = job.spec.template;
    // The Job controller adds its own labels (job-name, controller-uid); the workload's are gone.
    assert.equal(pod.metadata.labels["snapdeploy.dev/run"], name);
    assert.equal(pod.metadata.labels["snapdeploy.dev/user"], "alice");
    assert.equal(pod.metadata.labels.app, undefined);
    assert.equal(pod.spec.restartPolicy, "Never");
    const c = pod.spec.containers[0];
    assert.match(c.image, /@sha256:[0-9a-f]{64}$/);
    assert.deepEqual(c.command, ["true"]);
    assert.equal(c.readinessProbe, undefined);
    assert.equal(c.ports, undefined);
    assert.deepEqual(c.resources, {
      requests: { cpu: "50m", memory: "64Mi" },
      limits: { cpu: "50m", memory: "64Mi" },
    });
    assert.equal(job.metadata.annotations["snapdeploy.dev/snapshot"], c.image);
    assert.equal(job.metadata.annotations["snapdeploy.dev/command"], '["true"]');
  });

  test("a wrong target fails before building, listing the Deployments there (exit 5)", SLOW, async () => {
    const r = await run(["--target", "deployment/nope"], "true");
    assert.equal(r.code, 5, r.stderr);
    assert.match(r.stderr, /error: deployment\/nope not found in namespace /);
    assert.match(r.stderr, /Deployments there: web/);
    assert.doesNotMatch(r.stderr, /already built|building/);
  });

  test(
    "an image that cannot be pulled is named with the kubelet's reason (exit 10), Job deleted",
    SLOW,
    async () => {
      const missing = `${REGISTRY_NODE}/e2e/${uniqueName("missing")}@sha256:${"0".repeat(64)}`;
      const r = await run(["--image", missing], "true");
      assert.equal(r.code, 10, r.stderr);
      assert.match(
        r.stderr,
        /error: job web-run-[0-9a-f]{6}: the command cannot start: container app: (ErrImagePull|ImagePullBackOff)/,
      );
      assert.match(r.stderr, /job web-run-[0-9a-f]{6} deleted/);
      const name = jobOf(r.stderr);
      assert.notEqual((await kubectl(["-n", ns, "get", "job", name])).code, 0);
    },
  );

  test("a pod no node can hold times out with the scheduler's message (exit 11)", SLOW, async () => {
    const r = await run(["--cpu", "500", "--start-timeout", "20"], "true");
    assert.equal(r.code, 11, r.stderr);
    assert.match(r.stderr, /waiting: unschedulable: .*Insufficient cpu/);
    assert.match(r.stderr, /did not start within 20s/);
  });

  test("Ctrl-C deletes the Job and exits 130", SLOW, async () => {
    const child = spawn(process.execPath, [CLI, ...runArgs([], ["sh", "-c", "echo started; sleep 600"])], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => {
      stdout += d;
    });
    child.stderr.on("data", (d) => {
      stderr += d;
    });
    const exited = new Promise<number | null>((r) => child.on("exit", r));
    await eventually("the command's first output", async () => stdout.includes("started"), 300_000);
    child.kill("SIGINT");
    assert.equal(await exited, 130, stderr);
    assert.match(stderr, /interrupted: deleted job web-run-[0-9a-f]{6}/);
    const name = jobOf(stderr);
    await eventually(
      "the job and its pod to go",
      async () =>
        (await kubectl(["-n", ns, "get", "job", name])).code !== 0 &&
        (
          await mustKubectl(["-n", ns, "get", "pods", "-l", `snapdeploy.dev/run=${name}`, "-o", "name"])
        ).trim() === "",
      120_000,
    );
  });

  test("bad input is a usage error (exit 2)", async () => {
    const noCommand = await snapdeploy(["run", "-C", dir]);
    assert.equal(noCommand.code, 2, noCommand.stderr);
    assert.match(noCommand.stderr, /no command given/);
    const empty = await fs.mkdtemp(path.join(os.tmpdir(), "snapdeploy-run-empty-"));
    try {
      const noTarget = await snapdeploy(["run", "-C", empty, "--", "true"]);
      assert.equal(noTarget.code, 2, noTarget.stderr);
      assert.match(noTarget.stderr, /no target given/);
      assert.match(noTarget.stderr, /--target .*deploy\.targets/);
    } finally {
      await fs.rm(empty, { recursive: true, force: true });
    }
  });
});
