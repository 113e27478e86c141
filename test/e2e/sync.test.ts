/**
 * snapdeploy server install/status and snapdeploy sync against a real build server
 * in the local cluster: what arrives, what is left out, incremental changes, and
 * faults (killed client, deleted pod, concurrent syncs).
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { promises as fs, readFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import {
  eventually,
  inServer,
  builderFlags,
  installServer,
  kubectl,
  mustKubectl,
  serverPod,
  snapdeploy,
  uninstallServer,
  exitOf,
  jsonResult,
} from "../helpers/cluster.js";

let ns = "";
const tmp: string[] = [];

before(async () => {
  ns = await installServer("e2e-sync");
});
after(async () => {
  await uninstallServer(ns);
  for (const d of tmp) await fs.rm(d, { recursive: true, force: true });
});

async function tree(
  files: Record<string, string | { mode?: number; link?: string; dir?: true; data?: Buffer }>,
) {
  const root = await fs.mkdtemp(path.join(os.tmpdir(), "snapdeploy-e2e-"));
  tmp.push(root);
  for (const [p, v] of Object.entries(files)) {
    const abs = path.join(root, p);
    await fs.mkdir(path.dirname(abs), { recursive: true });
    if (typeof v === "string") await fs.writeFile(abs, v);
    else if (v.dir) await fs.mkdir(abs, { recursive: true });
    else if (v.link) await fs.symlink(v.link, abs);
    else await fs.writeFile(abs, v.data ?? "");
    if (typeof v !== "string" && v.mode !== undefined) await fs.chmod(abs, v.mode);
  }
  return root;
}

/** The synced workspace as the build server holds it: "path type mode size [target]" lines. */
async function remoteListing(user: string, project: string): Promise<string[]> {
  const out = await inServer(
    ns,
    `cd /data/workspaces/${user}/${project}/current/ && find . -mindepth 1 -printf '%P %y %m %s %l\\n' | sort`,
  );
  return out
    .split("\n")
    .map((l) => l.trimEnd())
    .filter(Boolean);
}

async function remoteHash(user: string, project: string, file: string): Promise<string> {
  const out = await inServer(ns, `sha256sum /data/workspaces/${user}/${project}/current/${file}`);
  return out.split(" ")[0] as string;
}

/** The build-server pod the CLI remembers for this namespace (src/server/connect.ts). */
function rememberedPod(): string | undefined {
  const pods = JSON.parse(
    readFileSync(path.join(os.homedir(), ".cache/snapdeploy/server-pods.json"), "utf8"),
  );
  const key = Object.keys(pods).find((k) => k.endsWith(` ${ns}`));
  return key ? pods[key] : undefined;
}

const sync = (dir: string, user: string, project = "app", extra: string[] = []) =>
  snapdeploy(["sync", "--server-namespace", ns, "--user", user, "--project", project, "-C", dir, ...extra]);

describe("server install", () => {
  test("applying again changes nothing, and status reports the agent", async () => {
    const again = await snapdeploy(["server", "install", "-n", ns, ...builderFlags([])]);
    assert.equal(again.code, 0, again.stderr);
    for (const kind of ["namespace", "serviceaccount", "persistentvolumeclaim", "deployment"]) {
      assert.match(again.stderr, new RegExp(`${kind}/\\S+ unchanged`));
    }
    assert.doesNotMatch(again.stderr, / (created|configured)$/m, "nothing changed");
    const st = await snapdeploy(["server", "status", "-n", ns, "-o", "json"]);
    assert.equal(st.code, 0, st.stderr);
    const s = jsonResult(st.stdout);
    assert.equal(s.ready, true);
    assert.equal(
      s.agent.version,
      JSON.parse(await fs.readFile(new URL("../../package.json", import.meta.url), "utf8")).version,
    );
    assert.equal(s.agent.builder, process.env.SNAPDEPLOY_TEST_BUILDER ?? "buildkit");
    assert.ok(s.agent.disk.free > 0 && s.agent.disk.total >= s.agent.disk.free);
  });

  test("the build server's service account has no API rights and no token", async () => {
    const sa = `system:serviceaccount:${ns}:snapdeploy-build-server`;
    /** kubectl auth can-i's answer, failing unless the check itself ran (exit 0 "yes", exit 1 "no"). */
    const canI = async (args: string[]) => {
      const r = await kubectl(["auth", "can-i", ...args]);
      const errors = r.stderr
        .split("\n")
        .filter((l) => l.trim() && !l.startsWith("Warning: "))
        .join("\n");
      assert.equal(errors, "", `kubectl auth can-i ${args.join(" ")} failed: ${r.stderr}`);
      const answer = r.stdout.trim();
      assert.ok(
        (r.code === 0 && answer === "yes") || (r.code === 1 && answer === "no"),
        `kubectl auth can-i ${args.join(" ")}: exit ${r.code}, ${JSON.stringify(answer)}`,
      );
      return answer;
    };
    // The check can say yes: as the account, to what every authenticated user may do, and
    // as the cluster admin, to what the account may not.
    assert.equal(await canI(["create", "selfsubjectaccessreviews", "-A", `--as=${sa}`]), "yes");
    assert.equal(await canI(["get", "pods", "-n", ns]), "yes");
    for (const check of [
      ["get", "pods"],
      ["list", "pods"],
      ["create", "pods", "--subresource=exec"],
      ["create", "pods", "--subresource=portforward"],
      ["get", "secrets"],
      ["list", "secrets"],
      ["get", "configmaps"],
      ["get", "deployments.apps"],
      ["patch", "deployments.apps"],
      ["create", "serviceaccounts", "--subresource=token"],
    ]) {
      assert.equal(await canI([...check, "-n", ns, `--as=${sa}`]), "no", check.join(" "));
    }
    assert.equal(await canI(["list", "nodes", "-A", `--as=${sa}`]), "no", "list nodes");
    const automount = await mustKubectl([
      "-n",
      ns,
      "get",
      "sa",
      "snapdeploy-build-server",
      "-o",
      "jsonpath={.automountServiceAccountToken}",
    ]);
    assert.equal(automount, "false");
  });
});

describe("sync", () => {
  test("sends the tree with .dockerignore semantics, modes and symlinks, never .git", async () => {
    const dir = await tree({
      Dockerfile: "FROM scratch\n",
      ".dockerignore": "*.log\nbuild/\n!build/keep.txt\nsecret.env\n",
      "app/main.py": "print('hi')\n",
      "app/run.sh": { data: Buffer.from("#!/bin/sh\necho run\n"), mode: 0o755 },
      "app/empty": { dir: true },
      "app/link": { link: "main.py" },
      ".git/HEAD": "ref: refs/heads/main\n",
      "debug.log": "noise\n",
      "build/out.bin": "binary\n",
      "build/keep.txt": "keep\n",
      "secret.env": "TOKEN=x\n",
    });
    const r = await sync(dir, "alice");
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /synced alice\/app: 6 added, 0 changed, 0 removed/);
    assert.deepEqual(await remoteListing("alice", "app"), [
      ".dockerignore f 644 40",
      "Dockerfile f 644 13",
      "app d 755 4096",
      "app/empty d 755 4096",
      "app/link l 777 7 main.py",
      "app/main.py f 644 12",
      "app/run.sh f 755 19",
      "build d 755 4096",
      "build/keep.txt f 644 5",
    ]);
  });

  test("a no-op sync sends nothing; a change, an addition and a deletion arrive", async () => {
    const dir = await tree({ Dockerfile: "FROM scratch\n", "a.txt": "one\n", "b.txt": "two\n" });
    assert.equal((await sync(dir, "bob")).code, 0);
    const noop = await sync(dir, "bob", "app", ["-o", "json"]);
    assert.equal(noop.code, 0, noop.stderr);
    const j = jsonResult(noop.stdout);
    assert.equal(j.noop, true);
    assert.equal(j.sentBytes, 0);

    await fs.writeFile(path.join(dir, "a.txt"), "one, changed\n");
    await fs.writeFile(path.join(dir, "c.txt"), "three\n");
    await fs.rm(path.join(dir, "b.txt"));
    const r = await sync(dir, "bob");
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /1 added, 1 changed, 1 removed/);
    assert.match(r.stderr, /~ a\.txt/);
    const files = (await remoteListing("bob", "app")).map((l) => l.split(" ")[0]);
    assert.deepEqual(files, ["Dockerfile", "a.txt", "c.txt"]);
    assert.equal(
      await remoteHash("bob", "app", "a.txt"),
      createHash("sha256").update("one, changed\n").digest("hex"),
    );
  });

  test("two users syncing at once never see each other's files; identical files are stored once", async () => {
    const shared = randomBytes(4096);
    const a = await tree({ "mine-a.txt": "a\n", "shared.bin": { data: shared } });
    const b = await tree({ "mine-b.txt": "b\n", "shared.bin": { data: shared } });
    const [ra, rb] = await Promise.all([sync(a, "carol", "proj"), sync(b, "dave", "proj")]);
    assert.equal(ra.code, 0, ra.stderr);
    assert.equal(rb.code, 0, rb.stderr);
    assert.deepEqual(
      (await remoteListing("carol", "proj")).map((l) => l.split(" ")[0]),
      ["mine-a.txt", "shared.bin"],
    );
    assert.deepEqual(
      (await remoteListing("dave", "proj")).map((l) => l.split(" ")[0]),
      ["mine-b.txt", "shared.bin"],
    );
    const h = createHash("sha256").update(shared).digest("hex");
    const copies = await inServer(ns, `ls /data/blobs/${h.slice(0, 2)}/ | grep -c ${h}`);
    assert.equal(copies.trim(), "1");
  });

  test("the same workspace synced twice at once: the second waits for the first, both succeed", async () => {
    // Two different trees for one workspace (the first is not touched while it is sent).
    const dir = await tree({ "big.bin": { data: randomBytes(256 * 1024 * 1024) }, "x.txt": "x\n" });
    const other = await tree({ "x.txt": "second\n" });
    const first = sync(dir, "erin");
    // The first holds the lock once its upload is under way.
    await uploadInProgress(ns); // the first upload in progress
    const second = await sync(other, "erin");
    const r1 = await first;
    assert.equal(r1.code, 0, r1.stderr);
    assert.equal(second.code, 0, second.stderr);
    assert.match(second.stderr, /waiting: workspace erin\/app is locked by sync from/);
    assert.equal(
      await remoteHash("erin", "app", "x.txt"),
      createHash("sha256").update("second\n").digest("hex"),
    );
  });

  test("a client killed mid-transfer leaves the previous workspace intact; the next sync completes", async () => {
    const dir = await tree({ "old.txt": "old\n" });
    assert.equal((await sync(dir, "frank")).code, 0);
    const big = randomBytes(256 * 1024 * 1024);
    await fs.writeFile(path.join(dir, "big.bin"), big);
    const child = spawn(
      process.execPath,
      [
        `${process.cwd()}/bin/snapdeploy.cjs`,
        "sync",
        "-n",
        ns,
        "--user",
        "frank",
        "--project",
        "app",
        "-C",
        dir,
      ],
      {
        stdio: "ignore",
      },
    );
    // Kill it once the upload is under way (the agent has partial data in tmp/).
    await uploadInProgress(ns); // an upload in progress
    child.kill("SIGKILL");
    await exitOf(child);
    assert.deepEqual(
      (await remoteListing("frank", "app")).map((l) => l.split(" ")[0]),
      ["old.txt"],
    );
    const r = await sync(dir, "frank");
    assert.equal(r.code, 0, r.stderr);
    assert.equal(await remoteHash("frank", "app", "big.bin"), createHash("sha256").update(big).digest("hex"));
  });

  test("Ctrl-C stops the remote side too: exit 130, the lock is released, the workspace intact", async () => {
    const dir = await tree({ "keep.txt": "keep\n" });
    assert.equal((await sync(dir, "gina")).code, 0);
    await fs.writeFile(path.join(dir, "big.bin"), randomBytes(256 * 1024 * 1024));
    const child = spawn(
      process.execPath,
      [
        `${process.cwd()}/bin/snapdeploy.cjs`,
        "sync",
        "-n",
        ns,
        "--user",
        "gina",
        "--project",
        "app",
        "-C",
        dir,
      ],
      {
        stdio: ["ignore", "pipe", "pipe"],
      },
    );
    let stderr = "";
    child.stderr.on("data", (d) => {
      stderr += d;
    });
    await uploadInProgress(ns); // an upload in progress
    child.kill("SIGINT");
    const code = await exitOf(child);
    assert.equal(code, 130, stderr);
    assert.match(stderr, /interrupted/);
    assert.deepEqual(
      (await remoteListing("gina", "app")).map((l) => l.split(" ")[0]),
      ["keep.txt"],
    );
    // The remote side stopped: its partial upload is gone and the lock is free (no waiting).
    await eventually(
      "the agent to drop the partial upload",
      async () => (await inServer(ns, "ls /data/tmp | wc -l")).trim() === "0",
      15_000,
    );
    const r = await sync(dir, "gina");
    assert.equal(r.code, 0, r.stderr);
    assert.doesNotMatch(r.stderr, /waiting/);
  });

  test("the build-server pod deleted mid-sync: the next sync repairs and completes", async () => {
    const dir = await tree({ "before.txt": "before\n" });
    assert.equal((await sync(dir, "hank")).code, 0);
    const big = randomBytes(256 * 1024 * 1024);
    await fs.writeFile(path.join(dir, "big.bin"), big);
    const pod = await serverPod(ns);
    const running = sync(dir, "hank");
    await uploadInProgress(ns); // an upload in progress
    await mustKubectl(["-n", ns, "delete", "pod", pod, "--wait=false"]);
    const broken = await running;
    assert.notEqual(broken.code, 0, "a sync whose server vanished must fail");
    assert.doesNotMatch(broken.stderr, /\n\s+at /, "no stack trace");
    await eventually("a new build server pod", async () => (await serverPod(ns)) !== pod, 120_000);
    assert.deepEqual(
      (await remoteListing("hank", "app")).map((l) => l.split(" ")[0]),
      ["before.txt"],
    );
    // The CLI still remembers the deleted pod: it tries it, then looks up the new one.
    assert.equal(rememberedPod(), pod);
    const r = await sync(dir, "hank");
    assert.equal(r.code, 0, r.stderr);
    assert.equal(await remoteHash("hank", "app", "big.bin"), createHash("sha256").update(big).digest("hex"));
    assert.equal(rememberedPod(), await serverPod(ns));
  });

  test("server status lists the workspaces", async () => {
    const dir = await tree({ "one.txt": "1\n", "two.txt": "2\n", "sub/three.txt": "3\n" });
    assert.equal((await sync(dir, "ivan", "listed")).code, 0);
    const st = await snapdeploy(["server", "status", "-n", ns]);
    assert.equal(st.code, 0, st.stderr);
    assert.match(st.stdout, /ivan\/listed\s+3 files/);
    assert.match(st.stdout, /last sync \d+/);
  });
});

/**
 * Resolves once the build server holds a partial upload (a file in /data/tmp). One exec
 * that looks every 20 ms: an upload of a few hundred megabytes can take well under a
 * second, shorter than a round of separate execs.
 */
async function uploadInProgress(ns: string): Promise<void> {
  await inServer(
    ns,
    'for i in $(seq 1 1500); do [ -n "$(ls -A /data/tmp)" ] && exit 0; sleep 0.02; done; echo "no upload in progress after 30 s" >&2; exit 1',
  );
}
