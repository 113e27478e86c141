/**
 * The build benchmark's results: a Markdown table of medians, phases and ratios, the target
 * with met or not met, and a JSON file with every sample.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import os from "node:os";
import { dirname } from "node:path";
import { fmtB, fmtS, fmtX, median, type Target } from "./util.js";

export interface Sample {
  /** Wall time of the whole build: snapdeploy's process, or the baseline's three commands. */
  seconds: number;
  /**
   * Phases. snapdeploy: its own `timings` (scan, check, sync, build, push; a skip hit has only
   * scan and check). baseline: the wall time of each command (sync = rsync, build, push).
   */
  phases: Record<string, number>;
  /** Bytes on the wire: snapdeploy's sentBytes, rsync's "Total bytes sent". */
  sent?: number;
  /** snapdeploy skipped the build (the registry had the snapshot). */
  skipped?: boolean;
  /** How often the measurement was repeated after a failure. */
  retried?: number;
}
export interface Row {
  app: string;
  /** The build server's builder (buildkit, docker-socket). */
  builder: string;
  scenario: string;
  snapdeploy: Sample[];
  baseline: Sample[];
}
export interface AppInfo {
  name: string;
  files: number;
  bytes: number;
}
export interface Results {
  started: Date;
  /** Why the run ended early (a signal, a failure); undefined when it completed. */
  stopped?: string;
  image: string;
  commit: string;
  load: number[];
  apps: AppInfo[];
  rows: Row[];
}

const secs = (xs: Sample[]) => median(xs.map((s) => s.seconds));
const phase = (xs: Sample[], name: string) => median(xs.map((s) => s.phases[name] ?? Number.NaN));
/** A phase's median, or "–" where the tool had no such phase (snapdeploy's skip hits). */
const fmtPhase = (xs: Sample[], name: string) => fmtS(phase(xs, name));

function table(rows: Row[]): string {
  const head =
    "app|builder|scenario|runs|snapdeploy|(scan)|(check)|(sync)|(build)|(push)|baseline|(rsync)|(build)|(push)|sd/baseline|sd sent|rsync sent";
  const lines = [`| ${head.replaceAll("|", " | ")} |`, `|${head.replace(/[^|]+/g, "---")}|`];
  for (const r of rows) {
    const retried = [...r.snapdeploy, ...r.baseline].some((s) => s.retried);
    const cells = [
      r.app,
      r.builder,
      r.scenario,
      `${r.snapdeploy.length}${retried ? "!" : ""}`,
      fmtS(secs(r.snapdeploy)),
      ...["scan", "check", "sync", "build", "push"].map((p) => fmtPhase(r.snapdeploy, p)),
      fmtS(secs(r.baseline)),
      ...["sync", "build", "push"].map((p) => fmtPhase(r.baseline, p)),
      fmtX(secs(r.snapdeploy), secs(r.baseline)),
      fmtB(median(r.snapdeploy.map((s) => s.sent ?? Number.NaN))),
      fmtB(median(r.baseline.map((s) => s.sent ?? Number.NaN))),
    ];
    lines.push(`| ${cells.join(" | ")} |`);
  }
  return lines.join("\n");
}

/** The median of `scenario`'s snapdeploy runs with `builder`. */
const medianOf = (rows: Row[], app: string, scenario: string, builder: string) => {
  const r = rows.find((x) => x.app === app && x.scenario === scenario && x.builder === builder);
  return r?.snapdeploy.length ? secs(r.snapdeploy) : undefined;
};

function targets(rows: Row[], apps: AppInfo[]): Target[] {
  const deps = apps.find((a) => a.name === "deps-heavy");
  const target = `skip hit ≤ 1 s on the ${deps ? deps.files.toLocaleString("en") : "10,000"}-file tree`;
  const out: Target[] = [];
  for (const builder of [...new Set(rows.map((r) => r.builder))]) {
    const r = rows.find((x) => x.app === "deps-heavy" && x.scenario === "skip hit" && x.builder === builder);
    if (!r?.snapdeploy.length) {
      out.push({ target: `${target} (${builder})`, measured: "not measured", met: null });
      continue;
    }
    const sd = secs(r.snapdeploy);
    const scanCheck = median(r.snapdeploy.map((s) => (s.phases.scan ?? Number.NaN) + (s.phases.check ?? 0)));
    out.push({
      target: `${target} (${builder})`,
      measured: `${fmtS(sd)} for the whole command (scan + check ${fmtS(scanCheck)})`,
      met: sd <= 1,
    });
  }
  // buildkit against docker-socket, per app: one-file rebuild ≤ 1.1×, cold ≤ 1.2×.
  for (const app of apps) {
    for (const [scenario, limit] of [
      ["one file changed", 1.1],
      ["cold", 1.2],
    ] as const) {
      const bk = medianOf(rows, app.name, scenario, "buildkit");
      const ds = medianOf(rows, app.name, scenario, "docker-socket");
      const t = `${app.name} ${scenario}: buildkit ≤ ${limit}× docker-socket`;
      if (bk === undefined || ds === undefined) out.push({ target: t, measured: "not measured", met: null });
      else
        out.push({
          target: t,
          measured: `${fmtS(bk)} vs ${fmtS(ds)} (${fmtX(bk, ds)})`,
          met: bk <= limit * ds,
        });
    }
  }
  return out;
}

export function report(res: Results, file: string) {
  const tgts = targets(res.rows, res.apps);
  const title = `## build benchmark${res.stopped ? ` (incomplete: stopped by ${res.stopped})` : ""}`;
  const appLine = res.apps
    .map((a) => `${a.name}: ${a.files.toLocaleString("en")} files, ${fmtB(a.bytes)}`)
    .join("; ");
  const out = [
    title,
    "",
    `${res.started.toISOString()}, commit ${res.commit}, ${os.cpus().length} CPUs, load average ${res.load
      .map((l) => l.toFixed(2))
      .join(" → ")}`,
    `build server: buildkit on the public BuildKit and Node.js images, docker-socket on ${res.image}; apps: ${appLine}`,
    "",
    table(res.rows),
    "",
    "Medians; phases in parentheses. sd/baseline < 1: snapdeploy faster. `!`: a failed run was measured again.",
    "",
    "Target:",
    "",
    ...tgts.map(
      (t) => `- ${t.target}: ${t.met === null ? t.measured : `${t.met ? "met" : "not met"} (${t.measured})`}`,
    ),
    "",
  ].join("\n");
  process.stdout.write(out);
  mkdirSync(dirname(file), { recursive: true });
  const medians = res.rows.map((r) => ({
    app: r.app,
    builder: r.builder,
    scenario: r.scenario,
    snapdeploy: secs(r.snapdeploy),
    baseline: secs(r.baseline),
    ratio: secs(r.snapdeploy) / secs(r.baseline),
  }));
  writeFileSync(
    file,
    `${JSON.stringify({ ...res, cpus: os.cpus().length, medians, targets: tgts }, null, 2)}\n`,
  );
}
