/**
 * The load run: simulated users deploying different apps at once to one build server, each
 * to a Deployment of their own, while the agent's memory, open files and processes are sampled.
 * The e2e suite runs a small one (test/e2e/load.test.ts), `npm run bench -- load` the full one.
 */
import { promises as fs } from "node:fs";
import path from "node:path";
import { eventually, mustKubectl, NODE_TOOLS_IMAGE, run, serverPod, sleep } from "./cluster.js";
import { served, webApp, webWorkload } from "./web.js";

/** The apps, each a variant of examples/hello-http built differently. */
export const APPS = ["plain", "run-step", "many-files", "multi-stage"] as const;
export type AppKind = (typeof APPS)[number];

/** Files each kind adds to (or replaces in) the example app. */
function appFiles(kind: AppKind): Record<string, string> {
  const from = `ARG BASE=${NODE_TOOLS_IMAGE}\nFROM \${BASE}`;
  switch (kind) {
    case "plain":
      return {};
    case "run-step":
      // A RUN after the COPY: a process the builder starts on every build.
      return {
        Dockerfile: `${from}\nWORKDIR /app\nCOPY server.js greeting.txt ./\nRUN wc -c greeting.txt > built.txt\nCMD ["node", "/app/server.js"]\n`,
      };
    case "many-files": {
      // 400 more files to scan, sync and send as build context.
      const files: Record<string, string> = {};
      for (let i = 0; i < 400; i++) files[`assets/${i % 20}/file-${i}.txt`] = `asset ${i}\n`.repeat(40);
      return files;
    }
    case "multi-stage":
      // The greeting passes through a first stage.
      return {
        Dockerfile: `${from} AS gen\nCOPY greeting.txt /src/\nRUN cp /src/greeting.txt /src/out.txt\nFROM \${BASE}\nWORKDIR /app\nCOPY server.js ./\nCOPY --from=gen /src/out.txt ./greeting.txt\nCMD ["node", "/app/server.js"]\n`,
      };
  }
}

/** What the agent process (PID 1 of its container) holds: RSS in MiB, open files, processes. */
export interface AgentSample {
  at: number;
  rssMiB: number;
  openFiles: number;
  /** The agent and every process it started (buildctl, tar, …). */
  processes: number;
}

/**
 * Read inside the agent container by one `node` run through exec. A process exec'd into a
 * container has no parent inside it, so it is not counted among the agent's.
 */
const SAMPLE_SCRIPT = `
const fs = require("fs");
const parent = {};
for (const p of fs.readdirSync("/proc")) {
  if (!/^\\d+$/.test(p)) continue;
  try {
    const s = fs.readFileSync("/proc/" + p + "/stat", "utf8");
    parent[p] = s.slice(s.lastIndexOf(")") + 2).split(" ")[1];
  } catch {}
}
const underAgent = (p) => { for (let q = p; q && q !== "0"; q = parent[q]) if (q === "1") return true; return false; };
const rss = Number(/VmRSS:\\s+(\\d+)/.exec(fs.readFileSync("/proc/1/status", "utf8"))[1]);
process.stdout.write(JSON.stringify({
  rssKiB: rss,
  openFiles: fs.readdirSync("/proc/1/fd").length,
  processes: Object.keys(parent).filter(underAgent).length,
}));
`;

export async function sampleAgent(serverNs: string): Promise<AgentSample> {
  const pod = await serverPod(serverNs);
  const out = await mustKubectl([
    "-n",
    serverNs,
    "exec",
    pod,
    "-c",
    "agent",
    "--",
    "node",
    "-e",
    SAMPLE_SCRIPT,
  ]);
  const s = JSON.parse(out) as { rssKiB: number; openFiles: number; processes: number };
  return { at: Date.now(), rssMiB: s.rssKiB / 1024, openFiles: s.openFiles, processes: s.processes };
}

export interface LoadOptions {
  /** The CLI entry point to run (the checkout's bin/snapdeploy.cjs, or a benchmark's copy). */
  cli: string;
  serverNs: string;
  /** Where the users' Deployments live; a pod "client" in it calls their Services. */
  appNs: string;
  /** The repository each app's snapshots go to is REPO/KIND. */
  repository: string;
  /** The image the Deployments run before their first deploy. */
  placeholder: string;
  users: number;
  apps: number;
  deploys: number;
  /** Makes this run's snapshots new. */
  runId: string;
  /** Folders made here, for the caller to remove. */
  dirs: string[];
  log?: (line: string) => void;
}

export interface DeployRecord {
  user: string;
  app: AppKind;
  round: number;
  code: number;
  seconds: number;
  /** What the Service answered afterwards, when it was not this deploy's greeting. */
  wrongAnswer?: string;
  stderrTail?: string;
}

export interface LoadReport {
  records: DeployRecord[];
  /** Each user's Service after the last deploy, when it did not answer that user's last greeting. */
  finalMismatches: string[];
  start: AgentSample;
  /** Once half the deploys were done: an agent that leaks grows between this and the end. */
  half?: AgentSample;
  peak: { rssMiB: number; openFiles: number; processes: number };
  end: AgentSample;
  samples: AgentSample[];
  seconds: number;
}

const greeting = (app: AppKind, user: string, round: number, runId: string) =>
  `app=${app} user=${user} deploy=${round} run=${runId}\n`;

/** Runs the load; every user's deploys one after another, all users at once. */
export async function runLoad(o: LoadOptions): Promise<LoadReport> {
  const log = o.log ?? (() => {});
  const users = Array.from({ length: o.users }, (_, i) => ({
    name: `u${i}`,
    app: APPS[i % o.apps] as AppKind,
    rounds: Math.floor(o.deploys / o.users) + (i < o.deploys % o.users ? 1 : 0),
    dir: "",
  }));
  for (const u of users) {
    u.dir = await webApp(o.dirs, o.runId, greeting(u.app, u.name, 0, o.runId), appFiles(u.app));
    await webWorkload(o.appNs, `load-${u.name}`, o.placeholder);
  }
  const samples: AgentSample[] = [await sampleAgent(o.serverNs)];
  const start = samples[0] as AgentSample;
  log(`agent at start: ${fmtSample(start)}`);
  let sampling = true;
  const sampler = (async () => {
    while (sampling) {
      await sleep(2000);
      samples.push(await sampleAgent(o.serverNs).catch(() => samples.at(-1) as AgentSample));
    }
  })();

  const records: DeployRecord[] = [];
  let half: AgentSample | undefined;
  const t0 = performance.now();
  await Promise.all(
    users.map(async (u) => {
      for (let round = 1; round <= u.rounds; round++) {
        const want = greeting(u.app, u.name, round, o.runId);
        await fs.writeFile(path.join(u.dir, "greeting.txt"), want);
        const started = performance.now();
        const r = await run(process.execPath, [
          o.cli,
          "deploy",
          "--server-namespace",
          o.serverNs,
          "--user",
          u.name,
          "--project",
          u.app,
          "-r",
          `${o.repository}/${u.app}`,
          "-n",
          o.appNs,
          "-t",
          `load-${u.name}`,
          "-C",
          u.dir,
          "-o",
          "json",
        ]);
        const rec: DeployRecord = {
          user: u.name,
          app: u.app,
          round,
          code: r.code,
          seconds: (performance.now() - started) / 1000,
        };
        if (r.code !== 0) rec.stderrTail = r.stderr.slice(-1500);
        else {
          const answer = await answerSoon(o.appNs, `load-${u.name}`, want);
          if (answer !== want) rec.wrongAnswer = answer;
        }
        records.push(rec);
        if (records.length === Math.ceil(o.deploys / 2))
          half = await sampleAgent(o.serverNs).catch(() => undefined);
        log(
          `${u.name} (${u.app}) deploy ${round}/${u.rounds}: exit ${r.code} in ${rec.seconds.toFixed(1)} s` +
            (rec.wrongAnswer !== undefined ? `, served ${JSON.stringify(rec.wrongAnswer)}` : ""),
        );
      }
    }),
  );
  const seconds = (performance.now() - t0) / 1000;
  sampling = false;
  await sampler;

  // Every user's app, once all are done: still their own last greeting.
  const finalMismatches: string[] = [];
  for (const u of users) {
    const want = greeting(u.app, u.name, u.rounds, o.runId);
    const got = await served(o.appNs, `load-${u.name}`).catch((e: Error) => e.message);
    if (got !== want)
      finalMismatches.push(`load-${u.name}: ${JSON.stringify(got)}, not ${JSON.stringify(want)}`);
  }

  // Settling: the sessions' sockets close and the builds' processes exit within seconds.
  let end = await sampleAgent(o.serverNs);
  await eventually(
    "the agent's open files and processes back at their start",
    async () => {
      end = await sampleAgent(o.serverNs);
      return end.openFiles <= start.openFiles && end.processes <= start.processes;
    },
    60_000,
  ).catch(() => {});
  samples.push(end);
  log(`agent at end: ${fmtSample(end)}`);
  const peak = {
    rssMiB: Math.max(...samples.map((s) => s.rssMiB)),
    openFiles: Math.max(...samples.map((s) => s.openFiles)),
    processes: Math.max(...samples.map((s) => s.processes)),
  };
  return { records, finalMismatches, start, half, peak, end, samples, seconds };
}

/** The Service's answer once it is `want`, or the last answer within 20 s. */
async function answerSoon(ns: string, name: string, want: string): Promise<string> {
  let last = "";
  await eventually(
    `${name} to answer`,
    async () => {
      last = await served(ns, name);
      return last === want;
    },
    20_000,
  ).catch(() => {});
  return last;
}

export const fmtSample = (s: { rssMiB: number; openFiles: number; processes: number }) =>
  `RSS ${s.rssMiB.toFixed(1)} MiB, ${s.openFiles} open files, ${s.processes} processes`;

/** The q-quantile of xs (nearest rank). */
export function quantile(xs: number[], q: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))] ?? Number.NaN;
}

/** The report as a Markdown table. */
export function loadTable(o: { users: number; apps: number }, r: LoadReport): string[] {
  const ok = r.records.filter((x) => x.code === 0 && x.wrongAnswer === undefined);
  const times = r.records.map((x) => x.seconds);
  return [
    `${o.users} users, ${o.apps} apps, ${r.records.length} deploys in ${r.seconds.toFixed(0)} s`,
    "",
    "| deploys | failed | wrong answer | p50 | p95 | max |",
    "|---|---|---|---|---|---|",
    `| ${r.records.length} | ${r.records.filter((x) => x.code !== 0).length} | ${
      r.records.filter((x) => x.wrongAnswer !== undefined).length + r.finalMismatches.length
    } | ${quantile(times, 0.5).toFixed(1)} s | ${quantile(times, 0.95).toFixed(1)} s | ${Math.max(...times).toFixed(1)} s |`,
    "",
    "| agent | start | half the deploys done | peak | end |",
    "|---|---|---|---|---|",
    `| RSS | ${r.start.rssMiB.toFixed(1)} MiB | ${r.half?.rssMiB.toFixed(1) ?? "–"} MiB | ${r.peak.rssMiB.toFixed(1)} MiB | ${r.end.rssMiB.toFixed(1)} MiB |`,
    `| open files | ${r.start.openFiles} | ${r.half?.openFiles ?? "–"} | ${r.peak.openFiles} | ${r.end.openFiles} |`,
    `| processes | ${r.start.processes} | ${r.half?.processes ?? "–"} | ${r.peak.processes} | ${r.end.processes} |`,
    "",
    `${ok.length} of ${r.records.length} deploys succeeded and were served; samples every 2 s: ${r.samples.length}`,
  ];
}
