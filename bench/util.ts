/** Helpers shared by the benchmarks: running a timed process, a private CLI copy, medians, formatting. */
import { spawn } from "node:child_process";
import { cpSync, existsSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { fixturesDir } from "./fixtures.js";

const ROOT = fileURLToPath(new URL("..", import.meta.url));

/**
 * A private copy of the built CLI in bench/.fixtures/NAME, so a rebuild while a benchmark runs
 * cannot change what it measures; each benchmark names its own folder. Returns the entry point.
 */
export function snapshotCli(name: string): string {
  if (!existsSync(join(ROOT, "dist/cli/snapdeploy.cjs")))
    throw new Error("no built CLI in dist/cli: run `npm run build` (npm run bench does)");
  const dir = join(fixturesDir(), name);
  rmSync(dir, { recursive: true, force: true });
  cpSync(join(ROOT, "bin"), join(dir, "bin"), { recursive: true });
  cpSync(join(ROOT, "dist/cli"), join(dir, "dist/cli"), { recursive: true });
  // The agent bundle `server install` ships when given no image.
  cpSync(join(ROOT, "dist/server/agent.cjs"), join(dir, "dist/server/agent.cjs"));
  return join(dir, "bin/snapdeploy.cjs");
}

export type Proc = { code: number; stdout: string; stderr: string; seconds: number };

/**
 * The result document of a `-o json` run: the last stdout line (one JSON event per line, the
 * "result" last), without its "event" field.
 */
// biome-ignore lint/suspicious/noExplicitAny: a result document is plain JSON, read by path
export function jsonResult(stdout: string): any {
  const last = stdout.trimEnd().split("\n").at(-1) ?? "";
  const { event, ...doc } = JSON.parse(last) as Record<string, unknown>;
  if (event !== "result") throw new Error(`the last line of stdout is no result: ${last}`);
  return doc;
}

/** Runs a command to completion; `seconds` is the wall time from spawn to exit. Throws on failure. */
export function run(cmd: string, args: string[], opts: { check?: boolean } = {}): Promise<Proc> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn(cmd, args, { stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => {
      stdout += d;
    });
    child.stderr.on("data", (d) => {
      stderr += d;
    });
    child.on("error", reject);
    child.on("close", (code) => {
      const p = { code: code ?? -1, stdout, stderr, seconds: (performance.now() - t0) / 1000 };
      if (p.code !== 0 && opts.check !== false)
        reject(new Error(`${cmd} ${args.join(" ")} exited ${p.code}\n${stderr.slice(-2000)}`));
      else resolve(p);
    });
  });
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** Quotes a word for sh. */
export const shq = (s: string) => `'${s.replaceAll("'", "'\\''")}'`;
/** The median; NaN for no values. */
export const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length === 0
    ? Number.NaN
    : s.length % 2
      ? (s[m] as number)
      : ((s[m - 1] as number) + (s[m] as number)) / 2;
};

export const fmtS = (s: number) => (Number.isNaN(s) ? "–" : `${s.toFixed(2)} s`);
export const fmtX = (a: number, b: number) => (Number.isNaN(a / b) ? "–" : `${(a / b).toFixed(2)}×`);
export const fmtB = (n: number) =>
  Number.isNaN(n)
    ? "–"
    : n === 0
      ? "0"
      : n < 1e6
        ? `${(n / 1e3).toFixed(1)} KB`
        : `${(n / 1e6).toFixed(1)} MB`;

/**
 * One benchmark of a kind at a time on a machine (runs share a namespace, fixtures and the
 * CLI copy): takes bench/.fixtures/<name>.lock, or throws naming the running one and what
 * it uses. A lock left by a process that is gone is taken over.
 */
export function lockBench(name: string, uses: string): void {
  const file = join(fixturesDir(), `${name}.lock`);
  try {
    writeFileSync(file, String(process.pid), { flag: "wx" });
  } catch {
    const holder = Number(readFileSync(file, "utf8"));
    let alive = true;
    try {
      process.kill(holder, 0);
    } catch {
      alive = false;
    }
    if (alive && holder !== process.pid)
      throw new Error(`another ${name} benchmark (pid ${holder}) is running: it uses ${uses}`);
    writeFileSync(file, String(process.pid));
  }
  process.on("exit", () => rmSync(file, { force: true }));
}

/** One benchmark target as reported: what, the figure, and whether it was met (null: not measured). */
export interface Target {
  target: string;
  measured: string;
  met: boolean | null;
}

/** Uninstalls a benchmark's build server (`--purge`) with `cli`, and waits for its namespace to go. */
export async function uninstallServer(cli: string, ns: string): Promise<void> {
  await run(process.execPath, [cli, "server", "uninstall", "-n", ns, "--purge"], { check: false });
  await run("kubectl", ["wait", "--for=delete", `namespace/${ns}`, "--timeout=180s"], { check: false });
}

/** The local cluster has no volume provisioner: makes sure a PersistentVolume is free for a new install. */
export async function freeVolume(root: string): Promise<void> {
  if (existsSync(join(root, "cluster/volumes"))) await run(join(root, "cluster/volumes"), ["4"]);
}

/** Sectors written and discarded so far on every whole disk (/proc/diskstats; partitions left out). */
function diskActivity(): number {
  let total = 0;
  for (const line of readFileSync("/proc/diskstats", "utf8").split("\n")) {
    const f = line.trim().split(/\s+/);
    const name = f[2] ?? "";
    if (!/^(vd|sd|nvme\d+n|xvd)[a-z0-9]*$/.test(name) || /^(vd|sd|xvd)[a-z]+\d+$|p\d+$/.test(name)) continue;
    total += Number(f[9] ?? 0) + Number(f[15] ?? 0);
  }
  return total;
}

/**
 * Waits (at most `maxMs`) until the disks have been quiet for a second: less than 1 MB
 * written or discarded. Deleting a build server's volume (tens of thousands of files) keeps
 * the disk busy for seconds after `rm` returned, and would slow whichever tool runs next.
 */
export async function diskQuiet(maxMs = 30_000): Promise<number> {
  const t0 = Date.now();
  let last = diskActivity();
  while (Date.now() - t0 < maxMs) {
    await sleep(1000);
    const now = diskActivity();
    if (now - last < 2048) break;
    last = now;
  }
  return Date.now() - t0;
}

/**
 * The environment the CLI is measured in. NODE_EXTRA_CA_CERTS makes every Node.js process
 * parse that file's certificates as it starts (nodejs/node#40524): with a whole system bundle
 * that costs tens of milliseconds per start, a cost of this machine's setup rather than of
 * snapdeploy, and one the baselines (kubectl, rsync: Go and C) never pay. So it is left out of
 * what the benchmark runs, unless SNAPDEPLOY_BENCH_KEEP_ENV=1; what it would add is measured
 * and returned for the report. Returns undefined when the variable is not set.
 */
export async function benchEnvironment(
  log: (line: string) => void,
): Promise<{ variable: string; kept: boolean; startMs: { with: number; without: number } } | undefined> {
  const file = process.env.NODE_EXTRA_CA_CERTS;
  if (!file) return undefined;
  const start = async (env: NodeJS.ProcessEnv) => {
    const times: number[] = [];
    for (let i = 0; i < 5; i++) {
      const t0 = performance.now();
      await new Promise<void>((resolve, reject) => {
        const c = spawn(process.execPath, ["-e", "0"], { env, stdio: "ignore" });
        c.on("error", reject);
        c.on("close", () => resolve());
      });
      times.push(performance.now() - t0);
    }
    return Math.round(median(times));
  };
  const without = { ...process.env };
  delete without.NODE_EXTRA_CA_CERTS;
  const startMs = { with: await start(process.env), without: await start(without) };
  const kept = process.env.SNAPDEPLOY_BENCH_KEEP_ENV === "1";
  if (!kept) delete process.env.NODE_EXTRA_CA_CERTS;
  log(
    `NODE_EXTRA_CA_CERTS=${file} is set here: a Node.js start (node -e 0) takes ${startMs.with} ms with it, ${startMs.without} ms without; ` +
      (kept
        ? "kept for the CLI (SNAPDEPLOY_BENCH_KEEP_ENV=1)"
        : "left out for the CLI (SNAPDEPLOY_BENCH_KEEP_ENV=1 keeps it)"),
  );
  return { variable: file, kept, startMs };
}
