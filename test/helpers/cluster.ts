/**
 * Test helpers for the real local cluster brought up by cluster/up. They shell out
 * to the kubectl and docker binaries the cluster harness provides, as a user would.
 */
import { type SpawnOptions, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { fileURLToPath } from "node:url";

export const ROOT = fileURLToPath(new URL("../..", import.meta.url));
export const REGISTRY = "127.0.0.1:5000";
export const REGISTRY_NODE = "10.245.0.1:5000";
export const TOOLS_IMAGE = `${REGISTRY}/snapdeploy/debian-tools:bookworm-2`;
/** Debian's docker CLI, matching the node's daemon (another client may come first on PATH). */
export const DOCKER = "/usr/bin/docker";
export const BASE_IMAGE = `${REGISTRY}/snapdeploy/debian:bookworm`;

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
