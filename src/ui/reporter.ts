/**
 * The one place that writes to the terminal. Results go to stdout; progress,
 * remote output and errors go to stderr, so `snapdeploy build | xargs ...` works.
 *
 * One Reporter, with one of three faces chosen once at startup (chooseFace):
 * - plain: lines, greppable; remote (build server) lines prefixed "REMOTE: ".
 * - tty: live progress per phase on a terminal, a closing summary; the build
 *   server's output condensed to the current step, kept whole in a file (live.ts).
 * - json: plain lines on stderr, and on stdout one JSON object per line: phases,
 *   warnings, the result (last), or the error with its exit code (json.ts).
 */
import type { Writable } from "node:stream";
import type { Face, OutputMode, Reporter, Verbosity } from "./events.js";
import { JsonReporter } from "./json.js";
import type { LiveReporter } from "./live.js";
import { PlainReporter } from "./plain.js";

export type {
  Face,
  OutputMode,
  Phase,
  PhaseCounts,
  PhaseName,
  ReportedError,
  Reporter,
  Verbosity,
} from "./events.js";

export interface ReporterOptions {
  face?: Face;
  verbosity?: Verbosity;
  stdout?: Writable;
  stderr?: Writable;
  /** Where a live face keeps the build server's whole output (default: the cache folder). */
  logDir?: string;
  /** A live face's colours (default: when the terminal has them and NO_COLOR is unset). */
  color?: boolean;
}

/**
 * Which face: json for -o json; live progress only on a terminal (stderr), outside CI,
 * and not with --quiet; plain lines otherwise.
 */
export function chooseFace(opts: {
  output?: OutputMode;
  verbosity?: Verbosity;
  stderrIsTTY: boolean;
  env?: NodeJS.ProcessEnv;
}): Face {
  if (opts.output === "json") return "json";
  const env = opts.env ?? process.env;
  const ci = env.CI !== undefined && env.CI !== "" && env.CI !== "0" && env.CI !== "false";
  if (!opts.stderrIsTTY || ci || env.TERM === "dumb" || opts.verbosity === "quiet") return "plain";
  return "tty";
}

let Live: typeof LiveReporter | undefined;

/**
 * Loads the live face (live.ts and log-update with its kin, about a third of the CLI's
 * start-up code): only a terminal needs it, so pipes, CI and -o json never load it.
 */
export async function loadLiveFace(): Promise<void> {
  Live ??= (await import("./live.js")).LiveReporter;
}

export const liveFaceLoaded = () => Live !== undefined;

/** A reporter with this face; the tty face needs loadLiveFace() first. */
export function createReporter(opts: ReporterOptions = {}): Reporter {
  const o = {
    stdout: opts.stdout ?? process.stdout,
    stderr: opts.stderr ?? process.stderr,
    verbosity: opts.verbosity ?? "normal",
    logDir: opts.logDir,
    color: opts.color,
  };
  const face = opts.face ?? "plain";
  if (face === "json") return new JsonReporter(o);
  if (face === "tty") {
    if (!Live) throw new Error("the live face is used before loadLiveFace()");
    return new Live(o);
  }
  return new PlainReporter(o);
}
