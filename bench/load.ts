/**
 * `npm run bench -- load`: 8 simulated users deploying 4 different apps at once to one build
 * server (the default builder), 50 deploys in all, each user to a Deployment of their own.
 * Reports deploys, failures, p50/p95 deploy time (whole CLI process), whether each user's
 * Service answered their own greeting, and the agent's RSS, open files and processes at start,
 * peak and end. LOAD_USERS, LOAD_APPS, LOAD_DEPLOYS change the shape.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { REGISTRY_CA_FLAGS, REGISTRY_NODE, tempNamespace, uniqueName } from "../test/helpers/cluster.js";
import { fmtSample, loadTable, runLoad, sampleAgent } from "../test/helpers/load.js";
import { pushPlaceholder, startClient } from "../test/helpers/web.js";
import { freeVolume, lockBench, run, sleep, snapshotCli, uninstallServer } from "./util.js";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const NS = "bench-load";
const log = (line: string) => process.stderr.write(`[bench] ${line}\n`);
const shape = {
  users: Number(process.env.LOAD_USERS ?? 8),
  apps: Number(process.env.LOAD_APPS ?? 4),
  deploys: Number(process.env.LOAD_DEPLOYS ?? 50),
};
/** How long the agent is left idle after the run before its last sample. */
const IDLE_S = 30;

lockBench("load", `namespace ${NS}`);
const CLI = snapshotCli("cli-load");

async function main() {
  await uninstallServer(CLI, NS);
  await freeVolume(ROOT);
  await run(process.execPath, [CLI, "server", "install", "-n", NS, ...REGISTRY_CA_FLAGS]);
  const { ns, cleanup } = await tempNamespace("bench-load-apps");
  const dirs: string[] = [];
  try {
    const runId = uniqueName("load");
    const placeholder = await pushPlaceholder(dirs, runId);
    await startClient(ns);
    const r = await runLoad({
      ...shape,
      cli: CLI,
      serverNs: NS,
      appNs: ns,
      repository: `${REGISTRY_NODE}/bench-load`,
      placeholder,
      runId,
      dirs,
      log,
    });
    await sleep(IDLE_S * 1000);
    const idle = await sampleAgent(NS);
    const lines = [
      ...loadTable(shape, r),
      `after ${IDLE_S} s more idle: ${fmtSample(idle)}`,
      "",
      "| app | deploys | p50 | max |",
      "|---|---|---|---|",
      ...[...new Set(r.records.map((x) => x.app))].map((app) => {
        const t = r.records.filter((x) => x.app === app).map((x) => x.seconds);
        t.sort((a, b) => a - b);
        return `| ${app} | ${t.length} | ${(t[Math.ceil(t.length / 2) - 1] ?? 0).toFixed(1)} s | ${Math.max(...t).toFixed(1)} s |`;
      }),
    ];
    for (const x of r.records.filter((x) => x.code !== 0))
      log(`${x.user} deploy ${x.round} failed:\n${x.stderrTail}`);
    process.stdout.write(`${lines.join("\n")}\n`);
    mkdirSync(join(ROOT, "bench/results"), { recursive: true });
    writeFileSync(
      join(ROOT, "bench/results", `load-${Date.now()}.json`),
      JSON.stringify({ shape, ...r, idle }, null, 2),
    );
  } finally {
    await cleanup();
    await uninstallServer(CLI, NS);
    for (const d of dirs) await run("rm", ["-rf", d]);
  }
}

await main();
