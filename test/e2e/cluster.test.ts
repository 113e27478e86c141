/**
 * Acceptance tests of the local cluster (cluster/up): a real API server, kubelet,
 * containerd, registry and Docker daemon. No fakes.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { after, before, describe, test } from "node:test";
import {
  DOCKER,
  ROOT,
  REGISTRY,
  TOOLS_IMAGE,
  eventually,
  kubectl,
  must,
  mustKubectl,
  tempNamespace,
  uniqueName,
} from "../helpers/cluster.js";

let ns = "";
let cleanup = async () => {};

before(async () => {
  ({ ns, cleanup } = await tempNamespace("e2e-cluster"));
});
after(async () => cleanup());

/** Applies a manifest in the test namespace. */
const apply = (manifest: object) => mustKubectl(["-n", ns, "apply", "-f", "-"], JSON.stringify(manifest));

function pod(name: string, spec: object) {
  return { apiVersion: "v1", kind: "Pod", metadata: { name }, spec };
}

async function waitPodReady(name: string) {
  await mustKubectl(["-n", ns, "wait", "--for=condition=Ready", `pod/${name}`, "--timeout=120s"]);
}

describe("local cluster", () => {
  test("the node is Ready and the server reports v1.34.x", async () => {
    const nodes = JSON.parse(await mustKubectl(["get", "nodes", "-o", "json"]));
    assert.equal(nodes.items.length, 1);
    const node = nodes.items[0];
    const ready = node.status.conditions.find((c: { type: string }) => c.type === "Ready");
    assert.equal(ready.status, "True");
    assert.match(node.status.nodeInfo.kubeletVersion, /^v1\.34\.\d+$/);
    const version = JSON.parse(await mustKubectl(["version", "-o", "json"]));
    assert.match(version.serverVersion.gitVersion, /^v1\.34\.\d+$/);
  });

  test("an image pushed to the local registry runs as a Deployment reachable via Service and port-forward", async () => {
    const tag = uniqueName("t");
    const image = `${REGISTRY}/e2e/hello-http:${tag}`;
    await must(DOCKER, ["build", "-q", "-t", image, `${ROOT}/examples/hello-http`]);
    await must(DOCKER, ["push", "-q", image]);

    await apply({
      apiVersion: "apps/v1",
      kind: "Deployment",
      metadata: { name: "hello" },
      spec: {
        replicas: 1,
        selector: { matchLabels: { app: "hello" } },
        template: {
          metadata: { labels: { app: "hello" } },
          spec: {
            containers: [
              {
                name: "web",
                image,
                ports: [{ containerPort: 8080 }],
                readinessProbe: { httpGet: { path: "/", port: 8080 }, periodSeconds: 1 },
              },
            ],
          },
        },
      },
    });
    await apply({
      apiVersion: "v1",
      kind: "Service",
      metadata: { name: "hello" },
      spec: { selector: { app: "hello" }, ports: [{ port: 80, targetPort: 8080 }] },
    });
    await mustKubectl(["-n", ns, "wait", "--for=condition=Available", "deployment/hello", "--timeout=120s"]);

    // From another pod, through the Service's ClusterIP.
    const clusterIP = (
      await mustKubectl(["-n", ns, "get", "svc", "hello", "-o", "jsonpath={.spec.clusterIP}"])
    ).trim();
    await apply(
      pod("client", { containers: [{ name: "c", image: TOOLS_IMAGE, command: ["sleep", "3600"] }] }),
    );
    await waitPodReady("client");
    const script = `fetch("http://${clusterIP}/").then(r => r.text()).then(t => process.stdout.write(t))`;
    const body = await eventually("the Service to answer", async () => {
      const r = await kubectl(["-n", ns, "exec", "client", "--", "node", "-e", script]);
      return r.code === 0 && r.stdout;
    });
    assert.equal(body, "hello from snapdeploy\n");

    // Through kubectl port-forward, from this machine.
    const pf = spawn("kubectl", ["-n", ns, "port-forward", "svc/hello", ":80"], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    try {
      const port = await new Promise<number>((resolve, reject) => {
        let out = "";
        pf.stdout.on("data", (d) => {
          out += d;
          const m = /127\.0\.0\.1:(\d+) ->/.exec(out);
          if (m) resolve(Number(m[1]));
        });
        pf.on("exit", (c) => reject(new Error(`port-forward exited ${c}`)));
      });
      const res = await fetch(`http://127.0.0.1:${port}/`);
      assert.equal(await res.text(), "hello from snapdeploy\n");
    } finally {
      pf.kill();
    }
  });

  test("kubectl exec -i carries stdin and stdout and passes the exit code back", async () => {
    await apply(
      pod("shell", { containers: [{ name: "c", image: TOOLS_IMAGE, command: ["sleep", "3600"] }] }),
    );
    await waitPodReady("shell");
    const input = "line one\nline two\n".repeat(1000);
    const r = await kubectl(
      ["-n", ns, "exec", "-i", "shell", "--", "sh", "-c", "cat; echo done >&2; exit 7"],
      input,
    );
    assert.equal(r.stdout.length, input.length, "all of stdin came back on stdout");
    assert.ok(r.stdout === input, "stdout differs from stdin");
    assert.match(r.stderr, /done/);
    assert.equal(r.code, 7);
  });

  test("kubectl logs -f follows a running container", async () => {
    await apply(
      pod("ticker", {
        containers: [
          {
            name: "c",
            image: TOOLS_IMAGE,
            command: ["bash", "-c", "i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.5; done"],
          },
        ],
      }),
    );
    await waitPodReady("ticker");
    const follower = spawn("kubectl", ["-n", ns, "logs", "-f", "ticker"], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    try {
      const lines = await new Promise<string[]>((resolve, reject) => {
        let out = "";
        const timer = setTimeout(() => reject(new Error(`logs -f gave only: ${out}`)), 20_000);
        follower.stdout.on("data", (d) => {
          out += d;
          const seen = out.split("\n").filter((l) => l.startsWith("tick"));
          if (seen.length >= 6) {
            clearTimeout(timer);
            resolve(seen);
          }
        });
      });
      // Lines kept arriving after the command started: it follows, not just dumps.
      const numbers = lines.map((l) => Number(l.split(" ")[1]));
      const first = numbers[0] ?? Number.NaN;
      assert.deepEqual(
        numbers.slice(0, 6),
        [0, 1, 2, 3, 4, 5].map((i) => first + i),
      );
    } finally {
      follower.kill();
    }
  });

  test("a pod with the node's docker.sock talks to the node's Docker daemon", async () => {
    const hostVersion = (await must(DOCKER, ["version", "--format", "{{.Server.Version}}"])).trim();
    await apply(
      pod("docker-sock", {
        restartPolicy: "Never",
        containers: [
          {
            name: "c",
            image: TOOLS_IMAGE,
            command: ["docker", "version", "--format", "{{.Server.Version}}"],
            volumeMounts: [{ name: "sock", mountPath: "/var/run/docker.sock" }],
          },
        ],
        volumes: [{ name: "sock", hostPath: { path: "/var/run/docker.sock", type: "Socket" } }],
      }),
    );
    await eventually(
      "the docker-sock pod to finish",
      async () =>
        (await mustKubectl(["-n", ns, "get", "pod", "docker-sock", "-o", "jsonpath={.status.phase}"])) ===
        "Succeeded",
      120_000,
    );
    const logs = await mustKubectl(["-n", ns, "logs", "docker-sock"]);
    assert.equal(logs.trim(), hostVersion);
  });

  test("a privileged pod runs a Docker daemon of its own", async () => {
    await apply(
      pod("dind", {
        containers: [
          {
            name: "c",
            image: TOOLS_IMAGE,
            command: ["dockerd", "--host=unix:///var/run/docker.sock", "--data-root=/var/lib/docker"],
            securityContext: { privileged: true },
            volumeMounts: [{ name: "data", mountPath: "/var/lib/docker" }],
          },
        ],
        volumes: [{ name: "data", emptyDir: {} }],
      }),
    );
    await waitPodReady("dind");
    const info = await eventually(
      "the pod's own dockerd to answer",
      async () => {
        const r = await kubectl([
          "-n",
          ns,
          "exec",
          "dind",
          "--",
          "docker",
          "info",
          "--format",
          "{{.ID}} {{.Name}}",
        ]);
        return r.code === 0 && r.stdout.trim();
      },
      60_000,
    );
    const hostInfo = (await must(DOCKER, ["info", "--format", "{{.ID}} {{.Name}}"])).trim();
    assert.notEqual(info, hostInfo, "the pod must run its own daemon, not reach the node's");
    assert.match(info, /^\S+ dind$/);
  });
});
