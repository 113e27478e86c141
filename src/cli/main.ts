/**
 * Entry point: parses flags, runs one command, and maps every failure to a
 * message and an exit code in one place.
 */
import { Command, CommanderError, Help, Option } from "commander";
import { registerBuild } from "./commands/build.js";
import { registerRun } from "./commands/run.js";
import { registerDeploy } from "./commands/deploy.js";
import { registerDev } from "./commands/dev.js";
import { registerGc } from "./commands/gc.js";
import { registerInit } from "./commands/init.js";
import { registerLogs } from "./commands/logs.js";
import { registerServer } from "./commands/server.js";
import { registerSync } from "./commands/sync.js";
import { ExitCode, isUserError } from "../errors.js";
import { checkProjectPaths, existing } from "./flags.js";
import { activeReporter, prepareReporter, startReporter } from "./context.js";
import { createReporter, type Reporter } from "../ui/reporter.js";
import { Writable } from "node:stream";
import { VERSION } from "../version.js";

/**
 * An option's help line: commander's, without its "(default: …)" where that says nothing
 * (an empty list) or the description already names the default.
 */
function optionDescription(this: Help, option: Option): string {
  const quiet =
    (Array.isArray(option.defaultValue) && option.defaultValue.length === 0) ||
    /\bdefault\b/.test(option.description);
  const shown = quiet
    ? Object.assign(Object.create(Object.getPrototypeOf(option) as object) as Option, option, {
        defaultValue: undefined,
        defaultValueDescription: undefined,
      })
    : option;
  return Help.prototype.optionDescription.call(this, shown);
}

export function buildProgram(): Command {
  const program = new Command("snapdeploy")
    .description(
      "Snapshot deploys on Kubernetes: sync your working tree to an in-cluster build server, " +
        "build the image there, and roll your workloads to it.",
    )
    .version(VERSION, "-V, --version")
    .option("--debug", "print stack traces and protocol details")
    .option(
      "--kubeconfig <path>",
      "kubeconfig file (default: $KUBECONFIG, its files merged as kubectl does, or ~/.kube/config)",
      existing("file"),
    )
    .option("--context <name>", "kubeconfig context (default: the current context)")
    .option("-C, --dir <path>", "the project folder (default: the current folder)", existing("folder"))
    .addOption(
      new Option(
        "-o, --output <mode>",
        "plain lines, or JSON events on stdout, one per line (phases, warnings; the result or the error last)",
      )
        .choices(["plain", "json"])
        .default("plain"),
    )
    .addOption(new Option("-q, --quiet", "print only results, warnings and errors").conflicts("verbose"))
    .option("-v, --verbose", "print everything: each phase's counts, the build server's whole output")
    .configureHelp({ optionDescription })
    .showHelpAfterError()
    .exitOverride()
    // The output's face is chosen once, before the command runs; paths relative to the
    // project folder are checked once -C is known.
    .hook("preAction", async (_program, action) => {
      await prepareReporter(action);
      startReporter(action);
      checkProjectPaths(action);
    });
  registerInit(program);
  registerServer(program);
  registerSync(program);
  registerBuild(program);
  registerDeploy(program);
  registerRun(program);
  registerDev(program);
  registerLogs(program);
  registerGc(program);
  for (const c of program.commands) inheritExitOverride(c);
  return program;
}

export async function main(argv: string[]): Promise<void> {
  const program = buildProgram();
  const debug = argv.includes("--debug");
  try {
    await program.parseAsync(argv, { from: "user" });
  } catch (e) {
    process.exitCode = reportError(e, debug, activeReporter() ?? earlyReporter(program, e));
  } finally {
    activeReporter()?.close();
  }
}

/**
 * Reports a failure through the reporter (stderr; with -o json also the "error" event on
 * stdout) and returns the exit code it maps to.
 */
export function reportError(e: unknown, debug: boolean, reporter: Reporter): number {
  if (e instanceof CommanderError) {
    // --help and --version end here too, with exit code 0; commander already printed.
    if (e.exitCode === 0) return ExitCode.ok;
    // Commander printed the message; in JSON it is the error event too.
    if (reporter.face === "json")
      reporter.error({ exitCode: ExitCode.usage, message: e.message.replace(/^error: /, "") });
    return ExitCode.usage;
  }
  if (isUserError(e)) {
    reporter.error({
      exitCode: e.exitCode,
      message: e.message,
      details: e.details,
      hint: e.hint,
      stack: debug ? e.stack : undefined,
    });
    return e.exitCode;
  }
  const err = e instanceof Error ? e : new Error(String(e));
  reporter.error({
    exitCode: ExitCode.internal,
    message: `unexpected failure: ${err.message}`,
    hint: debug ? undefined : "run again with --debug for details",
    stack: debug ? err.stack : undefined,
  });
  return ExitCode.internal;
}

/**
 * A failure before any command ran (a bad flag): -o json, if parsed that far, still gets
 * its error event; otherwise plain lines. Commander already wrote the usage error to stderr.
 */
function earlyReporter(program: Command, e: unknown): Reporter {
  if (program.opts().output !== "json") return createReporter();
  if (!(e instanceof CommanderError)) return createReporter({ face: "json" });
  // Only the event: stderr already has commander's line.
  return createReporter({ face: "json", stderr: new Writable({ write: (_c, _e, cb) => cb() }) });
}

/** Subcommands report usage errors through the same single catch as everything else. */
function inheritExitOverride(c: Command) {
  c.exitOverride();
  for (const sub of c.commands) inheritExitOverride(sub);
}
