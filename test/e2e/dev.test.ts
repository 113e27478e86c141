/**
 * The inner loop against real workloads: a deploy of what already runs does nothing;
 * `logs -f` and `port-forward` follow pods that come later; `dev` live-updates synced
 * files, brings a replaced pod up to date, rebuilds on a Dockerfile change, reports a
 * broken build and goes on.
 */
import assert from "node:assert/strict";
import type { ChildProcess } from "node:child_process";
import { promises as fs } from "node:fs";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import {
  eventually,
  exitOf,
  installServer,
  mustKubectl,
  REGISTRY_CA_FLAGS,
  REGISTRY_NODE,
  snapdeploy,
  tempNamespace,
  uninstallServer,
  uniqueName,
  jsonResult,
} from "../helpers/cluster.js";
import { startCli } from "../helpers/running.js";
import { servedSoon, startClient, pushPlaceholder, webApp, webWorkload } from "../helpers/web.js";

let server = "";
let ns = "";
let dropNs = async () => {};
const dirs: string[] = [];
const children: ChildProcess[] = [];
const repo = `${REGISTRY_NODE}/e2e/web`;
const RUN_ID = `${uniqueName("run")}\n`;
let PLACEHOLDER = "";

before(async () => {
  server = await installServer("e2e-dev", REGISTRY_CA_FLAGS);
  ({ ns, cleanup: dropNs } = await tempNamespace("e2e-dev-apps"));
  // The workloads start on an image of the same app that answers "placeholder".
  PLACEHOLDER = await pushPlaceholder(dirs, RUN_ID);
  await startClient(ns);
});
after(async () => {
  for (const c of children) if (c.exitCode === null) c.kill("SIGKILL");
  await dropNs();
  await uninstallServer(server);
  for (const d of dirs) await fs.rm(d, { recursive: true, force: true });
});

const workload = (name: string) => webWorkload(ns, name, PLACEHOLDER);

const common = (dir: string, project: string) => [
  "--server-namespace",
  server,
  "--user",
  "dana",
  "--project",
  project,
  "-r",
  repo,
  "-n",
  ns,
  "-C",
  dir,
];
const deploy = (dir: string, project: string, args: string[]) =>
  snapdeploy(["deploy", ...common(dir, project), ...args]);

/** The names of a Deployment's ReplicaSets and the UIDs of its pods, once no old pod is terminating. */
async function podsAndSets(name: string) {
  await eventually(`one pod of ${name}`, async () => {
    const n = await mustKubectl(["-n", ns, "get", "pods", "-l", `app=${name}`, "-o", "name"]);
    return n.trim().split("\n").length === 1;
  });
  const rs = await mustKubectl([
    "-n",
    ns,
    "get",
    "rs",
    "-l",
    `app=${name}`,
    "-o",
    "jsonpath={.items[*].metadata.name}",
  ]);
  const pods = await mustKubectl([
    "-n",
    ns,
    "get",
    "pods",
    "-l",
    `app=${name}`,
    "-o",
    "jsonpath={.items[*].metadata.uid}",
  ]);
  return { rs: rs.trim().split(/\s+/).sort(), pods: pods.trim().split(/\s+/).sort() };
}

const start = (args: string[]) => startCli(args, children);

const imageOf = async (name: string) =>
  (
    await mustKubectl([
      "-n",
      ns,
      "get",
      "deploy",
      name,
      "-o",
      "jsonpath={.spec.template.spec.containers[0].image}",
    ])
  ).trim();

async function deletePod(app: string) {
  const pod = (
    await mustKubectl([
      "-n",
      ns,
      "get",
      "pods",
      "-l",
      `app=${app}`,
      "-o",
      "jsonpath={.items[0].metadata.name}",
    ])
  ).trim();
  await mustKubectl(["-n", ns, "delete", "pod", pod, "--wait=false"]);
  return pod;
}

describe("a deploy of what already runs", () => {
  test("does nothing: no new ReplicaSet, no new pods, no build server; --restart rolls anyway", async () => {
    await workload("noop");
    const dir = await webApp(dirs, RUN_ID, "noop\n");
    const r1 = await deploy(dir, "noop", ["-t", "noop"]);
    assert.equal(r1.code, 0, r1.stderr);
    await servedSoon(ns, "noop", "noop\n");
    const before = await podsAndSets("noop");
    // The build server is not contacted: with it gone, the deploy still answers.
    const r2 = await deploy(dir, "noop", ["-t", "noop", "--server-namespace", "no-such-build-server"]);
    assert.equal(r2.code, 0, r2.stderr);
    assert.match(r2.stderr, /nothing to do: deployment\/noop already runs? snapshot [0-9a-f]{12}/);
    assert.doesNotMatch(r2.stderr, /already built|updated deployment/);
    assert.deepEqual(await podsAndSets("noop"), before);
    const history = await snapdeploy(["history", "-t", "noop", "-n", ns, "-o", "json"]);
    const entries = (jsonResult(history.stdout) as Record<string, unknown[]>)["deployment/noop"] ?? [];
    assert.equal(entries.length, 1, "a no-op records nothing in the history");
    // A changed tree deploys as before.
    await fs.writeFile(path.join(dir, "greeting.txt"), "noop 2\n");
    const r3 = await deploy(dir, "noop", ["-t", "noop"]);
    assert.equal(r3.code, 0, r3.stderr);
    assert.doesNotMatch(r3.stderr, /nothing to do/);
    await servedSoon(ns, "noop", "noop 2\n");
    const afterChange = await podsAndSets("noop");
    const r4 = await deploy(dir, "noop", ["-t", "noop", "--restart"]);
    assert.equal(r4.code, 0, r4.stderr);
    assert.doesNotMatch(r4.stderr, /nothing to do/);
    const restarted = await podsAndSets("noop");
    assert.notDeepEqual(restarted.pods, afterChange.pods, "--restart makes new pods");
  });
});

describe("logs and port-forward", () => {
  test("logs -f shows a pod that starts later; port-forward answers before and after the pod is replaced", async () => {
    await workload("follow");
    const dir = await webApp(dirs, RUN_ID, "follow\n");
    assert.equal((await deploy(dir, "follow", ["-t", "follow"])).code, 0);
    await podsAndSets("follow"); // the placeholder's pod is gone
    const current = (
      await mustKubectl([
        "-n",
        ns,
        "get",
        "pods",
        "-l",
        "app=follow",
        "-o",
        "jsonpath={.items[0].metadata.name}",
      ])
    ).trim();
    const logs = start(["logs", "-f", "-t", "follow", "-n", ns]);
    const first = await logs.waitFor(new RegExp(`^(${current})/web listening on 8080$`, "m"));
    const fwd = start(["port-forward", "0:8080", "-t", "follow", "-n", ns]);
    const port = Number((await fwd.waitFor(/^127\.0\.0\.1:(\d+)$/m))[1]);
    const get = async () =>
      (await fetch(`http://127.0.0.1:${port}/`, { signal: AbortSignal.timeout(5000) })).text();
    assert.equal(await get(), "follow\n");
    const old = await deletePod("follow");
    assert.equal(old, first[1]);
    const second = await logs.waitFor(/^(follow-\S+)\/web listening on 8080$/m);
    assert.notEqual(second[1], first[1], "the new pod's lines are shown, under its own name");
    await mustKubectl(["-n", ns, "wait", "--for=condition=Ready", `pod/${second[1]}`, "--timeout=60s"]);
    await eventually("port-forward to the new pod", async () => (await get()) === "follow\n", 30_000);
    logs.child.kill("SIGINT");
    fwd.child.kill("SIGINT");
    assert.equal(await exitOf(logs.child), 0);
    assert.equal(await exitOf(fwd.child), 0);
  });
});

describe("dev", () => {
  test("live update, a replaced pod brought up to date, a rebuild, a broken build reported, Ctrl-C", async () => {
    await workload("devapp");
    const dir = await webApp(dirs, RUN_ID, "dev 0\n");
    await fs.mkdir(path.join(dir, "static"));
    await fs.writeFile(path.join(dir, "static", "a.txt"), "a\n");
    await fs.writeFile(
      path.join(dir, "snapdeploy.yaml"),
      [
        "dev:",
        "  sync:",
        "    - {src: greeting.txt, dest: /app/greeting.txt}",
        "    - {src: static, dest: /app/static}",
        "  rebuildOn: [server.js]",
      ].join("\n"),
    );
    const dev = start(["dev", ...common(dir, "devapp"), "-t", "devapp", "--no-logs"]);
    await dev.waitFor(/\[dev\] running snapshot [0-9a-f]{12}/);
    await servedSoon(ns, "devapp", "dev 0\n");
    const pods0 = await podsAndSets("devapp");

    // Two edits of a synced file: each served without a rebuild or new pods.
    for (const n of [1, 2]) {
      await fs.writeFile(path.join(dir, "greeting.txt"), `dev ${n}\n`);
      await dev.waitFor(/\[dev\] live update: 1 file into 1 container in [\d.]+ s/);
      await servedSoon(ns, "devapp", `dev ${n}\n`);
    }
    assert.deepEqual(await podsAndSets("devapp"), pods0, "live update makes no new pods");

    // A pod that replaces the live-updated one starts from the image: it is brought up to date.
    await deletePod("devapp");
    await dev.waitFor(
      /\[dev\] live update: devapp-\S+\/web started from the image; brought up to date with 1 file/,
    );
    await servedSoon(ns, "devapp", "dev 2\n");

    // A symlink that leaves the tree is never put into a container, and the build refuses it.
    await fs.symlink("../../../etc", path.join(dir, "static", "escape"));
    await dev.waitFor(/\[dev\] rebuild: static\/escape is a symlink/);
    await dev.waitFor(/\[dev\] failed: .*symlink "static\/escape" points outside the tree/);
    const listing = await mustKubectl(["-n", ns, "exec", "deploy/devapp", "--", "ls", "-a", "/app"]);
    assert.doesNotMatch(listing, /static/, "nothing was written for the refused change");
    await fs.rm(path.join(dir, "static", "escape"));

    // A rebuild rule: a real build and rollout, which also carries the live-updated file.
    await fs.appendFile(path.join(dir, "server.js"), "// rebuilt\n");
    await dev.waitFor(/\[dev\] rebuild: server\.js changed \(dev\.rebuildOn: server\.js\)/);
    await dev.waitFor(/\[dev\] running snapshot [0-9a-f]{12}/);
    await servedSoon(ns, "devapp", "dev 2\n");
    const rebuiltImage = await imageOf("devapp");
    assert.match(rebuiltImage, new RegExp(`^${repo}@sha256:`));

    // A broken Dockerfile is reported and the loop goes on; the next good edit deploys.
    const dockerfile = path.join(dir, "Dockerfile");
    const good = await fs.readFile(dockerfile, "utf8");
    await fs.writeFile(dockerfile, `${good}\nNOT_AN_INSTRUCTION here\n`);
    await dev.waitFor(/\[dev\] rebuild: Dockerfile changed/);
    await dev.waitFor(/\[dev\] failed: the build failed/);
    await dev.waitFor(/\[dev\] watching for the next change/);
    assert.equal(await imageOf("devapp"), rebuiltImage, "a failed build changes nothing in the cluster");
    await fs.writeFile(dockerfile, good);
    await fs.writeFile(path.join(dir, "greeting.txt"), "dev 3\n");
    await dev.waitFor(/\[dev\] running snapshot [0-9a-f]{12}/);
    await servedSoon(ns, "devapp", "dev 3\n");

    dev.child.kill("SIGINT");
    assert.equal(await exitOf(dev.child), 130);
    assert.match(dev.out.stderr, /interrupted: stopping/);
    await servedSoon(ns, "devapp", "dev 3\n");
  });
});

describe("dev with several targets", () => {
  test("one edit live-updates every pod of a StatefulSet and a Deployment; logs of all of them stream", async () => {
    await Promise.all([
      webWorkload(ns, "devset", PLACEHOLDER, { kind: "StatefulSet", replicas: 2 }),
      webWorkload(ns, "devweb", PLACEHOLDER),
    ]);
    const dir = await webApp(dirs, RUN_ID, "multi 0\n");
    await fs.writeFile(
      path.join(dir, "snapdeploy.yaml"),
      "dev:\n  sync:\n    - {src: greeting.txt, dest: /app/greeting.txt}\n",
    );
    const dev = start(["dev", ...common(dir, "multi"), "-t", "statefulset/devset", "-t", "devweb"]);
    await dev.waitFor(/\[dev\] running snapshot [0-9a-f]{12}/);

    await fs.writeFile(path.join(dir, "greeting.txt"), "multi 1\n");
    await dev.waitFor(/\[dev\] live update: 1 file into 3 containers in [\d.]+ s/);
    // Every pod answers the new content itself, not only the one a Service picks.
    const pods = (await mustKubectl(["-n", ns, "get", "pods", "-l", "app in (devset,devweb)", "-o", "name"]))
      .trim()
      .split("\n");
    assert.equal(pods.length, 3);
    for (const pod of pods) {
      const text = await mustKubectl(["-n", ns, "exec", pod, "--", "cat", "/app/greeting.txt"]);
      assert.equal(text, "multi 1\n", `${pod} has the new file`);
    }
    await servedSoon(ns, "devset", "multi 1\n");
    await servedSoon(ns, "devweb", "multi 1\n");
    // The logs of every pod (the app prints one line when it listens), prefixed pod/container;
    // streamed from dev's start, so the instances the first deploy replaced show too.
    for (const pod of pods) {
      const name = pod.replace(/^pod\//, "");
      assert.ok(
        dev.out.stdout.split("\n").includes(`${name}/web listening on 8080`),
        `${name}'s log line in dev's output:\n${dev.out.stdout}`,
      );
    }

    dev.child.kill("SIGINT");
    assert.equal(await exitOf(dev.child), 130);
  });
});
