/**
 * snapdeploy run: build the snapshot (or take --image), then run one command in a Job made
 * from a workload's pod template, so it sees the workload's data and settings. Follows the
 * output and exits with the command's exit code, or with --detach prints the Job's name.
 * Whose exit code it is: EXIT_CODES below, also shown by `snapdeploy run --help`.
 */
import type { Command } from "commander";
import { type IndexedOutcome, outcomeText } from "../../run/indexes.js";
import { checkQuantity, fanOut, MAX_INDEXES, parseEnv } from "../../run/job.js";
import { ExitCode, isUserError, UserError } from "../../errors.js";
import { addBuildOptions, runBuild } from "./build.js";
import { addNamespaceOptions, targetText } from "./deploy.js";
import { type CommandContext, commandContext } from "../context.js";
import { checked, duration, keyValue, repeatable, wholeNumber } from "../flags.js";

/** How a caller tells the command's exit code from snapdeploy's own (README, `run --help`). */
const EXIT_CODES = `
Exit codes:
  Until the command starts (build, Job, pod start), a failure exits with snapdeploy's own
  code (2 usage, 3 cluster, 5 not found, 8 build, 10 cannot start, 11 start timeout, ...)
  and an "error:" line on stderr. Once the command runs, its own exit code is passed on,
  and a non-zero one is named on stderr: "job NAME: command exited with code N". Only
  losing the command after it started (its pod deleted, the API server gone, Ctrl-C: 130)
  exits with snapdeploy's code, again with an "error:" line.
  With -o json, the "result" event on stdout has "exitCodeFrom" ("command" or "snapdeploy",
  then followed by the "error" event) and "exitCode"; the command's output goes to stderr.
  With --parallel/--completions, the exit code is that of the lowest-numbered failed index
  (0 when all succeeded), and stderr names every failed index with its code: "job NAME: 2 of 6
  indices failed: index 1 exited with code 2, index 4 exited with code 3". The start timeout
  and its codes (10, 11) apply until the first index starts. In JSON, "indices" lists each
  index's "status" and "exitCode", "failed" the failed ones.`;

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
    .addHelpText("after", EXIT_CODES)
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
    .option(
      "--parallel <n>",
      `an Indexed Job: up to N pods at once (1-${MAX_INDEXES}), each with its index in JOB_COMPLETION_INDEX, output prefixed [INDEX]`,
      wholeNumber(1, MAX_INDEXES),
    )
    .option(
      "--completions <m>",
      `how many indices (0 to M-1) to run, 1-${MAX_INDEXES} (default: --parallel's N; alone: all M at once)`,
      wholeNumber(1, MAX_INDEXES),
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
      const json = c.flags.output === "json";
      try {
        if (!command.length) {
          throw new UserError("usage", "no command given", {
            hint: "put it after --, e.g. snapdeploy run -- python backtest.py --days 30",
          });
        }
        const env = parseEnv(opts.env as string[]);
        const { cpu, memory } = opts as { cpu?: string; memory?: string };
        const ttlSeconds = opts.ttl as number;
        const startTimeoutSeconds = (opts.startTimeout as number | undefined) ?? c.config.deploy.timeout;
        const fan = fanOut(opts.parallel as number | undefined, opts.completions as number | undefined);

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
        const { name, exit, indexed } = await runSnapshot(
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
            fanOut: fan,
            // In JSON, stdout is the result document alone: the command's output goes to stderr.
            output: json ? process.stderr : process.stdout,
          },
          c.reporter,
        );
        if (detach) {
          c.reporter.result(name, {
            job: name,
            namespace,
            image,
            ...(fan ? { parallelism: fan.parallelism, completions: fan.completions } : {}),
          });
          return;
        }
        if (indexed) {
          renderIndexed(c, { job: name, namespace, image }, indexed);
          return;
        }
        const code = exit?.code ?? 0;
        if (code !== 0) {
          // Not a snapdeploy failure: the command's own code is passed on, with one line saying whose it is.
          const why = exit?.reason ? ` (${exit.reason}${exit.message ? `: ${exit.message}` : ""})` : "";
          c.reporter.info(`job ${name}: command exited with code ${code}${why}`);
          process.exitCode = code;
        }
        if (json)
          c.reporter.result("", {
            job: name,
            namespace,
            image,
            exitCode: code,
            exitCodeFrom: "command",
            ...(exit?.reason ? { reason: exit.reason, message: exit.message } : {}),
          });
      } catch (e) {
        // Whose code it is, in JSON; in plain text, the "error:" line on stderr says it is snapdeploy's.
        if (json)
          c.reporter.result("", {
            exitCode: isUserError(e) ? e.exitCode : ExitCode.internal,
            exitCodeFrom: "snapdeploy",
            error: (e as Error).message,
          });
        throw e;
      }
    },
  );
}

/** The outcome of an Indexed run: the summary line (stderr), the exit code, the JSON document. */
function renderIndexed(
  c: CommandContext,
  doc: { job: string; namespace: string; image: string },
  outcome: IndexedOutcome,
) {
  const text = `job ${doc.job}: ${outcomeText(outcome)}`;
  if (outcome.exitCode === undefined) {
    // No failed index has an exit code of its own to pass on: the run was lost around them.
    throw new UserError("rollout", text, {
      hint: `see the pods: kubectl -n ${doc.namespace} get pods -l job-name=${doc.job}`,
    });
  }
  c.reporter.info(text);
  if (outcome.exitCode !== 0) process.exitCode = outcome.exitCode;
  if (c.flags.output === "json")
    c.reporter.result("", {
      ...doc,
      exitCode: outcome.exitCode,
      exitCodeFrom: "command",
      completions: outcome.completions,
      failed: outcome.failed,
      indices: outcome.indices,
    });
}
