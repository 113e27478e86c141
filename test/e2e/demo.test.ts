/**
 * `npm run demo` as a new user runs it (scripts/demo.sh), twice in a row: it installs the
 * build server, deploys examples/hello-http, shows its page through port-forward, edits
 * a copy of the example, deploys again, shows the new page and both deploys' timings.
 * Its namespaces and the copy's folder are this test's own (the script's settings), so
 * the real demo's are left alone.
 */
import assert from "node:assert/strict";
import { promises as fs } from "node:fs";
import os from "node:os";
import path from "node:path";
import type { ChildProcess } from "node:child_process";
import { after, test } from "node:test";
import {
  eventually,
  kubectl,
  must,
  ROOT,
  run,
  snapdeploy,
  uninstallServer,
  uniqueName,
} from "../helpers/cluster.js";
import { startCli } from "../helpers/running.js";

const ns = uniqueName("e2e-demo");
const serverNs = uniqueName("e2e-demo-server");
let dir = "";
/** The second run's output: its "Try next:" lines are run by the last test. */
let lastRun = "";
const children: ChildProcess[] = [];

after(async () => {
  for (const c of children) if (c.exitCode === null) c.kill("SIGKILL");
  await kubectl(["delete", "namespace", ns, "--wait=false"]);
  await uninstallServer(serverNs);
  if (dir) await fs.rm(dir, { recursive: true, force: true });
});

async function demo() {
  const env = {
    ...process.env,
    SNAPDEPLOY_DEMO_NAMESPACE: ns,
    SNAPDEPLOY_DEMO_SERVER_NAMESPACE: serverNs,
    SNAPDEPLOY_DEMO_DIR: path.join(dir, "hello-http"),
  };
  const r = await run("npm", ["run", "--silent", "demo"], { cwd: ROOT, env });
  assert.equal(r.code, 0, `demo failed (${r.code}):\n${r.stdout}\n${r.stderr}`);
  return r.stdout;
}

/** The lines under "deploy N:" in the timings section. */
function timings(out: string, n: number): string[] {
  const section = out.slice(out.lastIndexOf("==> Timings"));
  const lines = section.split("\n");
  const start = lines.indexOf(`deploy ${n}:`);
  assert.ok(start >= 0, `no timings of deploy ${n}:\n${section}`);
  const rest = lines.slice(start + 1);
  const end = rest.findIndex((l) => !l.startsWith("  "));
  return rest.slice(0, end < 0 ? undefined : end).map((l) => l.trim());
}

test("the demo deploys the example, shows both pages and the timings, and runs again", async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), "snapdeploy-demo-"));
  const before = await must("git", ["-C", ROOT, "status", "--porcelain", "examples"]);

  const first = await demo();
  assert.match(first, /^page 1: hello from snapdeploy$/m);
  assert.match(first, /^page 2: hello again from snapdeploy, edited at \d\d:\d\d:\d\d$/m);
  for (const n of [1, 2]) {
    const t = timings(first, n);
    assert.ok(
      t.some((l) => /^deployed in \d/.test(l)),
      `deploy ${n} has no total time: ${t.join(" | ")}`,
    );
    assert.ok(
      t.some((l) => /^(built and pushed|skipped build \(snapshot exists\)): .*\d\.\d\ds/.test(l)),
      `deploy ${n} has no build timings: ${t.join(" | ")}`,
    );
  }
  // The edit was built (a new snapshot), whatever the first deploy found in the registry.
  assert.ok(timings(first, 2).some((l) => l.startsWith("built and pushed: ")));
  assert.match(first, /Try next:/);
  // The page was fetched through a port-forward the script started: it is gone with the script.
  const left = await run("pgrep", ["-f", `port-forward 0:8080 -n ${ns}`]);
  assert.equal(left.code, 1, `a port-forward of the demo is still running: ${left.stdout}`);
  assert.match(first, new RegExp(`snapdeploy dev -n ${ns}`));

  // Again: the unedited example's snapshot exists now, so its deploy skips the build.
  const second = await demo();
  lastRun = second;
  assert.match(second, /^page 1: hello from snapdeploy$/m);
  assert.match(second, /^page 2: hello again from snapdeploy, edited at/m);
  assert.ok(
    timings(second, 1).some((l) => l.startsWith("skipped build (snapshot exists): ")),
    timings(second, 1).join(" | "),
  );

  // The example in the repository is untouched; the edits went to the copy.
  assert.equal(await must("git", ["-C", ROOT, "status", "--porcelain", "examples"]), before);
  assert.match(await fs.readFile(path.join(dir, "hello-http/greeting.txt"), "utf8"), /edited at/);
});

/** The `snapdeploy …` lines the demo prints under "Try next:", comments dropped, as argv. */
function tryNext(out: string): string[][] {
  const lines = out.slice(out.lastIndexOf("Try next:")).split("\n").slice(1);
  const end = lines.findIndex((l) => !l.startsWith("  "));
  return lines
    .slice(0, end < 0 ? undefined : end)
    .map((l) => l.replace(/\s+#.*$/, "").trim())
    .filter((l) => l.startsWith("snapdeploy "))
    .map((l) => l.split(/\s+/).slice(1));
}

test("the commands the demo suggests next work as printed, in the copy's folder", async () => {
  assert.ok(lastRun, "the demo ran");
  const app = path.join(dir, "hello-http");
  const cmds = tryNext(lastRun);
  const verbs = cmds.map((a) => a[0]);
  assert.deepEqual(verbs, ["history", "rollback", "dev", "logs", "server"], cmds.join(" | "));
  const byVerb = (v: string) => cmds.find((a) => a[0] === v) as string[];

  const history = await snapdeploy(byVerb("history"), { cwd: app });
  assert.equal(history.code, 0, history.stderr);
  assert.ok(history.stdout.trim().split("\n").length >= 3, `a header and both deploys:\n${history.stdout}`);

  const rollback = await snapdeploy(byVerb("rollback"), { cwd: app });
  assert.equal(rollback.code, 0, rollback.stderr);

  // dev deploys the edited tree (the rollback went back to the first page: its first deploy
  // must not take the restored image for the edited snapshot), forwards 8080, and an edit of
  // greeting.txt goes into the container without a rebuild.
  const dev = startCli(byVerb("dev"), children, app);
  await dev.waitFor(/\[dev\] running snapshot [0-9a-f]{12}/, 300_000);
  // The forward starts beside the first deploy: its line may come before or after.
  await eventually("dev's port-forward", async () =>
    /forwarding 127\.0\.0\.1:8080 -> 8080/.test(dev.out.stderr),
  );
  const page = async () => {
    try {
      return await (await fetch("http://127.0.0.1:8080/", { signal: AbortSignal.timeout(5000) })).text();
    } catch (e) {
      return `(${(e as Error).message})`;
    }
  };
  const edited = await fs.readFile(path.join(app, "greeting.txt"), "utf8");
  await eventually("dev's port to serve the edited page", async () => (await page()) === edited, 30_000);
  await fs.writeFile(path.join(app, "greeting.txt"), "edited during dev\n");
  await dev.waitFor(/\[dev\] live update: 1 file into 1 container in [\d.]+ s/);
  await eventually("the live-updated page", async () => (await page()) === "edited during dev\n", 30_000);
  dev.child.kill("SIGINT");
  await new Promise((r) => (dev.child.exitCode === null ? dev.child.once("exit", r) : r(undefined)));

  const logs = startCli(byVerb("logs"), children, app);
  await logs.waitFor(/^\S+\/\S+ listening on 8080$/m);
  logs.child.kill("SIGINT");

  const status = await snapdeploy(byVerb("server"), { cwd: app });
  assert.equal(status.code, 0, status.stderr);
  assert.match(status.stdout + status.stderr, /workspace/i);
});
