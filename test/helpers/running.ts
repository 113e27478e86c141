/** A CLI left running (dev, logs -f, port-forward) whose output a test awaits line by line. */
import { type ChildProcess, spawn } from "node:child_process";
import { CLI, eventually } from "./cluster.js";

export interface RunningCli {
  child: ChildProcess;
  out: { stdout: string; stderr: string };
  /** Waits for `re` in stderr or stdout after what the previous waits consumed of it. */
  waitFor(re: RegExp, ms?: number): Promise<RegExpMatchArray>;
}

/** Starts the CLI with `args`; the child is added to `children`, which the caller kills after. */
export function startCli(args: string[], children: ChildProcess[]): RunningCli {
  const child = spawn(process.execPath, [CLI, ...args], { stdio: ["pipe", "pipe", "pipe"] });
  children.push(child);
  const out = { stdout: "", stderr: "" };
  child.stdout.on("data", (d) => {
    out.stdout += d;
  });
  child.stderr.on("data", (d) => {
    out.stderr += d;
  });
  // Each stream is read on from where the previous wait's match in it ended: one offset into
  // stderr+stdout would move as stderr grows, and hide a later stderr line.
  const mark = { stderr: 0, stdout: 0 };
  return {
    child,
    out,
    async waitFor(re: RegExp, ms = 90_000): Promise<RegExpMatchArray> {
      const m = await eventually(
        `${re} in the output`,
        async () => {
          for (const stream of ["stderr", "stdout"] as const) {
            const hit = re.exec(out[stream].slice(mark[stream]));
            if (hit) {
              mark[stream] += (hit.index ?? 0) + hit[0].length;
              return hit;
            }
          }
          return undefined;
        },
        ms,
      ).catch((e: Error) => {
        throw new Error(
          `${e.message}\n--- stderr ---\n${out.stderr.slice(-4000)}\n--- stdout ---\n${out.stdout.slice(-2000)}`,
        );
      });
      return m as RegExpMatchArray;
    },
  };
}
