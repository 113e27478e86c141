/**
 * Loop benchmark: what a user waits for, from the file write to the new content being
 * served by the app (examples/hello-http, with a readiness probe, polled through its
 * Service from this machine), side by side in one run:
 *   live update   `snapdeploy dev` running, a synced file written
 *   deploy        a file written, then `snapdeploy deploy`
 *   no-op deploy  `snapdeploy deploy` with nothing changed (process time)
 *   original      the original design's flow: rsync over `kubectl exec` into a build pod with the
 *                 node's Docker socket, `docker build && docker push` there, `kubectl set image`,
 *                 `kubectl rollout status` (its no-op runs the same steps on an unchanged tree)
 * Rounds interleave the tools. Prints a Markdown table and the targets; JSON to bench/results/.
 *
 *   eval "$(cluster/env)" && npm run bench -- loop
 */
import { type ChildProcess, spawn } from "node:child_process";
import { cpSync, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { get as httpGet } from "node:http";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { originalBuildPod } from "./baseline.js";
import { buildApp } from "./build-fixtures.js";
import { FIXTURES } from "./fixtures.js";
import {
  benchEnvironment,
  fmtS,
  fmtX,
  freeVolume,
  lockBench,
  median,
  run,
  sleep,
  snapshotCli,
  type Target,
  uninstallServer,
} from "./util.js";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const NS = "bench-loop";
const REGISTRY = "10.245.0.1:5000";
const CLUSTER_CA = "/var/lib/snapdeploy-cluster/pki/ca.crt";
const TOOLS_IMAGE = "127.0.0.1:5000/snapdeploy/debian-tools:bookworm-2";
const BASELINE_POD = "baseline-builder";
const ROUNDS = Number(process.env.LOOP_ROUNDS ?? 5);
const log = (line: string) => process.stderr.write(`[bench] ${line}\n`);

lockBench("loop", `namespace ${NS}`);
await benchEnvironment(log);
const CLI = snapshotCli("cli-loop");
const IMAGE =
  process.env.SNAPDEPLOY_SERVER_IMAGE ??
  readFileSync("/var/lib/snapdeploy-cluster/build-server-image", "utf8").trim();
const sdRepo = `${REGISTRY}/bench-loop/hello`;
const origRepo = `${REGISTRY}/bench-loop/hello-original`;
/** The app answering "start", which every workload runs before its first deploy. */
const PLACEHOLDER = `${REGISTRY}/bench-loop/placeholder:1`;

/**
 * A copy of examples/hello-http; with `deps`, also that folder as its node_modules (the build
 * benchmark's 10,000-file tree) in a layer of its own, below the app's files.
 */
function app(name: string, withDevRules: boolean, deps?: string): string {
  const dir = join(FIXTURES, "loop", name);
  mkdirSync(dir, { recursive: true });
  for (const f of ["Dockerfile", "server.js", "greeting.txt"])
    cpSync(join(ROOT, "examples/hello-http", f), join(dir, f));
  if (deps) {
    if (!existsSync(join(dir, "node_modules"))) cpSync(deps, join(dir, "node_modules"), { recursive: true });
    const dockerfile = readFileSync(join(dir, "Dockerfile"), "utf8");
    writeFileSync(
      join(dir, "Dockerfile"),
      dockerfile.replace("WORKDIR /app\n", "WORKDIR /app\nCOPY node_modules/ ./node_modules/\n"),
    );
  }
  if (withDevRules)
    writeFileSync(
      join(dir, "snapdeploy.yaml"),
      "dev:\n  sync: [{src: greeting.txt, dest: /app/greeting.txt}]\n",
    );
  return dir;
}

function workload(name: string) {
  return {
    apiVersion: "v1",
    kind: "List",
    items: [
      {
        apiVersion: "apps/v1",
        kind: "Deployment",
        metadata: { name, namespace: NS },
        spec: {
          replicas: 1,
          selector: { matchLabels: { app: name } },
          template: {
            metadata: { labels: { app: name } },
            spec: {
              terminationGracePeriodSeconds: 1,
              containers: [
                {
                  name: "web",
                  image: PLACEHOLDER,
                  ports: [{ containerPort: 8080 }],
                  readinessProbe: { httpGet: { path: "/", port: 8080 }, periodSeconds: 1 },
                },
              ],
            },
          },
        },
      },
      {
        apiVersion: "v1",
        kind: "Service",
        metadata: { name, namespace: NS },
        spec: { selector: { app: name }, ports: [{ port: 80, targetPort: 8080 }] },
      },
    ],
  };
}

async function kubectlApply(obj: unknown) {
  mkdirSync(join(FIXTURES, "loop"), { recursive: true });
  const file = join(FIXTURES, "loop", `apply-${Date.now()}.json`);
  writeFileSync(file, JSON.stringify(obj));
  await run("kubectl", ["apply", "-f", file]);
}

async function serviceUrl(name: string): Promise<string> {
  const ip = (
    await run("kubectl", ["-n", NS, "get", "svc", name, "-o", "jsonpath={.spec.clusterIP}"])
  ).stdout.trim();
  return `http://${ip}/`;
}

/**
 * One GET on a new connection (as `curl` does), so each poll is routed afresh: a kept-alive
 * connection stays with the old pod until that pod dies, which would time the old pod's
 * termination rather than the new code serving.
 */
function getFresh(url: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = httpGet(url, { agent: false, timeout: 2000, headers: { connection: "close" } }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (d: string) => {
        body += d;
      });
      res.on("end", () => resolve(body));
      res.on("error", reject);
    });
    req.on("timeout", () => req.destroy(new Error("timeout")));
    req.on("error", reject);
  });
}

/** Polls `url` every 10 ms until it answers `want`; seconds since `t0`. */
async function servedAt(url: string, want: string, t0: number, limitS = 120): Promise<number> {
  for (;;) {
    try {
      if ((await getFresh(url)) === want) return (performance.now() - t0) / 1000;
    } catch {}
    if ((performance.now() - t0) / 1000 > limitS)
      throw new Error(`${url} never answered ${JSON.stringify(want)}`);
    await sleep(10);
  }
}

const sdArgs = (dir: string, project: string) => [
  "--server-namespace",
  NS,
  "--user",
  "bench",
  "--project",
  project,
  "-r",
  sdRepo,
  "-n",
  NS,
  "-C",
  dir,
];

let origTag = 0;
/** The original flow, as the design's shell script does it, plus the rollout it leaves to kubectl. */
async function original(dir: string, name: string): Promise<Record<string, number>> {
  const phases: Record<string, number> = {};
  const rsh = `kubectl -n ${NS} exec -i ${BASELINE_POD} --`;
  phases.sync = (
    await run("rsync", [
      "-a",
      "--delete",
      "--blocking-io",
      "--exclude=.git",
      `--rsh=${rsh}`,
      `${dir}/`,
      `env:/work/${name}/`,
    ])
  ).seconds;
  const ref = `${origRepo}:${++origTag}-${Date.now()}`;
  const exec = ["-n", NS, "exec", BASELINE_POD, "--"];
  phases.buildPush = (
    await run("kubectl", [
      ...exec,
      "sh",
      "-c",
      `cd /work/${name} && docker build -q -t ${ref} . && docker push -q ${ref}`,
    ])
  ).seconds;
  phases.rollout = (
    await run("kubectl", ["-n", NS, "set", "image", `deployment/${name}`, `web=${ref}`])
  ).seconds;
  phases.rollout += (
    await run("kubectl", ["-n", NS, "rollout", "status", `deployment/${name}`, "--timeout=120s"])
  ).seconds;
  return phases;
}

/** snapdeploy's own split of a deploy ("deployed in 2.36s (build 0.62s, rollout 1.74s)"). */
function deployPhases(stderr: string, seconds: number, after: number): Record<string, number> {
  const m = /deployed in ([\d.]+)s \(build ([\d.]+)s, rollout ([\d.]+)s\)/.exec(stderr);
  if (!m) return { process: seconds, after };
  return {
    process: seconds,
    start: seconds - Number(m[1]),
    build: Number(m[2]),
    rollout: Number(m[3]),
    after: Math.max(after, 0),
  };
}

/**
 * One app's three workloads (live, deploy, original; `suffix` keeps each app's apart), their
 * first deploys, then ROUNDS interleaved rounds of the scenarios. Returns the table's rows.
 */
async function appSet(suffix: string, deps?: string) {
  const name = { live: `live${suffix}`, deploy: `deploy${suffix}`, original: `original${suffix}` };
  for (const w of Object.values(name)) await kubectlApply(workload(w));
  const selector = `app in (${Object.values(name).join(",")})`;
  await run("kubectl", ["-n", NS, "wait", "--for=condition=Ready", "pod", "-l", selector, "--timeout=180s"]);
  const dirs = {
    live: app(name.live, true, deps),
    deploy: app(name.deploy, false, deps),
    original: app(name.original, false, deps),
  };
  const urls = {
    live: await serviceUrl(name.live),
    deploy: await serviceUrl(name.deploy),
    original: await serviceUrl(name.original),
  };
  const deploy = () =>
    run(process.execPath, [CLI, "deploy", ...sdArgs(dirs.deploy, name.deploy), "-t", name.deploy]);

  // First deploys (not measured): each app runs its tree.
  const dev = spawn(
    process.execPath,
    [CLI, "dev", ...sdArgs(dirs.live, name.live), "-t", name.live, "--no-logs"],
    { stdio: ["pipe", "ignore", "pipe"] },
  ) as ChildProcess;
  // However the benchmark ends, `dev` does not outlive it.
  const stopDev = () => dev.kill("SIGINT");
  process.once("exit", stopDev);
  let devErr = "";
  dev.stderr?.on("data", (d) => {
    devErr += d;
  });
  const t = performance.now();
  await servedAt(urls.live, readFileSync(join(dirs.live, "greeting.txt"), "utf8"), t, 300).catch(
    (e: Error) => {
      throw new Error(`${e.message}\n${devErr.slice(-3000)}`);
    },
  );
  log(`${name.live}: dev's first deploy is served`);
  // A content of its own, so that the first deploys build (rather than find an image an
  // earlier run pushed): the rounds then start with the builders' caches as a user's are.
  const warm = `warm-up ${Date.now()}\n`;
  writeFileSync(join(dirs.deploy, "greeting.txt"), warm);
  writeFileSync(join(dirs.original, "greeting.txt"), warm);
  await deploy();
  await original(dirs.original, name.original);
  log(`${name.deploy}, ${name.original}: first deploys done`);

  const s: Record<string, number[]> = {
    live: [],
    deploy: [],
    deployNoop: [],
    original: [],
    originalNoop: [],
  };
  const phases: Record<string, Record<string, number>[]> = { original: [], originalNoop: [], deploy: [] };
  for (let round = 1; round <= ROUNDS; round++) {
    const text = `round ${round} ${Date.now()}\n`;
    // live update: the write is the only action; dev does the rest.
    writeFileSync(join(dirs.live, "greeting.txt"), text);
    s.live?.push(await servedAt(urls.live, text, performance.now()));
    // deploy of a one-file change
    let t0 = performance.now();
    writeFileSync(join(dirs.deploy, "greeting.txt"), text);
    const d = await deploy();
    s.deploy?.push(await servedAt(urls.deploy, text, t0));
    phases.deploy?.push(deployPhases(d.stderr, d.seconds, (s.deploy?.at(-1) ?? 0) - d.seconds));
    // no-op deploy
    t0 = performance.now();
    await deploy();
    s.deployNoop?.push((performance.now() - t0) / 1000);
    // the original flow, one file and no-op
    t0 = performance.now();
    writeFileSync(join(dirs.original, "greeting.txt"), text);
    phases.original?.push(await original(dirs.original, name.original));
    s.original?.push(await servedAt(urls.original, text, t0));
    t0 = performance.now();
    phases.originalNoop?.push(await original(dirs.original, name.original));
    s.originalNoop?.push(await servedAt(urls.original, text, t0));
    log(
      `${suffix || "small"} round ${round}: ${Object.entries(s)
        .map(([k, v]) => `${k} ${v.at(-1)?.toFixed(2)}`)
        .join(", ")}`,
    );
  }
  process.off("exit", stopDev);
  stopDev();
  await new Promise((r) => dev.once("exit", r));
  const liveLines = devErr.split("\n").filter((l) => /live update:/.test(l));

  const m = Object.fromEntries(Object.entries(s).map(([k, v]) => [k, median(v)])) as Record<string, number>;
  const mp = (k: string, p: string) => median((phases[k] ?? []).map((x) => x[p] ?? Number.NaN));
  const rows = [
    ["one file changed: live update (dev)", m.live, m.original],
    ["one file changed: deploy", m.deploy, m.original],
    ["nothing changed: deploy", m.deployNoop, m.originalNoop],
  ] as const;
  const lines = [
    `| scenario | runs | snapdeploy | original flow | ratio |`,
    `|---|---|---|---|---|`,
    ...rows.map(
      ([label, a, b]) =>
        `| ${label} | ${ROUNDS} | ${fmtS(a as number)} | ${fmtS(b as number)} | ${fmtX(a as number, b as number)} |`,
    ),
    "",
    `snapdeploy deploy, one file: process ${fmtS(mp("deploy", "process"))} (start and load ${fmtS(mp("deploy", "start"))}, scan+sync+build+push ${fmtS(mp("deploy", "build"))}, patch + rollout ${fmtS(mp("deploy", "rollout"))}), then served after ${fmtS(mp("deploy", "after"))}`,
    `original flow, one file: rsync ${fmtS(mp("original", "sync"))}, build+push ${fmtS(mp("original", "buildPush"))}, set image + rollout status ${fmtS(mp("original", "rollout"))}`,
    `dev's own lines: ${liveLines.slice(-2).join(" | ")}`,
  ];
  const targets: Target[] = [
    {
      target: "live update ≥ 5× faster than the original one-file deploy",
      measured: fmtX(m.original as number, m.live as number),
      met: (m.original as number) / (m.live as number) >= 5,
    },
    {
      target: "live update ≤ 0.5 s median",
      measured: fmtS(m.live as number),
      met: (m.live as number) <= 0.5,
    },
    {
      target: "no-op deploy ≥ 10× faster than the original no-op",
      measured: fmtX(m.originalNoop as number, m.deployNoop as number),
      met: (m.originalNoop as number) / (m.deployNoop as number) >= 10,
    },
    {
      target: "one-file redeploy ≤ 0.72 of the original",
      measured: fmtX(m.deploy as number, m.original as number),
      met: (m.deploy as number) / (m.original as number) <= 0.72,
    },
  ];
  return { lines, targets, samples: s, phases };
}

async function main() {
  await uninstallServer(CLI, NS);
  await freeVolume(ROOT);
  await run(process.execPath, [
    CLI,
    "server",
    "install",
    "-n",
    NS,
    "--image",
    IMAGE,
    "--registry-ca",
    `${REGISTRY}=${CLUSTER_CA}`,
  ]);
  const placeholder = app("placeholder", false);
  writeFileSync(join(placeholder, "greeting.txt"), "start\n");
  await run("/usr/bin/docker", ["build", "-q", "-t", PLACEHOLDER, placeholder]);
  await run("/usr/bin/docker", ["push", "-q", PLACEHOLDER]);
  await kubectlApply(originalBuildPod(NS, BASELINE_POD, TOOLS_IMAGE));
  const deps = join(buildApp("deps-heavy", log).dirs.baseline, "node_modules");
  const sets = [
    { label: "hello-http", suffix: "", deps: undefined },
    { label: "hello-http + 10,000-file node_modules", suffix: "-big", deps },
  ];
  const lines: string[] = [];
  const targets: Target[] = [];
  const results: Record<string, unknown> = {};
  for (const set of sets) {
    const r = await appSet(set.suffix, set.deps);
    results[set.label] = r;
    lines.push(`### ${set.label}`, "", ...r.lines, "");
    log(`${set.label}:\n${r.lines.join("\n")}`);
    targets.push(...r.targets.map((t) => ({ ...t, target: `${set.label}: ${t.target}` })));
  }
  lines.push(
    "",
    "| target | measured | met |",
    "|---|---|---|",
    ...targets.map((x) => `| ${x.target} | ${x.measured} | ${x.met ? "met" : "not met"} |`),
  );
  process.stdout.write(`${lines.join("\n")}\n`);
  mkdirSync(join(ROOT, "bench/results"), { recursive: true });
  writeFileSync(
    join(ROOT, "bench/results", `loop-${Date.now()}.json`),
    JSON.stringify({ results, targets }, null, 2),
  );
  await uninstallServer(CLI, NS);
}

await main();
