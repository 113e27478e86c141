/**
 * Loading the user's kubeconfig (their credentials are the only ones snapdeploy
 * uses) and turning API failures into messages that say what to do.
 */
import { ApiException, KubeConfig } from "@kubernetes/client-node";
import path from "node:path";
import { UserError } from "../errors.js";
import { networkError, statusError } from "./api-errors.js";
import {
  checkContext,
  type KubeOptions,
  kubeconfigFiles,
  mergeKubeconfigs,
  noCurrentCluster,
  unreadableKubeconfig,
} from "./kubeconfig.js";

export type { KubeOptions };

/** The kubeconfig and context `opts` name, with the same rules and errors as loadClusterAccess. */
export function loadKubeConfig(opts: KubeOptions = {}): KubeConfig {
  const kc = new KubeConfig();
  const files = kubeconfigFiles(opts);
  try {
    if (files.length === 1) kc.loadFromFile(files[0] as string);
    // Several files: merged as kubectl merges them (client-node's own merge differs).
    else if (files.length) kc.loadFromString(JSON.stringify(mergeKubeconfigs(files)));
    else kc.loadFromCluster();
  } catch (e) {
    if (e instanceof UserError) throw e;
    throw unreadableKubeconfig(files.join(path.delimiter) || undefined, e);
  }
  checkContext(
    kc.getContexts().map((c) => c.name),
    opts.context,
  );
  if (opts.context) kc.setCurrentContext(opts.context);
  if (!kc.getCurrentCluster()) throw noCurrentCluster();
  return kc;
}

/**
 * Maps a failed API call to a UserError. `action` reads like "list pods in namespace x".
 */
export function apiError(e: unknown, action: string, server?: string): UserError {
  if (e instanceof UserError) return e;
  if (e instanceof ApiException) return statusError(e.code, e.body, action);
  const unreachable = networkError(e, server);
  if (unreachable) return unreachable;
  const err = e as Error;
  return new UserError("internal", `failed to ${action}: ${err?.message ?? String(e)}`, { cause: e });
}
