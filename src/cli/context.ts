/**
 * What every command that talks to the cluster needs, resolved once from the
 * global flags: kubeconfig, reporter, and the project's config.
 */
import type { KubeConfig } from "@kubernetes/client-node";
import type { Command } from "commander";
import type { ClusterAccess } from "../kube/access.js";
import path from "node:path";
import { type Config, loadConfig } from "../config/config.js";
import { createReporter, type OutputMode, type Reporter } from "../ui/reporter.js";

export interface GlobalFlags {
  debug?: boolean;
  kubeconfig?: string;
  context?: string;
  output?: OutputMode;
  dir?: string;
}

export interface CommandContext {
  flags: GlobalFlags;
  dir: string;
  config: Config;
  reporter: Reporter;
  /** The user's kubeconfig, loaded on first use (the Kubernetes client is a heavy module). */
  kube(): Promise<KubeConfig>;
  /**
   * Direct access to the API server, for commands that only reach the build server: it
   * loads the Kubernetes client only for kubeconfigs that need it (kube/access.ts).
   */
  access(): Promise<ClusterAccess>;
}

export async function commandContext(cmd: Command): Promise<CommandContext> {
  const flags = cmd.optsWithGlobals() as GlobalFlags;
  const dir = path.resolve(flags.dir ?? ".");
  let kc: KubeConfig | undefined;
  let access: Promise<ClusterAccess> | undefined;
  return {
    flags,
    dir,
    config: await loadConfig(dir),
    reporter: createReporter({ mode: flags.output ?? "plain" }),
    kube: async () => {
      if (!kc) {
        const { loadKubeConfig } = await import("../kube/client.js");
        kc = loadKubeConfig({ kubeconfig: flags.kubeconfig, context: flags.context });
      }
      return kc;
    },
    access: () => {
      access ??= import("../kube/access.js").then(({ loadClusterAccess }) =>
        loadClusterAccess({ kubeconfig: flags.kubeconfig, context: flags.context }),
      );
      return access;
    },
  };
}
