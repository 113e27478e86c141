/**
 * snapdeploy build against a real build server (its rootless BuildKit daemon; the node's
 * real Docker daemon and a dind daemon for those builders), and the local registries
 * (one open, one with htpasswd auth).
 */
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { promises as fs } from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import {
  builderFlags,
  CLI,
  eventually,
  inServer,
  installServer,
  kubectl,
  mustKubectl,
  REGISTRY_CA_FLAGS,
  REGISTRY_NODE,
  runInPod,
  registryHasTag,
  run,
  serverPod,
  snapdeploy,
  uninstallServer,
  uniqueName,
  exitOf,
  jsonResult,
} from "../helpers/cluster.js";

let ns = "";
const dirs: string[] = [];
before(async () => {
  ns = await installServer("e2e-build", [...REGISTRY_CA_FLAGS, "--max-builds", "2"]);
});
after(async () => {
  await uninstallServer(ns);
  for (const d of dirs) await fs.rm(d, { recursive: true, force: true });
});

const BASE = `${REGISTRY_NODE}/snapdeploy/debian:bookworm`;
const RUN_ID = `${uniqueName("run")}\n`;

/** An app whose dependency layer is slow to build and separate from its code. */
async function app(files: Record<string, string> = {}): Promise<string> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), "snapdeploy-build-"));
  dirs.push(dir);
  const all: Record<string, string> = {
    Dockerfile: [
      `FROM ${BASE}`,
      "COPY deps.txt /deps.txt",
      "RUN echo installing dependencies && sleep 2 && cp /deps.txt /installed.txt",
      "COPY app.txt /app.txt",
      'CMD ["cat", "/app.txt"]',
      "",
    ].join("\n"),
    "deps.txt": "dep-a==1\n",
    "app.txt": "version 1\n",
    "run-id.txt": RUN_ID,
    ...files,
  };
  for (const [p, c] of Object.entries(all)) await fs.writeFile(path.join(dir, p), c);
  return dir;
}

const build = (dir: string, user: string, repo: string, extra: string[] = [], server = ns) =>
  snapdeploy([
    "build",
    "--server-namespace",
    server,
    "--user",
    user,
    "--project",
    "app",
    "-r",
    repo,
    "-C",
    dir,
    ...extra,
  ]);

const refOf = (stdout: string) => {
  const m = /^(\S+):(snap-[0-9a-f]{32})@(sha256:[0-9a-f]{64})$/m.exec(stdout);
  assert.ok(m, `no image reference in: ${stdout}`);
  return { repo: m[1] as string, tag: m[2] as string, digest: m[3] as string };
};

/**
 * Bytes BuildKit received for the build context, from the remote build output: the last
 * "transferring context" line of the "[internal] load build context" step.
 */
function contextBytes(stderr: string): number {
  const step = /^REMOTE: #(\d+) \[internal\] load build context$/m.exec(stderr)?.[1];
  assert.ok(step, `no "load build context" step in: ${stderr}`);
  const sizes = [
    ...stderr.matchAll(new RegExp(`^REMOTE: #${step} transferring context: ([\\d.]+)(B|kB|MB|GB)`, "gm")),
  ];
  const last = sizes.at(-1);
  assert.ok(last, `no context transfer reported by step #${step} in: ${stderr}`);
  const unit = { B: 1, kB: 1e3, MB: 1e6, GB: 1e9 }[last[2] as "B" | "kB" | "MB" | "GB"];
  return Number(last[1]) * unit;
}

/** A build started in the background, its output gathered as it comes. */
interface Build {
  user: string;
  child: ChildProcess;
  stdout: string;
  stderr: string;
  exit: Promise<number | null>;
}

function startBuild(dir: string, user: string, repo: string): Build {
  const child = spawn(
    process.execPath,
    [CLI, "build", "--server-namespace", ns, "--user", user, "--project", "app", "-r", repo, "-C", dir],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  const b: Build = { user, child, stdout: "", stderr: "", exit: exitOf(child) };
  child.stdout?.on("data", (d) => {
    b.stdout += d;
  });
  child.stderr?.on("data", (d) => {
    b.stderr += d;
  });
  return b;
}

/**
 * The build steps waiting at a gate: process id by the app.txt in their container (a
 * subshell forked from a step has the step's command line and root too).
 */
async function gateSteps(gate: string): Promise<Map<string, number>> {
  const found = new Map<string, number>();
  const r = await run("pgrep", ["-f", gate]);
  for (const pid of r.stdout.split("\n").filter(Boolean)) {
    const who = await fs.readFile(`/proc/${pid}/root/app.txt`, "utf8").catch(() => "");
    if (who.trim() && !found.has(who.trim())) found.set(who.trim(), Number(pid));
  }
  return found;
}

/** Whose builds wait at a gate now, sorted. */
const atGate = async (gate: string) => [...(await gateSteps(gate)).keys()].sort();

/**
 * Creates the gate file in the step's root. A rootless BuildKit step runs in a user
 * namespace where this machine's root is unmapped (EOVERFLOW): then as the step's own
 * (host) uid.
 */
async function openGateFile(pid: number): Promise<void> {
  const file = `/proc/${pid}/root/gate-open`;
  try {
    await fs.writeFile(file, "");
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "EOVERFLOW") throw e;
    const uid = /^Uid:\s+(\d+)/m.exec(await fs.readFile(`/proc/${pid}/status`, "utf8"))?.[1];
    const r = await run("setpriv", [`--reuid=${uid}`, `--regid=${uid}`, "--clear-groups", "touch", file]);
    if (r.code !== 0) throw new Error(`touch ${file} as uid ${uid}: ${r.stderr}`);
  }
}

/** Lets `user`'s build step pass its gate. */
async function openGate(gate: string, user: string, timeoutMs = 10_000): Promise<void> {
  await eventually(
    `${user}'s build at its gate`,
    async () => {
      const pid = (await gateSteps(gate)).get(user);
      if (!pid) return false;
      await openGateFile(pid);
      return true;
    },
    timeoutMs,
  );
}

describe("build", () => {
  // One repository for every run (its base layers are then pushed once); each run's
  // trees carry RUN_ID, so their snapshots are new. Each test builds in workspaces of
  // its own (its own users) and builds what it compares itself.
  const repo = `${REGISTRY_NODE}/e2e/app`;

  test("a cold build streams remote output, pushes, and prints repo:tag@digest", async () => {
    // Dependencies no earlier run has built: the dependency step really runs.
    const dir = await app({ "deps.txt": `cold ${RUN_ID}` });
    const r = await build(dir, "alice", repo);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /not built yet: first build in this workspace/);
    assert.match(r.stderr, /^REMOTE: .*\binstalling dependencies\s*$/m, "the step's own output");
    const ref = refOf(r.stdout);
    assert.ok(await registryHasTag(ref.repo.replace(`${REGISTRY_NODE}/`, ""), ref.tag));
  });

  test("a rebuild after a one-file change reuses the cached dependency layer", async () => {
    const dir = await app({ "deps.txt": `rebuild ${RUN_ID}` });
    const first = await build(dir, "abe", repo);
    assert.equal(first.code, 0, first.stderr);
    assert.match(first.stderr, /^REMOTE: .*\binstalling dependencies\s*$/m, "the first build runs the step");
    await fs.writeFile(path.join(dir, "app.txt"), "version 2\n");
    const r = await build(dir, "abe", repo);
    assert.equal(r.code, 0, r.stderr);
    assert.match(
      r.stderr,
      /0 added, 1 changed, 0 removed since this workspace's last snapshot \(~ app\.txt\)/,
    );
    assert.match(r.stderr, /REMOTE: #\d+ \[3\/4\] RUN echo installing dependencies/);
    assert.match(r.stderr, /REMOTE: #\d+ CACHED/);
    assert.doesNotMatch(
      r.stderr,
      /REMOTE: .*\binstalling dependencies\s*$/m,
      "the dependency step must not run again",
    );
  });

  test("an identical tree from a second user skips sync and build", async () => {
    const original = await app({ "app.txt": "one tree, two users\n" });
    const first = await build(original, "amy", repo);
    assert.equal(first.code, 0, first.stderr);
    const copy = await app({ "app.txt": "one tree, two users\n" });
    const r = await build(copy, "bob", repo, ["-o", "json"]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /already built \d+s ago by amy/);
    const j = jsonResult(r.stdout);
    assert.equal(j.skipped, true);
    assert.equal(j.sync, undefined, "nothing may be synced on a hit");
    const built = refOf(first.stdout);
    assert.equal(j.ref, `${built.repo}:${built.tag}`, "the first user's image");
    assert.equal(j.digest, built.digest);
  });

  test("changed build args are named as the reason for a cache miss", async () => {
    const dir = await app({ "app.txt": "with build args\n" });
    const first = await build(dir, "cara", repo);
    assert.equal(first.code, 0, first.stderr);
    const r = await build(dir, "cara", repo, ["--build-arg", "MODE=debug"]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /not built yet: same files, but buildArgs changed/);
  });

  test("a broken Dockerfile fails with the step named and its last lines; nothing is pushed", async () => {
    const broken = await app({
      Dockerfile: `FROM ${BASE}\nCOPY app.txt /app.txt\nRUN echo about to fail && echo oh no >&2 && exit 3\n`,
    });
    const r = await build(broken, "carol", repo);
    assert.equal(r.code, 8, r.stderr);
    assert.match(r.stderr, /error: the build failed: step \[3\/3\] RUN echo about to fail/);
    assert.match(r.stderr, /exit code: 3/);
    assert.match(r.stderr, /\| oh no/);
    assert.match(r.stderr, /nothing was pushed or deployed/);
    assert.doesNotMatch(r.stderr, /\n\s+at /);
    const tag = /building \S+:(snap-[0-9a-f]{32})/.exec(r.stderr)?.[1] as string;
    assert.equal(await registryHasTag(repo.replace(`${REGISTRY_NODE}/`, ""), tag), false);
  });

  test("BuildKit secrets come from a Kubernetes Secret and never enter a layer", async () => {
    const secretName = uniqueName("token");
    await mustKubectl([
      "-n",
      "default",
      "create",
      "secret",
      "generic",
      secretName,
      "--from-literal=token=s3cr3t-value",
    ]);
    try {
      const d = await app({
        Dockerfile: [
          `FROM ${BASE}`,
          // The Dockerfile names only the value's hash: build output shows RUN lines.
          `RUN --mount=type=secret,id=token test "$(sha256sum < /run/secrets/token | cut -c1-64)" = ${createHash("sha256").update("s3cr3t-value").digest("hex")} && echo secret seen > /proof`,
          "",
        ].join("\n"),
      });
      const r = await build(d, "dana", repo, ["--secret", `id=token,secret=${secretName}`]);
      assert.equal(r.code, 0, r.stderr);
      assert.doesNotMatch(r.stderr + r.stdout, /s3cr3t-value/);
      const ref = refOf(r.stdout);
      // Read back as a node runs it: the step saw the secret, no file of the image holds it.
      const out = await runInPod(
        "default",
        `${ref.repo}@${ref.digest}`,
        "cat /proof; grep -r s3cr3t-value / --exclude-dir=proc --exclude-dir=sys -l 2>/dev/null | head -1",
      );
      assert.equal(out.phase, "Succeeded", out.logs);
      assert.equal(out.logs.trim(), "secret seen");
    } finally {
      await kubectl(["-n", "default", "delete", "secret", secretName]);
    }
  });

  test("Ctrl-C stops the remote build", async () => {
    await ctrlCStopsTheBuild(ns);
  });

  test("four builds at once, two slots: two run, the others wait in order and are told their place", async () => {
    // The server allows two builds at once (--max-builds 2). Each build's last step waits
    // for its gate, a file the test writes into that step's container (through
    // /proc/PID/root: the builds run on this machine's Docker daemon), so which builds
    // run at any moment is the test's choice, not the scheduler's luck. A gate that is
    // never opened fails its build after 5 minutes.
    const gate = uniqueName("gate");
    const dockerfile = [
      `FROM ${BASE}`,
      "COPY app.txt /app.txt",
      `RUN : ${gate}; for i in $(seq 1 3000); do [ -e /gate-open ] && break; sleep 0.1; done; [ -e /gate-open ] && echo "built for $(cat /app.txt)"`,
      "",
    ].join("\n");
    const users = ["frank", "gina", "hank", "ivy"] as const;
    const trees = await Promise.all(users.map((u) => app({ Dockerfile: dockerfile, "app.txt": `${u}\n` })));
    const builds = new Map<string, Build>();
    const start = (i: number) => {
      const user = users[i] as string;
      builds.set(user, startBuild(trees[i] as string, user, repo));
      return builds.get(user) as Build;
    };
    try {
      const frank = start(0);
      const gina = start(1);
      await eventually(
        "frank's and gina's builds to wait at their gates",
        async () => (await atGate(gate)).join() === "frank,gina",
        180_000,
      );
      const hank = start(2);
      await eventually(
        "hank's build to queue",
        async () => /queued: 1 build\(s\) ahead of yours/.test(hank.stderr),
        60_000,
      );
      const ivy = start(3);
      await eventually(
        "ivy's build to queue",
        async () => /queued: 2 build\(s\) ahead of yours/.test(ivy.stderr),
        60_000,
      );
      // Two slots: the queued builds have not started building.
      assert.deepEqual(await atGate(gate), ["frank", "gina"]);
      for (const b of [hank, ivy]) assert.doesNotMatch(b.stderr, /building \S+:snap-/, b.user);

      // A freed slot goes to the first in line (hank); ivy moves up to first place.
      await openGate(gate, "frank");
      assert.equal(await frank.exit, 0, frank.stderr);
      await eventually("a queued build to start", async () => (await atGate(gate)).length === 2, 120_000);
      assert.deepEqual(await atGate(gate), ["gina", "hank"]);
      await eventually(
        "ivy to be told her new place",
        async () =>
          /queued: 2 build\(s\) ahead of yours[\s\S]*queued: 1 build\(s\) ahead of yours/.test(ivy.stderr),
        10_000,
      );
      assert.doesNotMatch(ivy.stderr, /building \S+:snap-/);

      await openGate(gate, "gina");
      assert.equal(await gina.exit, 0, gina.stderr);
      await eventually(
        "ivy's build to start",
        async () => (await atGate(gate)).join() === "hank,ivy",
        120_000,
      );
      await openGate(gate, "hank");
      await openGate(gate, "ivy");
      for (const b of [hank, ivy]) assert.equal(await b.exit, 0, b.stderr);

      // No build saw another's files.
      for (const b of builds.values()) {
        assert.match(b.stderr, new RegExp(`^REMOTE: .*built for ${b.user}\\s*$`, "m"));
        for (const other of users.filter((u) => u !== b.user))
          assert.doesNotMatch(b.stderr, new RegExp(`built for ${other}`), `${b.user} saw ${other}`);
      }
      const tags = new Set([...builds.values()].map((b) => refOf(b.stdout).tag));
      assert.equal(tags.size, 4);
    } finally {
      for (const b of builds.values()) {
        if (b.child.exitCode !== null) continue;
        await openGate(gate, b.user, 1000).catch(() => {});
        b.child.kill("SIGINT");
      }
    }
  });

  test("the context transfer stays incremental when a sync switches the workspace's tree", async (t) => {
    // 300 incompressible files of 16 kB (4.9 MB). Each sync fills the workspace's other
    // tree; every build must still send BuildKit only what changed since the previous one.
    const d = await app({ Dockerfile: `FROM ${BASE}\nCOPY . /ctx\n` });
    await fs.mkdir(path.join(d, "data"));
    for (let i = 0; i < 300; i++) await fs.writeFile(path.join(d, "data", `f${i}.bin`), randomBytes(16_384));
    // A user new to the daemon: BuildKit's context cache outlives the test's build server.
    const user = uniqueName("ctx");
    const transferred: number[] = [];
    for (const edit of [undefined, "f1.bin", "f2.bin"]) {
      if (edit) await fs.writeFile(path.join(d, "data", edit), randomBytes(16_384));
      const r = await build(d, user, repo);
      assert.equal(r.code, 0, r.stderr);
      transferred.push(contextBytes(r.stderr));
    }
    t.diagnostic(`context bytes sent per build: ${transferred.join(", ")}`);
    const [cold, second, third] = transferred as [number, number, number];
    assert.ok(cold > 4_500_000, `the cold build sent the whole tree: ${transferred.join(", ")} bytes`);
    // One changed file (16 kB) plus the tree's metadata, not the tree again.
    assert.ok(second < 300_000, `the second build (the other tree) sent ${second} bytes`);
    assert.ok(third < 300_000, `the third build (back to the first tree) sent ${third} bytes`);

    // A new build-server pod (a restart, an upgrade): the docker CLI's BuildKit node id,
    // part of the context cache key, is kept on the data volume, so nothing is re-sent.
    const pod = await serverPod(ns);
    await mustKubectl(["-n", ns, "delete", "pod", pod]);
    await eventually("a new ready build server pod", async () => (await serverPod(ns)) !== pod, 120_000);
    await fs.writeFile(path.join(d, "data", "f3.bin"), randomBytes(16_384));
    const r = await build(d, user, repo);
    assert.equal(r.code, 0, r.stderr);
    const restarted = contextBytes(r.stderr);
    t.diagnostic(`after a pod restart: ${restarted} bytes`);
    assert.ok(restarted < 300_000, `the first build after a pod restart sent ${restarted} bytes`);
  });
});

describe("push credentials", () => {
  const authRepo = "10.245.0.1:5001/e2e/private";

  test("without credentials: a clear authentication error (exit 9)", async () => {
    const d = await app();
    const r = await build(d, "kim", authRepo);
    assert.equal(r.code, 9, r.stderr);
    assert.match(r.stderr, /denied access/);
    assert.match(r.stderr, /--registry-secret/);
  });

  test("with a dockerconfigjson Secret mounted into the build server: pushed", async () => {
    const password = (await fs.readFile("/var/lib/snapdeploy-cluster/registry-auth/password", "utf8")).trim();
    await mustKubectl([
      "-n",
      ns,
      "create",
      "secret",
      "docker-registry",
      "regcred",
      "--docker-server=10.245.0.1:5001",
      "--docker-username=snapdeploy",
      `--docker-password=${password}`,
    ]);
    const reinstall = await snapdeploy([
      "server",
      "install",
      "-n",
      ns,
      ...builderFlags([]),
      ...REGISTRY_CA_FLAGS,
      "--max-builds",
      "2",
      "--registry-secret",
      "regcred",
    ]);
    assert.equal(reinstall.code, 0, reinstall.stderr);
    const d = await app();
    const r = await build(d, "kim", authRepo);
    assert.equal(r.code, 0, r.stderr);
    assert.doesNotMatch(r.stderr + r.stdout, new RegExp(password));
    refOf(r.stdout);
  });
});

/** Ctrl-C during a step that sleeps: the CLI exits 130 and the step's process ends on the server's node. */
async function ctrlCStopsTheBuild(server: string): Promise<void> {
  const marker = 1000 + Math.floor(Math.random() * 8000);
  const d = await app({ Dockerfile: `FROM ${BASE}\nRUN sleep ${marker}\n` });
  const child = spawn(
    process.execPath,
    [
      CLI,
      "build",
      "--server-namespace",
      server,
      "--user",
      "erin",
      "--project",
      "app",
      "-r",
      `${REGISTRY_NODE}/e2e/cancel`,
      "-C",
      d,
    ],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  let stderr = "";
  child.stderr.on("data", (x) => {
    stderr += x;
  });
  await eventually(
    "the build step to run",
    async () => (await run("pgrep", ["-f", `sleep ${marker}`])).code === 0,
    60_000,
  );
  child.kill("SIGINT");
  const code = await exitOf(child);
  assert.equal(code, 130, stderr);
  await eventually(
    "the remote build to stop",
    async () => (await run("pgrep", ["-f", `sleep ${marker}`])).code !== 0,
    30_000,
  );
}

describe("buildkit-privileged builder", () => {
  let privNs = "";
  before(async () => {
    privNs = await installServer("e2e-bk-priv", ["--builder", "buildkit-privileged", ...REGISTRY_CA_FLAGS]);
  });
  after(async () => uninstallServer(privNs));

  test("BuildKit as root in a privileged container builds and pushes; only that container is privileged", async () => {
    const pod = JSON.parse(
      await mustKubectl(["-n", privNs, "get", "pod", await serverPod(privNs), "-o", "json"]),
    );
    const bk = pod.spec.containers.find((c: { name: string }) => c.name === "buildkitd");
    assert.equal(bk.securityContext.privileged, true);
    assert.equal(bk.securityContext.runAsUser, 0);
    assert.match(bk.image, /moby\/buildkit:v[\d.]+$/, "BuildKit's rootful image");
    const agent = pod.spec.containers.find((c: { name: string }) => c.name === "agent");
    assert.notEqual(agent.securityContext?.privileged, true);
    assert.equal(agent.securityContext?.runAsNonRoot, true);
    const d = await app({ "app.txt": "built by privileged BuildKit\n" });
    const r = await build(d, "pria", `${REGISTRY_NODE}/e2e/bk-priv`, [], privNs);
    assert.equal(r.code, 0, r.stderr);
    const ref = refOf(r.stdout);
    assert.ok(await registryHasTag(ref.repo.replace(`${REGISTRY_NODE}/`, ""), ref.tag));
  });

  test("Ctrl-C stops the remote build (each step in a PID namespace of its own)", async () => {
    await ctrlCStopsTheBuild(privNs);
  });
});

// The Docker builders, each with a build server of its own (the suite above runs on the default, buildkit, or on SNAPDEPLOY_TEST_BUILDER).
for (const builder of ["dind", "docker-socket"] as const) {
  describe(`${builder} builder`, () => {
    let dockerNs = "";
    before(async () => {
      dockerNs = await installServer(`e2e-${builder}`, ["--builder", builder, ...REGISTRY_CA_FLAGS]);
    });
    after(async () => uninstallServer(dockerNs));

    test(`builds and pushes with ${builder === "dind" ? "the pod's own" : "the node's"} Docker daemon`, async () => {
      const repo = `${REGISTRY_NODE}/e2e/${builder}`;
      const d = await app({ "app.txt": `built with ${builder}\n` });
      const r = await build(d, "lee", repo, [], dockerNs);
      assert.equal(r.code, 0, r.stderr);
      const ref = refOf(r.stdout);
      assert.ok(await registryHasTag(ref.repo.replace(`${REGISTRY_NODE}/`, ""), ref.tag));
      // dind's daemon keeps its images on the volume: the node's daemon does not know
      // the image. docker-socket builds on the node's daemon, which does.
      const node = await run("/usr/bin/docker", ["image", "inspect", `${ref.repo}:${ref.tag}`]);
      assert.equal(node.code === 0, builder === "docker-socket", node.stderr);
      if (builder === "dind") {
        const images = await inServer(dockerNs, "docker images --format '{{.Repository}}:{{.Tag}}'");
        assert.match(images, new RegExp(`${ref.repo}:${ref.tag}`));
      }
    });
  });
}
