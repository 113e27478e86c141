/**
 * snapdeploy run --parallel/--completions against a real build server and cluster: an Indexed
 * Job whose every index's output is streamed behind its index, whose failed index is named
 * with its exit code (and passed on as the CLI's), and whose bad flag values create nothing.
 */
import assert from "node:assert/strict";
import { promises as fs } from "node:fs";
import os from "node:os";
import path from "node:path";
import { spawn } from "node:child_process";
import { after, before, describe, test } from "node:test";
import {
  CLI,
  eventually,
  kubectl,
  installServer,
  mustKubectl,
  REGISTRY_CA_FLAGS,
  REGISTRY_NODE,
  sleepingDeployment,
  snapdeploy,
  tempNamespace,
  uninstallServer,
  uniqueName,
  jsonResult,
} from "../helpers/cluster.js";

const BASE = `${REGISTRY_NODE}/snapdeploy/debian:bookworm`;
/** Generous: the test machine is small and busy. */
const SLOW = { timeout: 600_000 };

let server = "";
let ns = "";
let cleanupNs = async () => {};
let dir = "";

before(async () => {
  server = await installServer("e2e-runp", REGISTRY_CA_FLAGS);
  ({ ns, cleanup: cleanupNs } = await tempNamespace("e2e-runp-apps"));
  await sleepingDeployment(ns, "web", ["app"]);
  dir = await fs.mkdtemp(path.join(os.tmpdir(), "snapdeploy-runp-"));
  const files: Record<string, string> = {
    Dockerfile: `FROM ${BASE}\nRUN echo from-the-snapshot > /marker\n`,
    "snapdeploy.yaml": [
      "project: app",
      `image: {repository: ${REGISTRY_NODE}/e2e/${uniqueName("runp")}}`,
      `deploy: {namespace: ${ns}, targets: [{name: web}]}`,
      "",
    ].join("\n"),
  };
  for (const [p, c] of Object.entries(files)) await fs.writeFile(path.join(dir, p), c);
});

after(async () => {
  await uninstallServer(server);
  await cleanupNs();
  if (dir) await fs.rm(dir, { recursive: true, force: true });
});

const runArgs = (extra: string[], command: string[]) => [
  "run",
  "--server-namespace",
  server,
  "--user",
  "alice",
  "-C",
  dir,
  ...extra,
  "--",
  ...command,
];
const run = (extra: string[], ...command: string[]) => snapdeploy(runArgs(extra, command));
const jobOf = (stderr: string) => {
  const name = /job (web-run-[0-9a-f]{6}) created/.exec(stderr)?.[1];
  assert.ok(name, `no job name in: ${stderr}`);
  return name;
};
const runJobs = async () =>
  (await mustKubectl(["-n", ns, "get", "jobs", "-l", "snapdeploy.dev/run", "-o", "name"])).trim();

describe("run --parallel", () => {
  test("--parallel 3 --completions 6: six indices, each line behind its index, exit 0", SLOW, async () => {
    const r = await run(
      ["--parallel", "3", "--completions", "6"],
      "sh",
      "-c",
      'echo "out $JOB_COMPLETION_INDEX $(cat /marker)"; echo "second $JOB_COMPLETION_INDEX"',
    );
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.trimEnd().split("\n").sort();
    const expected = [0, 1, 2, 3, 4, 5]
      .flatMap((i) => [`[${i}] out ${i} from-the-snapshot`, `[${i}] second ${i}`])
      .sort();
    assert.deepEqual(lines, expected, r.stdout);
    const name = jobOf(r.stderr);
    assert.match(r.stderr, new RegExp(`job ${name}: 6 of 6 indices succeeded`));
    const job = JSON.parse(await mustKubectl(["-n", ns, "get", "job", name, "-o", "json"]));
    assert.equal(job.spec.completionMode, "Indexed");
    assert.equal(job.spec.parallelism, 3);
    assert.equal(job.spec.completions, 6);
    assert.equal(job.spec.backoffLimitPerIndex, 0);
    assert.equal(job.status.completedIndexes, "0-5");
    assert.equal(job.status.failed ?? 0, 0, "no index was retried");
  });

  test("a failed index is named with its code, which is the CLI's; the others still run", SLOW, async () => {
    const r = await run(
      ["--parallel", "3", "--completions", "6", "-o", "json"],
      "sh",
      "-c",
      '[ "$JOB_COMPLETION_INDEX" = 4 ] && { echo failing; exit 3; }; echo "ok $JOB_COMPLETION_INDEX"',
    );
    assert.equal(r.code, 3, r.stderr);
    assert.match(r.stderr, /job web-run-[0-9a-f]{6}: 1 of 6 indices failed: index 4 exited with code 3$/m);
    assert.doesNotMatch(r.stderr, /^error:/m);
    // In JSON the command's output goes to stderr, still prefixed.
    for (const i of [0, 1, 2, 3, 5]) assert.match(r.stderr, new RegExp(`^\\[${i}\\] ok ${i}$`, "m"));
    assert.match(r.stderr, /^\[4\] failing$/m);
    const doc = jsonResult(r.stdout);
    assert.equal(doc.exitCodeFrom, "command");
    assert.equal(doc.exitCode, 3);
    assert.deepEqual(doc.failed, [4]);
    assert.deepEqual(
      doc.indices.map((x: { index: number; status: string; exitCode: number }) => [
        x.index,
        x.status,
        x.exitCode,
      ]),
      [
        [0, "succeeded", 0],
        [1, "succeeded", 0],
        [2, "succeeded", 0],
        [3, "succeeded", 0],
        [4, "failed", 3],
        [5, "succeeded", 0],
      ],
    );
    const job = JSON.parse(await mustKubectl(["-n", ns, "get", "job", doc.job, "-o", "json"]));
    assert.equal(job.status.failedIndexes, "4");
    assert.equal(job.status.failed, 1, "index 4 was not retried");
  });

  test("a bad --parallel or --completions exits 2 and creates nothing", SLOW, async () => {
    const before = await runJobs();
    const cases: [string[], RegExp][] = [
      [["--parallel", "abc"], /'--parallel <n>' argument 'abc' is invalid.*from 1 to 1000/],
      [["--parallel", "0"], /'--parallel <n>' argument '0' is invalid/],
      [["--parallel", "1001"], /'--parallel <n>' argument '1001' is invalid/],
      [["--parallel", "2", "--completions", "0"], /'--completions <m>' argument '0' is invalid/],
      [["--completions", "2.5"], /'--completions <m>' argument '2.5' is invalid/],
    ];
    for (const [flags, pattern] of cases) {
      const r = await run(flags, "true");
      assert.equal(r.code, 2, `${flags.join(" ")}: ${r.stderr}`);
      assert.match(r.stderr, pattern);
      // The usage text follows the error line; nothing says a build or a Job began.
      assert.doesNotMatch(r.stderr, /created in namespace|already built|^(syncing|building)/m);
    }
    assert.equal(await runJobs(), before, "no Job was created");
  });

  test("--detach with --completions alone: all indices at once, the Job's name printed", SLOW, async () => {
    const r = await run(["--completions", "2", "--detach"], "true");
    assert.equal(r.code, 0, r.stderr);
    const name = r.stdout.trim();
    assert.match(name, /^web-run-[0-9a-f]{6}$/);
    const job = JSON.parse(await mustKubectl(["-n", ns, "get", "job", name, "-o", "json"]));
    assert.deepEqual(
      [job.spec.completionMode, job.spec.parallelism, job.spec.completions],
      ["Indexed", 2, 2],
    );
  });

  test("Ctrl-C deletes the Indexed Job and its pods, exit 130", SLOW, async () => {
    const child = spawn(
      process.execPath,
      [CLI, ...runArgs(["--parallel", "2"], ["sh", "-c", "echo started; sleep 600"])],
      { stdio: ["ignore", "pipe", "pipe"] },
    );
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => {
      stdout += d;
    });
    child.stderr.on("data", (d) => {
      stderr += d;
    });
    const exited = new Promise<number | null>((r) => child.on("exit", r));
    await eventually("an index's first output", async () => /^\[[01]\] started$/m.test(stdout), 300_000);
    child.kill("SIGINT");
    assert.equal(await exited, 130, stderr);
    assert.match(stderr, /interrupted: deleted job web-run-[0-9a-f]{6}/);
    const name = jobOf(stderr);
    await eventually(
      "the job and its pods to go",
      async () =>
        (await kubectl(["-n", ns, "get", "job", name])).code !== 0 &&
        (
          await mustKubectl(["-n", ns, "get", "pods", "-l", `snapdeploy.dev/run=${name}`, "-o", "name"])
        ).trim() === "",
      120_000,
    );
  });
});
