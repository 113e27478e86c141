/**
 * The example HTTP app (examples/hello-http) as the deploy tests use it: a copy with its
 * own greeting, a pod to call Services from, and the app's answer through a Service.
 */
import assert from "node:assert/strict";
import { promises as fs } from "node:fs";
import os from "node:os";
import path from "node:path";
import {
  DOCKER,
  eventually,
  must,
  mustKubectl,
  REGISTRY_NODE,
  ROOT,
  TOOLS_IMAGE,
  uniqueName,
} from "./cluster.js";

/**
 * A copy of examples/hello-http answering `greeting`, with `runId` in run-id.txt (so each
 * test run's snapshots are new) and `extra` files (paths may have folders). The folder is
 * added to `dirs`, which the caller removes.
 */
export async function webApp(
  dirs: string[],
  runId: string,
  greeting: string,
  extra: Record<string, string> = {},
): Promise<string> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), "snapdeploy-web-"));
  dirs.push(dir);
  for (const f of ["Dockerfile", "server.js"])
    await fs.copyFile(path.join(ROOT, "examples/hello-http", f), path.join(dir, f));
  await fs.writeFile(path.join(dir, "greeting.txt"), greeting);
  await fs.writeFile(path.join(dir, "run-id.txt"), runId);
  for (const [p, c] of Object.entries(extra)) {
    await fs.mkdir(path.dirname(path.join(dir, p)), { recursive: true });
    await fs.writeFile(path.join(dir, p), c);
  }
  return dir;
}

/** Starts the pod "client" in `ns`, from which `served` calls Services. */
export async function startClient(ns: string): Promise<void> {
  await mustKubectl([
    "-n",
    ns,
    "run",
    "client",
    `--image=${TOOLS_IMAGE}`,
    "--command",
    "--",
    "sleep",
    "3600",
  ]);
}

/** The app's answer through its Service `name`, from the client pod. */
export async function served(ns: string, name: string): Promise<string> {
  const ip = (await mustKubectl(["-n", ns, "get", "svc", name, "-o", "jsonpath={.spec.clusterIP}"])).trim();
  return await mustKubectl([
    "-n",
    ns,
    "exec",
    "client",
    "--",
    "node",
    "-e",
    `fetch("http://${ip}/").then(r=>r.text()).then(t=>process.stdout.write(t))`,
  ]);
}

/** Waits (up to 15 s) until the Service `name` answers `expected`; fails showing the last answer. */
export async function servedSoon(ns: string, name: string, expected: string): Promise<void> {
  let last = "";
  await eventually(
    `service ${name} to answer ${JSON.stringify(expected)}`,
    async () => {
      last = await served(ns, name);
      return last === expected;
    },
    15_000,
  ).catch(() => assert.equal(last, expected));
}

/**
 * A Deployment or StatefulSet (and a Service of the same name, port 80 to 8080) of the
 * example app on `image`, with a readiness probe; waits until it is rolled out.
 */
export async function webWorkload(
  ns: string,
  name: string,
  image: string,
  opts: { containers?: string[]; replicas?: number; kind?: "Deployment" | "StatefulSet" } = {},
): Promise<void> {
  const kind = opts.kind ?? "Deployment";
  const containers = (opts.containers ?? ["web"]).map((c) => ({
    name: c,
    image,
    ports: [{ containerPort: 8080 }],
    readinessProbe: { httpGet: { path: "/", port: 8080 }, periodSeconds: 1 },
  }));
  await mustKubectl(
    ["-n", ns, "apply", "-f", "-"],
    JSON.stringify({
      apiVersion: "v1",
      kind: "List",
      items: [
        {
          apiVersion: "apps/v1",
          kind,
          metadata: { name },
          spec: {
            ...(kind === "StatefulSet" ? { serviceName: name, podManagementPolicy: "Parallel" } : {}),
            replicas: opts.replicas ?? 1,
            selector: { matchLabels: { app: name } },
            template: {
              metadata: { labels: { app: name } },
              spec: { containers, terminationGracePeriodSeconds: 1 },
            },
          },
        },
        {
          apiVersion: "v1",
          kind: "Service",
          metadata: { name },
          spec: { selector: { app: name }, ports: [{ port: 80, targetPort: 8080 }] },
        },
      ],
    }),
  );
  await mustKubectl(["-n", ns, "rollout", "status", `${kind.toLowerCase()}/${name}`, "--timeout=120s"]);
}

/**
 * Builds and pushes (with the node's Docker daemon) an image of the example app that
 * answers "placeholder": what test workloads run before their first deploy. Returns its reference.
 */
export async function pushPlaceholder(dirs: string[], runId: string): Promise<string> {
  const ref = `${REGISTRY_NODE}/e2e/web:${uniqueName("placeholder")}`;
  const dir = await webApp(dirs, runId, "placeholder\n");
  await must(DOCKER, ["build", "-q", "-t", ref, dir]);
  await must(DOCKER, ["push", "-q", ref]);
  return ref;
}
