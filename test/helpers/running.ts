/** A CLI left running (dev, logs -f, port-forward) whose output a test awaits line by line. */
import { type ChildProcess, spawn } from "node:child_process";
import { CLI } from "./cluster.js";

export interface RunningCli {
  child: ChildProcess;
  out: { stdout: string; stderr: string };
  /** Waits for `re` in stderr or stdout after what the previous waits consumed of it. */
  waitFor(re: RegExp, ms?: number): Promise<RegExpMatchArray>;
}

/**
 * Starts the CLI with `args` (in `cwd`, default this process's); the child is added to
 * `children`, which the caller kills after.
 */
export function startCli(args: string[], children: ChildProcess[], cwd?: string): RunningCli {
  const child = spawn(process.execPath, [CLI, ...args], { stdio: ["pipe", "pipe", "pipe"], cwd });
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
  let closed = false;
  child.once("close", () => {
    closed = true;
  });
  return {
    child,
    out,
    async waitFor(re: RegExp, ms = 90_000): Promise<RegExpMatchArray> {
      const end = Date.now() + ms;
      for (;;) {
        for (const stream of ["stderr", "stdout"] as const) {
          const hit = re.exec(out[stream].slice(mark[stream]));
          if (hit) {
            mark[stream] += (hit.index ?? 0) + hit[0].length;
            return hit;
          }
        }
        // Once the child has exited and its output is read, a wait still unmatched fails at once.
        const why = closed
          ? `the CLI exited (${child.exitCode ?? child.signalCode}) before ${re} was in its output`
          : Date.now() > end
            ? `timed out waiting for ${re} in the output`
            : undefined;
        if (why)
          throw new Error(
            `${why}\n--- stderr ---\n${out.stderr.slice(-4000)}\n--- stdout ---\n${out.stdout.slice(-2000)}`,
          );
        await new Promise((r) => setTimeout(r, 100));
      }
    },
  };
}
