/**
 * What the pipeline tells the reporter while it works: phases with their counts. The
 * pipeline emits these and nothing else; which face shows them (live lines on a terminal,
 * plain lines, JSON events) is the reporter's business (reporter.ts). The Reporter
 * interface every command and stage writes through is here too.
 */

/** The phases of a deploy, in order; `check` is the registry's "already built?". */
export const PHASES = ["scan", "check", "sync", "build", "push", "rollout"] as const;
export type PhaseName = (typeof PHASES)[number];

/** Where a rollout of one target stands, as `kubectl rollout status` reads it. */
export interface Replicas {
  desired: number;
  updated: number;
  ready: number;
}

/** Counts a phase reports while it runs and when it ends; each phase uses its own. */
export interface PhaseCounts {
  /** scan: files found; sync: files sent so far. */
  files?: number;
  /** sync: files to send. */
  totalFiles?: number;
  /** scan: their total size; sync: bytes sent on the wire (at the end) or read so far. */
  bytes?: number;
  /** sync: uncompressed bytes to send. */
  totalBytes?: number;
  /** check: the registry already holds the snapshot (nothing is synced or built). */
  exists?: boolean;
  /** build: the step running now, e.g. "[2/3] RUN npm ci", and its last output line. */
  step?: string;
  output?: string;
  /** build: Dockerfile steps seen, and how many of them came from the layer cache. */
  steps?: number;
  cached?: number;
  /**
   * push: layers pushed (or found in the registry already), as the builder's output names
   * them: `docker push` names each; BuildKit only uploads still running when it prints.
   */
  layers?: number;
  /** rollout: the target this update is about, and where its rollout stands. */
  target?: string;
  replicas?: Replicas;
  /** rollout, at its end: every target's replicas. */
  targets?: Record<string, Replicas>;
}

/** One running phase. Every call is optional after start; end() or fail() closes it once. */
export interface Phase {
  /**
   * New counts; `line` is the progress line plain output prints for it (rollout's
   * "deployment/web: 1 of 2 updated replicas"), which a live face shows in place instead.
   */
  update(counts: PhaseCounts, line?: string): void;
  end(counts?: PhaseCounts): void;
  /** The phase stopped with an error (reported on its own, by the top-level catch). */
  fail(): void;
}

export type OutputMode = "plain" | "json";
export type Face = "tty" | "plain" | "json";
/** quiet: results, warnings and errors only; verbose: everything (the build's whole output). */
export type Verbosity = "quiet" | "normal" | "verbose";

/** A failure as the top-level catch reports it. */
export interface ReportedError {
  exitCode: number;
  message: string;
  /** Supporting evidence, printed indented. */
  details?: string[];
  hint?: string;
  /** With --debug. */
  stack?: string;
}

export interface Reporter {
  readonly face: Face;
  /** A progress line for humans (stderr). */
  info(message: string): void;
  /** A line produced on the build server, marked so a reader knows where it ran. */
  remote(line: string): void;
  warn(message: string): void;
  /** A phase starts; `line` is what plain output prints for its start, if anything. */
  phase(name: PhaseName, line?: string): Phase;
  /**
   * A command's closing line of timings ("built and pushed in 3.1s: ..."): plain output
   * prints it; a live face prints its own summary of the phases instead, once `final`.
   */
  summary(text: string, opts?: { final?: boolean }): void;
  /** The command's result (stdout): plain text, or in json mode a "result" event of `data`. */
  result(text: string, data?: unknown): void;
  /** The failure the command ends with (the top-level catch). */
  error(e: ReportedError): void;
  /** Ends live output; anything still running is left as it is. Safe to call twice. */
  close(): void;
}
