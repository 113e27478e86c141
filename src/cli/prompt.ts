/**
 * Questions on a terminal, one line per answer. The terminal stays in its own line mode
 * (echo and editing by the tty driver), and lines typed ahead of a question are kept for it.
 */
import readline from "node:readline";
import { UserError } from "../errors.js";

export interface Prompter {
  /** Asks `question` (with `fallback` shown in brackets); "" answers the fallback. */
  ask(question: string, fallback?: string): Promise<string>;
  close(): void;
}

export function terminalPrompter(
  input: NodeJS.ReadableStream = process.stdin,
  output: NodeJS.WritableStream = process.stderr,
): Prompter {
  const rl = readline.createInterface({ input, terminal: false });
  const lines: string[] = [];
  let waiting: ((line: string | undefined) => void) | undefined;
  let closed = false;
  rl.on("line", (line) => {
    if (waiting) {
      const w = waiting;
      waiting = undefined;
      w(line);
    } else lines.push(line);
  });
  rl.on("close", () => {
    closed = true;
    waiting?.(undefined);
  });
  const next = () =>
    new Promise<string | undefined>((resolve) => {
      if (lines.length) resolve(lines.shift());
      else if (closed) resolve(undefined);
      else waiting = resolve;
    });
  return {
    async ask(question, fallback) {
      output.write(`${question}${fallback ? ` [${fallback}]` : ""}: `);
      const line = await next();
      if (line === undefined) {
        output.write("\n");
        throw new UserError("usage", `no answer to "${question}" (input ended)`);
      }
      return line.trim() || fallback || "";
    },
    close: () => rl.close(),
  };
}

/** Asks until `check` accepts the answer (it throws a UserError to say why not), at most 5 times. */
export async function askValid<T>(
  p: Prompter,
  question: string,
  fallback: string | undefined,
  check: (answer: string) => T,
  output: NodeJS.WritableStream = process.stderr,
): Promise<T> {
  for (let i = 0; ; i++) {
    const answer = await p.ask(question, fallback);
    try {
      return check(answer);
    } catch (e) {
      if (i >= 4 || !(e instanceof UserError)) throw e;
      output.write(`  ${e.message}${e.hint ? ` (${e.hint})` : ""}\n`);
    }
  }
}
