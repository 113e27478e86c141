/**
 * Build benchmark: `snapdeploy build` against the original way of building in the cluster,
 * measured side by side in the same run on the same node's Docker daemon and registry:
 *   snapdeploy  scan, registry check (skip when the snapshot exists), sync, BuildKit build, push
 *   baseline    rsync over `kubectl exec` into a plain build pod that mounts the node's
 *               docker.sock, then `docker build` and `docker push` there over `kubectl exec`
 * Scenarios per app (small, deps-heavy): cold, the first change after cold, one file changed,
 * skip hit (the same tree again); for each build-server builder (buildkit: the pod's rootless
 * BuildKit, the default; docker-socket: the node's Docker daemon), one after the other. Prints a Markdown table and the target (met or not) to stdout
 * and writes JSON to bench/results/. See bench/README.md.
 *
 *   eval "$(cluster/env)" && npm run bench -- build [small] [deps-heavy] [buildkit] [docker-socket]
 */
import { execFileSync } from "node:child_process";
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { defaultCacheFile, fingerprintFile } from "../src/context/scan.js";
import { type BuildApp, buildApp, editOneFile, stampRound } from "./build-fixtures.js";
import { report, type Row, type Sample } from "./build-report.js";
import { originalBuildPod } from "./baseline.js";
import { FIXTURES } from "./fixtures.js";
import {
  benchEnvironment,
  diskQuiet,
  freeVolume,
  lockBench,
  run,
  sleep,
  snapshotCli,
  uninstallServer as uninstallBenchServer,
  jsonResult,
} from "./util.js";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const NS = "bench-build";
/** The registry as pods (and the node's Docker daemon) reach it, and the CA its TLS certificate is from. */
const REGISTRY = "10.245.0.1:5000";
const CLUSTER_CA = "/var/lib/snapdeploy-cluster/pki/ca.crt";
/** The baseline's build pod: Debian with the Docker CLI, rsync and Node.js (pulled by the node). */
const TOOLS_IMAGE = "127.0.0.1:5000/snapdeploy/debian-tools:bookworm-2";
const BASELINE_POD = "baseline-builder";
const SELECTOR = "app.kubernetes.io/name=snapdeploy-build-server";
/** Debian's docker CLI on this machine, talking to the node's daemon (for the final clean-up). */
const DOCKER = "/usr/bin/docker";
/** Runs per scenario; every cold run reinstalls the build server and the baseline pod. */
const RUNS = { cold: 2, one: 5, skip: 5 };
/** The scan cache does not trust files modified this recently (src/context/scan.ts, RACY_MS). */
const RACY_MS = 2000;
const RUN_ID = Date.now().toString(36);
const USER = `bench-${RUN_ID}`;
const log = (line: string) => process.stderr.write(`[bench] ${line}\n`);
/**
 * Set by SIGINT or SIGTERM: the bench stops at the next step (no new install, measurement or
 * retry), so nothing it starts can outlive the clean-up that follows.
 */
let stopSignal: "SIGINT" | "SIGTERM" | undefined;
class Stopped extends Error {}
const checkStop = () => {
  if (stopSignal) throw new Stopped(`stopped by ${stopSignal}`);
};

lockBench("build", `namespace ${NS}`);
await benchEnvironment(log);
const CLI = snapshotCli("cli-build");
const IMAGE =
  process.env.SNAPDEPLOY_SERVER_IMAGE ??
  readFileSync("/var/lib/snapdeploy-cluster/build-server-image", "utf8").trim();

type Builder = "buildkit" | "docker-socket";
/** Where the builder needs one: the Docker builder's image; buildkit runs the public images. */
const builderFlags = (builder: Builder) => (builder === "buildkit" ? [] : ["--image", IMAGE]);

const baselinePod = originalBuildPod(NS, BASELINE_POD, TOOLS_IMAGE);

const uninstallServer = () => uninstallBenchServer(CLI, NS);

/**
 * A new build server (empty data volume: no blobs, no workspaces; a new pod) and a new
 * baseline pod (empty /work) in a new namespace.
 */
async function freshServer(builder: Builder) {
  await uninstallServer();
  await freeVolume(ROOT);
  checkStop();
  await run(process.execPath, [
    CLI,
    "server",
    "install",
    "-n",
    NS,
    "--builder",
    builder,
    ...builderFlags(builder),
    "--registry-ca",
    `${REGISTRY}=${CLUSTER_CA}`,
  ]);
  const manifest = join(FIXTURES, "build", "baseline-pod.json");
  writeFileSync(manifest, JSON.stringify(baselinePod));
  checkStop();
  await run("kubectl", ["apply", "-f", manifest]);
  await readyPods();
}

/**
 * Puts the app's base image into the new server's BuildKit cache, pulled and unpacked, as
 * the node's Docker daemon already holds it for docker-socket and the baseline: a build of
 * `FROM <base>` and one `RUN` in a project of its own (the app's workspace stays empty).
 */
async function warmBase(app: BuildApp, nonce: string) {
  const from = /^FROM\s+(\S+)/m.exec(readFileSync(join(app.dirs.snapdeploy, "Dockerfile"), "utf8"))?.[1];
  if (!from) throw new Error(`no FROM line in ${app.name}'s Dockerfile`);
  const dir = join(FIXTURES, "build", `warm-${app.name}`);
  mkdirSync(dir, { recursive: true });
  // A new tree each time, or the warm-up's own snapshot is found in the registry and nothing is built.
  writeFileSync(join(dir, "Dockerfile"), `FROM ${from}\nRUN true\n# ${nonce}\n`);
  checkStop();
  await run(process.execPath, [
    CLI,
    ...buildArgs(`warm-${app.name}`, dir, `${REGISTRY}/bench-build/warm-${app.name}`),
  ]);
}

/** `snapdeploy build` of project `project` in `dir`, pushing to `repository`, in the bench's build server. */
const buildArgs = (project: string, dir: string, repository: string) => [
  "build",
  "--server-namespace",
  NS,
  "--user",
  USER,
  "--project",
  project,
  "-C",
  dir,
  "-r",
  repository,
];

/** Waits (up to five minutes: a shared cluster may be restarting) until both pods are ready. */
async function readyPods() {
  const ready = '{range .items[?(@.status.containerStatuses[0].ready==true)]}{.metadata.name}{"\\n"}{end}';
  for (let i = 0; i < 300; i++) {
    const server = await run(
      "kubectl",
      ["-n", NS, "get", "pods", "-l", SELECTOR, "-o", `jsonpath=${ready}`],
      {
        check: false,
      },
    );
    const base = await run(
      "kubectl",
      ["-n", NS, "get", "pod", BASELINE_POD, "-o", "jsonpath={.status.containerStatuses[0].ready}"],
      { check: false },
    );
    if (server.stdout.split("\n").filter(Boolean).length === 1 && base.stdout === "true") return;
    await sleep(1000);
  }
  throw new Error(`the build server and ${BASELINE_POD} in ${NS} did not become ready`);
}

/**
 * One measurement, repeated (at most twice) when it fails: a shared cluster may restart its
 * runtime under us. A repeated measurement is marked, and a repeated cold run is no longer cold.
 */
async function measure(what: string, fn: () => Promise<Sample>): Promise<Sample> {
  for (let attempt = 0; ; attempt++) {
    checkStop();
    try {
      // What the previous run left to write back is written now, not billed to this run,
      // and the disk is quiet again (a purged volume's files are still being discarded).
      await run("sync", []);
      await diskQuiet();
      return { ...(await fn()), ...(attempt ? { retried: attempt } : {}) };
    } catch (e) {
      if (attempt === 2 || stopSignal) throw e;
      log(
        `WARNING: ${what} failed, measuring again: ${(e as Error).message.split("\n").slice(0, 3).join(" | ")}`,
      );
      await sleep(3000);
      await readyPods();
    }
  }
}

const repository = (app: BuildApp, tool: "snapdeploy" | "baseline", builder: Builder) =>
  `${REGISTRY}/bench-build/${app.name}${tool === "baseline" ? "-baseline" : `-${builder}`}`;

/** Each run's output (remote build lines included) goes to bench/.fixtures/build/logs/, for a look afterwards. */
const LOGS = join(FIXTURES, "build", "logs");

/** The whole `snapdeploy build` process; its phases from its JSON output. */
async function snapdeploy(app: BuildApp, logName: string, builder: Builder): Promise<Sample> {
  const p = await run(process.execPath, [
    CLI,
    ...buildArgs(app.name, app.dirs.snapdeploy, repository(app, "snapdeploy", builder)),
    "-o",
    "json",
  ]);
  writeFileSync(join(LOGS, `${logName}-snapdeploy.log`), `${p.stderr}\n${p.stdout}`);
  const out = jsonResult(p.stdout);
  return {
    seconds: p.seconds,
    phases: out.timings ?? {},
    sent: out.sync?.sentBytes ?? 0,
    skipped: out.skipped === true,
  };
}

/** The original way: rsync over exec, then docker build and docker push in the build pod. */
async function baseline(app: BuildApp, logName: string, builder: Builder): Promise<Sample> {
  const dest = `/work/${app.name}`;
  const ref = `${repository(app, "baseline", builder)}:dev`;
  // rsync runs `<rsh> <host> rsync --server ...`; with the host "env" that is
  // `kubectl exec ... -- env rsync --server ...` (a host may not start with "-").
  const rsh = `kubectl -n ${NS} exec -i ${BASELINE_POD} --`;
  const rsync = await run("rsync", [
    "-a",
    "--delete",
    "--blocking-io",
    "--stats",
    `--rsh=${rsh}`,
    `${app.dirs.baseline}/`,
    `env:${dest}/`,
  ]);
  const exec = ["-n", NS, "exec", BASELINE_POD, "--"];
  const build = await run("kubectl", [...exec, "docker", "build", "-t", ref, dest]);
  const push = await run("kubectl", [...exec, "docker", "push", ref]);
  const output = [rsync, build, push].map((p) => `${p.stdout}${p.stderr}`);
  writeFileSync(join(LOGS, `${logName}-baseline.log`), output.join("\n"));
  const sent = /Total bytes sent: ([\d,]+)/.exec(rsync.stdout)?.[1];
  return {
    seconds: rsync.seconds + build.seconds + push.seconds,
    phases: { sync: rsync.seconds, build: build.seconds, push: push.seconds },
    sent: sent ? Number(sent.replaceAll(",", "")) : undefined,
  };
}

async function benchApp(app: BuildApp, builder: Builder, rows: Row[]) {
  const cacheFile = defaultCacheFile(app.dirs.snapdeploy);
  const t0 = Date.now();
  const row = (scenario: string): Row => {
    const r: Row = { app: app.name, builder, scenario, snapdeploy: [], baseline: [] };
    rows.push(r);
    return r;
  };
  /** One run of each tool; snapdeploy must skip, or build after `changes` changed files, or the run is flagged. */
  const round = async (r: Row, expect: { skip: boolean; changes?: number; baselineFirst?: boolean }) => {
    const what = `${app.name} ${builder} ${r.scenario}`;
    const logName = `${app.name}-${builder}-${r.scenario.replaceAll(" ", "-")}-${r.snapdeploy.length + 1}`;
    const measureSd = async () => {
      const sd = await measure(`${what}: snapdeploy`, () => snapdeploy(app, logName, builder));
      if (sd.skipped !== expect.skip && !sd.retried)
        log(`WARNING: ${what}: snapdeploy ${sd.skipped ? "skipped" : "built"}, expected the opposite`);
      r.snapdeploy.push(sd);
    };
    const measureBase = async () => {
      r.baseline.push(await measure(`${what}: baseline`, () => baseline(app, logName, builder)));
    };
    // Each round of a scenario swaps who goes first: right after a new build server the
    // node is still busiest, and the order should not favour either tool.
    if (expect.baselineFirst) {
      await measureBase();
      await measureSd();
    } else {
      await measureSd();
      await measureBase();
    }
    const last = (xs: Sample[]) => (xs.at(-1) as Sample).seconds.toFixed(2);
    log(`${what}: snapdeploy ${last(r.snapdeploy)} s, baseline ${last(r.baseline)} s`);
  };
  /** Lets the scan cache trust the files written last (it distrusts files younger than 2 s). */
  const settle = () => sleep(app.writtenAt + RACY_MS + 100 - Date.now());

  // A new build server: an empty data volume, where BuildKit keeps its cache too, so the
  // base image is pulled and unpacked first (the node's Docker daemon has it already).
  // Reported apart, without a target: it happens once per server, not per app.
  const fresh = row("new build server");
  await freshServer(builder);
  stampRound(app, `${RUN_ID}-${builder}-new`);
  app.writtenAt = Date.now();
  for (const file of [cacheFile, fingerprintFile(cacheFile)]) rmSync(file, { force: true });
  await settle();
  log(`${app.name}: new build server`);
  await round(fresh, { skip: false });

  // Cold: a new build server and baseline pod, no local scan cache, and a stamp new to the
  // builder's cache and to the registry (see stampRound); the base image in the builder, as
  // a team's build server that has run for a while has it (see warmBase).
  const cold = row("cold");
  for (let i = 0; i < RUNS.cold; i++) {
    await freshServer(builder);
    if (builder === "buildkit") await warmBase(app, `${RUN_ID}-${i}`);
    stampRound(app, `${RUN_ID}-${builder}-${i}`);
    app.writtenAt = Date.now();
    for (const file of [cacheFile, fingerprintFile(cacheFile)]) rmSync(file, { force: true });
    await settle();
    log(`${app.name}: cold run ${i + 1}`);
    await round(cold, { skip: false, baselineFirst: i % 2 === 1 });
  }

  // The first change after a cold build also fills the workspace's second tree (a sync updates
  // the tree builds do not use, then switches), empty until then: reported apart.
  log(`${app.name}: one file changed (${app.oneFile})`);
  const first = row("first change after cold");
  const one = row("one file changed");
  for (let i = 0; i <= RUNS.one; i++) {
    // The edit's stamp keeps 23 characters of its nonce: the builder as one letter.
    editOneFile(app, `${RUN_ID}${builder[0]}o${i}`);
    await round(i === 0 ? first : one, { skip: false });
  }

  log(`${app.name}: skip hit`);
  await settle();
  const skip = row("skip hit");
  for (let i = 0; i < RUNS.skip; i++) await round(skip, { skip: true });
  log(`${app.name}: done in ${((Date.now() - t0) / 1000).toFixed(0)} s`);
}

/**
 * Removes the images built in the bench's repositories from the node's Docker daemon, by id:
 * a rebuilt tag leaves its earlier image untagged (<none>). They stay in the registry.
 */
async function removeImages() {
  const list = await run(DOCKER, ["images", "--format", "{{.Repository}} {{.ID}}"], { check: false });
  const ids = list.stdout
    .split("\n")
    .filter((l) => l.startsWith(`${REGISTRY}/bench-build/`))
    .map((l) => l.split(" ")[1] as string);
  if (ids.length) await run(DOCKER, ["rmi", "-f", ...new Set(ids)], { check: false });
}

async function main() {
  const known = ["small", "deps-heavy"] as const;
  const builders = ["buildkit", "docker-socket"] as const;
  const args = process.argv.slice(2);
  const unknown = args.filter((a) => ![...known, ...builders].includes(a as never));
  if (unknown.length)
    throw new Error(
      `unknown arguments ${unknown.join(" ")}; apps: ${known.join(" ")}; builders: ${builders.join(" ")}`,
    );
  const appArgs = args.filter((a) => (known as readonly string[]).includes(a));
  const builderArgs = args.filter((a) => (builders as readonly string[]).includes(a));
  const chosen = known.filter((k) => !appArgs.length || appArgs.includes(k));
  const chosenBuilders = builders.filter((b) => !builderArgs.length || builderArgs.includes(b));
  const started = new Date();
  const load = [os.loadavg()[0] as number];
  log(`run ${RUN_ID}: image ${IMAGE}, ${os.cpus().length} CPUs, load average ${load[0]?.toFixed(2)}`);

  const apps = chosen.map((name) => buildApp(name, log));
  rmSync(LOGS, { recursive: true, force: true });
  mkdirSync(LOGS, { recursive: true });
  const rows: Row[] = [];
  let failure: string | undefined;
  let finishing: Promise<void> | undefined;
  // Uninstalls the bench's build server (its namespace holds the baseline pod too), removes the
  // images it built from the node's daemon and reports what was measured, once: at the end, on
  // a failure, or when the bench is stopped with a signal.
  const finish = () =>
    (finishing ??= (async () => {
      log(`uninstalling the build server in ${NS}, removing the images built`);
      await uninstallServer();
      await removeImages();
      load.push(os.loadavg()[0] as number);
      const measured = rows.filter((r) => r.snapdeploy.length > 0);
      if (!measured.length) return;
      const file = join(ROOT, "bench/results", `build-${started.toISOString().replace(/[:.]/g, "-")}.json`);
      let commit = "unknown";
      try {
        commit = execFileSync("git", ["-C", ROOT, "describe", "--always", "--dirty"], { encoding: "utf8" });
      } catch {
        // not a git checkout: the results say "unknown"
      }
      const info = apps.map((a) => ({ name: a.name, files: a.files, bytes: a.bytes }));
      report(
        {
          started,
          stopped: stopSignal ?? failure,
          image: IMAGE,
          commit: commit.trim(),
          load,
          apps: info,
          rows: measured,
        },
        file,
      );
      log(`results: ${file}`);
    })());
  for (const [signal, code] of [
    ["SIGINT", 130],
    ["SIGTERM", 143],
  ] as const) {
    process.on(signal, () => {
      if (stopSignal) {
        // A second signal: out now, without the clean-up.
        log(`${signal}: exiting; remove what is left with: snapdeploy server uninstall -n ${NS} --purge`);
        process.exit(code);
      }
      stopSignal = signal;
      process.exitCode = code;
      log(`${signal}: stopping after the current step, then cleaning up (again to exit at once)`);
    });
  }
  try {
    for (const app of apps) for (const builder of chosenBuilders) await benchApp(app, builder, rows);
  } catch (e) {
    // A step that failed because of the signal (Ctrl-C reaches the children too) is a stop.
    if (!stopSignal) {
      failure = `a failure (${(e as Error).message.split("\n")[0]})`;
      throw e;
    }
  } finally {
    await finish();
  }
}

await main();
