/**
 * Builds and pushes an image with the build server's Docker daemon (the node's, or
 * the pod's own in dind mode) using BuildKit (buildkit.ts drives a BuildKit daemon directly), streaming every output line to the
 * caller as it happens. A failed build is reported with the failing step and its
 * last lines; nothing is pushed then. Aborting (the client went away, Ctrl-C) stops
 * the docker process, which cancels the build.
 */
import { spawn } from "node:child_process";
import { createInterface } from "node:readline";

export interface BuildParams {
  contextDir: string;
  dockerfile: string;
  ref: string;
  buildArgs: Record<string, string>;
  labels: Record<string, string>;
  target?: string;
  platform?: string;
  /** BuildKit secrets: id -> path of a file holding the value (on a memory-backed volume). */
  secrets: Record<string, string>;
}

export class StepFailed extends Error {
  override name = "StepFailed";
  constructor(
    readonly phase: "build" | "push",
    message: string,
    readonly step: string | undefined,
    readonly tail: string[],
    readonly kind?: "auth" | "notFound" | "unreachable" | "noSpace",
  ) {
    super(message);
  }
}

/** Runs a command, sending each output line (stdout and stderr) to onLine; SIGINT on abort. */
export function runStreaming(
  command: string,
  args: string[],
  env: NodeJS.ProcessEnv,
  onLine: (l: string) => void,
  signal: AbortSignal,
) {
  return new Promise<{ code: number | null; lines: string[] }>((resolve, reject) => {
    const child = spawn(command, args, { env, stdio: ["ignore", "pipe", "pipe"] });
    const lines: string[] = [];
    const take = (l: string) => {
      lines.push(l);
      if (lines.length > 4000) lines.splice(0, 1000);
      onLine(l);
    };
    createInterface({ input: child.stdout }).on("line", take);
    createInterface({ input: child.stderr }).on("line", take);
    const abort = () => child.kill("SIGINT");
    signal.addEventListener("abort", abort, { once: true });
    child.on("error", reject);
    child.on("close", (code) => {
      signal.removeEventListener("abort", abort);
      resolve({ code, lines });
    });
  });
}

export async function buildImage(
  p: BuildParams,
  onLine: (l: string) => void,
  signal: AbortSignal,
): Promise<void> {
  const args = ["build", "--progress=plain", "-f", p.dockerfile, "-t", p.ref];
  for (const [k, v] of Object.entries(p.buildArgs)) args.push("--build-arg", `${k}=${v}`);
  for (const [k, v] of Object.entries(p.labels)) args.push("--label", `${k}=${v}`);
  for (const [id, file] of Object.entries(p.secrets)) args.push("--secret", `id=${id},src=${file}`);
  if (p.target) args.push("--target", p.target);
  if (p.platform) args.push("--platform", p.platform);
  args.push(p.contextDir);
  const env = { ...process.env, DOCKER_BUILDKIT: "1" };
  const { code, lines } = await runStreaming("docker", args, env, onLine, signal);
  if (signal.aborted) throw new StepFailed("build", "the build was cancelled", undefined, []);
  if (code !== 0) {
    const { step, tail, summary } = explainBuildFailure(lines);
    throw new StepFailed("build", summary, step, tail);
  }
}

/** Pushes the image and returns its manifest digest (sha256:...). */
export async function pushImage(
  ref: string,
  onLine: (l: string) => void,
  signal: AbortSignal,
): Promise<string> {
  const { code, lines } = await runStreaming("docker", ["push", ref], process.env, onLine, signal);
  if (signal.aborted) throw new StepFailed("push", "the push was cancelled", undefined, []);
  const text = lines.join("\n");
  if (code !== 0) {
    const last = lines.filter((l) => l.trim()).slice(-5);
    throw new StepFailed("push", `pushing ${ref} failed`, undefined, last, pushFailureKind(text));
  }
  const m = /digest: (sha256:[0-9a-f]{64})/.exec(text);
  if (!m?.[1])
    throw new StepFailed("push", `pushed ${ref} but docker reported no digest`, undefined, lines.slice(-5));
  return m[1];
}

/** What a failed push's output says went wrong, where it says so. */
export function pushFailureKind(text: string): StepFailed["kind"] {
  // Status codes as whole words: digests in the same output (hex) often hold "401" or "403".
  // "denied" as registries say it, not a local "permission denied".
  return /unauthorized|authentication required|\bdenied: |access to the resource is denied|forbidden|\b40[13]\b/i.test(
    text,
  )
    ? "auth"
    : /name unknown|repository .*not found|not found/i.test(text)
      ? "notFound"
      : /no space left/i.test(text)
        ? "noSpace"
        : /connection refused|connection reset by peer|broken pipe|no such host|i\/o timeout|dial tcp|server gave HTTP response to HTTPS/i.test(
              text,
            )
          ? "unreachable"
          : undefined;
}

/**
 * Reads BuildKit's plain progress output: steps are "#N [stage x/y] INSTRUCTION",
 * their output lines "#N ...", and a failure "#N ERROR: ...". Returns the failing
 * step, its last output lines, and a one-line summary.
 */
export function explainBuildFailure(lines: string[]): { step?: string; tail: string[]; summary: string } {
  const names = new Map<string, string>();
  let failed: string | undefined;
  let error: string | undefined;
  for (const l of lines) {
    const m = /^#(\d+) (.*)$/.exec(l);
    if (!m) continue;
    const [, id, rest] = m as unknown as [string, string, string];
    if (!names.has(id) && /^\[.*\]/.test(rest)) names.set(id, rest);
    if (rest.startsWith("ERROR:")) {
      failed = id;
      error = rest.slice(6).trim();
    }
  }
  const finalError = [...lines]
    .reverse()
    .find((l) => /^(ERROR|error):? /.test(l) || /failed to solve/.test(l));
  if (failed) {
    const tail = lines
      .filter((l) => l.startsWith(`#${failed} `) && !/^#\d+ (ERROR:|DONE|CACHED|sha256:)/.test(l))
      .map((l) => l.replace(/^#\d+ (\d+\.\d+ )?/, ""))
      .slice(-20);
    const step = names.get(failed);
    return { step, tail, summary: `step ${step ?? `#${failed}`} failed: ${error}` };
  }
  return {
    tail: lines.filter((l) => l.trim()).slice(-10),
    summary: finalError?.replace(/^(ERROR|error):?\s*/, "") ?? "docker build failed",
  };
}

/** At most `limit` builds run at once; the rest wait in order and are told their place. */
export class BuildQueue {
  private running = 0;
  private readonly waiting: { go: () => void; onPosition: (n: number) => void }[] = [];

  constructor(readonly limit: number) {}

  async acquire(onPosition: (position: number) => void): Promise<() => void> {
    if (this.running < this.limit) this.running++;
    else {
      // The releasing build hands its slot straight to the first in line.
      await new Promise<void>((go) => {
        this.waiting.push({ go, onPosition });
        onPosition(this.waiting.length);
      });
    }
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const next = this.waiting.shift();
      if (next) next.go();
      else this.running--;
      this.waiting.forEach((w, i) => {
        w.onPosition(i + 1);
      });
    };
  }

  /** How many builds wait for a slot. */
  get queued(): number {
    return this.waiting.length;
  }
}
