/**
 * Faults against a real build server on the local cluster: a build server whose agent
 * process is frozen (SIGSTOP from this machine, which runs the node: the connection stays
 * open and silent, as with a frozen network path) before the hello, during a sync and during
 * a build, is reported within the keepalive deadline (15 s, protocol/constants.ts) with a
 * clear message and the server exit code, never a silent hang; once it runs again (SIGCONT)
 * the next build succeeds. A client killed with SIGKILL mid-build: the build is cancelled on
 * the server, the workspace lock released, and the next build of that workspace succeeds.
 * The registry stopped (cluster/daemon) while a build pushes: a push error that says the
 * registry is unreachable, not refused credentials; started again, the next build pushes.
 * The build-server pod deleted mid-build: the client fails within seconds naming the pod, the
 * build stops, and the pod that replaces it builds. The API server restarted while a deploy
 * watches its rollout: the watch resumes and the deploy succeeds once the pod is ready.
 * The builder daemon (buildkitd) killed mid-build: the build fails as the builder's, not the
 * Dockerfile's, and the next build, started at once, waits for the restarted daemon.
 */
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { promises as fs } from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before, test } from "node:test";
import { ExitCode } from "../../src/errors.js";
import { KEEPALIVE_INTERVAL_MS, KEEPALIVE_TIMEOUT_MS } from "../../src/protocol/constants.js";
import {
  CLI,
  deploymentImage,
  eventually,
  exitOf,
  jsonEvents,
  jsonResult,
  mustKubectl,
  installServer,
  REGISTRY_CA_FLAGS,
  REGISTRY_NODE,
  ROOT,
  run,
  serverPod,
  tempNamespace,
  uninstallServer,
  uniqueName,
} from "../helpers/cluster.js";

const BASE = `${REGISTRY_NODE}/snapdeploy/debian:bookworm`;
/** The deadline, plus the watchdog's tick, the CLI's exit and this machine's load (2 cores). */
const BOUND_MS = KEEPALIVE_TIMEOUT_MS + 7_000;
/** A deleted pod's agent is stopped (SIGTERM) at once: its clients hear of it within seconds. */
const DELETED_BOUND_MS = 10_000;

let ns = "";
let repo = "";
const dirs: string[] = [];
before(async () => {
  ns = await installServer("e2e-faults", REGISTRY_CA_FLAGS);
  repo = `${REGISTRY_NODE}/e2e/${uniqueName("faults")}`;
});
after(async () => {
  // Never leave a frozen agent behind, whatever failed.
  const pid = await agentPid().catch(() => undefined);
  if (pid) process.kill(pid, "SIGCONT");
  await uninstallServer(ns);
  for (const d of dirs) await fs.rm(d, { recursive: true, force: true });
});

/** The process of `pod` on this machine (the node) whose command line matches `pattern`. */
async function processOfPod(pod: string, pattern: string): Promise<number> {
  const r = await run("pgrep", ["-f", pattern]);
  for (const pid of r.stdout.split("\n").filter(Boolean)) {
    const host = await fs.readFile(`/proc/${pid}/root/etc/hostname`, "utf8").catch(() => "");
    if (host.trim() === pod) return Number(pid);
  }
  throw new Error(`no process ${pattern} of pod ${pod} on this machine`);
}

/** The agent's process id on this machine. */
const agentPid = async () => processOfPod(await serverPod(ns), "/opt/snapdeploy/agent.cjs serve");

async function tree(files: Record<string, string | Buffer>): Promise<string> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), "snapdeploy-faults-"));
  dirs.push(dir);
  for (const [p, c] of Object.entries(files)) await fs.writeFile(path.join(dir, p), c);
  return dir;
}

interface Cli {
  child: ChildProcess;
  stdout: string;
  stderr: string;
  exit: Promise<number | null>;
}

function start(cmd: "build" | "sync" | "deploy", dir: string, user: string, extra: string[] = []): Cli {
  const args = [CLI, cmd, ...extra, "--server-namespace", ns, "--user", user, "--project", "app", "-C", dir];
  if (cmd !== "sync") args.push("-r", repo);
  const child = spawn(process.execPath, args, { stdio: ["ignore", "pipe", "pipe"] });
  const c: Cli = { child, stdout: "", stderr: "", exit: exitOf(child) };
  child.stdout?.on("data", (d) => {
    c.stdout += d;
  });
  child.stderr?.on("data", (d) => {
    c.stderr += d;
  });
  return c;
}

/** A step that runs until the test is done with it, found by its unique marker. */
function sleeper(): { marker: string; dockerfile: string } {
  const marker = String(1000 + Math.floor(Math.random() * 8000));
  return { marker, dockerfile: `FROM ${BASE}\nRUN sleep ${marker}\n` };
}
const running = async (marker: string) => (await run("pgrep", ["-f", `sleep ${marker}`])).code === 0;

/** A build of `user`'s workspace whose one step is running (and runs until stopped). */
async function buildMidStep(user: string): Promise<{ marker: string; cli: Cli }> {
  const s = sleeper();
  const cli = start("build", await tree({ Dockerfile: s.dockerfile }), user);
  await eventually("the build step to run", () => running(s.marker), 90_000);
  return { marker: s.marker, cli };
}

/** The build is cancelled on the server: its step's process ends (with every builder). */
async function remoteBuildStops(marker: string): Promise<boolean> {
  await eventually("the remote build to stop", async () => !(await running(marker)), 30_000);
  return true;
}

/** Freezes the agent, waits for the client to fail, and lets the agent run again. */
async function freezeAndExpectFailure(cli: Cli): Promise<number> {
  const pid = await agentPid();
  process.kill(pid, "SIGSTOP");
  const t0 = Date.now();
  try {
    const code = await Promise.race([
      exitOf(cli.child),
      new Promise<"hung">((r) => setTimeout(() => r("hung"), BOUND_MS)),
    ]);
    const took = Date.now() - t0;
    if (code === "hung") {
      cli.child.kill("SIGKILL");
      assert.fail(`the client did not fail within ${BOUND_MS} ms of the agent freezing:\n${cli.stderr}`);
    }
    assert.equal(code, ExitCode.server, cli.stderr);
    assert.match(
      cli.stderr,
      /the build server stopped answering: nothing arrived from pod \S+ for 1\d s \(keepalive deadline 15 s\)/,
    );
    assert.doesNotMatch(cli.stderr, /^\s+at /m, "no stack trace without --debug");
    // The deadline counts from the last bytes heard: an ack up to one interval before the freeze.
    assert.ok(took >= KEEPALIVE_TIMEOUT_MS - KEEPALIVE_INTERVAL_MS - 1000, `failed after only ${took} ms`);
    return took;
  } finally {
    process.kill(pid, "SIGCONT");
  }
}

/** After a fault: a build of the workspace with a quick Dockerfile succeeds. */
async function nextBuildSucceeds(user: string) {
  const dir = await tree({ Dockerfile: `FROM ${BASE}\nRUN echo ${randomBytes(6).toString("hex")} > /id\n` });
  const c = start("build", dir, user);
  const code = await exitOf(c.child);
  assert.equal(code, 0, c.stderr);
  assert.match(c.stdout, /:snap-[0-9a-f]{32}@sha256:[0-9a-f]{64}$/m);
}

test("an agent frozen during a build: the client fails within the keepalive deadline, the next build succeeds", async () => {
  const { marker, cli } = await buildMidStep("stall-build");
  const took = await freezeAndExpectFailure(cli);
  process.stdout.write(`# frozen during a build: the client failed after ${took} ms\n`);
  // Running again, the agent finds its client gone and cancels the build.
  await remoteBuildStops(marker);
  await nextBuildSucceeds("stall-build");
});

test("an agent frozen during a sync: the client fails within the keepalive deadline, the next sync succeeds", async () => {
  // Incompressible files large enough that the blob stream is still flowing when the agent
  // stops (blobs over 1 MiB are spooled to the data volume's tmp folder as they arrive).
  const files: Record<string, Buffer> = {};
  for (let i = 0; i < 48; i++) files[`blob-${i}.bin`] = randomBytes(2 * 1024 * 1024);
  const dir = await tree(files);
  const pid = await agentPid();
  const cli = start("sync", dir, "stall-sync");
  await eventually(
    "blobs to arrive",
    async () => (await fs.readdir(`/proc/${pid}/root/data/tmp`).catch(() => [])).length > 0,
    60_000,
  );
  const took = await freezeAndExpectFailure(cli);
  process.stdout.write(`# frozen during a sync: the client failed after ${took} ms\n`);
  const again = start("sync", dir, "stall-sync");
  assert.equal(await again.exit, 0, again.stderr);
});

test("an agent frozen before the hello: the client fails within the deadline, not at a hang", async () => {
  const dir = await tree({ "a.txt": "a\n" });
  const pid = await agentPid();
  process.kill(pid, "SIGSTOP");
  let cli: Cli | undefined;
  try {
    cli = start("sync", dir, "stall-hello");
    const t0 = Date.now();
    const code = await Promise.race([
      cli.exit,
      new Promise<"hung">((r) => setTimeout(() => r("hung"), BOUND_MS + 5000)),
    ]);
    const took = Date.now() - t0;
    if (code === "hung") cli.child.kill("SIGKILL");
    assert.notEqual(code, "hung", `no failure within ${BOUND_MS + 5000} ms:\n${cli.stderr}`);
    assert.equal(code, ExitCode.server, cli.stderr);
    assert.match(cli.stderr, /the build server stopped answering: nothing arrived from pod \S+ for 1\d s/);
    process.stdout.write(
      `# frozen before the hello: the client failed after ${took} ms (including its start)\n`,
    );
  } finally {
    process.kill(pid, "SIGCONT");
  }
  const again = start("sync", dir, "stall-hello");
  assert.equal(await again.exit, 0, again.stderr);
});

test("a client killed (SIGKILL) mid-build: the build is cancelled on the server, the lock released, the next build succeeds", async () => {
  const { marker, cli } = await buildMidStep("killed");
  cli.child.kill("SIGKILL");
  await exitOf(cli.child);
  const t0 = Date.now();
  if (await remoteBuildStops(marker))
    process.stdout.write(`# client SIGKILLed: the remote build stopped after ${Date.now() - t0} ms\n`);
  // The same workspace: its lock must be free (a stuck lock would make this wait forever).
  await nextBuildSucceeds("killed");
});

test("the registry down during the push: a push error naming it unreachable; back up, the next build pushes", async () => {
  // The registry is stopped when the last step starts (the tag check before the build saw it
  // up, the base image is resolved by then): the step takes long enough for the stop to land,
  // and the export's upload of the new layers finds the registry down. (Layers are zstd: even
  // a large incompressible one is exported in about a second, too fast to stop in the middle.)
  const dir = await tree({
    Dockerfile: `FROM ${BASE}\nCOPY big.bin /big.bin\nRUN sleep 5 && echo slept > /slept\n`,
    "big.bin": randomBytes(8 * 1024 * 1024),
  });
  const c = start("build", dir, "rita");
  let stopped: Promise<unknown> | undefined;
  const onData = () => {
    if (!stopped && /RUN sleep 5/.test(c.stderr))
      stopped = run(`${ROOT}/cluster/daemon`, ["stop", "registry"]);
  };
  c.child.stderr?.on("data", onData);
  try {
    const code = await c.exit;
    assert.ok(stopped, `the last step never began:\n${c.stderr}`);
    assert.match(c.stderr, /exporting to image/, "the build itself finished");
    await stopped;
    assert.equal(code, ExitCode.push, c.stderr);
    assert.match(c.stderr, /^error: pushing \S+ failed: the registry is unreachable/m);
    assert.doesNotMatch(c.stderr, /authentication|credentials/);
    assert.doesNotMatch(c.stderr, /^\s+at /m, "no stack trace without --debug");
  } finally {
    await run(`${ROOT}/cluster/daemon`, ["start", "registry"]);
  }
  // The failed push left no tag that passes for built: the same tree builds (from the cache) and pushes.
  const again = start("build", dir, "rita");
  assert.equal(await again.exit, 0, again.stderr);
  assert.match(again.stdout, /:snap-[0-9a-f]{32}@sha256:[0-9a-f]{64}$/m);
  assert.doesNotMatch(again.stderr, /skipped build/);
});

test("the build-server pod deleted mid-build: the client says so within seconds; the pod that replaces it builds", async () => {
  const { marker, cli } = await buildMidStep("deleted");
  const pod = await serverPod(ns);
  const t0 = Date.now();
  await run("kubectl", ["-n", ns, "delete", "pod", pod, "--wait=false"]);
  const code = await Promise.race([
    cli.exit,
    new Promise<"hung">((r) => setTimeout(() => r("hung"), DELETED_BOUND_MS)),
  ]);
  const took = Date.now() - t0;
  if (code === "hung") {
    cli.child.kill("SIGKILL");
    assert.fail(
      `the client did not fail within ${DELETED_BOUND_MS} ms of the pod's deletion:\n${cli.stderr}`,
    );
  }
  assert.equal(code, ExitCode.server, cli.stderr);
  assert.match(cli.stderr, new RegExp(`^error: build server: its pod ${pod} is stopping`, "m"));
  assert.match(cli.stderr, /snapdeploy server status/);
  assert.doesNotMatch(cli.stderr, /^\s+at /m, "no stack trace without --debug");
  process.stdout.write(`# build-server pod deleted mid-build: the client failed after ${took} ms\n`);
  await remoteBuildStops(marker);
  // The Deployment's next pod takes the volume over; builds go on there.
  await eventually("the pod that replaces it", async () => (await serverPod(ns)) !== pod, 180_000);
  await nextBuildSucceeds("deleted");
});

test("the API server restarted during the rollout watch: the watch resumes and the deploy ends with the true outcome", async () => {
  const { ns: appNs, cleanup } = await tempNamespace("e2e-faults-api");
  try {
    // Ready only 20 s after it starts: the API server's restart falls inside the watch.
    await mustKubectl(
      ["-n", appNs, "apply", "-f", "-"],
      JSON.stringify({
        apiVersion: "apps/v1",
        kind: "Deployment",
        metadata: { name: "slow" },
        spec: {
          replicas: 1,
          selector: { matchLabels: { app: "slow" } },
          template: {
            metadata: { labels: { app: "slow" } },
            spec: {
              terminationGracePeriodSeconds: 1,
              containers: [
                {
                  name: "app",
                  image: BASE,
                  command: ["sleep", "infinity"],
                  readinessProbe: {
                    exec: { command: ["true"] },
                    initialDelaySeconds: 20,
                    periodSeconds: 1,
                  },
                },
              ],
            },
          },
        },
      }),
    );
    const dir = await tree({
      Dockerfile: `FROM ${BASE}\nRUN echo ${randomBytes(6).toString("hex")} > /id\n`,
    });
    const cli = start("deploy", dir, "api", [
      "-o",
      "json",
      "-n",
      appNs,
      "-t",
      "deployment/slow",
      "--timeout",
      "3m",
    ]);
    await eventually("the rollout watch to start", async () => /"phase":"rollout"/.test(cli.stdout), 120_000);
    const t0 = Date.now();
    const restart = await run(`${ROOT}/cluster/daemon`, ["restart", "apiserver"]);
    assert.equal(restart.code, 0, restart.stderr);
    process.stdout.write(`# the API server was away and back in ${Date.now() - t0} ms\n`);
    assert.equal(
      cli.child.exitCode,
      null,
      `the deploy ended before the API server came back:\n${cli.stderr}`,
    );
    assert.equal(await cli.exit, 0, cli.stderr);
    const ended = Date.now();
    const rollout = jsonEvents(cli.stdout).find((e) => e.event === "phase-end" && e.phase === "rollout");
    // The controller-manager may take minutes to catch up after the restart (its own watches
    // reconnect slowly); the deploy must end within seconds of the controller saying "done".
    const status = JSON.parse(await mustKubectl(["-n", appNs, "get", "deploy", "slow", "-o", "json"])).status;
    const done: string = status.conditions.find(
      (c: { reason?: string }) => c.reason === "NewReplicaSetAvailable",
    )?.lastUpdateTime;
    const lag = ended - Date.parse(done);
    process.stdout.write(
      `# the deploy ended ${ended - t0} ms after the restart began (rollout ${rollout?.seconds} s), ${lag} ms after the controller marked it done\n`,
    );
    assert.ok(lag < 8_000, `the deploy ended ${lag} ms after the rollout was done (at ${done})`);
    const result = jsonResult(cli.stdout);
    const image = await deploymentImage(appNs, "slow", "app");
    assert.match(image, /@sha256:[0-9a-f]{64}$/);
    assert.ok(JSON.stringify(result).includes(image.split("@")[1] as string), JSON.stringify(result));
    assert.equal(status.readyReplicas, 1);
  } finally {
    // Never leave the cluster without its API server, whatever failed.
    if ((await run("kubectl", ["get", "--raw", "/readyz"])).code !== 0)
      await run(`${ROOT}/cluster/daemon`, ["restart", "apiserver"]);
    await cleanup();
  }
});

test("the builder daemon killed mid-build: the build fails saying the builder stopped; the next build waits for it and succeeds", async () => {
  const { marker, cli } = await buildMidStep("daemon");
  const pod = await serverPod(ns);
  const daemon = await processOfPod(pod, "buildkitd");
  process.kill(daemon, "SIGKILL");
  const t0 = Date.now();
  const code = await cli.exit;
  process.stdout.write(`# buildkitd killed mid-build: the client failed after ${Date.now() - t0} ms\n`);
  assert.equal(code, ExitCode.server, cli.stderr);
  assert.match(cli.stderr, /^error: build server: the builder \(buildkitd\) stopped during the build: /m);
  assert.match(cli.stderr, /restarts by itself: run the command again/);
  assert.doesNotMatch(cli.stderr, /^\s+at /m, "no stack trace without --debug");
  await remoteBuildStops(marker);
  await nextBuildSucceeds("daemon");
});
