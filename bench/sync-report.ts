/**
 * The sync benchmark's results: a Markdown table of medians and ratios, the targets with met or
 * not met, and a JSON file with every sample.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import os from "node:os";
import { dirname } from "node:path";
import type { Fixture } from "./fixtures.js";
import { type benchEnvironment, fmtB, fmtS, fmtX, median, type Target } from "./util.js";

export interface Sample {
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
export interface Row {
  tree: string;
  scenario: string;
  snapdeploy: Sample[];
  tar: Sample[];
  rsync: Sample[];
  /** The baselines were not run again: the no-op's are shown. */
  baselinesFrom?: string;
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

export interface Run {
  started: Date;
  /** What ended the run early, if anything. */
  stopped?: string;
  image: string;
  commit: string;
  /** 1-minute load average at the start and at the end. */
  load: number[];
  trees: Fixture[];
  rows: Row[];
  /** NODE_EXTRA_CA_CERTS, if set here: left out for the CLI or kept, and what it costs a start. */
  nodeEnv?: Awaited<ReturnType<typeof benchEnvironment>>;
}

/** Prints the Markdown table and the targets, and writes everything measured as JSON to `file`. */
export function report(run: Run, file: string) {
  const { started, stopped, trees, rows, load } = run;
  const results = targets(rows);
  const out = [
    `## snapdeploy sync benchmark (${started.toISOString()})${stopped ? `, stopped by ${stopped}` : ""}`,
    "",
    ...trees.map((f) => `- ${f.name}: ${f.files} files, ${fmtB(f.bytes)} sent by a full copy; ${f.dir}`),
    `- ${os.cpus().length} CPUs; 1-minute load average ${load[0]?.toFixed(2)} at the start, ${load[1]?.toFixed(2)} at the end`,
    ...(run.nodeEnv
      ? [
          `- NODE_EXTRA_CA_CERTS is set here (a Node.js start: ${run.nodeEnv.startMs.with} ms with it, ${run.nodeEnv.startMs.without} ms without); ${run.nodeEnv.kept ? "kept" : "left out"} for the CLI`,
        ]
      : []),
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
    ...run,
    host: { cpus: os.cpus().length, node: process.version, loadavg: load },
    trees: trees.map(({ name, files, bytes, oneFile }) => ({ name, files, bytes, oneFile })),
    rows: rows.map((r) => ({
      ...r,
      median: { snapdeploy: secs(r.snapdeploy), tar: secs(r.tar), rsync: secs(r.rsync) },
    })),
    targets: results,
  };
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, `${JSON.stringify(json, null, 2)}\n`);
}
