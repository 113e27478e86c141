/**
 * What a deploy prints, against the real cluster: `-o json` as one JSON event per line
 * (every phase, the result last; a failure's error event last, with its exit code),
 * --quiet, and live progress on a terminal (a pty made by util-linux's `script`).
 */
import assert from "node:assert/strict";
import { promises as fs } from "node:fs";
import { describe, test } from "node:test";
import {
  CLI,
  jsonEvents,
  REGISTRY_CA_FLAGS,
  REGISTRY_NODE,
  run,
  serverAndNamespace,
  snapdeploy,
  uniqueName,
} from "../helpers/cluster.js";
import { screen } from "../helpers/screen.js";
import { pushPlaceholder, webApp, webWorkload } from "../helpers/web.js";

const repo = `${REGISTRY_NODE}/e2e/output`;
const RUN_ID = `${uniqueName("run")}\n`;
const cluster = serverAndNamespace("e2e-output", REGISTRY_CA_FLAGS, async ({ ns, dirs }) => {
  await webWorkload(ns, "web", await pushPlaceholder(dirs, RUN_ID));
});

const common = () => ["--server-namespace", cluster.server, "--user", "olga", "--project", "web", "-r", repo];
const deployArgs = (dir: string) => ["deploy", ...common(), "-n", cluster.ns, "-t", "web", "-C", dir];
const buildArgs = (dir: string) => ["build", ...common(), "-C", dir];

type Event = Record<string, unknown>;
const ended = (events: Event[], phase: string) =>
  events.find((e) => e.event === "phase-end" && e.phase === phase);

describe("output", () => {
  test("deploy -o json: one event per line, every phase with its counts, the result last", async () => {
    const dir = await webApp(cluster.dirs, RUN_ID, "json events\n");
    const r = await snapdeploy([...deployArgs(dir), "-o", "json"]);
    assert.equal(r.code, 0, r.stderr);
    const events = jsonEvents(r.stdout);
    for (const phase of ["scan", "check", "sync", "build", "push", "rollout"]) {
      assert.ok(
        events.some((e) => e.event === "phase-start" && e.phase === phase),
        `${phase} started: ${r.stdout}`,
      );
      const end = ended(events, phase);
      assert.ok(end, `${phase} ended: ${r.stdout}`);
      assert.equal(typeof end.seconds, "number");
      assert.equal(end.failed, undefined, `${phase} did not fail`);
    }
    assert.ok((ended(events, "scan")?.files as number) >= 3, "the scan counts the files");
    assert.equal(ended(events, "check")?.exists, false);
    assert.ok((ended(events, "sync")?.bytes as number) > 0, "the sync counts the bytes sent");
    assert.ok((ended(events, "build")?.steps as number) >= 2, "the build counts the Dockerfile's steps");
    assert.deepEqual(ended(events, "rollout")?.targets, {
      "deployment/web": { desired: 1, updated: 1, ready: 1 },
    });
    const order = events.filter((e) => e.event === "phase-start").map((e) => e.phase);
    assert.deepEqual(order, ["scan", "check", "sync", "build", "push", "rollout"]);
    const last = events.at(-1) as Event;
    assert.equal(last.event, "result");
    assert.match(String(last.image), new RegExp(`^${repo}@sha256:[0-9a-f]{64}$`));
    assert.deepEqual(
      (last.targets as { target: string; outcome: string }[]).map((t) => [t.target, t.outcome]),
      [["deployment/web", "succeeded"]],
    );
    // stderr keeps the plain lines, remote ones marked.
    assert.match(r.stderr, /^REMOTE: #\d+ /m);
    assert.match(r.stderr, /^deployed in /m);
  });

  test("a failing build -o json: the build phase failed, the error event last with exit code 8", async () => {
    const dir = await webApp(cluster.dirs, RUN_ID, "broken\n");
    await fs.writeFile(`${dir}/Dockerfile`, "FROM scratch\nNOT-AN-INSTRUCTION here\n");
    const r = await snapdeploy([...deployArgs(dir), "-o", "json"]);
    assert.equal(r.code, 8, r.stderr);
    const events = jsonEvents(r.stdout);
    const last = events.at(-1) as Event;
    assert.equal(last.event, "error");
    assert.equal(last.exitCode, 8);
    assert.match(String(last.message), /the build failed/);
    assert.match(String(last.hint), /nothing was pushed or deployed/);
    assert.equal(ended(events, "build")?.failed, true, r.stdout);
    assert.ok(!events.some((e) => e.phase === "rollout"), "no rollout after a failed build");
    assert.match(r.stderr, /^error: the build failed/m);
  });

  test("--quiet: the result and nothing else", async () => {
    const dir = await webApp(cluster.dirs, RUN_ID, "quiet\n");
    const r = await snapdeploy([...buildArgs(dir), "--quiet"]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stderr, "");
    assert.match(r.stdout, new RegExp(`^${repo}:snap-[0-9a-f]+@sha256:[0-9a-f]{64}\\n$`));
  });

  test("on a terminal: a line per finished phase, the build condensed, a closing summary", async () => {
    const dir = await webApp(cluster.dirs, RUN_ID, "on a terminal\n");
    const cmd = [process.execPath, CLI, ...buildArgs(dir)].map((a) => `'${a}'`).join(" ");
    const env = { ...process.env, CI: "", COLUMNS: "120", LINES: "40", NO_COLOR: "1" };
    // `script` gives the command a pty; its output (stdout and stderr together) is the terminal's.
    const r = await run("script", ["-qec", `stty cols 120 rows 40; ${cmd}`, "/dev/null"], { env });
    assert.equal(r.code, 0, r.stdout);
    const shown = screen(r.stdout);
    for (const phase of ["scan", "check", "sync", "build", "push"])
      assert.match(shown, new RegExp(`^✔ ${phase} +.*\\d+\\.\\d\\ds$`, "m"), `${phase}'s line: ${shown}`);
    assert.match(shown, /^done in \d+\.\d\ds: scan .*; sent .*; cache: \d+ of \d+ steps$/m);
    assert.doesNotMatch(shown, /REMOTE: /, "the build's output is condensed, not printed");
    assert.match(shown, new RegExp(`^${repo}:snap-[0-9a-f]+@sha256:[0-9a-f]{64}$`, "m"));

    // A failure prints where the whole output is, with the error.
    await fs.writeFile(`${dir}/Dockerfile`, "FROM scratch\nNOT-AN-INSTRUCTION here\n");
    const bad = await run("script", ["-qec", `stty cols 120 rows 40; ${cmd}`, "/dev/null"], { env });
    assert.equal(bad.code, 8, bad.stdout);
    const failed = screen(bad.stdout);
    assert.match(failed, /✖ build +failed/);
    assert.match(failed, /error: the build failed/);
    const log = /the build server's whole output: (\S+\.log)/.exec(failed)?.[1];
    assert.ok(log, failed);
    assert.match(await fs.readFile(log, "utf8"), /NOT-AN-INSTRUCTION|unknown instruction/i);
  });
});
