/**
 * Sync benchmark: `snapdeploy sync` against two baselines measured side by side in the same
 * run, into the same build-server pod over the same path (an exec through the Kubernetes API):
 *   tar    the whole tree as one tar stream into `kubectl exec -i POD -- tar -x` (no incrementality)
 *   rsync  rsync with `kubectl exec` as its remote shell
 * Scenarios per tree: cold, no-op (also with a cold local cache), the first change after the
 * cold sync, one file changed, 1% of files changed. Prints a Markdown table and the targets
 * (met or not) to stdout and writes JSON to bench/results/. See bench/README.md.
 *
 *   eval "$(cluster/env)" && npm run bench -- sync [10k] [100k] [real]
 */
import { execFileSync } from "node:child_process";
import { cpSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { defaultCacheFile } from "../src/context/scan.js";
import { fmtB, fmtS, fmtX, median, run, shq, sleep } from "./util.js";
import { editFiles, FIXTURES, type Fixture, fixturesDir, generatedFixture, realFixture } from "./fixtures.js";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const NS = "bench-sync";
const SELECTOR = "app.kubernetes.io/name=snapdeploy-build-server";
const TIME = "/usr/bin/time";
/** Runs per scenario; every cold run reinstalls the build server, so 100k gets one. */
const RUNS = { cold: 2, noop: 5, one: 5, pct: 3 };
const COLD_RUNS: Record<string, number> = { "100k": 1 };
/** The scan cache does not trust files modified this recently (src/context/scan.ts, RACY_MS). */
const RACY_MS = 2000;
const RUN_ID = Date.now().toString(36);
const log = (line: string) => process.stderr.write(`[bench] ${line}\n`);

interface Sample {
  seconds: number;
  /** Bytes on the wire: snapdeploy's sentBytes, rsync's "Total bytes sent". */
  sent?: number;
  /** Peak resident set size of the process, in MB (10^6 bytes). */
  rssMB?: number;
  scanSeconds?: number;
  changes?: number;
  /** How often the measurement was repeated after a failure. */
  retried?: number;
}
interface Row {
  tree: string;
  scenario: string;
  snapdeploy: Sample[];
  tar: Sample[];
  rsync: Sample[];
  /** The baselines were not run again: the no-op's are shown. */
  baselinesFrom?: string;
}
/** A private copy of the built CLI, so a rebuild while the bench runs cannot change what it measures. */
function snapshotCli(): string {
  if (!existsSync(join(ROOT, "dist/cli/snapdeploy.mjs")))
    throw new Error("no built CLI in dist/cli: run `npm run build` (npm run bench does)");
  const dir = join(fixturesDir(), "cli");
  rmSync(dir, { recursive: true, force: true });
  cpSync(join(ROOT, "bin"), join(dir, "bin"), { recursive: true });
  cpSync(join(ROOT, "dist/cli"), join(dir, "dist/cli"), { recursive: true });
  return join(dir, "bin/snapdeploy.js");
}

const CLI = snapshotCli();
const IMAGE =
  process.env.SNAPDEPLOY_SERVER_IMAGE ??
  readFileSync("/var/lib/snapdeploy-cluster/build-server-image", "utf8").trim();
let pod = "";

const inPod = (script: string) =>
  run("kubectl", ["-n", NS, "exec", pod, "-c", "agent", "--", "sh", "-c", script]);

async function uninstallServer() {
  await run(process.execPath, [CLI, "server", "uninstall", "-n", NS, "--purge"], { check: false });
  await run("kubectl", ["wait", "--for=delete", `namespace/${NS}`, "--timeout=180s"], { check: false });
}

/** A new build server: empty blob store and workspaces, and a new pod (an empty /tmp for the baselines). */
async function freshServer() {
  await uninstallServer();
  // The local cluster has no volume provisioner: make sure a PersistentVolume is free.
  if (existsSync(join(ROOT, "cluster/volumes"))) await run(join(ROOT, "cluster/volumes"), ["4"]);
  await run(process.execPath, [CLI, "server", "install", "-n", NS, "--image", IMAGE]);
  pod = await readyPod();
}

/** The ready build-server pod, waiting up to two minutes for one (the node may be restarting). */
async function readyPod(): Promise<string> {
  const ready = '{range .items[?(@.status.containerStatuses[0].ready==true)]}{.metadata.name}{"\\n"}{end}';
  const get = ["-n", NS, "get", "pods", "-l", SELECTOR, "-o", `jsonpath=${ready}`];
  for (let i = 0; i < 120; i++) {
    const names = (await run("kubectl", get, { check: false })).stdout.split("\n").filter(Boolean);
    if (names.length === 1) return names[0] as string;
    await sleep(1000);
  }
  throw new Error(`no ready build-server pod in ${NS}`);
}

/**
 * One measurement, repeated (at most twice) when it fails: a shared cluster may restart its
 * runtime under us. A repeated measurement is marked, and a repeated cold run is no longer cold.
 */
async function measure(what: string, fn: () => Promise<Sample>): Promise<Sample> {
  for (let attempt = 0; ; attempt++) {
    try {
      return { ...(await fn()), ...(attempt ? { retried: attempt } : {}) };
    } catch (e) {
      if (attempt === 2) throw e;
      log(`WARNING: ${what} failed, measuring again: ${(e as Error).message.split("\n")[1]}`);
      await sleep(3000);
      pod = await readyPod();
    }
  }
}

/** The whole `snapdeploy sync` process, under /usr/bin/time for its peak RSS. */
async function snapdeploy(f: Fixture, user: string): Promise<Sample> {
  const rssFile = join(FIXTURES, `rss-${process.pid}`);
  const args = [CLI, "sync", "-n", NS, "--user", user, "--project", f.name, "-C", f.dir, "-o", "json"];
  const p = await run(TIME, ["-f", "%M", "-o", rssFile, process.execPath, ...args]);
  const out = JSON.parse(p.stdout);
  const rssKB = Number(readFileSync(rssFile, "utf8").trim().split("\n").pop());
  return {
    seconds: p.seconds,
    sent: out.sentBytes,
    rssMB: (rssKB * 1024) / 1e6,
    scanSeconds: out.seconds?.scan,
    changes: out.added + out.changed + out.removed,
  };
}

/** tar's exclude patterns for the tree-anchored rsync ones: "/build" is "./build" in a stream of ".". */
const tarExcludes = (f: Fixture) =>
  f.excludes.map((e) => `--exclude=${shq(e.startsWith("/") ? `.${e}` : e)}`);

async function tarCopy(f: Fixture, fresh: boolean): Promise<Sample> {
  const dest = `/tmp/bench-tar/${f.name}`;
  if (fresh) await inPod(`rm -rf ${dest} && mkdir -p ${dest}`);
  const script =
    `tar -C ${shq(f.dir)} ${tarExcludes(f).join(" ")} -cf - . | ` +
    `kubectl -n ${NS} exec -i ${pod} -c agent -- tar -C ${dest} -xf -`;
  return { seconds: (await run("bash", ["-o", "pipefail", "-c", script])).seconds };
}

async function rsyncCopy(f: Fixture, fresh: boolean): Promise<Sample> {
  const dest = `/tmp/bench-rsync/${f.name}`;
  if (fresh) await inPod(`rm -rf ${dest} && mkdir -p ${dest}`);
  // rsync runs `<rsh> <host> rsync --server ...`. With the host "env" that is
  // `kubectl exec ... -- env rsync --server ...`. (The original design's host "--" is
  // refused by current rsync: a host name may not start with "-".)
  const rsh = `kubectl -n ${NS} exec -i ${pod} -c agent --`;
  const args = ["-a", "--delete", "--blocking-io", "--stats", ...f.excludes.map((e) => `--exclude=${e}`)];
  const p = await run("rsync", [...args, `--rsh=${rsh}`, `${f.dir}/`, `env:${dest}/`]);
  const sent = /Total bytes sent: ([\d,]+)/.exec(p.stdout)?.[1];
  return { seconds: p.seconds, sent: sent ? Number(sent.replaceAll(",", "")) : undefined };
}

/** All three copies hold as many regular files as the tree sends. */
async function checkCopies(f: Fixture, user: string) {
  const count = async (dir: string) => Number((await inPod(`find ${dir}/ -type f | wc -l`)).stdout.trim());
  const copies = {
    snapdeploy: `/data/workspaces/${user}/${f.name}/current`,
    tar: `/tmp/bench-tar/${f.name}`,
    rsync: `/tmp/bench-rsync/${f.name}`,
  };
  for (const [what, dir] of Object.entries(copies)) {
    const n = await count(dir);
    if (n !== f.files) log(`WARNING: ${what} delivered ${n} files of ${f.name}, expected ${f.files}`);
  }
}

async function benchTree(f: Fixture, rows: Row[]) {
  // The server is purged before each cold run, so the workspace is new whatever the name.
  const user = `bench-${RUN_ID}`;
  const cacheFile = defaultCacheFile(f.dir);
  const t0 = Date.now();
  const row = (scenario: string): Row => {
    const r: Row = { tree: f.name, scenario, snapdeploy: [], tar: [], rsync: [] };
    rows.push(r);
    return r;
  };
  /** One run of each tool; `changes` is what snapdeploy must report, or the run is flagged. */
  const round = async (r: Row, changes: number, fresh = false) => {
    const what = `${f.name} ${r.scenario}`;
    const sd = await measure(`${what}: snapdeploy`, () => snapdeploy(f, user));
    if (sd.changes !== changes && !sd.retried)
      log(`WARNING: ${what}: snapdeploy reported ${sd.changes} changes, expected ${changes}`);
    r.snapdeploy.push(sd);
    r.tar.push(await measure(`${what}: tar`, () => tarCopy(f, fresh)));
    r.rsync.push(await measure(`${what}: rsync`, () => rsyncCopy(f, fresh)));
  };

  // Cold: empty store, empty workspace, no local scan cache, empty baseline folders. The
  // tree's files are older than the scan cache's racy window, so this run fills the cache.
  const cold = row("cold");
  for (let i = 0; i < (COLD_RUNS[f.name] ?? RUNS.cold); i++) {
    await freshServer();
    rmSync(cacheFile, { force: true });
    await sleep(f.writtenAt + RACY_MS + 100 - Date.now());
    log(`${f.name}: cold run ${i + 1}`);
    await round(cold, f.files, true);
  }
  await checkCopies(f, user);

  log(`${f.name}: no-op`);
  const noop = row("no-op");
  for (let i = 0; i < RUNS.noop; i++) await round(noop, 0);
  // Once without the local scan cache: every file is read and hashed again.
  const noopCold = row("no-op, cold local cache");
  rmSync(cacheFile, { force: true });
  noopCold.snapdeploy.push(await measure(`${f.name} no-op, cold cache`, () => snapdeploy(f, user)));
  Object.assign(noopCold, { tar: noop.tar, rsync: noop.rsync, baselinesFrom: "no-op" });

  log(`${f.name}: one file changed (${f.oneFile})`);
  // The first change after a cold sync also fills the workspace's second tree (a sync updates
  // the tree builds do not use, then switches), which is empty until then: reported apart.
  const first = row("first change after cold");
  const one = row("one file changed");
  for (let i = 0; i <= RUNS.one; i++) {
    editFiles(f, [f.oneFile], `${RUN_ID}o${i}`);
    await round(i === 0 ? first : one, 1);
  }

  log(`${f.name}: 1% changed (${f.onePercent.length} files)`);
  const pct = row(`1% changed (${f.onePercent.length} files)`);
  for (let i = 0; i < RUNS.pct; i++) {
    editFiles(f, f.onePercent, `${RUN_ID}p${i}`);
    await round(pct, f.onePercent.length);
  }
  log(`${f.name}: done in ${((Date.now() - t0) / 1000).toFixed(0)} s`);
}

const secs = (xs: Sample[]) => median(xs.map((s) => s.seconds));
const peakRss = (r: Row) => Math.max(...r.snapdeploy.map((s) => s.rssMB ?? 0));
function table(rows: Row[]): string {
  const head =
    "tree|scenario|runs|snapdeploy|(scan)|tar|rsync|sd/tar|sd/rsync|sd sent|rsync sent|sd peak RSS";
  const lines = [`| ${head.replaceAll("|", " | ")} |`, `|${head.replace(/[^|]+/g, "---")}|`];
  for (const r of rows) {
    const [sd, tar, rsync] = [secs(r.snapdeploy), secs(r.tar), secs(r.rsync)];
    const star = r.baselinesFrom ? "*" : "";
    const cells = [
      r.tree,
      r.scenario,
      r.snapdeploy.length + ([...r.snapdeploy, ...r.tar, ...r.rsync].some((s) => s.retried) ? "!" : ""),
      fmtS(sd),
      fmtS(median(r.snapdeploy.map((s) => s.scanSeconds ?? Number.NaN))),
      fmtS(tar) + star,
      fmtS(rsync) + star,
      fmtX(sd, tar),
      fmtX(sd, rsync),
      fmtB(median(r.snapdeploy.map((s) => s.sent ?? Number.NaN))),
      fmtB(median(r.rsync.map((s) => s.sent ?? Number.NaN))),
      `${peakRss(r).toFixed(0)} MB`,
    ];
    lines.push(`| ${cells.join(" | ")} |`);
  }
  return lines.join("\n");
}

interface Target {
  target: string;
  measured: string;
  met: boolean | null;
}

function targets(rows: Row[]): Target[] {
  const find = (tree: string, scenario: string) =>
    rows.find((r) => r.tree === tree && r.scenario === scenario);
  const sd = (r: Row) => secs(r.snapdeploy);
  const out: Target[] = [];
  const add = (target: string, r: Row | undefined, measure: (r: Row) => [string, boolean]) => {
    const [measured, met] = r ? measure(r) : ["not measured", null];
    out.push({ target, measured, met });
  };
  add("10k no-op ≤ 0.5 s", find("10k", "no-op"), (r) => [fmtS(sd(r)), sd(r) <= 0.5]);
  add("10k no-op faster than rsync over exec", find("10k", "no-op"), (r) => [
    `${fmtS(sd(r))} vs ${fmtS(secs(r.rsync))}`,
    sd(r) < secs(r.rsync),
  ]);
  add("10k one changed file ≤ 0.6 s", find("10k", "one file changed"), (r) => [fmtS(sd(r)), sd(r) <= 0.6]);
  add("10k cold ≤ 1.2× tar", find("10k", "cold"), (r) => [
    fmtX(sd(r), secs(r.tar)),
    sd(r) <= 1.2 * secs(r.tar),
  ]);
  add("100k client peak RSS ≤ 200 MB (cold, no-op)", find("100k", "cold"), (r) => {
    const peak = Math.max(peakRss(r), peakRss(find("100k", "no-op") ?? r));
    return [`${peak.toFixed(0)} MB`, peak <= 200];
  });
  return out;
}

async function main() {
  const known = ["10k", "100k", "real"];
  const args = process.argv.slice(2);
  const unknown = args.filter((a) => !known.includes(a));
  if (unknown.length) throw new Error(`unknown arguments ${unknown.join(" ")}; trees: ${known.join(" ")}`);
  const chosen = args.length ? args : known;
  const started = new Date();
  const load = [os.loadavg()[0] as number];
  log(`run ${RUN_ID}: image ${IMAGE}, ${os.cpus().length} CPUs, load average ${load[0]?.toFixed(2)}`);

  const trees: Fixture[] = [];
  for (const name of chosen) {
    const f = name === "real" ? await realFixture(log) : generatedFixture(name, log);
    if (f) trees.push(f);
  }
  const rows: Row[] = [];
  let stopped: string | undefined;
  let finishing: Promise<void> | undefined;
  // Uninstalls the bench's build server and reports what was measured, once: at the end, on a
  // failure, or when the bench is stopped with a signal.
  const finish = () =>
    (finishing ??= (async () => {
      log(`uninstalling the build server in ${NS}`);
      await uninstallServer();
      rmSync(join(FIXTURES, `rss-${process.pid}`), { force: true });
      load.push(os.loadavg()[0] as number);
      if (rows.length) report(started, trees, rows, load, stopped);
    })());
  for (const [signal, code] of [
    ["SIGINT", 130],
    ["SIGTERM", 143],
  ] as const) {
    process.once(signal, () => {
      stopped = signal;
      log(`${signal}: stopping`);
      void finish().finally(() => process.exit(code));
    });
  }
  try {
    for (const f of trees) await benchTree(f, rows);
  } finally {
    await finish();
  }
}

/** The Markdown table and targets on stdout; everything measured, as JSON, in bench/results/. */
function report(started: Date, trees: Fixture[], rows: Row[], load: number[], stopped?: string) {
  const results = targets(rows);
  const out = [
    `## snapdeploy sync benchmark (${started.toISOString()})${stopped ? `, stopped by ${stopped}` : ""}`,
    "",
    ...trees.map((f) => `- ${f.name}: ${f.files} files, ${fmtB(f.bytes)} sent by a full copy; ${f.dir}`),
    `- ${os.cpus().length} CPUs; 1-minute load average ${load[0]?.toFixed(2)} at the start, ${load[1]?.toFixed(2)} at the end`,
    "",
    table(rows),
    "",
    "Times are medians of the whole process's wall time; sd = snapdeploy. * the no-op's baselines (tar and rsync have no local cache). ! a run failed and was measured again.",
    "",
    "| target | measured | met |",
    "|---|---|---|",
    ...results.map(
      (t) =>
        `| ${t.target} | ${t.measured} | ${t.met === null ? "not measured" : t.met ? "met" : "NOT met"} |`,
    ),
  ];
  process.stdout.write(`${out.join("\n")}\n`);

  const json = {
    started,
    stopped,
    commit: execFileSync("git", ["-C", ROOT, "describe", "--always", "--dirty"], { encoding: "utf8" }).trim(),
    image: IMAGE,
    host: { cpus: os.cpus().length, node: process.version, loadavg: load },
    trees: trees.map(({ name, files, bytes, oneFile }) => ({ name, files, bytes, oneFile })),
    rows: rows.map((r) => ({
      ...r,
      median: { snapdeploy: secs(r.snapdeploy), tar: secs(r.tar), rsync: secs(r.rsync) },
    })),
    targets: results,
  };
  const file = join(ROOT, "bench/results", `sync-${started.toISOString().replace(/[:.]/g, "-")}.json`);
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, `${JSON.stringify(json, null, 2)}\n`);
  log(`results: ${file}`);
}

await main();
