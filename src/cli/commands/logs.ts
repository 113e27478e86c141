/** snapdeploy logs [-f] and snapdeploy port-forward LOCAL:REMOTE, for the deploy targets. */
import type { Command } from "commander";
import { UserError } from "../../errors.js";
import { type CommandContext, commandContext } from "../context.js";
import { addTargetOptions, targetChoice } from "./deploy.js";
import { duration, ipAddress, portPair, wholeNumber } from "../flags.js";

async function targetPodSets(c: CommandContext, opts: Record<string, unknown>) {
  const [{ resolveTargets }, { podSetOf }, kc] = await Promise.all([
    import("../../pipeline/deploy-input.js"),
    import("../../pods/sets.js"),
    c.kube(),
  ]);
  const targets = await resolveTargets(kc, targetChoice(c, opts));
  return { kc, targets, sets: targets.map(podSetOf) };
}

export function registerLogs(program: Command) {
  addTargetOptions(
    program
      .command("logs")
      .description("logs of every pod and container of the targets, each line prefixed pod/container"),
  )
    .option("-f, --follow", "keep streaming, including pods and restarts that come later")
    .option(
      "--since <duration>",
      "only lines newer than this: 300, 30s, 5m, 1h30m",
      duration(1, Number.MAX_SAFE_INTEGER),
    )
    .option("--tail <lines>", "lines from the end of each container's log", wholeNumber(0))
    .action(async (opts, cmd: Command) => {
      const since = opts.since as number | undefined;
      const tail = opts.tail as number | undefined;
      const c = await commandContext(cmd);
      const [{ followLogs }, { kc, sets }] = await Promise.all([
        import("../../logs/follow.js"),
        targetPodSets(c, opts),
      ]);
      const f = await followLogs(kc, sets, {
        follow: Boolean(opts.follow),
        sinceSeconds: since,
        tail,
        write: (line) => process.stdout.write(`${line}\n`),
        onError: (e) => c.reporter.warn(e.message),
      });
      process.once("SIGINT", () => f.close());
      await f.done;
    });

  addTargetOptions(
    program
      .command("port-forward")
      .description("forward LOCAL:REMOTE (or PORT) to a ready pod of the target, following pod replacements")
      .argument("<ports>", "LOCAL:REMOTE, or PORT for both (LOCAL 0: any free port)", portPair),
  )
    .option("--address <ip>", "local address to listen on", ipAddress, "127.0.0.1")
    .action(async (pair: ReturnType<typeof portPair>, opts, cmd: Command) => {
      const [{ forwardPort }, { watchContainers }] = await Promise.all([
        import("../../pods/forward.js"),
        import("../../pods/watch.js"),
      ]);
      const c = await commandContext(cmd);
      const [{ kc, sets }, cluster] = await Promise.all([targetPodSets(c, opts), c.access()]);
      const first = sets[0];
      if (!first) throw new UserError("usage", "no target to forward to");
      if (sets.length > 1) c.reporter.warn(`forwarding to the first target only (${first.selector})`);
      const pods = await watchContainers(kc, { ...first, containers: [] }, { onRunning: () => {} });
      const fwd = await forwardPort(cluster, {
        address: opts.address,
        ...pair,
        pods: () => pods.current(),
        onConnection: (pod) => c.reporter.info(`connection to ${pod}:${pair.remotePort}`),
        onError: (e) => c.reporter.warn(e.message),
      });
      c.reporter.info(`forwarding ${opts.address}:${fwd.port} -> ${pair.remotePort} (Ctrl-C to stop)`);
      c.reporter.result(`${opts.address}:${fwd.port}`, {
        address: opts.address,
        port: fwd.port,
        remotePort: pair.remotePort,
      });
      await new Promise<void>((resolve) => process.once("SIGINT", resolve));
      pods.close();
      await fwd.close();
    });
}
