/**
 * The tty face: on a terminal, each running phase is one live line at the bottom of
 * stderr (redrawn in place by log-update), and each finished one a line that stays:
 *   ✔ scan     1234 files, 5.6 MiB                 0.12s
 *   ⠹ build    [2/3] RUN npm ci                    3.1s
 *              added 120 packages in 2s
 * The build server's output is condensed to the current step; the whole of it goes to a
 * file (RemoteLog), whose tail and path a failure prints. A command ends with one line
 * of phase timings, bytes sent and cache hits. --verbose prints the remote lines too.
 */
import { createLogUpdate } from "log-update";
import { styleText } from "node:util";
import type { Face, Phase, PhaseCounts, PhaseName, ReportedError } from "./events.js";
import { bytes, count, countsText, seconds } from "./format.js";
import { type FaceOptions, PlainReporter } from "./plain.js";
import { RemoteLog } from "./remote-log.js";

const SPINNER = ["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"];
const FRAME_MS = 100;
/** A sync bigger than this gets a progress bar. */
const BAR_FROM = 4 * 1024 * 1024;
const BAR_WIDTH = 20;
/** Lines of the build server's output a failure shows when the error carries none. */
const TAIL = 15;

interface Running {
  name: PhaseName;
  label?: string;
  t0: number;
  counts: PhaseCounts;
  /** Rollout: each target's latest progress. */
  targets: Map<string, string>;
}

interface Finished {
  name: PhaseName;
  seconds: number;
  counts: PhaseCounts;
  failed: boolean;
}

type Style = "green" | "red" | "yellow" | "cyan" | "dim" | "bold";

export class LiveReporter extends PlainReporter {
  override readonly face: Face = "tty";
  private readonly live: ReturnType<typeof createLogUpdate>;
  private readonly running: Running[] = [];
  private finished: Finished[] = [];
  private since = performance.now();
  private timer: NodeJS.Timeout | undefined;
  private tick = 0;
  private readonly color: boolean;
  private readonly log: RemoteLog;

  constructor(o: FaceOptions) {
    super(o);
    this.live = createLogUpdate(o.stderr as NodeJS.WriteStream, { showCursor: true });
    const tty = o.stderr as Partial<NodeJS.WriteStream>;
    this.color = o.color ?? (!process.env.NO_COLOR && typeof tty.hasColors === "function" && tty.hasColors());
    this.log = new RemoteLog(o.logDir);
  }

  private paint(style: Style, text: string): string {
    return this.color ? styleText(style, text) : text;
  }

  /** A line that stays, written above the live lines. */
  private line(text: string): void {
    this.live.clear();
    this.err.write(`${text}\n`);
    this.render();
  }

  override info(message: string): void {
    this.line(message);
  }

  override warn(message: string): void {
    this.line(this.paint("yellow", `warning: ${message}`));
  }

  override remote(line: string): void {
    this.log.write(line);
    if (this.verbosity === "verbose") this.line(this.paint("dim", `REMOTE: ${line}`));
  }

  override phase(name: PhaseName, label?: string): Phase {
    const r: Running = { name, label, t0: performance.now(), counts: {}, targets: new Map() };
    this.running.push(r);
    this.start();
    let open = true;
    const close = (failed: boolean, counts?: PhaseCounts) => {
      if (!open) return;
      open = false;
      const i = this.running.indexOf(r);
      if (i >= 0) this.running.splice(i, 1);
      const done: Finished = {
        name,
        seconds: (performance.now() - r.t0) / 1000,
        counts: { ...r.counts, ...counts },
        failed,
      };
      this.finished.push(done);
      this.line(this.finishedLine(done));
      if (!this.running.length) this.stop();
    };
    return {
      update: (counts, progress) => {
        if (!open) return;
        Object.assign(r.counts, counts);
        if (counts.target && progress) r.targets.set(counts.target, progress);
      },
      end: (counts) => close(false, counts),
      fail: () => close(true),
    };
  }

  override summary(text: string, opts: { final?: boolean } = {}): void {
    if (opts.final === false) return;
    const total = (performance.now() - this.since) / 1000;
    const phases = this.finished;
    this.finished = [];
    this.since = performance.now();
    if (!phases.length) {
      this.line(text);
      return;
    }
    this.line(this.paint("bold", summaryLine(phases, total)));
  }

  override result(text: string, data?: unknown): void {
    this.live.clear();
    super.result(text, data);
    this.render();
  }

  override error(e: ReportedError): void {
    for (const r of [...this.running]) this.failRunning(r);
    this.stop();
    const tail = this.log.path && !e.details?.length ? this.log.tail(TAIL) : [];
    for (const l of tail) this.err.write(this.paint("dim", `REMOTE: ${l}\n`));
    super.error(e);
    if (this.log.path) this.err.write(`the build server's whole output: ${this.log.path}\n`);
    this.log.close();
  }

  override close(): void {
    this.stop();
    this.live.clear();
    this.live.done();
    this.log.close();
  }

  private failRunning(r: Running) {
    const i = this.running.indexOf(r);
    if (i >= 0) this.running.splice(i, 1);
    const done = { name: r.name, seconds: (performance.now() - r.t0) / 1000, counts: r.counts, failed: true };
    this.live.clear();
    this.err.write(`${this.finishedLine(done)}\n`);
  }

  private start() {
    if (!this.timer) {
      this.timer = setInterval(() => {
        this.tick++;
        this.render();
      }, FRAME_MS);
      this.timer.unref();
    }
    this.render();
  }

  private stop() {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    this.live.clear();
  }

  private width(): number {
    return Math.max(40, (this.err as Partial<NodeJS.WriteStream>).columns ?? 80);
  }

  private render() {
    if (!this.running.length) return;
    const spin = this.paint("cyan", SPINNER[this.tick % SPINNER.length] as string);
    const lines: string[] = [];
    for (const r of this.running) {
      const [first, ...more] = runningText(r);
      const time = seconds(performance.now() - r.t0);
      lines.push(`${spin} ${this.row(r.name, first ?? "", time)}`);
      for (const m of more) lines.push(this.paint("dim", `  ${pad("", 9)}${fit(m, this.width() - 12)}`));
    }
    this.live(lines.join("\n"));
  }

  /** "name     what                     time", fitted to the terminal's width. */
  private row(name: string, what: string, time: string): string {
    const room = this.width() - 2 - 9 - time.length - 2;
    return `${pad(name, 9)}${pad(fit(what, room), room)}  ${this.paint("dim", time)}`;
  }

  private finishedLine(f: Finished): string {
    const mark = f.failed ? this.paint("red", "✖") : this.paint("green", "✔");
    const what = f.failed ? "failed" : countsText(f.name, f.counts);
    return `${mark} ${this.row(f.name, what, seconds(f.seconds * 1000))}`;
  }
}

/** What a running phase shows: its first line, then any more (the build's last output line). */
export function runningText(r: {
  name: PhaseName;
  label?: string;
  counts: PhaseCounts;
  targets: Map<string, string>;
}): string[] {
  const c = r.counts;
  if (r.name === "sync" && c.totalFiles !== undefined) {
    const done = c.bytes ?? 0;
    const total = c.totalBytes ?? 0;
    const files = `${c.files ?? 0}/${count(c.totalFiles, "file")}`;
    if (total < BAR_FROM) return [`${files}, ${bytes(done)}`];
    const filled = Math.min(BAR_WIDTH, Math.round((done / total) * BAR_WIDTH));
    const pct = Math.floor((done / total) * 100);
    return [
      `[${"#".repeat(filled)}${"-".repeat(BAR_WIDTH - filled)}] ${pct}% ${bytes(done)} of ${bytes(total)}, ${files}`,
    ];
  }
  if (r.name === "build" && c.step) return c.output ? [c.step, c.output] : [c.step];
  if (r.name === "rollout" && r.targets.size) return [...r.targets.values()];
  const counts = countsText(r.name, c);
  return [counts || r.label || "…"];
}

/** "done in 12.3s: scan 0.12s, sync 0.50s, build 8.01s; sent 1.2 MiB; cache: 5 of 7 steps" */
export function summaryLine(phases: Finished[], total: number): string {
  const times = phases.map((p) => `${p.name} ${seconds(p.seconds * 1000)}${p.failed ? " (failed)" : ""}`);
  const parts = [`done in ${seconds(total * 1000)}: ${times.join(", ")}`];
  const sync = phases.filter((p) => p.name === "sync");
  if (sync.length) parts.push(`sent ${bytes(sync.reduce((n, p) => n + (p.counts.bytes ?? 0), 0))}`);
  const hit = phases.some((p) => p.name === "check" && p.counts.exists);
  const builds = phases.filter((p) => p.name === "build" && p.counts.steps !== undefined);
  if (hit) parts.push("cache: the snapshot was already built");
  else if (builds.length) {
    const steps = builds.reduce((n, p) => n + (p.counts.steps ?? 0), 0);
    const cached = builds.reduce((n, p) => n + (p.counts.cached ?? 0), 0);
    parts.push(`cache: ${cached} of ${steps} steps`);
  }
  return parts.join("; ");
}

function pad(s: string, n: number): string {
  return s.length >= n ? s : s + " ".repeat(n - s.length);
}

function fit(s: string, n: number): string {
  if (n <= 1) return "";
  return s.length <= n ? s : `${s.slice(0, n - 1)}…`;
}
