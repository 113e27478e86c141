/**
 * The one place that writes to the terminal. Results go to stdout; progress,
 * remote output and errors go to stderr, so `snapdeploy build | xargs ...` works.
 */
import type { Writable } from "node:stream";

export type OutputMode = "plain" | "json";

export interface Reporter {
  /** A progress line for humans (stderr). */
  info(message: string): void;
  /** A line produced on the build server, marked so a reader knows where it ran. */
  remote(line: string): void;
  warn(message: string): void;
  /** The command's result (stdout): plain text, or one JSON document in json mode. */
  result(text: string, data?: unknown): void;
}

export function createReporter(
  opts: { mode?: OutputMode; stdout?: Writable; stderr?: Writable; quiet?: boolean } = {},
): Reporter {
  const out = opts.stdout ?? process.stdout;
  const err = opts.stderr ?? process.stderr;
  const mode = opts.mode ?? "plain";
  return {
    info(message) {
      if (!opts.quiet) err.write(`${message}\n`);
    },
    remote(line) {
      err.write(`REMOTE: ${line}\n`);
    },
    warn(message) {
      err.write(`warning: ${message}\n`);
    },
    result(text, data) {
      if (mode === "json") out.write(`${JSON.stringify(data ?? { result: text })}\n`);
      else out.write(`${text}\n`);
    },
  };
}
