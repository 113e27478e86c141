/**
 * The plain face: one line per event on stderr, results on stdout. What a pipe, a log
 * file or CI gets; the wording of these lines is what scripts grep for, so it stays.
 * --quiet keeps results, warnings and errors; --verbose adds a line per finished phase.
 */
import type { Writable } from "node:stream";
import type { Face, Phase, PhaseCounts, PhaseName, ReportedError, Reporter, Verbosity } from "./events.js";
import { phaseText } from "./format.js";

export interface FaceOptions {
  stdout: Writable;
  stderr: Writable;
  verbosity: Verbosity;
  logDir?: string;
  color?: boolean;
}

export class PlainReporter implements Reporter {
  readonly face: Face = "plain";
  protected readonly out: Writable;
  protected readonly err: Writable;
  protected readonly verbosity: Verbosity;

  constructor(o: FaceOptions) {
    this.out = o.stdout;
    this.err = o.stderr;
    this.verbosity = o.verbosity;
  }

  protected get quiet(): boolean {
    return this.verbosity === "quiet";
  }

  info(message: string): void {
    if (!this.quiet) this.err.write(`${message}\n`);
  }

  remote(line: string): void {
    if (!this.quiet) this.err.write(`REMOTE: ${line}\n`);
  }

  warn(message: string): void {
    this.err.write(`warning: ${message}\n`);
  }

  phase(name: PhaseName, line?: string): Phase {
    if (line) this.info(line);
    const t0 = performance.now();
    let open = true;
    const close = (failed: boolean, counts: PhaseCounts = {}) => {
      if (!open) return;
      open = false;
      const seconds = (performance.now() - t0) / 1000;
      this.phaseEnded(name, seconds, counts, failed);
    };
    return {
      update: (_counts, progress) => {
        if (open && progress) this.info(progress);
      },
      end: (counts) => close(false, counts),
      fail: () => close(true),
    };
  }

  /** A phase ended: one line with --verbose. */
  protected phaseEnded(name: PhaseName, seconds: number, counts: PhaseCounts, failed: boolean): void {
    if (this.verbosity === "verbose")
      this.err.write(
        `phase ${name} ${failed ? "failed after" : "done in"} ${phaseText(name, seconds, counts)}\n`,
      );
  }

  summary(text: string): void {
    this.info(text);
  }

  result(text: string, _data?: unknown): void {
    this.out.write(`${text}\n`);
  }

  error(e: ReportedError): void {
    this.err.write(`error: ${e.message}\n`);
    for (const d of e.details ?? []) this.err.write(`  ${d}\n`);
    if (e.hint) this.err.write(`hint: ${e.hint}\n`);
    if (e.stack) this.err.write(`${e.stack}\n`);
  }

  close(): void {}
}
