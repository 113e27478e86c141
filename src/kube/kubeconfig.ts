/**
 * Which kubeconfig file and context a command uses, and the errors for each way that
 * choice fails. The direct path (access.ts) and client-node's (client.ts) share these
 * rules, so both fail with the same messages.
 */
import { existsSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { UserError } from "../errors.js";

export interface KubeOptions {
  kubeconfig?: string;
  context?: string;
}

/**
 * The kubeconfig file to read: --kubeconfig, else the first of $KUBECONFIG, else
 * ~/.kube/config; undefined inside a pod without one (in-cluster config).
 */
export function kubeconfigFile(opts: KubeOptions): string | undefined {
  const file = opts.kubeconfig ?? process.env.KUBECONFIG?.split(":")[0];
  if (file) {
    if (!existsSync(file))
      throw new UserError("cluster", `kubeconfig ${file} does not exist`, {
        hint: "set --kubeconfig or KUBECONFIG to your cluster's kubeconfig",
      });
    return file;
  }
  const home = path.join(os.homedir(), ".kube", "config");
  if (existsSync(home)) return home;
  // Without a kubeconfig the client library falls back to http://localhost:8080,
  // which then fails with a message about TLS; say what is missing instead.
  if (process.env.KUBERNETES_SERVICE_HOST) return undefined;
  throw new UserError("cluster", `no kubeconfig: KUBECONFIG is not set and ${home} does not exist`, {
    hint: "pass --kubeconfig FILE, set KUBECONFIG, or create ~/.kube/config for your cluster",
  });
}

export function unreadableKubeconfig(file: string | undefined, e: unknown): UserError {
  return new UserError(
    "cluster",
    `cannot read kubeconfig ${file ?? "(in-cluster)"}: ${(e as Error).message}`,
    {
      cause: e,
    },
  );
}

/** Checks that `wanted` (if given) is one of the kubeconfig's contexts. */
export function checkContext(names: string[], wanted: string | undefined): void {
  if (wanted && !names.includes(wanted)) {
    throw new UserError("cluster", `context "${wanted}" is not in the kubeconfig`, {
      hint: `available contexts: ${names.join(", ") || "(none)"}`,
    });
  }
}

export function noCurrentCluster(): UserError {
  return new UserError("cluster", "the kubeconfig has no current context or cluster", {
    hint: "pass --context, or set one with: kubectl config use-context NAME",
  });
}
