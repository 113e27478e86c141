/**
 * What every command that talks to the cluster needs, resolved once from the
 * global flags: kubeconfig, reporter, and the project's config.
 */
import type { KubeConfig } from "@kubernetes/client-node";
import type { Command } from "commander";
import type { ClusterAccess } from "../kube/access.js";
import path from "node:path";
import { type Config, loadConfig } from "../config/config.js";
import {
  chooseFace,
  createReporter,
  liveFaceLoaded,
  loadLiveFace,
  type OutputMode,
  type Reporter,
} from "../ui/reporter.js";

export interface GlobalFlags {
  debug?: boolean;
  kubeconfig?: string;
  context?: string;
  output?: OutputMode;
  dir?: string;
  quiet?: boolean;
  verbose?: boolean;
}

/** Commands that stream output of their own (logs, keys) keep to plain lines, never live ones. */
const NOT_LIVE = new Set(["dev", "logs", "port-forward"]);

let active: Reporter | undefined;

function faceFor(cmd: Command) {
  const flags = cmd.optsWithGlobals() as GlobalFlags;
  const verbosity = flags.quiet ? "quiet" : flags.verbose ? "verbose" : "normal";
  const face = chooseFace({ output: flags.output, verbosity, stderrIsTTY: process.stderr.isTTY === true });
  return { face: face === "tty" && NOT_LIVE.has(cmd.name()) ? "plain" : face, verbosity } as const;
}

/** Loads what the command's face needs (main.ts's preAction hook, before startReporter). */
export async function prepareReporter(cmd: Command): Promise<void> {
  if (faceFor(cmd).face === "tty") await loadLiveFace();
}

/**
 * The one reporter of this run, its face chosen from the flags and the terminal once, before
 * the command runs (main.ts's preAction hook); the top-level catch reports through it. A
 * warning while flags are still parsed gets plain lines: the live face is not loaded yet.
 */
export function startReporter(cmd: Command): Reporter {
  const { face, verbosity } = faceFor(cmd);
  active?.close();
  active = createReporter({ face: face === "tty" && !liveFaceLoaded() ? "plain" : face, verbosity });
  return active;
}

/** The reporter startReporter made, if the command line got that far. */
export function activeReporter(): Reporter | undefined {
  return active;
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
    reporter: active ?? startReporter(cmd),
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
