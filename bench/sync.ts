/**
 * Sync benchmark: `snapdeploy sync` against two baselines measured side by side in the same
 * run, into the same build-server pod over the same path (an exec through the Kubernetes API):
 *   tar    the whole tree as one tar stream into `kubectl exec -i POD -- tar -x` (no incrementality)
 *   rsync  rsync with `kubectl exec` as its remote shell
 * Scenarios per tree: cold, no-op (also with a cold local cache), the first change after the
 * cold sync, one file changed, 1% of files changed, a dependency added. Prints a Markdown
 * table and the targets (met or not) to stdout and writes JSON to bench/results/. See
 * bench/README.md.
 *
 *   eval "$(cluster/env)" && npm run bench -- sync [10k] [100k] [real | typescript lodash deps-4k deps-27k]
 */
import { execFileSync } from "node:child_process";
import { readFileSync, rmSync } from "node:fs";
import os from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { defaultCacheFile, fingerprintFile } from "../src/context/scan.js";
import { editFiles, FIXTURES, type Fixture, generatedFixture } from "./fixtures.js";
import { addDependency, REAL_TREES, realTree } from "./real-trees.js";
import { report, type Row, type Sample } from "./sync-report.js";
import {
  benchEnvironment,
  freeVolume,
  lockBench,
  run,
  shq,
  sleep,
  snapshotCli,
  uninstallServer as uninstallBenchServer,
  jsonResult,
} from "./util.js";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const NS = "bench-sync";
const SELECTOR = "app.kubernetes.io/name=snapdeploy-build-server";
const TIME = "/usr/bin/time";
/**
 * Runs per scenario (SYNC_RUNS, SYNC_COLD_RUNS override); every cold run reinstalls the
 * build server, so 100k gets one.
 */
const N = Number(process.env.SYNC_RUNS ?? 5);
const RUNS = { cold: Number(process.env.SYNC_COLD_RUNS ?? 3), noop: N, one: N, pct: N, dep: N };
const COLD_RUNS: Record<string, number> = process.env.SYNC_COLD_RUNS ? {} : { "100k": 1 };
/** SYNC_ONLY=cold measures the cold scenario alone (with SYNC_COLD_RUNS runs). */
const ONLY_COLD = process.env.SYNC_ONLY === "cold";
/** Where the tar baseline runs (SYNC_TAR): every scenario, only cold runs (default), none. */
const TAR = (process.env.SYNC_TAR ?? "cold") as "all" | "cold" | "none";
/** The scan cache does not trust files modified this recently (src/context/scan.ts, RACY_MS). */
const RACY_MS = 2000;
const RUN_ID = Date.now().toString(36);
const log = (line: string) => process.stderr.write(`[bench] ${line}\n`);

lockBench("sync", `namespace ${NS} and ${FIXTURES}`);
const nodeEnv = await benchEnvironment(log);
const CLI = snapshotCli("cli");
const IMAGE =
  process.env.SNAPDEPLOY_SERVER_IMAGE ??
  readFileSync("/var/lib/snapdeploy-cluster/build-server-image", "utf8").trim();
let pod = "";

const inPod = (script: string) =>
  run("kubectl", ["-n", NS, "exec", pod, "-c", "agent", "--", "sh", "-c", script]);

const uninstallServer = () => uninstallBenchServer(CLI, NS);

/** A new build server: an empty data volume (blob store, workspaces, the baselines' copies) and pod. */
async function freshServer() {
  await uninstallServer();
  await freeVolume(ROOT);
  await run(process.execPath, [CLI, "server", "install", "-n", NS, "--image", IMAGE]);
  pod = await readyPod();
}

/** The ready build-server pod, waiting up to five minutes for one (the cluster may be restarting). */
async function readyPod(): Promise<string> {
  const ready = '{range .items[?(@.status.containerStatuses[0].ready==true)]}{.metadata.name}{"\\n"}{end}';
  const get = ["-n", NS, "get", "pods", "-l", SELECTOR, "-o", `jsonpath=${ready}`];
  for (let i = 0; i < 300; i++) {
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
      // What the previous run left to write back is written now, not billed to this run.
      await run("sync", []);
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
  const args = [
    CLI,
    "sync",
    "--server-namespace",
    NS,
    "--user",
    user,
    "--project",
    f.name,
    "-C",
    f.dir,
    "-o",
    "json",
  ];
  const p = await run(TIME, ["-f", "%M", "-o", rssFile, process.execPath, ...args]);
  const out = jsonResult(p.stdout);
  const rssKB = Number(readFileSync(rssFile, "utf8").trim().split("\n").pop());
  return {
    seconds: p.seconds,
    sent: out.sentBytes,
    rssMB: (rssKB * 1024) / 1e6,
    scanSeconds: out.seconds?.scan,
    changes: out.added + out.changed + out.removed,
  };
}

/**
 * Where the baselines write: the build server's data volume, the filesystem snapdeploy's
 * workspaces are on. (The pod's /tmp is overlayfs, markedly slower for many small files.)
 */
const baselineDir = (tool: string, f: Fixture) => `/data/bench-${tool}/${f.name}`;

/** tar's exclude patterns for the tree-anchored rsync ones: "/build" is "./build" in a stream of ".". */
const tarExcludes = (f: Fixture) =>
  f.excludes.map((e) => `--exclude=${shq(e.startsWith("/") ? `.${e}` : e)}`);

async function tarCopy(f: Fixture, fresh: boolean): Promise<Sample> {
  const dest = baselineDir("tar", f);
  if (fresh) await inPod(`rm -rf ${dest} && mkdir -p ${dest}`);
  const script =
    `tar -C ${shq(f.dir)} ${tarExcludes(f).join(" ")} -cf - . | ` +
    `kubectl -n ${NS} exec -i ${pod} -c agent -- tar -C ${dest} -xf -`;
  return { seconds: (await run("bash", ["-o", "pipefail", "-c", script])).seconds };
}

async function rsyncCopy(f: Fixture, fresh: boolean): Promise<Sample> {
  const dest = baselineDir("rsync", f);
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
    tar: baselineDir("tar", f),
    rsync: baselineDir("rsync", f),
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
  /**
   * One run of each tool; `changes` is what snapdeploy must report, or the run is flagged.
   * The order rotates from round to round: whoever runs first after a fresh build server
   * shares the disk with the deletion of the previous volume's files (and on this kind
   * of VM, creating files right after deleting many is markedly slower).
   */
  let rounds = 0;
  const round = async (r: Row, changes: number, fresh = false) => {
    const what = `${f.name} ${r.scenario}`;
    const tools = [
      async () => {
        const sd = await measure(`${what}: snapdeploy`, () => snapdeploy(f, user));
        if (sd.changes !== changes && !sd.retried)
          log(`WARNING: ${what}: snapdeploy reported ${sd.changes} changes, expected ${changes}`);
        r.snapdeploy.push(sd);
      },
      async () => {
        r.tar.push(await measure(`${what}: tar`, () => tarCopy(f, fresh)));
      },
      async () => {
        r.rsync.push(await measure(`${what}: rsync`, () => rsyncCopy(f, fresh)));
      },
    ];
    const withTar = TAR === "all" || (TAR === "cold" && fresh);
    const chosen = withTar ? tools : [tools[0], tools[2]];
    const first = rounds++ % chosen.length;
    for (let i = 0; i < chosen.length; i++)
      await (chosen[(first + i) % chosen.length] as () => Promise<void>)();
  };

  // Cold: empty store, empty workspace, no local scan cache, empty baseline folders. The
  // tree's files are older than the scan cache's racy window, so this run fills the cache.
  const cold = row("cold");
  for (let i = 0; i < (COLD_RUNS[f.name] ?? RUNS.cold); i++) {
    await freshServer();
    for (const file of [cacheFile, fingerprintFile(cacheFile)]) rmSync(file, { force: true });
    await sleep(f.writtenAt + RACY_MS + 100 - Date.now());
    log(`${f.name}: cold run ${i + 1}`);
    await round(cold, f.files + (f.symlinks ?? 0), true);
  }
  await checkCopies(f, user);
  if (ONLY_COLD) return;

  log(`${f.name}: no-op`);
  const noop = row("no-op");
  for (let i = 0; i < RUNS.noop; i++) await round(noop, 0);
  // Once without the local scan cache: every file is read and hashed again.
  const noopCold = row("no-op, cold local cache");
  for (const file of [cacheFile, fingerprintFile(cacheFile)]) rmSync(file, { force: true });
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

  // A dependency added: a pinned package extracted into node_modules/, its content new.
  log(`${f.name}: a dependency added`);
  const dep = row("a dependency added");
  for (let i = 0; i < RUNS.dep; i++) {
    const added = addDependency(f, `${RUN_ID}d${i}`);
    await round(dep, added);
  }
  log(`${f.name}: done in ${((Date.now() - t0) / 1000).toFixed(0)} s`);
}

async function main() {
  const real = Object.keys(REAL_TREES);
  const known = ["10k", "100k", "real", ...real];
  const args = process.argv.slice(2);
  const unknown = args.filter((a) => !known.includes(a));
  if (unknown.length) throw new Error(`unknown arguments ${unknown.join(" ")}; trees: ${known.join(" ")}`);
  const chosen = (args.length ? args : ["10k", "100k", "real"]).flatMap((a) => (a === "real" ? real : [a]));
  const started = new Date();
  const load = [os.loadavg()[0] as number];
  log(`run ${RUN_ID}: image ${IMAGE}, ${os.cpus().length} CPUs, load average ${load[0]?.toFixed(2)}`);

  const trees: Fixture[] = [];
  for (const name of chosen) {
    const f = real.includes(name) ? await realTree(name, log) : generatedFixture(name, log);
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
      const measured = rows.filter((r) => r.snapdeploy.length > 0);
      if (!measured.length) return;
      const file = join(ROOT, "bench/results", `sync-${started.toISOString().replace(/[:.]/g, "-")}.json`);
      const commit = execFileSync("git", ["-C", ROOT, "describe", "--always", "--dirty"], {
        encoding: "utf8",
      });
      report(
        { started, stopped, image: IMAGE, commit: commit.trim(), load, trees, rows: measured, nodeEnv },
        file,
      );
      log(`results: ${file}`);
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
  } catch (e) {
    stopped ??= `a failure (${(e as Error).message.split("\n")[0]})`;
    throw e;
  } finally {
    await finish();
  }
}

await main();
