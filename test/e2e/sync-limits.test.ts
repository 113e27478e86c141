/**
 * Sync at its limits, against real parts: a large file streams with bounded memory
 * on both sides, a full volume gives a clear error naming it, and a user without
 * exec rights is told which permission is missing (RBAC is the gate).
 */
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { createWriteStream, promises as fs } from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import {
  CLI,
  inServer,
  installServer,
  kubectl,
  must,
  mustKubectl,
  run,
  snapdeploy,
  uninstallServer,
  uniqueName,
  restrictedKubeconfig,
  jsonResult,
} from "../helpers/cluster.js";

let ns = "";
const cleanups: (() => Promise<unknown>)[] = [];
before(async () => {
  ns = await installServer("e2e-limits");
});
after(async () => {
  for (const c of cleanups.reverse()) await c().catch(() => {});
  await uninstallServer(ns);
});

async function tempDir(): Promise<string> {
  const d = await fs.mkdtemp(path.join(os.tmpdir(), "snapdeploy-limits-"));
  cleanups.push(() => fs.rm(d, { recursive: true, force: true }));
  return d;
}

/** Writes `mib` MiB of random (incompressible) data, returning its sha256. */
async function randomFile(file: string, mib: number): Promise<string> {
  const h = createHash("sha256");
  const out = createWriteStream(file);
  for (let i = 0; i < mib; i++) {
    const chunk = randomBytes(1024 * 1024);
    h.update(chunk);
    if (!out.write(chunk)) await new Promise<void>((r) => out.once("drain", () => r()));
  }
  await new Promise<void>((r) => out.end(() => r()));
  return h.digest("hex");
}

describe("large files", () => {
  test("a 512 MiB file syncs with bounded memory on the client and the agent", async () => {
    const dir = await tempDir();
    const hash = await randomFile(path.join(dir, "data.bin"), 512);
    const r = await run("/usr/bin/time", [
      "-f",
      "maxrss_kb=%M",
      process.execPath,
      CLI,
      "sync",
      "-n",
      ns,
      "--user",
      "big",
      "--project",
      "p",
      "-C",
      dir,
    ]);
    assert.equal(r.code, 0, r.stderr);
    const rssKb = Number(/maxrss_kb=(\d+)/.exec(r.stderr)?.[1]);
    assert.ok(rssKb > 0 && rssKb < 200 * 1024, `client peak RSS ${rssKb} KiB`);
    const agentHwm = Number(/VmHWM:\s+(\d+)/.exec(await inServer(ns, "cat /proc/1/status"))?.[1]);
    assert.ok(agentHwm > 0 && agentHwm < 250 * 1024, `agent peak RSS ${agentHwm} KiB`);
    const remote = await inServer(ns, "sha256sum /data/workspaces/big/p/current/data.bin");
    assert.equal(remote.split(" ")[0], hash);
  });
});

describe("a full volume", () => {
  test("gives a clear error naming the volume, and the workspace stays intact", async () => {
    // A real 24 MiB filesystem (tmpfs) as the build server's volume.
    const name = uniqueName("tiny");
    const mount = `/var/lib/snapdeploy-cluster/volumes/${name}`;
    await fs.mkdir(mount, { recursive: true });
    await must("mount", ["-t", "tmpfs", "-o", "size=24m", "tmpfs", mount]);
    cleanups.push(async () => {
      await run("umount", ["-l", mount]);
      await fs.rm(mount, { recursive: true, force: true });
    });
    await mustKubectl(
      ["apply", "-f", "-"],
      JSON.stringify({
        apiVersion: "v1",
        kind: "PersistentVolume",
        metadata: { name },
        spec: {
          capacity: { storage: "24Mi" },
          accessModes: ["ReadWriteOnce"],
          storageClassName: name,
          persistentVolumeReclaimPolicy: "Retain",
          hostPath: { path: mount, type: "Directory" },
        },
      }),
    );
    cleanups.push(() => kubectl(["delete", "pv", name, "--wait=false"]));
    const tinyNs = await installServer("e2e-full", ["--storage-class", name, "--size", "24Mi"]);
    cleanups.push(() => uninstallServer(tinyNs));

    const dir = await tempDir();
    await fs.writeFile(path.join(dir, "small.txt"), "fits\n");
    const syncTiny = () =>
      snapdeploy(["sync", "--server-namespace", tinyNs, "--user", "u", "--project", "p", "-C", dir]);
    const first = await syncTiny();
    assert.equal(first.code, 0, first.stderr);
    await randomFile(path.join(dir, "huge.bin"), 40);
    const r = await syncTiny();
    assert.equal(r.code, 12, r.stderr);
    assert.match(r.stderr, new RegExp(`volume PVC ${tinyNs}/snapdeploy-data \\(mounted at /data\\) is full`));
    assert.match(r.stderr, /hint: grow it/);
    assert.doesNotMatch(r.stderr, /\n\s+at /);
    const listing = await inServer(tinyNs, "ls /data/workspaces/u/p/current/");
    assert.equal(listing.trim(), "small.txt");
  });
});

describe("RBAC", () => {
  test("a user who may neither port-forward to nor exec into the build server is told the missing permission", async () => {
    const kubeconfig = await restrictedKubeconfig(ns, "get,list,watch", "pods");
    const tree = await tempDir();
    await fs.writeFile(path.join(tree, "a.txt"), "a\n");
    const r = await snapdeploy([
      "sync",
      "--server-namespace",
      ns,
      "--kubeconfig",
      kubeconfig,
      "-C",
      tree,
      "--project",
      "p",
    ]);
    assert.equal(r.code, 4, r.stderr);
    assert.match(
      r.stderr,
      new RegExp(`not allowed to port-forward to or exec into pod \\S+ in namespace ${ns}`),
    );
    // The API server names the verb it asked for: "get" for a WebSocket upgrade (up to 1.34).
    assert.match(
      r.stderr,
      /missing RBAC permission "get" on "pods\/portforward" \(or "get" on "pods\/exec"\)/,
    );
    assert.doesNotMatch(r.stderr, /\n\s+at /);
  });

  test("a user who may exec but not port-forward syncs through the exec relay", async () => {
    // The role grants create on pods/exec (and, harmlessly, on pods) but nothing on pods/portforward.
    const kubeconfig = await restrictedKubeconfig(ns, "get,list,create", "pods,pods/exec");
    const tree = await tempDir();
    await fs.writeFile(path.join(tree, "a.txt"), "through exec\n");
    const common = ["sync", "--server-namespace", ns, "-C", tree, "--project", "p", "-o", "json"];
    const r = await snapdeploy([...common, "--kubeconfig", kubeconfig, "--user", "viaexec"]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(jsonResult(r.stdout).transport, "exec");
    assert.equal(await inServer(ns, "cat /data/workspaces/viaexec/p/current/a.txt"), "through exec\n");
    // With the rights to port-forward (the cluster admin), the same sync goes that way.
    const admin = await snapdeploy([...common, "--user", "viaforward"]);
    assert.equal(admin.code, 0, admin.stderr);
    assert.equal(jsonResult(admin.stdout).transport, "port-forward");
  });
});
