/**
 * `snapdeploy gc` on a real build server: `--dry-run` lists the idle workspace and the
 * blobs only it names, `gc` then removes exactly that (and nothing a recent workspace
 * needs), and a deploy of the collected project works afterwards (its files are sent
 * again). A workspace is made idle by setting its last-use record (info.json's mtime)
 * ten days back inside the agent's pod, with `touch -d` over exec: waiting a week is not
 * an option in a test. With the buildkit builder, the pod's own BuildKit cache is pruned
 * for real (the Docker builders' cache is the node daemon's, shared with the other tests,
 * so there it is only measured).
 */
import assert from "node:assert/strict";
import { promises as fs } from "node:fs";
import { after, before, test } from "node:test";
import {
  eventually,
  inServer,
  installServer,
  REGISTRY_CA_FLAGS,
  REGISTRY_NODE,
  snapdeploy,
  tempNamespace,
  uninstallServer,
  uniqueName,
  jsonResult,
  mustKubectl,
  serverPod,
} from "../helpers/cluster.js";
import { pushPlaceholder, webApp, webWorkload } from "../helpers/web.js";

let server = "";
let apps = "";
let dropApps = async () => {};
const dirs: string[] = [];
const RUN_ID = `${uniqueName("run")}\n`;

before(async () => {
  server = await installServer("e2e-gc", ["--builder", "docker-socket", ...REGISTRY_CA_FLAGS]);
  ({ ns: apps, cleanup: dropApps } = await tempNamespace("e2e-gc-apps"));
});
after(async () => {
  await dropApps();
  await uninstallServer(server);
  for (const d of dirs) await fs.rm(d, { recursive: true, force: true });
});

const sync = (dir: string, project: string) =>
  snapdeploy(["sync", "--server-namespace", server, "--user", "dana", "--project", project, "-C", dir]);

async function gcJson(args: string[]) {
  const r = await snapdeploy(["gc", "-n", server, "-o", "json", ...args]);
  assert.equal(r.code, 0, r.stderr);
  return jsonResult(r.stdout);
}

const blobCount = async (ns = server) =>
  Number((await inServer(ns, "find /data/blobs -type f | wc -l")).trim());

test("gc --dry-run lists the idle workspace and its blobs; gc removes exactly that; deploy works after", async () => {
  // Two projects; each has files of its own, and both the example's server.js.
  const old = await webApp(dirs, RUN_ID, "old project\n", { "data/old.bin": "o".repeat(300_000) });
  const fresh = await webApp(dirs, RUN_ID, "fresh project\n", { "data/fresh.bin": "f".repeat(300_000) });
  for (const [dir, p] of [
    [old, "old"],
    [fresh, "fresh"],
  ] as const) {
    const r = await sync(dir, p);
    assert.equal(r.code, 0, r.stderr);
  }
  await inServer(server, "touch -d '10 days ago' /data/workspaces/dana/old/info.json");
  const blobsBefore = await blobCount();

  // --keep-cache 0 in the dry run only: it reports the node's Docker build cache without touching it.
  const dry = await gcJson(["--dry-run", "--older-than", "7d", "--keep-cache", "0"]);
  assert.equal(dry.dryRun, true);
  assert.deepEqual(
    dry.workspaces.map((w: { user: string; project: string }) => `${w.user}/${w.project}`),
    ["dana/old"],
  );
  // old's own greeting.txt and data/old.bin (its run-id.txt, Dockerfile and server.js are fresh's too).
  assert.equal(dry.blobs.count, 2);
  assert.ok(dry.blobs.bytes >= 300_000, `the 300 kB blob counts: ${dry.blobs.bytes}`);
  assert.equal(dry.freed, dry.blobs.bytes + dry.workspaces[0].bytes);
  assert.equal(dry.cache.builder, "docker-socket");
  assert.ok(dry.cache.freed <= dry.cache.size);
  // Nothing went.
  assert.equal(await blobCount(), blobsBefore);
  assert.match(await inServer(server, "ls /data/workspaces/dana"), /old/);

  // The plain output says the same for people.
  const plain = await snapdeploy(["gc", "-n", server, "--dry-run", "--keep-cache", "100GB"]);
  assert.equal(plain.code, 0, plain.stderr);
  assert.match(plain.stdout, /would remove workspace dana\/old \(last used 10 d ago\)/);
  assert.match(plain.stdout, /would remove 2 blobs no workspace names/);
  assert.match(plain.stdout, /registry tags: not pruned/);

  // A large --keep-cache: the prune runs on the node's daemon but frees nothing of it.
  const real = await gcJson(["--older-than", "7d", "--keep-cache", "100GB"]);
  assert.equal(real.dryRun, false);
  assert.deepEqual(real.workspaces, dry.workspaces, "removed what the dry run listed");
  assert.deepEqual(real.blobs, dry.blobs);
  assert.equal(real.freed, dry.freed);
  assert.equal(real.cache.freed, 0);
  assert.equal(await blobCount(), blobsBefore - dry.blobs.count);
  assert.equal((await inServer(server, "ls /data/workspaces/dana")).trim(), "fresh");

  // Nothing more to collect now; the fresh workspace still syncs as a no-op.
  const again = await gcJson(["--dry-run", "--older-than", "7d", "--keep-cache", "100GB"]);
  assert.deepEqual([again.workspaces.length, again.blobs.count, again.freed], [0, 0, 0]);
  const noop = await sync(fresh, "fresh");
  assert.equal(noop.code, 0, noop.stderr);
  assert.match(noop.stderr + noop.stdout, /is up to date/);

  // The collected project deploys again: its files are sent again and built.
  await webWorkload(apps, "web", await pushPlaceholder(dirs, RUN_ID));
  const d = await snapdeploy([
    "deploy",
    "--server-namespace",
    server,
    "--user",
    "dana",
    "--project",
    "old",
    "-r",
    `${REGISTRY_NODE}/e2e/gc`,
    "-n",
    apps,
    "-t",
    "web",
    "-C",
    old,
  ]);
  assert.equal(d.code, 0, d.stderr);
  assert.match(await inServer(server, "ls /data/workspaces/dana"), /old/);
});

test("a bad --older-than or --keep-cache is refused before the build server is asked", async () => {
  for (const args of [
    ["--older-than", "1.5d"],
    ["--older-than", "7 days"],
    ["--keep-cache", "lots"],
  ]) {
    const r = await snapdeploy(["gc", "-n", server, ...args]);
    assert.equal(r.code, 2, `${args.join(" ")}: ${r.stderr}`);
    assert.match(r.stderr, /argument .* is invalid/);
  }
});

test("with the buildkit builder, gc prunes BuildKit's cache down to --keep-cache and builds still work", async () => {
  const bk = await installServer("e2e-gc-bk", ["--builder", "buildkit", ...REGISTRY_CA_FLAGS]);
  try {
    const dir = await webApp(dirs, RUN_ID, "buildkit gc\n");
    const build = () =>
      snapdeploy([
        "build",
        "--server-namespace",
        bk,
        "--user",
        "eve",
        "--project",
        "p",
        "-r",
        `${REGISTRY_NODE}/e2e/gc-bk`,
        "-C",
        dir,
      ]);
    const b = await build();
    assert.equal(b.code, 0, b.stderr);
    await inServer(bk, "touch -d '9 days ago' /data/workspaces/eve/p/info.json");
    const gcBk = async (args: string[]) => {
      const r = await snapdeploy(["gc", "-n", bk, "-o", "json", "--keep-cache", "0", ...args]);
      assert.equal(r.code, 0, r.stderr);
      return jsonResult(r.stdout);
    };
    const dry = await gcBk(["--dry-run"]);
    assert.equal(dry.cache.builder, "buildkit");
    assert.ok(dry.cache.size > 0, `BuildKit has a cache after a build: ${JSON.stringify(dry.cache)}`);
    const real = await gcBk([]);
    assert.deepEqual(real.workspaces, dry.workspaces);
    assert.deepEqual(real.blobs, dry.blobs);
    assert.ok(real.cache.freed > 0, JSON.stringify(real.cache));
    const after = await gcBk(["--dry-run"]);
    assert.ok(after.cache.size < dry.cache.size, `${after.cache.size} < ${dry.cache.size}`);
    assert.equal(await blobCount(bk), 0);
    // A change builds again from nothing cached.
    await fs.writeFile(`${dir}/greeting.txt`, "after gc\n");
    const again = await build();
    assert.equal(again.code, 0, again.stderr);
  } finally {
    await uninstallServer(bk);
  }
});

test("the build server collects by itself: server install --gc-every/--gc-older-than", async () => {
  // Refused at parse time, before anything is installed.
  const bad = await snapdeploy(["server", "install", "-n", uniqueName("e2e-gc-bad"), "--gc-every", "5x"]);
  assert.equal(bad.code, 2, bad.stderr);
  assert.match(bad.stderr, /--gc-every <age>' argument '5x' is invalid/);

  const auto = await installServer("e2e-gc-auto", [
    "--gc-every",
    "3s",
    "--gc-older-than",
    "2s",
    ...REGISTRY_CA_FLAGS,
  ]);
  try {
    const dir = await webApp(dirs, RUN_ID, "collected by the server\n");
    const syncErin = (...more: string[]) =>
      snapdeploy([
        "sync",
        "--server-namespace",
        auto,
        "--user",
        "erin",
        "--project",
        "p",
        "-C",
        dir,
        ...more,
      ]);
    const first = await syncErin();
    assert.equal(first.code, 0, first.stderr);
    assert.match(await inServer(auto, "ls /data/workspaces/erin"), /^p$/m);
    // Idle for 2 s, then the next pass (every 3 s) removes the workspace and its blobs.
    await eventually(
      "the periodic gc to remove the idle workspace",
      async () => {
        const left = await inServer(auto, "ls /data/workspaces/erin 2>/dev/null; echo listed");
        return !/^p$/m.test(left);
      },
      30_000,
    );
    const pod = await serverPod(auto);
    const logs = await mustKubectl(["-n", auto, "logs", pod, "-c", "agent"]);
    assert.match(logs, /gc: every 3 s, workspaces unused for 2 s/);
    assert.match(logs, /gc: 1 workspaces, \d+ blobs, \d+ bytes freed/);
    // The collected project syncs again, every file sent anew.
    const again = await syncErin("-o", "json");
    assert.equal(again.code, 0, again.stderr);
    const resent = jsonResult(again.stdout) as { added: number; blobs: number };
    assert.ok(resent.added > 0 && resent.blobs > 0, again.stdout);
  } finally {
    await uninstallServer(auto);
  }
});
