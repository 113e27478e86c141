/**
 * Test helpers for the real local cluster brought up by cluster/up. They shell out
 * to the kubectl and docker binaries the cluster harness provides, as a user would.
 */
import type { V1Pod } from "@kubernetes/client-node";
import { isReady } from "../../src/server/connect.js";
import { type SpawnOptions, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { promises as fs, readFileSync } from "node:fs";
import { after, before } from "node:test";
import { fileURLToPath } from "node:url";

export const ROOT = fileURLToPath(new URL("../..", import.meta.url));
export const REGISTRY = "127.0.0.1:5000";
export const REGISTRY_NODE = "10.245.0.1:5000";
export const TOOLS_IMAGE = `${REGISTRY}/snapdeploy/debian-tools:bookworm-2`;
/** Debian's docker CLI, matching the node's daemon (another client may come first on PATH). */
export const DOCKER = "/usr/bin/docker";
export const BASE_IMAGE = `${REGISTRY}/snapdeploy/debian:bookworm`;
/** Images the cluster's nodes pull, for workloads that only need to run. */
export const NODE_BASE_IMAGE = `${REGISTRY_NODE}/snapdeploy/debian:bookworm`;
export const NODE_TOOLS_IMAGE = `${REGISTRY_NODE}/snapdeploy/debian-tools:bookworm-2`;

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a command to completion, optionally feeding stdin. Never throws on exit code. */
export function run(
  cmd: string,
  args: string[],
  opts: SpawnOptions & { input?: string } = {},
): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { ...opts, stdio: ["pipe", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout?.on("data", (d) => {
      stdout += d;
    });
    child.stderr?.on("data", (d) => {
      stderr += d;
    });
    child.on("error", reject);
    child.on("close", (code) => resolve({ code: code ?? -1, stdout, stderr }));
    if (opts.input !== undefined) child.stdin?.end(opts.input);
    else child.stdin?.end();
  });
}

/** Like run(), but throws with the output when the exit code is not 0. */
export async function must(cmd: string, args: string[], opts: SpawnOptions & { input?: string } = {}) {
  const r = await run(cmd, args, opts);
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(" ")} exited ${r.code}\n${r.stdout}\n${r.stderr}`);
  return r.stdout;
}

export const kubectl = (args: string[], input?: string) => run("kubectl", args, { input });
export const mustKubectl = (args: string[], input?: string) => must("kubectl", args, { input });

export function uniqueName(prefix: string): string {
  return `${prefix}-${randomBytes(3).toString("hex")}`;
}

/** Creates a namespace for one test file; returns it and a cleanup function. */
export async function tempNamespace(prefix: string): Promise<{ ns: string; cleanup: () => Promise<void> }> {
  const ns = uniqueName(prefix);
  await mustKubectl(["create", "namespace", ns]);
  // Pods are refused until the controller-manager has made the namespace's default service account.
  await eventually(
    `service account default in ${ns}`,
    async () => (await kubectl(["-n", ns, "get", "sa", "default"])).code === 0,
  );
  return {
    ns,
    cleanup: async () => {
      await kubectl(["delete", "namespace", ns, "--wait=false"]);
    },
  };
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Polls fn until it returns a truthy value or the deadline passes. */
export async function eventually<T>(
  what: string,
  fn: () => Promise<T | undefined | false>,
  timeoutMs = 60_000,
) {
  const end = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < end) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (e) {
      last = e;
    }
    await sleep(300);
  }
  throw new Error(`timed out waiting for ${what}${last ? `: ${last}` : ""}`);
}

export const CLI = `${ROOT}/bin/snapdeploy.cjs`;

/** Runs the real snapdeploy CLI (the built bundle) as a user would. */
export function snapdeploy(args: string[], opts: SpawnOptions & { input?: string } = {}): Promise<RunResult> {
  return run(process.execPath, [CLI, ...args], opts);
}

/**
 * The build-server image the cluster harness built (or $SNAPDEPLOY_SERVER_IMAGE, an image
 * built from another checkout's agent).
 */
export function serverImage(): string {
  if (process.env.SNAPDEPLOY_SERVER_IMAGE) return process.env.SNAPDEPLOY_SERVER_IMAGE;
  return readFileSync("/var/lib/snapdeploy-cluster/build-server-image", "utf8").trim();
}

/**
 * The flags that pick the builder: buildkit needs no image; the Docker builders take the
 * cluster's build-server image. The suites run on the default (buildkit) unless
 * SNAPDEPLOY_TEST_BUILDER names another (e.g. docker-socket).
 */
export function builderFlags(extra: string[]): string[] {
  const i = extra.indexOf("--builder");
  const builder = i >= 0 ? extra[i + 1] : (process.env.SNAPDEPLOY_TEST_BUILDER ?? "buildkit");
  const flags = i >= 0 ? [] : ["--builder", builder as string];
  return builder === "buildkit" ? flags : [...flags, "--image", serverImage()];
}

/** Installs a build server of its own in a fresh namespace; returns the namespace. */
export async function installServer(prefix: string, extra: string[] = []): Promise<string> {
  await must(`${ROOT}/cluster/volumes`, ["4"]);
  const ns = uniqueName(prefix);
  const r = await snapdeploy(["server", "install", "-n", ns, ...builderFlags(extra), ...extra]);
  if (r.code !== 0) throw new Error(`server install failed (${r.code}): ${r.stderr}`);
  return ns;
}

export async function uninstallServer(ns: string): Promise<void> {
  await snapdeploy(["server", "uninstall", "-n", ns, "--purge"]);
}

/** The name of the ready build-server pod in a namespace. */
export async function serverPod(ns: string): Promise<string> {
  // Ready as the CLI means it (src/server/connect.ts isReady): the pod's Ready condition, so
  // the builder's container too, not only the agent's.
  return await eventually(
    `a ready build server pod in ${ns}`,
    async () => {
      const out = await mustKubectl([
        "-n",
        ns,
        "get",
        "pods",
        "-l",
        "app.kubernetes.io/name=snapdeploy-build-server",
        "-o",
        "json",
      ]);
      const pods = (JSON.parse(out) as { items: V1Pod[] }).items;
      return pods.find(isReady)?.metadata?.name;
    },
    120_000,
  );
}

/** Runs a shell command in the build server's agent container. */
export async function inServer(ns: string, script: string): Promise<string> {
  const pod = await serverPod(ns);
  return await mustKubectl(["-n", ns, "exec", pod, "-c", "agent", "--", "sh", "-c", script]);
}

export const CLUSTER_CA = "/var/lib/snapdeploy-cluster/pki/ca.crt";
/** Flags that let a build server trust the local registries' TLS. */
export const REGISTRY_CA_FLAGS = [
  "--registry-ca",
  `${REGISTRY_NODE}=${CLUSTER_CA}`,
  "--registry-ca",
  `10.245.0.1:5001=${CLUSTER_CA}`,
];

// Docker pushes Docker's manifest type, BuildKit OCI's (a manifest or an index).
const MANIFEST_TYPES =
  "Accept: application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json";

/** Asks the local registry (over TLS, from this machine) whether a tag exists. */
export async function registryHasTag(
  repository: string,
  tag: string,
  host = "127.0.0.1:5000",
): Promise<boolean> {
  const r = await run("curl", [
    "-s",
    "-o",
    "/dev/null",
    "-w",
    "%{http_code}",
    "--cacert",
    CLUSTER_CA,
    "-H",
    MANIFEST_TYPES,
    `https://${host}/v2/${repository}/manifests/${tag}`,
  ]);
  return r.stdout === "200";
}

/**
 * Runs `script` (sh -c) in a pod of `image` in `namespace`, as the node pulls and unpacks it,
 * and returns the pod's end phase and its output; the pod is deleted after.
 */
export async function runInPod(
  namespace: string,
  image: string,
  script: string,
  timeoutMs = 120_000,
): Promise<{ phase: string; logs: string }> {
  const name = uniqueName("probe");
  await mustKubectl([
    "-n",
    namespace,
    "run",
    name,
    "--restart=Never",
    `--image=${image}`,
    "--command",
    "--",
    "sh",
    "-c",
    script,
  ]);
  try {
    const phase = await eventually(
      `pod ${name} to finish`,
      async () => {
        const p = (await kubectl(["-n", namespace, "get", "pod", name, "-o", "jsonpath={.status.phase}"]))
          .stdout;
        return /^(Succeeded|Failed)$/.test(p) ? p : undefined;
      },
      timeoutMs,
    );
    return { phase, logs: await mustKubectl(["-n", namespace, "logs", name]) };
  } finally {
    await kubectl(["-n", namespace, "delete", "pod", name, "--wait=false"]);
  }
}

/** An image's manifest (tag or digest) from the local registry, as JSON. */
export async function registryManifest(
  repository: string,
  reference: string,
  host = "127.0.0.1:5000",
): Promise<{ mediaType?: string; layers?: { mediaType: string; size: number }[] }> {
  const r = await run("curl", [
    "-sf",
    "--cacert",
    CLUSTER_CA,
    "-H",
    MANIFEST_TYPES,
    `https://${host}/v2/${repository}/manifests/${reference}`,
  ]);
  if (r.code !== 0) throw new Error(`no manifest ${repository}@${reference}: curl exit ${r.code}`);
  return JSON.parse(r.stdout);
}

/** A child's exit code, also when it has already exited (no lost "exit" event). */
export function exitOf(child: import("node:child_process").ChildProcess): Promise<number | null> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(child.exitCode);
  return new Promise((r) => child.once("exit", (code) => r(code)));
}

/**
 * A kubeconfig for a fresh service account in `ns` that may do only `verbs` on
 * `resources` there: how tests act as a user with limited RBAC rights.
 */
export async function restrictedKubeconfig(ns: string, verbs: string, resources: string): Promise<string> {
  const sa = uniqueName("limited");
  await mustKubectl(["-n", ns, "create", "serviceaccount", sa]);
  await mustKubectl(["-n", ns, "create", "role", sa, `--verb=${verbs}`, `--resource=${resources}`]);
  return await kubeconfigOf(ns, sa);
}

/** One rule of a Role: `verbs` on `resources` of the API group `group` ("" is the core group). */
export interface RoleRule {
  group: string;
  resources: string[];
  verbs: string[];
}

/**
 * Like restrictedKubeconfig, for rights that differ by resource: a fresh service account
 * in `ns` whose Role there holds exactly `rules`. Returns the kubeconfig and the account's
 * name (to grant it more later).
 */
export async function kubeconfigWithRules(
  ns: string,
  rules: RoleRule[],
): Promise<{ kubeconfig: string; serviceAccount: string }> {
  const sa = uniqueName("limited");
  await mustKubectl(["-n", ns, "create", "serviceaccount", sa]);
  await mustKubectl(
    ["-n", ns, "apply", "-f", "-"],
    JSON.stringify({
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "Role",
      metadata: { name: sa },
      rules: rules.map((r) => ({ apiGroups: [r.group], resources: r.resources, verbs: r.verbs })),
    }),
  );
  return { kubeconfig: await kubeconfigOf(ns, sa), serviceAccount: sa };
}

/** Binds the Role named like the service account `sa` to it; returns a kubeconfig that acts as it. */
async function kubeconfigOf(ns: string, sa: string): Promise<string> {
  await mustKubectl(["-n", ns, "create", "rolebinding", sa, `--role=${sa}`, `--serviceaccount=${ns}:${sa}`]);
  return await serviceAccountKubeconfig(ns, sa);
}

/** A kubeconfig that acts as service account `sa` of `ns` (a token from the TokenRequest API), its namespace `ns`. */
export async function serviceAccountKubeconfig(ns: string, sa: string): Promise<string> {
  const token = (await mustKubectl(["-n", ns, "create", "token", sa])).trim();
  const ca = (
    await mustKubectl([
      "config",
      "view",
      "--minify",
      "--raw",
      "-o",
      "jsonpath={.clusters[0].cluster.certificate-authority-data}",
    ])
  ).trim();
  const { mkdtemp, writeFile } = await import("node:fs/promises");
  const { tmpdir } = await import("node:os");
  const file = `${await mkdtemp(`${tmpdir()}/snapdeploy-kc-`)}/config`;
  await writeFile(
    file,
    JSON.stringify({
      apiVersion: "v1",
      kind: "Config",
      clusters: [
        { name: "c", cluster: { server: "https://127.0.0.1:6443", "certificate-authority-data": ca } },
      ],
      users: [{ name: sa, user: { token } }],
      contexts: [{ name: "c", context: { cluster: "c", user: sa, namespace: ns } }],
      "current-context": "c",
    }),
  );
  return file;
}

/** A Deployment whose `containers` sleep on NODE_BASE_IMAGE; waits until it is rolled out. */
export async function sleepingDeployment(ns: string, name: string, containers: string[]): Promise<void> {
  await mustKubectl(
    ["-n", ns, "apply", "-f", "-"],
    JSON.stringify({
      apiVersion: "apps/v1",
      kind: "Deployment",
      metadata: { name },
      spec: {
        replicas: 1,
        selector: { matchLabels: { app: name } },
        template: {
          metadata: { labels: { app: name } },
          spec: {
            terminationGracePeriodSeconds: 1,
            containers: containers.map((c) => ({
              name: c,
              image: NODE_BASE_IMAGE,
              command: ["sleep", "infinity"],
            })),
          },
        },
      },
    }),
  );
  await mustKubectl(["-n", ns, "rollout", "status", `deployment/${name}`, "--timeout=120s"]);
}

/** The image of `container` in Deployment `name`, as the cluster has it. */
export async function deploymentImage(ns: string, name: string, container: string): Promise<string> {
  return await mustKubectl([
    "-n",
    ns,
    "get",
    `deployment/${name}`,
    "-o",
    `jsonpath={.spec.template.spec.containers[?(@.name=="${container}")].image}`,
  ]);
}

/** A `-o json` run's stdout: one JSON object per line, each with its "event". Throws on any other line. */
export function jsonEvents(stdout: string): Record<string, unknown>[] {
  const lines = stdout.split("\n");
  if (lines.at(-1) === "") lines.pop();
  return lines.map((line, i) => {
    let doc: unknown;
    try {
      doc = JSON.parse(line);
    } catch {
      throw new Error(`stdout line ${i + 1} is not JSON: ${line}\n${stdout}`);
    }
    if (typeof doc !== "object" || doc === null || typeof (doc as { event?: unknown }).event !== "string")
      throw new Error(`stdout line ${i + 1} has no "event": ${line}`);
    return doc as Record<string, unknown>;
  });
}

/**
 * The result document of a `-o json` run: its last stdout line, which must be the "result"
 * event; returned without the "event" field, as the command's result.
 */
// biome-ignore lint/suspicious/noExplicitAny: a result document is plain JSON, read by path as JSON.parse's was
export function jsonResult(stdout: string): any {
  const last = jsonEvents(stdout).at(-1);
  if (last?.event !== "result") throw new Error(`the last stdout line is not a result: ${stdout}`);
  const { event: _event, ...doc } = last;
  return doc;
}

/**
 * A test file's build server and workload namespace, made before its tests and removed after
 * them (with the folders the tests put in `dirs`); `setup` runs once both exist. Read the
 * fields inside tests and hooks.
 */
export function serverAndNamespace(
  prefix: string,
  serverFlags: string[] = [],
  setup: (ctx: { server: string; ns: string; dirs: string[] }) => Promise<void> = async () => {},
) {
  const ctx = { server: "", ns: "", dirs: [] as string[] };
  let dropNs = async () => {};
  // One hook: the file's own setup runs in it, after the server and namespace exist.
  before(async () => {
    ctx.server = await installServer(prefix, serverFlags);
    ({ ns: ctx.ns, cleanup: dropNs } = await tempNamespace(prefix));
    await setup(ctx);
  });
  after(async () => {
    await dropNs();
    await uninstallServer(ctx.server);
    for (const d of ctx.dirs) await fs.rm(d, { recursive: true, force: true });
  });
  return ctx;
}
