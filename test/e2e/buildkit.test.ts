/**
 * The buildkit builder (rootless BuildKit), installed the way a new user would: no image
 * of snapdeploy's own (the public BuildKit and Node.js images, the agent in a
 * ConfigMap), and building, pushing and deploying on a node whose Docker daemon is
 * stopped, so nothing but containerd runs the pods.
 */
import assert from "node:assert/strict";
import { promises as fs } from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import {
  builderFlags,
  DOCKER,
  eventually,
  installServer,
  mustKubectl,
  REGISTRY_CA_FLAGS,
  REGISTRY_NODE,
  registryManifest,
  ROOT,
  run,
  serverPod,
  snapdeploy,
  tempNamespace,
  uninstallServer,
  uniqueName,
} from "../helpers/cluster.js";
import { pushPlaceholder, servedSoon, startClient, webApp, webWorkload } from "../helpers/web.js";
import { DEFAULT_AGENT_IMAGE, DEFAULT_BUILDKIT_IMAGE } from "../../src/server/images.js";

let server = "";
let apps = "";
let dropApps = async () => {};
let placeholder = "";
const dirs: string[] = [];
const RUN_ID = `${uniqueName("run")}\n`;

before(async () => {
  server = await installServer("e2e-buildkit", ["--builder", "buildkit", ...REGISTRY_CA_FLAGS]);
  ({ ns: apps, cleanup: dropApps } = await tempNamespace("e2e-bk-apps"));
  placeholder = await pushPlaceholder(dirs, RUN_ID);
  await startClient(apps);
});
after(async () => {
  await dropApps();
  await uninstallServer(server);
  for (const d of dirs) await fs.rm(d, { recursive: true, force: true });
});

// biome-ignore lint/suspicious/noExplicitAny: pods read back from the API as JSON
type Any = any;
const readPod = async (ns: string) =>
  JSON.parse(await mustKubectl(["-n", ns, "get", "pod", await serverPod(ns), "-o", "json"])) as Any;

const dockerPid = "/run/snapdeploy-cluster/dockerd.pid";
const dockerUp = async () => (await run(DOCKER, ["version", "--format", "{{.Server.Version}}"])).code === 0;

/** Stops the node's Docker daemon (the cluster's `up` started it) until the returned function restarts it. */
async function stopDocker(): Promise<() => Promise<void>> {
  const pid = Number((await fs.readFile(dockerPid, "utf8")).trim());
  process.kill(pid, "SIGTERM");
  await eventually("the node's Docker daemon to stop", async () => !(await dockerUp()), 60_000);
  await eventually(
    "dockerd to exit",
    async () => {
      try {
        process.kill(pid, 0);
        return false;
      } catch {
        return true;
      }
    },
    60_000,
  );
  return async () => {
    const lib = `${ROOT}/cluster/lib`;
    const r = await run("bash", [
      "-c",
      `source ${lib}/common.sh && source ${lib}/components.sh && start_docker`,
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.ok(await dockerUp(), "the node's Docker daemon is back");
  };
}

describe("buildkit builder", () => {
  test("no image of snapdeploy's own: public images, nothing privileged, no host path, all non-root", async () => {
    const pod = await readPod(server);
    const all = [...(pod.spec.initContainers ?? []), ...pod.spec.containers];
    assert.deepEqual(
      [...new Set(all.map((c: Any) => c.image))].sort(),
      [DEFAULT_BUILDKIT_IMAGE, DEFAULT_AGENT_IMAGE].sort(),
    );
    assert.ok(!pod.spec.volumes.some((v: Any) => v.hostPath), "no hostPath volume");
    for (const c of all) {
      const sc = { ...pod.spec.securityContext, ...c.securityContext };
      assert.notEqual(sc.privileged, true, `${c.name} is not privileged`);
      assert.equal(sc.runAsNonRoot, true, `${c.name} runs as non-root`);
      assert.ok(sc.runAsUser > 0, `${c.name} has a non-root uid`);
    }
    // What the kernel says, not only the spec: the agent's and buildkitd's processes.
    for (const c of ["agent", "buildkitd"]) {
      const id = await mustKubectl(["-n", server, "exec", pod.metadata.name, "-c", c, "--", "id", "-u"]);
      assert.equal(id.trim(), "1000", c);
    }
    const cm = JSON.parse(
      await mustKubectl(["-n", server, "get", "configmap", "snapdeploy-agent", "-o", "json"]),
    );
    const bundle = await fs.readFile(path.join(ROOT, "dist/server/agent.cjs"), "utf8");
    assert.equal(cm.data["agent.cjs"], bundle, "the agent bundle of this snapdeploy");
  });

  test("install again changes nothing; a new agent bundle rolls out", async () => {
    const install = (env: NodeJS.ProcessEnv = {}) =>
      snapdeploy(["server", "install", "-n", server, "--builder", "buildkit", ...REGISTRY_CA_FLAGS], {
        env: { ...process.env, ...env },
      });
    const again = await install();
    assert.equal(again.code, 0, again.stderr);
    assert.doesNotMatch(again.stderr, / (created|configured)$/m, "nothing changed");
    assert.match(again.stderr, /configmap\/snapdeploy-agent unchanged/);
    const before = await serverPod(server);

    // A newer snapdeploy: another bundle.
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), "snapdeploy-bundle-"));
    dirs.push(dir);
    const newer = path.join(dir, "agent.cjs");
    await fs.writeFile(
      newer,
      `${await fs.readFile(path.join(ROOT, "dist/server/agent.cjs"), "utf8")}\n// newer\n`,
    );
    const upgraded = await install({ SNAPDEPLOY_AGENT_BUNDLE: newer });
    assert.equal(upgraded.code, 0, upgraded.stderr);
    assert.match(upgraded.stderr, /configmap\/snapdeploy-agent configured/);
    assert.match(upgraded.stderr, /deployment\/snapdeploy-build-server configured/);
    const after = await serverPod(server);
    assert.notEqual(after, before, "a new pod runs the new bundle");
    const running = await mustKubectl([
      "-n",
      server,
      "exec",
      after,
      "-c",
      "agent",
      "--",
      "tail",
      "-c",
      "9",
      "/opt/snapdeploy/agent.cjs",
    ]);
    assert.equal(running, "// newer\n");
  });

  test("with the node's Docker daemon stopped: builds, pushes and deploys", async () => {
    await webWorkload(apps, "hello", placeholder);
    const dir = await webApp(dirs, RUN_ID, "built without docker\n");
    const restart = await stopDocker();
    try {
      assert.equal(await dockerUp(), false);
      const r = await snapdeploy([
        "deploy",
        "--server-namespace",
        server,
        "--user",
        "nodocker",
        "--project",
        "web",
        "-r",
        `${REGISTRY_NODE}/e2e/web`,
        "-n",
        apps,
        "-t",
        "hello",
        "-C",
        dir,
      ]);
      assert.equal(r.code, 0, r.stderr);
      assert.match(
        r.stderr,
        /^REMOTE: #\d+ \[\d\/\d\] COPY server\.js greeting\.txt/m,
        "BuildKit's own output",
      );
      await servedSoon(apps, "hello", "built without docker\n");
      // The default build server pushes its own layers as zstd, which the node pulled to serve it.
      const digest = /@(sha256:[0-9a-f]{64})/.exec(r.stdout)?.[1];
      assert.ok(digest, r.stdout);
      const layers = (await registryManifest("e2e/web", digest)).layers ?? [];
      assert.match(layers.at(-1)?.mediaType ?? "", /^application\/vnd\.oci\.image\.layer\.v1\.tar\+zstd$/);

      // What a containerd-only node does to the Docker builders: no socket to mount.
      const { ns, cleanup } = await tempNamespace("e2e-nosocket");
      try {
        const t0 = Date.now();
        const inst = await snapdeploy([
          "server",
          "install",
          "-n",
          ns,
          ...builderFlags(["--builder", "docker-socket"]),
          "--builder",
          "docker-socket",
          "--timeout",
          "120s",
        ]);
        assert.equal(inst.code, 7, inst.stderr);
        assert.ok(Date.now() - t0 < 60_000, `took ${Date.now() - t0} ms`);
        assert.match(inst.stderr, /FailedMount/);
        assert.match(inst.stderr, /docker\.sock/);
        assert.match(inst.stderr, /--builder buildkit/);
      } finally {
        await snapdeploy(["server", "uninstall", "-n", ns, "--purge"]);
        await cleanup();
      }
    } finally {
      await restart();
    }
  });

  test("--cache registry: a build server on a new volume reuses the layers the previous one exported", async () => {
    const repo = `${REGISTRY_NODE}/e2e/${uniqueName("cache")}`;
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), "snapdeploy-cache-"));
    dirs.push(dir);
    const marker = uniqueName("deps");
    await fs.writeFile(
      path.join(dir, "Dockerfile"),
      `FROM ${REGISTRY_NODE}/snapdeploy/debian:bookworm\nRUN echo ${marker} ran && echo ${marker} > /deps.txt && sleep 3\nCOPY app.txt /app.txt\n`,
    );
    await fs.writeFile(path.join(dir, "app.txt"), "one\n");
    const flags = ["--builder", "buildkit", "--cache", "registry", ...REGISTRY_CA_FLAGS];
    const build = (server: string, user: string) =>
      snapdeploy([
        "build",
        "--server-namespace",
        server,
        "--user",
        user,
        "--project",
        "cache",
        "-r",
        repo,
        "-C",
        dir,
      ]);
    // The RUN step's lines in BuildKit's plain output, by its step number; a step that ran
    // printed "<marker> ran" (one taken from the cache shows CACHED, or the layers it fetches).
    const runStep = (stderr: string) => {
      const n = new RegExp(`^REMOTE: #(\\d+) \\[2/3\\] RUN echo ${marker}`, "m").exec(stderr)?.[1];
      assert.ok(n, `no RUN step in: ${stderr}`);
      return stderr.split("\n").filter((l) => l.startsWith(`REMOTE: #${n} `));
    };
    const ran = (stderr: string) =>
      runStep(stderr).some((l) => new RegExp(`^REMOTE: #\\d+ [\\d.]+ ${marker} ran$`).test(l));
    const first = await installServer("e2e-cache-a", flags);
    try {
      const r = await build(first, "cachea");
      assert.equal(r.code, 0, r.stderr);
      assert.ok(ran(r.stderr), `a new volume runs the step:\n${runStep(r.stderr).join("\n")}`);
      assert.match(r.stderr, /exporting cache to registry/);
    } finally {
      await uninstallServer(first); // --purge: its volume goes with it
    }
    await fs.writeFile(path.join(dir, "app.txt"), "two\n");
    const second = await installServer("e2e-cache-b", flags);
    try {
      const t0 = Date.now();
      const r = await build(second, "cacheb");
      assert.equal(r.code, 0, r.stderr);
      assert.ok(
        !ran(r.stderr),
        `the RUN step comes from the exported cache:\n${runStep(r.stderr).join("\n")}`,
      );
      assert.match(r.stderr, /importing cache manifest from/);
      process.stdout.write(
        `# a fresh build server with --cache registry: rebuilt in ${Date.now() - t0} ms\n`,
      );
    } finally {
      await uninstallServer(second);
    }
  });

  test("a namespace whose admin enforces Pod Security restricted: refused fast, with the level and the fix", async () => {
    const { ns, cleanup } = await tempNamespace("e2e-restricted");
    try {
      await mustKubectl(["label", "namespace", ns, "pod-security.kubernetes.io/enforce=restricted"]);
      const t0 = Date.now();
      const r = await snapdeploy([
        "server",
        "install",
        "-n",
        ns,
        "--builder",
        "buildkit",
        "--timeout",
        "120",
      ]);
      assert.equal(r.code, 7, r.stderr);
      assert.ok(Date.now() - t0 < 60_000, `took ${Date.now() - t0} ms`);
      assert.match(r.stderr, /violates PodSecurity "restricted/);
      assert.match(
        r.stderr,
        new RegExp(`kubectl label namespace ${ns} pod-security.kubernetes.io/enforce=privileged`),
      );
      const labels = JSON.parse(await mustKubectl(["get", "namespace", ns, "-o", "json"])).metadata.labels;
      assert.equal(labels["pod-security.kubernetes.io/enforce"], "restricted", "the admin's level is kept");
    } finally {
      await snapdeploy(["server", "uninstall", "-n", ns, "--purge"]);
      await cleanup();
    }
  });
});
