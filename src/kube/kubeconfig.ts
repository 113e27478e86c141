/**
 * Which kubeconfig files and context a command uses, how several files are merged, and
 * the errors for each way that choice fails. The direct path (access.ts) and client-node's (client.ts) share these
 * rules, so both fail with the same messages.
 */
import { existsSync, readFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { load } from "js-yaml";
import { UserError } from "../errors.js";

export interface KubeOptions {
  kubeconfig?: string;
  context?: string;
}

/**
 * The kubeconfig files to read, in order: --kubeconfig alone; else the files $KUBECONFIG
 * lists (':'-separated; those that do not exist are skipped, as kubectl skips them); else
 * ~/.kube/config. Empty inside a pod without one (in-cluster config).
 */
export function kubeconfigFiles(opts: KubeOptions): string[] {
  if (opts.kubeconfig) {
    if (!existsSync(opts.kubeconfig))
      throw new UserError("cluster", `kubeconfig ${opts.kubeconfig} does not exist`, {
        hint: "set --kubeconfig to your cluster's kubeconfig",
      });
    return [opts.kubeconfig];
  }
  const listed = (process.env.KUBECONFIG ?? "").split(path.delimiter).filter(Boolean);
  if (listed.length) {
    const files = listed.filter((f) => existsSync(f));
    if (!files.length)
      throw new UserError("cluster", `kubeconfig ${listed.join(path.delimiter)} does not exist`, {
        hint: "set --kubeconfig or KUBECONFIG to your cluster's kubeconfig",
      });
    return files;
  }
  const home = path.join(os.homedir(), ".kube", "config");
  if (existsSync(home)) return [home];
  // Without a kubeconfig the client library falls back to http://localhost:8080,
  // which then fails with a message about TLS; say what is missing instead.
  if (process.env.KUBERNETES_SERVICE_HOST) return [];
  throw new UserError("cluster", `no kubeconfig: KUBECONFIG is not set and ${home} does not exist`, {
    hint: "pass --kubeconfig FILE, set KUBECONFIG, or create ~/.kube/config for your cluster",
  });
}

type Doc = Record<string, unknown>;
type Named = { name?: unknown } & Doc;

/** The paths a kubeconfig may hold, relative to its own folder: [list, entry key, field]. */
const PATH_FIELDS: [string, string, string][] = [
  ["clusters", "cluster", "certificate-authority"],
  ["users", "user", "client-certificate"],
  ["users", "user", "client-key"],
  ["users", "user", "tokenFile"],
];

/**
 * The kubeconfig `files` make together, merged as kubectl merges them: the first file that
 * names a cluster, user or context wins it; current-context comes from the first file that
 * sets one. Relative paths (certificates, keys, token files, an exec command with a '/') are
 * made absolute against the folder of the file that holds them.
 */
export function mergeKubeconfigs(files: string[]): Doc {
  const merged: Doc = { apiVersion: "v1", kind: "Config", clusters: [], users: [], contexts: [] };
  for (const file of files) {
    let doc: Doc;
    try {
      doc = (load(readFileSync(file, "utf8")) ?? {}) as Doc;
    } catch (e) {
      throw unreadableKubeconfig(file, e);
    }
    absolutePaths(doc, path.dirname(path.resolve(file)));
    for (const key of ["clusters", "users", "contexts"]) {
      const into = merged[key] as Named[];
      for (const entry of list(doc, key))
        if (entry && !into.some((x) => x.name === entry.name)) into.push(entry);
    }
    if (!merged["current-context"] && doc["current-context"])
      merged["current-context"] = doc["current-context"];
  }
  return merged;
}

function list(doc: Doc, key: string): (Named | null)[] {
  const v = doc[key];
  return Array.isArray(v) ? (v as (Named | null)[]) : [];
}

function absolutePaths(doc: Doc, dir: string): void {
  const str = (v: unknown): v is string => typeof v === "string" && v !== "";
  for (const [key, inner, field] of PATH_FIELDS) {
    for (const entry of list(doc, key)) {
      const o = entry?.[inner] as Doc | undefined;
      if (o && str(o[field])) o[field] = path.resolve(dir, o[field]);
    }
  }
  for (const entry of list(doc, "users")) {
    const exec = (entry?.user as Doc | undefined)?.exec as Doc | undefined;
    if (exec && str(exec.command) && exec.command.includes("/") && !path.isAbsolute(exec.command))
      exec.command = path.resolve(dir, exec.command);
  }
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
