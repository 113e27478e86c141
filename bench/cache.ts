/**
 * Registry cache benchmark: what `server install --cache registry` (BuildKit's cache exported
 * to and imported from `<repository>:buildcache`, mode max) costs per build, and what it saves
 * on a new, empty volume, for the deps-heavy app of the build bench. Builder buildkit, one
 * server at a time in namespace bench-cache; each figure is one whole `snapdeploy build`.
 *
 *   volume    cold (new server, new stamp), then one file changed        — the cache on the volume only
 *   registry  the same two builds with --cache registry                  — the export's cost
 *   new volume, one more file changed: a server reinstalled with --purge, without the registry
 *             cache and with it — the saving (the sync of the whole tree is in both)
 *
 *   eval "$(cluster/env)" && npm run bench -- cache
 */
import { rmSync } from "node:fs";
import os from "node:os";
import { fileURLToPath } from "node:url";
import { defaultCacheFile, fingerprintFile } from "../src/context/scan.js";
import { buildApp, editOneFile, stampRound } from "./build-fixtures.js";
import { fmtS, fmtX, freeVolume, jsonResult, lockBench, run, snapshotCli, uninstallServer } from "./util.js";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const NS = "bench-cache";
const REGISTRY = "10.245.0.1:5000";
const CLUSTER_CA = "/var/lib/snapdeploy-cluster/pki/ca.crt";
const RUN_ID = Date.now().toString(36);
const log = (line: string) => process.stderr.write(`[bench] ${line}\n`);

lockBench("cache", `namespace ${NS}`);
const CLI = snapshotCli("cli-cache");
const app = buildApp("deps-heavy", log);
const dir = app.dirs.snapdeploy;
const cacheFile = defaultCacheFile(dir);

type Cache = "volume" | "registry";

async function freshServer(cache: Cache) {
  await uninstallServer(CLI, NS);
  await freeVolume(ROOT);
  const flags = ["--builder", "buildkit", "--cache", cache, "--registry-ca", `${REGISTRY}=${CLUSTER_CA}`];
  await run(process.execPath, [CLI, "server", "install", "-n", NS, ...flags]);
  // A new volume: the local scan cache would otherwise describe a tree the server never had.
  for (const f of [cacheFile, fingerprintFile(cacheFile)]) rmSync(f, { force: true });
}

/** One whole build; the repository per cache mode, so neither finds the other's snapshots or cache. */
async function build(cache: Cache, what: string): Promise<number> {
  await run("sync", []);
  const repository = `${REGISTRY}/bench-cache/${RUN_ID}-${cache}`;
  const p = await run(process.execPath, [
    CLI,
    "build",
    "--server-namespace",
    NS,
    "--user",
    "bench",
    "--project",
    "deps",
    "-C",
    dir,
    "-r",
    repository,
    "-o",
    "json",
  ]);
  const out = jsonResult(p.stdout);
  if (out.skipped) throw new Error(`${what}: the build was skipped; expected a build`);
  const cached = (p.stderr.match(/^REMOTE: #\d+ CACHED$/gm) ?? []).length;
  log(`${cache} ${what}: ${p.seconds.toFixed(2)} s (${cached} steps CACHED; ${JSON.stringify(out.timings)})`);
  return p.seconds;
}

async function main() {
  log(`run ${RUN_ID}: ${os.cpus().length} CPUs, load average ${os.loadavg()[0]?.toFixed(2)}`);
  const t: Record<string, Record<Cache, number>> = { cold: {}, one: {}, fresh: {} } as never;
  // Wait out the scan cache's distrust of files written in the last 2 s.
  const settle = () => new Promise((r) => setTimeout(r, 2100));
  for (const cache of ["volume", "registry"] as const) {
    await freshServer(cache);
    stampRound(app, `${RUN_ID}-${cache}`);
    await settle();
    (t.cold as Record<Cache, number>)[cache] = await build(cache, "cold");
    editOneFile(app, `${RUN_ID}${cache[0]}1`);
    await settle();
    (t.one as Record<Cache, number>)[cache] = await build(cache, "one file changed");
    // The same tree, one more edit, on a new volume: only the registry cache survives it.
    editOneFile(app, `${RUN_ID}${cache[0]}2`);
    await freshServer(cache);
    await settle();
    (t.fresh as Record<Cache, number>)[cache] = await build(cache, "new volume, one more file changed");
    editOneFile(app, `${RUN_ID}${cache[0]}0`); // the next mode starts from the same kind of tree
  }
  await uninstallServer(CLI, NS);
  const rows = [
    ["cold (new server, new content): the export's cost", "cold"],
    ["one file changed: the export's cost per build", "one"],
    ["new volume, the tree built before + 1 edit: the saving", "fresh"],
  ] as const;
  const lines = [
    `deps-heavy (${app.files} files), builder buildkit, one run each, load average ${os.loadavg()[0]?.toFixed(2)}`,
    "",
    "| scenario | --cache volume | --cache registry | registry/volume |",
    "|---|---|---|---|",
    ...rows.map(([label, k]) => {
      const r = t[k] as Record<Cache, number>;
      return `| ${label} | ${fmtS(r.volume)} | ${fmtS(r.registry)} | ${fmtX(r.registry, r.volume)} |`;
    }),
  ];
  process.stdout.write(`${lines.join("\n")}\n`);
}

await main();
