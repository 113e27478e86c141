/**
 * Loading the user's kubeconfig (their credentials are the only ones snapdeploy
 * uses) and turning API failures into messages that say what to do.
 */
import { ApiException, KubeConfig } from "@kubernetes/client-node";
import { existsSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { UserError } from "../cli/errors.js";

export interface KubeOptions {
  kubeconfig?: string;
  context?: string;
}

export function loadKubeConfig(opts: KubeOptions = {}): KubeConfig {
  const kc = new KubeConfig();
  const file = opts.kubeconfig ?? process.env.KUBECONFIG?.split(":")[0];
  try {
    if (file) {
      if (!existsSync(file))
        throw new UserError("cluster", `kubeconfig ${file} does not exist`, {
          hint: "set --kubeconfig or KUBECONFIG to your cluster's kubeconfig",
        });
      kc.loadFromFile(file);
    } else {
      // Without a kubeconfig the client library falls back to http://localhost:8080,
      // which then fails with a message about TLS; say what is missing instead.
      const home = path.join(os.homedir(), ".kube", "config");
      if (!existsSync(home) && !process.env.KUBERNETES_SERVICE_HOST) {
        throw new UserError("cluster", `no kubeconfig: KUBECONFIG is not set and ${home} does not exist`, {
          hint: "pass --kubeconfig FILE, set KUBECONFIG, or create ~/.kube/config for your cluster",
        });
      }
      kc.loadFromDefault();
    }
  } catch (e) {
    if (e instanceof UserError) throw e;
    throw new UserError(
      "cluster",
      `cannot read kubeconfig ${file ?? "~/.kube/config"}: ${(e as Error).message}`,
      { cause: e },
    );
  }
  if (opts.context) {
    if (!kc.getContexts().some((c) => c.name === opts.context)) {
      throw new UserError("cluster", `context "${opts.context}" is not in the kubeconfig`, {
        hint: `available contexts: ${
          kc
            .getContexts()
            .map((c) => c.name)
            .join(", ") || "(none)"
        }`,
      });
    }
    kc.setCurrentContext(opts.context);
  }
  if (!kc.getCurrentCluster()) {
    throw new UserError("cluster", "the kubeconfig has no current context or cluster", {
      hint: "pass --context, or set one with: kubectl config use-context NAME",
    });
  }
  return kc;
}

/**
 * Maps a failed API call to a UserError. `action` reads like "list pods in namespace x".
 */
export function apiError(e: unknown, action: string, server?: string): UserError {
  if (e instanceof UserError) return e;
  if (e instanceof ApiException) {
    let message = "";
    try {
      message = (JSON.parse(String(e.body)) as { message?: string }).message ?? "";
    } catch {
      message = String(e.body ?? "");
    }
    if (e.code === 403) {
      return new UserError("permission", `you are not allowed to ${action}: ${message}`, {
        hint: "ask a cluster admin for RBAC rights for this verb and resource",
      });
    }
    if (e.code === 401)
      return new UserError("cluster", `the API server rejected your credentials: ${message}`);
    if (e.code === 404) return new UserError("notFound", `not found while trying to ${action}: ${message}`);
    // Invalid or malformed objects: the input is wrong, not the cluster.
    if (e.code === 400 || e.code === 422)
      return new UserError("input", `the API server refused to ${action}: ${message}`);
    return new UserError("cluster", `failed to ${action}: HTTP ${e.code} ${message}`);
  }
  const err = e as NodeJS.ErrnoException;
  const netCodes = ["ECONNREFUSED", "ENOTFOUND", "EHOSTUNREACH", "ETIMEDOUT", "ECONNRESET"];
  const code = err?.code ?? (err?.cause as NodeJS.ErrnoException | undefined)?.code;
  if (
    (code && netCodes.includes(code)) ||
    /ECONNREFUSED|ENOTFOUND|fetch failed|socket hang up/.test(err?.message ?? "")
  ) {
    return new UserError(
      "cluster",
      `cannot reach the Kubernetes API server${server ? ` at ${server}` : ""}: ${err.message}`,
      {
        hint: "check that the cluster is up and your kubeconfig points at it",
        cause: e,
      },
    );
  }
  return new UserError("internal", `failed to ${action}: ${err?.message ?? String(e)}`, { cause: e });
}
