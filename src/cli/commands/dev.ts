/**
 * snapdeploy dev: deploy, then watch the tree and live-update or redeploy on each
 * change, with the targets' logs and optionally a forwarded port. Keys on a terminal:
 * r rebuild and redeploy, q quit. Quitting (q or Ctrl-C) leaves the targets as the last
 * good deploy left them: a rollout in flight is rolled back to the previous images.
 */
import type { Command } from "commander";
import { UserError } from "../../errors.js";
import { commandContext } from "../context.js";
import { addBuildOptions } from "./build.js";
import { addTargetOptions, deployOnce, targetChoice } from "./deploy.js";
import { duration, portPair } from "../flags.js";

export function registerDev(program: Command) {
  addTargetOptions(
    addBuildOptions(
      program
        .command("dev")
        .description(
          "deploy, then on every change live-update the running containers (dev.sync) or rebuild and roll out",
        ),
    ),
  )
    .option(
      "--timeout <duration>",
      "how long to wait for each rollout: 300, 90s, 5m, 1h30m (default: deploy.timeout, 5m)",
      duration(),
    )
    .option("--port <LOCAL:REMOTE>", "forward a local port to a ready pod of the first target", portPair)
    .option("--no-logs", "do not stream the targets' logs")
    .action(async (opts, cmd: Command) => {
      const [{ forwardPort }, { startLoop }, { podSetOf }, { resolveTargets }, { followLogs }] =
        await Promise.all([
          import("../../pods/forward.js"),
          import("../../dev/loop.js"),
          import("../../pods/sets.js"),
          import("../../pipeline/deploy-input.js"),
          import("../../logs/follow.js"),
        ]);
      const port = opts.port as ReturnType<typeof portPair> | undefined;
      const c = await commandContext(cmd);
      const named = (opts.target as string[]).length > 0 || c.config.deploy.targets.length > 0;
      if (c.config.deploy.manifests && !named)
        throw new UserError("usage", "dev rolls targets (-t or deploy.targets), not deploy.manifests", {
          hint: "name the workloads with -t deployment/NAME, or list them in deploy.targets",
        });
      const [kc, cluster] = await Promise.all([c.kube(), c.access()]);
      const targets = await resolveTargets(kc, targetChoice(c, opts));
      // Every deploy of the loop patches exactly these (deploy.manifests, if set, is not applied).
      const target = targets.map((t) => `${t.kind.toLowerCase()}/${t.name}:${t.containers.join(",")}`);
      const sets = targets.map(podSetOf);
      const { ANNOTATION } = await import("../../deploy/patch.js");
      const say = (line: string) => process.stderr.write(`[dev] ${line}\n`);

      const loop = await startLoop({
        root: c.dir,
        rules: c.config.dev,
        dockerfile: (opts.dockerfile as string | undefined) ?? c.config.image.dockerfile,
        kc,
        cluster,
        events: {
          say,
          failed: (e) => {
            const msg = e instanceof Error ? e.message : String(e);
            say(`failed: ${msg}`);
            if (e instanceof UserError) {
              for (const d of e.details ?? []) say(`  ${d}`);
              if (e.hint) say(`  hint: ${e.hint}`);
            }
            say("watching for the next change");
          },
          deployed: (d) => say(`running snapshot ${d.snapshot.slice(0, 12)}; watching ${c.dir} for changes`),
        },
        deploy: async (signal, force) => {
          const r = await deployOnce(
            c,
            {
              ...opts,
              target,
              restart: force,
              rollbackOnFailure: true,
              manifests: undefined,
              personal: false,
            },
            { signal, rollbackOnInterrupt: true },
          );
          if (r.noop)
            say(`up to date: ${r.targets.join(", ")} already run snapshot ${r.snapshot.slice(0, 12)}`);
          if (!r.snapshot) throw new UserError("internal", "the deploy named no snapshot");
          return { snapshot: r.snapshot, snapshotAnnotation: ANNOTATION.snapshot, sets };
        },
      });

      const logs = opts.logs
        ? await followLogs(kc, sets, {
            follow: true,
            tail: 20,
            write: (line) => process.stdout.write(`${line}\n`),
            onError: (e) => say(`logs: ${e.message}`),
          })
        : undefined;
      let forward: Awaited<ReturnType<typeof forwardPort>> | undefined;
      let podsForForward:
        | Awaited<ReturnType<typeof import("../../pods/watch.js").watchContainers>>
        | undefined;
      if (port && sets[0]) {
        const { watchContainers } = await import("../../pods/watch.js");
        podsForForward = await watchContainers(kc, { ...sets[0], containers: [] }, { onRunning: () => {} });
        const pods = podsForForward;
        forward = await forwardPort(cluster, {
          ...port,
          pods: () => pods.current(),
          onError: (e) => say(`port-forward: ${e.message}`),
        });
        say(`forwarding 127.0.0.1:${forward.port} -> ${port.remotePort}`);
      }

      const quit = await waitForQuit(loop.redeploy, say);
      say(quit === "interrupted" ? "interrupted: stopping" : "stopping");
      await loop.close();
      logs?.close();
      podsForForward?.close();
      await forward?.close();
      if (quit === "interrupted") throw new UserError("interrupted", "dev stopped by Ctrl-C");
    });
}

/** Resolves on q (or stdin's end) or Ctrl-C; r asks for a redeploy. Keys only on a terminal. */
function waitForQuit(
  redeploy: (reason: string) => void,
  say: (l: string) => void,
): Promise<"quit" | "interrupted"> {
  return new Promise((resolve) => {
    const stdin = process.stdin;
    const done = (how: "quit" | "interrupted") => {
      process.off("SIGINT", onSigint);
      process.off("SIGTERM", onSigint);
      if (stdin.isTTY) stdin.setRawMode(false);
      stdin.pause();
      resolve(how);
    };
    const onSigint = () => done("interrupted");
    process.once("SIGINT", onSigint);
    process.once("SIGTERM", onSigint);
    if (stdin.isTTY) {
      stdin.setRawMode(true);
      stdin.resume();
      say("keys: r rebuild and redeploy, q quit");
      stdin.on("data", (d: Buffer) => {
        const k = d.toString("utf8");
        if (k === "q") done("quit");
        else if (k === "\u0003") done("interrupted");
        else if (k === "r") redeploy("r pressed");
      });
    }
  });
}
