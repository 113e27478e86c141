/**
 * The json face (-o json): stderr gets the plain face's lines, stdout one JSON object per
 * line, each with an "event":
 *   {"event":"phase-start","phase":"scan"}
 *   {"event":"phase-end","phase":"scan","seconds":0.12,"files":1234,"bytes":5678}
 *   {"event":"warning","message":"..."}
 *   {"event":"result", ...the command's result document}
 *   {"event":"error","exitCode":8,"message":"...","hint":"...","details":[...]}
 * A failed phase ends with "failed":true. The result is the last line of a command that
 * succeeds; the error the last line of one that fails (after the phases it interrupted).
 */
import type { Face, PhaseCounts, PhaseName, ReportedError } from "./events.js";
import { type FaceOptions, PlainReporter } from "./plain.js";

export class JsonReporter extends PlainReporter {
  override readonly face: Face = "json";
  /** Phases started and not ended, closed as failed by an error. */
  private readonly running = new Set<() => void>();

  constructor(o: FaceOptions) {
    super(o);
  }

  private emit(event: string, fields: object): void {
    this.out.write(`${JSON.stringify({ event, ...fields })}\n`);
  }

  override warn(message: string): void {
    super.warn(message);
    this.emit("warning", { message });
  }

  override phase(name: PhaseName, line?: string) {
    this.emit("phase-start", { phase: name });
    const inner = super.phase(name, line);
    const fail = () => p.fail();
    const p = {
      update: inner.update,
      end: (counts?: PhaseCounts) => {
        this.running.delete(fail);
        inner.end(counts);
      },
      fail: () => {
        this.running.delete(fail);
        inner.fail();
      },
    };
    this.running.add(fail);
    return p;
  }

  protected override phaseEnded(name: PhaseName, seconds: number, counts: PhaseCounts, failed: boolean) {
    super.phaseEnded(name, seconds, counts, failed);
    const { step: _step, output: _output, target: _target, replicas: _replicas, ...kept } = counts;
    this.emit("phase-end", {
      phase: name,
      seconds: Math.round(seconds * 1000) / 1000,
      ...kept,
      ...(failed ? { failed: true } : {}),
    });
  }

  override result(text: string, data?: unknown): void {
    const doc = data ?? { result: text };
    const fields = typeof doc === "object" && doc !== null && !Array.isArray(doc) ? doc : { result: doc };
    if ("event" in fields) throw new Error('a result document may not have an "event" field');
    this.emit("result", fields);
  }

  override error(e: ReportedError): void {
    for (const fail of [...this.running]) fail();
    super.error(e);
    this.emit("error", {
      exitCode: e.exitCode,
      message: e.message,
      ...(e.hint ? { hint: e.hint } : {}),
      ...(e.details?.length ? { details: e.details } : {}),
    });
  }
}
