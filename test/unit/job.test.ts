/** The Job of `snapdeploy run`, built from a pod template; and reading its pod's state. */
import assert from "node:assert/strict";
import { test } from "node:test";
import type { V1Pod, V1PodTemplateSpec } from "@kubernetes/client-node";
import { UserError } from "../../src/errors.js";
import { indexedOutcome, outcomeText, parseIndexList } from "../../src/run/indexes.js";
import {
  buildRunJob,
  checkQuantity,
  fanOut,
  MAX_INDEXES,
  parseEnv,
  type RunJobInput,
  runJobName,
} from "../../src/run/job.js";
import { exitStatus, startState } from "../../src/run/pod.js";

const template = (): V1PodTemplateSpec => ({
  metadata: { labels: { app: "web", tier: "front" }, annotations: { "vault.example/inject": "true" } },
  spec: {
    serviceAccountName: "web-sa",
    nodeSelector: { pool: "big" },
    tolerations: [{ key: "dedicated", operator: "Equal", value: "web", effect: "NoSchedule" }],
    imagePullSecrets: [{ name: "regcred" }],
    restartPolicy: "Always",
    initContainers: [{ name: "migrate", image: "web:1", command: ["migrate"] }],
    volumes: [{ name: "config", configMap: { name: "web-config" } }],
    containers: [
      {
        name: "app",
        image: "web:1",
        command: ["server"],
        args: ["--port", "8080"],
        ports: [{ containerPort: 8080 }],
        env: [
          { name: "APP_MODE", value: "shared" },
          { name: "DB_URL", valueFrom: { secretKeyRef: { name: "db", key: "url" } } },
        ],
        volumeMounts: [
          { name: "config", mountPath: "/config" },
          { name: "data", mountPath: "/data" },
        ],
        livenessProbe: { httpGet: { path: "/healthz", port: 8080 } },
        readinessProbe: { httpGet: { path: "/ready", port: 8080 } },
        startupProbe: { tcpSocket: { port: 8080 } },
        resources: { requests: { cpu: "100m", memory: "128Mi", "ephemeral-storage": "1Gi" } },
      },
      { name: "proxy", image: "envoy:1" },
    ],
  },
});

const input = (over: Partial<RunJobInput> = {}): RunJobInput => ({
  name: "web-run-0a1b2c",
  template: template(),
  container: "app",
  image: "reg.example/app@sha256:abc",
  command: ["python", "backtest.py", "--days", "30"],
  user: "alice",
  target: "deployment/web:app",
  ttlSeconds: 3600,
  ...over,
});

test("keeps only the target container, on the snapshot, with the command as entrypoint", () => {
  const { job } = buildRunJob(input());
  const pod = job.spec?.template.spec;
  assert.deepEqual(
    pod?.containers.map((c) => c.name),
    ["app"],
  );
  const c = pod?.containers[0];
  assert.equal(c?.image, "reg.example/app@sha256:abc");
  assert.equal(c?.imagePullPolicy, "IfNotPresent");
  assert.deepEqual(c?.command, ["python", "backtest.py", "--days", "30"]);
  assert.equal(c?.args, undefined);
  assert.deepEqual(
    pod?.initContainers?.map((i) => i.name),
    ["migrate"],
    "init containers prepare the same data",
  );
});

test("drops probes and ports; keeps what gives the same data and placement", () => {
  const { job } = buildRunJob(input());
  const pod = job.spec?.template.spec;
  const c = pod?.containers[0];
  assert.equal(c?.livenessProbe, undefined);
  assert.equal(c?.readinessProbe, undefined);
  assert.equal(c?.startupProbe, undefined);
  assert.equal(c?.ports, undefined);
  assert.equal(pod?.serviceAccountName, "web-sa");
  assert.deepEqual(pod?.nodeSelector, { pool: "big" });
  assert.equal(pod?.tolerations?.[0]?.key, "dedicated");
  assert.deepEqual(pod?.imagePullSecrets, [{ name: "regcred" }]);
  assert.deepEqual(pod?.volumes, [{ name: "config", configMap: { name: "web-config" } }]);
  assert.equal(pod?.restartPolicy, "Never");
  assert.equal(job.spec?.backoffLimit, 0);
  assert.equal(job.spec?.ttlSecondsAfterFinished, 3600);
});

test("a mount without a volume in the template (StatefulSet claim) is dropped with a warning", () => {
  const { job, warnings } = buildRunJob(input());
  assert.deepEqual(
    job.spec?.template.spec?.containers[0]?.volumeMounts?.map((m) => m.mountPath),
    ["/config"],
  );
  assert.match(warnings.join("\n"), /data at \/data/);
});

test("--cpu/--memory become requests and limits; other resources stay", () => {
  const r = buildRunJob(input({ cpu: "4", memory: "8Gi" })).job.spec?.template.spec?.containers[0]?.resources;
  assert.deepEqual(r?.requests, { cpu: "4", memory: "8Gi", "ephemeral-storage": "1Gi" });
  assert.deepEqual(r?.limits, { cpu: "4", memory: "8Gi" });
  const only = buildRunJob(input({ memory: "1Gi" })).job.spec?.template.spec?.containers[0]?.resources;
  assert.deepEqual(only?.requests, { cpu: "100m", memory: "1Gi", "ephemeral-storage": "1Gi" });
  assert.deepEqual(only?.limits, { memory: "1Gi" });
  const none = buildRunJob(input()).job.spec?.template.spec?.containers[0]?.resources;
  assert.deepEqual(none, template().spec?.containers[0]?.resources);
});

test("--env replaces a same-named variable (even one from a Secret) and adds new ones", () => {
  const env = buildRunJob(input({ env: parseEnv(["APP_MODE=override", "DB_URL=sqlite://", "NEW=1"]) })).job
    .spec?.template.spec?.containers[0]?.env;
  assert.deepEqual(env, [
    { name: "APP_MODE", value: "override" },
    { name: "DB_URL", value: "sqlite://" },
    { name: "NEW", value: "1" },
  ]);
  assert.deepEqual(parseEnv(["A=1", "A=2=3", "B="]), [
    { name: "A", value: "2=3" },
    { name: "B", value: "" },
  ]);
  assert.throws(() => parseEnv(["NOEQUALS"]), UserError);
});

test("labels: the workload's are dropped, the run's and user's set; annotations record the run", () => {
  const { job } = buildRunJob(input());
  const expected = { "snapdeploy.dev/run": "web-run-0a1b2c", "snapdeploy.dev/user": "alice" };
  assert.deepEqual(job.spec?.template.metadata?.labels, expected);
  assert.deepEqual(job.metadata?.labels, expected);
  assert.equal(job.metadata?.name, "web-run-0a1b2c");
  assert.equal(job.metadata?.annotations?.["snapdeploy.dev/snapshot"], "reg.example/app@sha256:abc");
  assert.equal(job.metadata?.annotations?.["snapdeploy.dev/user"], "alice");
  assert.deepEqual(JSON.parse(job.metadata?.annotations?.["snapdeploy.dev/command"] ?? ""), [
    "python",
    "backtest.py",
    "--days",
    "30",
  ]);
  assert.equal(job.spec?.template.metadata?.annotations?.["vault.example/inject"], "true");
});

test("the template passed in is not modified", () => {
  const t = template();
  buildRunJob(input({ template: t, cpu: "1", env: [{ name: "X", value: "1" }] }));
  assert.deepEqual(t, template());
});

test("a container that is not in the template is refused", () => {
  assert.throws(() => buildRunJob(input({ container: "nope" })), /no container nope/);
});

test("job names keep their random suffix within 63 characters", () => {
  assert.equal(runJobName("web", "0a1b2c"), "web-run-0a1b2c");
  const long = runJobName(`${"a".repeat(50)}-${"b".repeat(20)}`, "0a1b2c");
  assert.equal(long.length <= 63, true);
  assert.match(long, /^a+-?b*-run-0a1b2c$/);
  assert.doesNotMatch(runJobName(`${"a".repeat(51)}-bbb`, "0a1b2c"), /--run/);
});

test("quantities are checked before anything is created", () => {
  for (const q of ["500m", "2", "1.5", "4Gi", "512M", "1e3"]) assert.equal(checkQuantity(q, "--cpu"), q);
  for (const q of ["", "two", "4GB", "-1", "1 Gi"])
    assert.throws(() => checkQuantity(q, "--memory"), UserError);
});

test("--parallel/--completions: an Indexed Job whose failed index is not retried nor stops the others", () => {
  const spec = buildRunJob(input({ fanOut: { parallelism: 3, completions: 6 } })).job.spec;
  assert.equal(spec?.completionMode, "Indexed");
  assert.equal(spec?.parallelism, 3);
  assert.equal(spec?.completions, 6);
  assert.equal(spec?.backoffLimitPerIndex, 0);
  assert.equal(spec?.maxFailedIndexes, undefined);
  assert.equal(spec?.backoffLimit, undefined, "a Job-wide limit would end the run at the first failure");
  assert.deepEqual(spec?.podFailurePolicy?.rules, [
    { action: "Ignore", onPodConditions: [{ type: "DisruptionTarget", status: "True" }] },
  ]);
  assert.equal(spec?.template.spec?.restartPolicy, "Never", "a pod failure policy needs it");
  assert.equal(spec?.ttlSecondsAfterFinished, 3600);
  const single = buildRunJob(input()).job.spec;
  assert.equal(single?.completionMode, undefined);
  assert.equal(single?.parallelism, undefined);
  assert.equal(single?.backoffLimit, 0);
});

test("fan-out from the flags: N alone is N indices, M alone all at once, N above M cut to M", () => {
  assert.equal(fanOut(undefined, undefined), undefined);
  assert.deepEqual(fanOut(3, undefined), { parallelism: 3, completions: 3 });
  assert.deepEqual(fanOut(undefined, 6), { parallelism: 6, completions: 6 });
  assert.deepEqual(fanOut(3, 6), { parallelism: 3, completions: 6 });
  assert.deepEqual(fanOut(10, 6), { parallelism: 6, completions: 6 });
  assert.deepEqual(fanOut(1, 1), { parallelism: 1, completions: 1 });
  for (const [n, m] of [
    [0, undefined],
    [undefined, 0],
    [MAX_INDEXES + 1, undefined],
    [2, MAX_INDEXES + 1],
    [1.5, undefined],
    [Number.NaN, 2],
  ])
    assert.throws(
      () => fanOut(n, m),
      (e) => e instanceof UserError && e.exitCode === 2,
    );
});

test("index lists of the Job status", () => {
  assert.deepEqual(parseIndexList("1,3-5,7"), [1, 3, 4, 5, 7]);
  assert.deepEqual(parseIndexList("0-2"), [0, 1, 2]);
  assert.deepEqual(parseIndexList(""), []);
  assert.deepEqual(parseIndexList(undefined), []);
});

test("outcome: the lowest failed index's code is the exit code; every failure named", () => {
  const exits = new Map([
    [0, { code: 0 }],
    [1, { code: 2 }],
    [2, { code: 0 }],
    [3, { code: 137, reason: "OOMKilled" }],
  ]);
  const o = indexedOutcome(4, exits, { completed: [0, 2], failed: [1, 3] });
  assert.equal(o.exitCode, 2);
  assert.deepEqual(o.failed, [1, 3]);
  assert.deepEqual(o.indices[3], {
    index: 3,
    status: "failed",
    exitCode: 137,
    reason: "OOMKilled",
    message: undefined,
  });
  assert.equal(
    outcomeText(o),
    "2 of 4 indices failed: index 1 exited with code 2, index 3 exited with code 137 (OOMKilled)",
  );
  const ok = indexedOutcome(
    2,
    new Map([
      [0, { code: 0 }],
      [1, { code: 0 }],
    ]),
    { completed: [0, 1], failed: [] },
  );
  assert.equal(ok.exitCode, 0);
  assert.equal(outcomeText(ok), "2 of 2 indices succeeded");
});

test("outcome: a failed index without an exit code has none to pass on; a Job gone is read from the exits", () => {
  const lost = indexedOutcome(2, new Map([[0, { code: 0 }]]), { completed: [0], failed: [1] });
  assert.equal(lost.exitCode, undefined);
  assert.equal(outcomeText(lost), "1 of 2 indices failed: index 1 failed without an exit code");
  const gone = indexedOutcome(
    3,
    new Map([
      [0, { code: 0 }],
      [1, { code: 4 }],
      [2, { code: 0 }],
    ]),
  );
  assert.deepEqual([gone.exitCode, gone.failed], [4, [1]]);
  const many = indexedOutcome(20, new Map(Array.from({ length: 20 }, (_, i) => [i, { code: 1 }] as const)), {
    completed: [],
    failed: Array.from({ length: 20 }, (_, i) => i),
  });
  assert.match(outcomeText(many), /^20 of 20 indices failed: index 0 exited with code 1, .*, and 10 more$/);
});

const pod = (status: V1Pod["status"]): V1Pod => ({ metadata: { name: "p" }, status });

test("start state: running, unschedulable, stuck pulling, missing config, failed init", () => {
  assert.deepEqual(startState(pod({ phase: "Running", containerStatuses: [running("app")] }), "app"), {
    kind: "started",
  });
  const unschedulable = startState(
    pod({
      phase: "Pending",
      conditions: [
        {
          type: "PodScheduled",
          status: "False",
          reason: "Unschedulable",
          message: "0/1 nodes: Insufficient cpu",
        },
      ],
    }),
    "app",
  );
  assert.deepEqual(unschedulable, { kind: "pending", note: "unschedulable: 0/1 nodes: Insufficient cpu" });
  const pull = startState(
    pod({ containerStatuses: [waiting("app", "ImagePullBackOff", "Back-off pulling")] }),
    "app",
  );
  assert.deepEqual(pull, { kind: "failed", message: "container app: ImagePullBackOff: Back-off pulling" });
  const config = startState(
    pod({ containerStatuses: [waiting("app", "CreateContainerConfigError", 'secret "db" not found')] }),
    "app",
  );
  assert.match(
    config.kind === "failed" ? config.message : "",
    /CreateContainerConfigError: secret "db" not found/,
  );
  assert.deepEqual(startState(pod({ containerStatuses: [waiting("app", "ContainerCreating")] }), "app"), {
    kind: "pending",
  });
  const init = startState(
    pod({
      phase: "Failed",
      initContainerStatuses: [
        { ...running("migrate"), state: { terminated: { exitCode: 2, reason: "Error" } } },
      ],
      containerStatuses: [waiting("app", "PodInitializing")],
    }),
    "app",
  );
  assert.deepEqual(init, { kind: "failed", message: "init container migrate exited with code 2" });
});

test("exit status: the code, and the reason when it says more", () => {
  const done = (exitCode: number, reason: string, message?: string) =>
    pod({ containerStatuses: [{ ...running("app"), state: { terminated: { exitCode, reason, message } } }] });
  assert.deepEqual(exitStatus(done(3, "Error"), "app"), { code: 3, reason: undefined, message: undefined });
  assert.deepEqual(exitStatus(done(137, "OOMKilled"), "app"), {
    code: 137,
    reason: "OOMKilled",
    message: undefined,
  });
  assert.equal(exitStatus(pod({ containerStatuses: [running("app")] }), "app"), undefined);
});

function running(name: string) {
  return { name, image: "i", imageID: "", ready: true, restartCount: 0, state: { running: {} } };
}

function waiting(name: string, reason: string, message?: string) {
  return {
    name,
    image: "i",
    imageID: "",
    ready: false,
    restartCount: 0,
    state: { waiting: { reason, message } },
  };
}
