/**
 * The reporter's three faces, each writing to real (in-memory) streams: plain lines, JSON
 * events one per line, and live progress on a terminal; and which face a run gets.
 */
import assert from "node:assert/strict";
import { mkdtempSync, readdirSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { Writable } from "node:stream";
import { before, describe, test } from "node:test";
import { BuildProgress } from "../../src/pipeline/build-progress.js";
import { countsText } from "../../src/ui/format.js";
import { runningText, summaryLine } from "../../src/ui/live.js";
import {
  chooseFace,
  createReporter,
  type Face,
  loadLiveFace,
  type Verbosity,
} from "../../src/ui/reporter.js";
import { ROOT, run } from "../helpers/cluster.js";
import { screen as shown } from "../helpers/screen.js";

class Sink extends Writable {
  text = "";
  override _write(chunk: Buffer, _enc: BufferEncoding, cb: () => void) {
    this.text += chunk.toString();
    cb();
  }
}

/** A terminal's stream as log-update sees it. */
class Terminal extends Sink {
  readonly isTTY = true;
  readonly columns = 100;
  readonly rows = 30;
}

function reporter(face: Face, verbosity: Verbosity = "normal") {
  const stdout = new Sink();
  const stderr = face === "tty" ? new Terminal() : new Sink();
  const logDir = mkdtempSync(path.join(tmpdir(), "snapdeploy-logs-"));
  const r = createReporter({ face, verbosity, stdout, stderr, logDir, color: false });
  return { r, stdout, stderr, logDir };
}

/** A deploy's events as the pipeline emits them. */
function deployRun(r: ReturnType<typeof reporter>["r"]) {
  const scan = r.phase("scan");
  scan.update({ files: 10, bytes: 100 });
  scan.end({ files: 12, bytes: 2048 });
  r.phase("check").end({ exists: false });
  const sync = r.phase("sync");
  sync.update({ files: 1, totalFiles: 2, bytes: 10, totalBytes: 20 });
  sync.end({ files: 2, bytes: 300, totalBytes: 20 });
  const build = r.phase("build", "building reg/app:snap-1");
  r.remote("#5 [2/2] RUN make");
  build.update({ step: "[2/2] RUN make", steps: 2, cached: 1 });
  build.end({ steps: 2, cached: 1 });
  r.phase("push").end({ layers: 3 });
  r.warn("the build context holds 1 file that looks like a secret");
  r.summary("built and pushed: scan 0.01s", { final: false });
  const rollout = r.phase("rollout");
  const replicas = { desired: 2, updated: 1, ready: 0 };
  rollout.update({ target: "deployment/web", replicas }, "deployment/web: 1 of 2 updated replicas");
  rollout.end({ targets: { "deployment/web": { desired: 2, updated: 2, ready: 2 } } });
  r.summary("deployed in 3.00s (build 2.00s, rollout 1.00s)");
  r.result("deployment/web revision 2: reg/app@sha256:ab", { image: "reg/app@sha256:ab", targets: [] });
  r.close();
}

describe("which face", () => {
  const env = { TERM: "xterm-256color" };
  test("-o json always; live progress only on a terminal, outside CI, without --quiet", () => {
    assert.equal(chooseFace({ output: "json", stderrIsTTY: true, env }), "json");
    assert.equal(chooseFace({ output: "plain", stderrIsTTY: true, env }), "tty");
    assert.equal(chooseFace({ output: "plain", stderrIsTTY: false, env }), "plain");
    assert.equal(chooseFace({ stderrIsTTY: true, env: { ...env, CI: "true" } }), "plain");
    assert.equal(chooseFace({ stderrIsTTY: true, env: { ...env, CI: "false" } }), "tty");
    assert.equal(chooseFace({ stderrIsTTY: true, env: { TERM: "dumb" } }), "plain");
    assert.equal(chooseFace({ stderrIsTTY: true, verbosity: "quiet", env }), "plain");
    assert.equal(chooseFace({ stderrIsTTY: true, verbosity: "verbose", env }), "tty");
  });
});

describe("plain face", () => {
  test("today's lines: progress and REMOTE lines on stderr, the result on stdout", () => {
    const { r, stdout, stderr } = reporter("plain");
    deployRun(r);
    assert.equal(
      stderr.text,
      [
        "building reg/app:snap-1",
        "REMOTE: #5 [2/2] RUN make",
        "warning: the build context holds 1 file that looks like a secret",
        "built and pushed: scan 0.01s",
        "deployment/web: 1 of 2 updated replicas",
        "deployed in 3.00s (build 2.00s, rollout 1.00s)",
        "",
      ].join("\n"),
    );
    assert.equal(stdout.text, "deployment/web revision 2: reg/app@sha256:ab\n");
  });

  test("--quiet: results, warnings and errors only", () => {
    const { r, stdout, stderr } = reporter("plain", "quiet");
    deployRun(r);
    r.error({ exitCode: 8, message: "the build failed", details: ["| oops"], hint: "fix it" });
    assert.equal(
      stderr.text,
      "warning: the build context holds 1 file that looks like a secret\n" +
        "error: the build failed\n  | oops\nhint: fix it\n",
    );
    assert.equal(stdout.text, "deployment/web revision 2: reg/app@sha256:ab\n");
  });

  test("--verbose: a line per finished phase, with its counts", () => {
    const { r, stderr } = reporter("plain", "verbose");
    deployRun(r);
    assert.match(stderr.text, /^phase scan done in \d\.\d\ds \(12 files, 2\.0 KiB\)$/m);
    assert.match(stderr.text, /^phase check done in .* \(not in the registry\)$/m);
    assert.match(stderr.text, /^phase sync done in .* \(2 files, 300 B sent\)$/m);
    assert.match(stderr.text, /^phase build done in .* \(2 steps, 1 cached\)$/m);
    assert.match(stderr.text, /^phase push done in .* \(3 layers\)$/m);
    assert.match(stderr.text, /^phase rollout done in .* \(deployment\/web 2\/2 ready\)$/m);
    assert.match(stderr.text, /^REMOTE: #5 \[2\/2\] RUN make$/m);
  });
});

describe("json face", () => {
  const parse = (text: string) =>
    text
      .trimEnd()
      .split("\n")
      .map((l) => JSON.parse(l) as Record<string, unknown>);

  test("one event per line: every phase with its timing and counts, warnings, the result last", () => {
    const { r, stdout, stderr } = reporter("json");
    deployRun(r);
    const events = parse(stdout.text);
    assert.deepEqual(
      events.map((e) => [e.event, e.phase].filter(Boolean).join(" ")),
      [
        "phase-start scan",
        "phase-end scan",
        "phase-start check",
        "phase-end check",
        "phase-start sync",
        "phase-end sync",
        "phase-start build",
        "phase-end build",
        "phase-start push",
        "phase-end push",
        "warning",
        "phase-start rollout",
        "phase-end rollout",
        "result",
      ],
    );
    const end = (p: string) => events.find((e) => e.event === "phase-end" && e.phase === p) ?? {};
    assert.equal(typeof end("scan").seconds, "number");
    assert.deepEqual(
      { ...end("scan"), seconds: 0 },
      {
        event: "phase-end",
        phase: "scan",
        seconds: 0,
        files: 12,
        bytes: 2048,
      },
    );
    assert.equal(end("check").exists, false);
    assert.deepEqual([end("sync").files, end("sync").bytes, end("sync").totalBytes], [2, 300, 20]);
    assert.deepEqual([end("build").steps, end("build").cached, end("build").step], [2, 1, undefined]);
    assert.equal(end("push").layers, 3);
    assert.deepEqual(end("rollout").targets, { "deployment/web": { desired: 2, updated: 2, ready: 2 } });
    assert.deepEqual(events.at(-1), { event: "result", image: "reg/app@sha256:ab", targets: [] });
    assert.deepEqual(events[10], {
      event: "warning",
      message: "the build context holds 1 file that looks like a secret",
    });
    // stderr keeps the plain lines.
    assert.match(stderr.text, /^REMOTE: #5 \[2\/2\] RUN make$/m);
    assert.match(stderr.text, /^deployed in 3\.00s/m);
  });

  test("an error: the phases it interrupted fail, then the error event with its exit code, last", () => {
    const { r, stdout, stderr } = reporter("json");
    r.phase("scan").end({ files: 1 });
    r.phase("build");
    r.error({ exitCode: 8, message: "the build failed: step x", details: ["| boom"], hint: "fix it" });
    const events = parse(stdout.text);
    assert.deepEqual(events.slice(2), [
      { event: "phase-start", phase: "build" },
      { ...events[3], event: "phase-end", phase: "build", failed: true },
      {
        event: "error",
        exitCode: 8,
        message: "the build failed: step x",
        hint: "fix it",
        details: ["| boom"],
      },
    ]);
    assert.match(stderr.text, /^error: the build failed: step x\n {2}\| boom\nhint: fix it\n$/m);
  });

  test("a result that is text alone, or not an object, is still a result event", () => {
    const { r, stdout } = reporter("json");
    r.result("deleted web-amy");
    r.result("x", ["a"]);
    assert.deepEqual(parse(stdout.text), [
      { event: "result", result: "deleted web-amy" },
      { event: "result", result: ["a"] },
    ]);
    assert.throws(() => r.result("x", { event: "mine" }), /may not have an "event" field/);
  });

  test("the CLI: a usage error with -o json is an error event on stdout, exit 2", async () => {
    const r = await run(process.execPath, [`${ROOT}/bin/snapdeploy.cjs`, "-o", "json", "--no-such-flag"]);
    assert.equal(r.code, 2);
    assert.deepEqual(parse(r.stdout), [
      { event: "error", exitCode: 2, message: "unknown option '--no-such-flag'" },
    ]);
    assert.match(r.stderr, /^error: unknown option '--no-such-flag'$/m);
  });
});

describe("live face", () => {
  before(loadLiveFace);

  test("a line per finished phase, the remote output kept in a file, a closing summary", () => {
    const { r, stdout, stderr, logDir } = reporter("tty");
    deployRun(r);
    const screen = shown(stderr.text);
    assert.match(screen, /✔ scan +12 files, 2\.0 KiB +\d\.\d\ds/);
    assert.match(screen, /✔ check +not in the registry/);
    assert.match(screen, /✔ sync +2 files, 300 B sent/);
    assert.match(screen, /✔ build +2 steps, 1 cached/);
    assert.match(screen, /✔ push +3 layers/);
    assert.match(screen, /✔ rollout +deployment\/web 2\/2 ready/);
    assert.match(screen, /warning: the build context holds 1 file/);
    assert.match(
      screen,
      /done in \d+\.\d\ds: scan [\d.]+s, check [\d.]+s, sync [\d.]+s, build [\d.]+s, push [\d.]+s, rollout [\d.]+s; sent 300 B; cache: 1 of 2 steps/,
    );
    // Condensed: the remote line, the plain start and progress lines and the non-final summary are not left.
    assert.doesNotMatch(screen, /REMOTE:|building reg\/app|1 of 2 updated replicas|built and pushed|⠋/);
    assert.equal(screen.split("\n").length, 9, screen);
    assert.equal(stdout.text, "deployment/web revision 2: reg/app@sha256:ab\n");
    const [log] = readdirSync(logDir);
    assert.equal(readFileSync(path.join(logDir, log as string), "utf8"), "#5 [2/2] RUN make\n");
  });

  test("a failure: the running phase fails, the log's tail and its path are printed with the error", () => {
    const { r, stderr, logDir } = reporter("tty");
    r.phase("build");
    for (let i = 1; i <= 20; i++) r.remote(`#5 line ${i}`);
    r.error({ exitCode: 9, message: "pushing reg/app:snap-1 failed", hint: "check the credentials" });
    const screen = shown(stderr.text);
    assert.match(screen, /✖ build +failed/);
    assert.doesNotMatch(screen, /REMOTE: #5 line 5\n/);
    assert.match(
      screen,
      /REMOTE: #5 line 6\n[\s\S]*REMOTE: #5 line 20\nerror: pushing reg\/app:snap-1 failed\n/,
    );
    const [log] = readdirSync(logDir);
    assert.match(screen, new RegExp(`the build server's whole output: ${path.join(logDir, log as string)}`));
  });

  test("--verbose prints the remote lines as well", () => {
    const { r, stderr } = reporter("tty", "verbose");
    r.phase("build");
    r.remote("#5 [2/2] RUN make");
    r.close();
    assert.match(shown(stderr.text), /REMOTE: #5 \[2\/2\] RUN make/);
  });

  test("what a running phase shows: a bar for a large upload, the build's step and output", () => {
    const MiB = 1024 * 1024;
    const t = (name: "sync" | "build" | "rollout", counts: object, targets = new Map<string, string>()) =>
      runningText({ name, counts, targets });
    assert.deepEqual(t("sync", { files: 3, totalFiles: 9, bytes: 1024, totalBytes: 2048 }), [
      "3/9 files, 1.0 KiB",
    ]);
    assert.deepEqual(t("sync", { files: 3, totalFiles: 9, bytes: 25 * MiB, totalBytes: 100 * MiB }), [
      "[#####---------------] 25% 25.0 MiB of 100.0 MiB, 3/9 files",
    ]);
    assert.deepEqual(t("build", { step: "[2/3] RUN npm ci", output: "added 9 packages" }), [
      "[2/3] RUN npm ci",
      "added 9 packages",
    ]);
    assert.deepEqual(t("rollout", {}, new Map([["deployment/web", "deployment/web: 1 of 2 updated"]])), [
      "deployment/web: 1 of 2 updated",
    ]);
    assert.equal(countsText("sync", { files: 1, bytes: 10 }), "1 file, 10 B sent");
    assert.equal(countsText("push", {}), "", "BuildKit named no layer: no count");
    const hit = [
      { name: "scan" as const, seconds: 0.1, counts: {}, failed: false },
      { name: "check" as const, seconds: 0.2, counts: { exists: true }, failed: false },
    ];
    assert.equal(
      summaryLine(hit, 0.5),
      "done in 0.50s: scan 0.10s, check 0.20s; cache: the snapshot was already built",
    );
  });
});

describe("the build server's output, read", () => {
  test("BuildKit: steps, cache hits, the current step and its output, the push and its layers", () => {
    const p = new BuildProgress();
    const lines = [
      "#1 [internal] load build definition from Dockerfile",
      "#1 DONE 0.0s",
      "#4 [1/3] FROM reg/base@sha256:0123",
      "#4 CACHED",
      "#5 [2/3] COPY deps.txt /deps.txt",
      "#5 CACHED",
      "#6 [3/3] RUN make",
      "#6 0.120 compiling",
      "#6 1.500 linking",
      "#6 DONE 1.6s",
      "#7 exporting to image",
      "#7 exporting layers 0.1s done",
      "#7 pushing layers",
      "#7 sha256:aaaaaaaaaaaaaaaa 1.2MB / 3.4MB 0.2s",
      "#7 sha256:aaaaaaaaaaaaaaaa 3.4MB / 3.4MB 0.4s done",
      "#7 sha256:bbbbbbbbbbbbbbbb 10B / 10B 0.1s done",
      "#7 pushing layers 0.5s done",
    ];
    const seen: string[] = [];
    for (const l of lines) {
      p.line(l);
      if (p.step && seen.at(-1) !== `${p.step} | ${p.output ?? ""}`)
        seen.push(`${p.step} | ${p.output ?? ""}`);
      if (l === "#6 1.500 linking") assert.equal(p.pushing, false);
    }
    assert.deepEqual(seen, [
      "[1/3] FROM reg/base@sha256:0123 | ",
      "[2/3] COPY deps.txt /deps.txt | ",
      "[3/3] RUN make | ",
      "[3/3] RUN make | compiling",
      "[3/3] RUN make | linking",
      "exporting to image | ",
    ]);
    assert.deepEqual([p.steps, p.cached, p.pushing, p.layers], [3, 2, true, 2]);
  });

  test("docker push: its layer lines", () => {
    const p = new BuildProgress();
    for (const l of [
      "The push refers to repository [reg/app]",
      "0a1b2c3d4e5f: Preparing",
      "0a1b2c3d4e5f: Pushed",
      "1a1b2c3d4e5f: Layer already exists",
      "snap-1: digest: sha256:ab size: 528",
    ])
      p.line(l);
    assert.deepEqual([p.pushing, p.layers], [true, 2]);
  });
});
