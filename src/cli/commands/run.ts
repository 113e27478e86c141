/**
 * snapdeploy run: build the snapshot (or take --image), then run one command in a Job made
 * from a workload's pod template, so it sees the workload's data and settings. Follows the
 * output and exits with the command's exit code, or with --detach prints the Job's name.
 */
import type { Command } from "commander";
import { checkQuantity, parseEnv } from "../../run/job.js";
import { UserError } from "../../errors.js";
import { addBuildOptions, runBuild } from "./build.js";
import { commandContext } from "../context.js";
import { addNamespaceOptions, targetText } from "./deploy.js";
import { checked, duration, keyValue, repeatable } from "../flags.js";

const quantity = (flag: string) => checked((v) => checkQuantity(v, flag));

export function registerRun(program: Command) {
  const cmd = program
    .command("run")
    .usage("[options] -- COMMAND [ARGS...]")
    .description(
      "run a command once with the snapshot, in a Job made from a workload's pod template " +
        "(same env, volumes, service account, scheduling); exits with the command's exit code",
    )
    .argument("[command...]", "the command and its arguments, after --")
    .option(
      "-t, --target <workload>",
      "[deployment/|statefulset/]NAME[:container] whose pod template to use (default: the first of deploy.targets)",
      checked(targetText),
    )
    .option("--image <ref>", "run this image instead of building the working tree")
    .option("--cpu <quantity>", "CPU request and limit, e.g. 2 or 500m", quantity("--cpu"))
    .option("--memory <quantity>", "memory request and limit, e.g. 4Gi", quantity("--memory"))
    .option(
      "--env <KEY=VALUE>",
      "set an environment variable, replacing the workload's (repeatable)",
      repeatable(keyValue),
      [],
    )
    .option("--detach", "print the Job's name and return instead of following it")
    .option(
      "--ttl <duration>",
      "keep the finished Job and its logs this long: 0, 300, 90s, 5m, 1h30m",
      duration(0, Number.MAX_SAFE_INTEGER),
      3600,
    )
    .option(
      "--start-timeout <duration>",
      "how long the pod may take to start: 300, 90s, 5m (default: deploy.timeout)",
      duration(),
    );
  addBuildOptions(addNamespaceOptions(cmd, "the workload and the Job")).action(
    async (command: string[], opts, self: Command) => {
      const c = await commandContext(self);
      if (!command.length) {
        throw new UserError("usage", "no command given", {
          hint: "put it after --, e.g. snapdeploy run -- python backtest.py --days 30",
        });
      }
      const env = parseEnv(opts.env as string[]);
      const { cpu, memory } = opts as { cpu?: string; memory?: string };
      const ttlSeconds = opts.ttl as number;
      const startTimeoutSeconds = (opts.startTimeout as number | undefined) ?? c.config.deploy.timeout;

      const [{ resolveRunTarget, runSnapshot, runTargetSpec }, { resolveUser }] = await Promise.all([
        import("../../pipeline/run.js"),
        import("../../config/user.js"),
      ]);
      const spec = runTargetSpec(opts.target, c.config.deploy.targets);
      const kc = await c.kube();
      // Before building: a wrong target should not cost a build.
      const where = await resolveRunTarget(kc, spec, opts.namespace, c.config.deploy.namespace);
      const namespace = where.namespace;

      let image = opts.image as string | undefined;
      if (!image) {
        const built = await runBuild(c, opts);
        image = `${built.ref.replace(/:[^:/]+$/, "")}@${built.digest}`;
      }
      const detach = Boolean(opts.detach);
      const { name, exit } = await runSnapshot(
        kc,
        {
          ...where,
          image,
          command,
          user: resolveUser({
            flag: opts.user,
            config: c.config.user,
            kubeUser: kc.getCurrentUser() ?? undefined,
          }),
          cpu,
          memory,
          env,
          ttlSeconds,
          startTimeoutSeconds,
          detach,
          output: process.stdout,
        },
        c.reporter,
      );
      if (detach) {
        c.reporter.result(name, { job: name, namespace, image });
        return;
      }
      if (exit && exit.code !== 0) {
        // Not a snapdeploy failure: the command's own code is passed on, with one line saying whose it is.
        const why = exit.reason ? ` (${exit.reason}${exit.message ? `: ${exit.message}` : ""})` : "";
        c.reporter.info(`job ${name}: command exited with code ${exit.code}${why}`);
        process.exitCode = exit.code;
      }
    },
  );
}
