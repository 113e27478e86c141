/**
 * What the build server may push, set at `server install --allow-repository`: a real build
 * server on the local cluster builds and pushes a snapshot into an allowed repository, and
 * refuses a repository outside the list (exit code 4, the reason and the flag that sets it)
 * without pushing anything there.
 */
import assert from "node:assert/strict";
import { promises as fs } from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before, test } from "node:test";
import { ExitCode } from "../../src/errors.js";
import {
  CLUSTER_CA,
  installServer,
  REGISTRY,
  REGISTRY_CA_FLAGS,
  REGISTRY_NODE,
  registryHasTag,
  run,
  snapdeploy,
  uninstallServer,
  uniqueName,
} from "../helpers/cluster.js";

const BASE = `${REGISTRY_NODE}/snapdeploy/debian:bookworm`;
const team = uniqueName("team");
let ns = "";
let dir = "";
before(async () => {
  ns = await installServer("e2e-policy", [
    ...REGISTRY_CA_FLAGS,
    "--allow-repository",
    `${REGISTRY_NODE}/${team}`,
  ]);
  dir = await fs.mkdtemp(path.join(os.tmpdir(), "snapdeploy-policy-"));
  await fs.writeFile(path.join(dir, "Dockerfile"), `FROM ${BASE}\nRUN echo ${team} > /team\n`);
});
after(async () => {
  await uninstallServer(ns);
  if (dir) await fs.rm(dir, { recursive: true, force: true });
});

const build = (repo: string) =>
  snapdeploy(["build", "--server-namespace", ns, "--user", "u", "--project", "app", "-r", repo, "-C", dir]);

test("a push outside the allowed repositories is refused with a clear error, nothing pushed", async () => {
  const repo = `${REGISTRY_NODE}/${team}-other/app`;
  const r = await build(repo);
  assert.equal(r.code, ExitCode.permission, r.stderr);
  assert.match(
    r.stderr,
    new RegExp(
      `may push only to repositories under ${REGISTRY_NODE}/${team}, not ${REGISTRY_NODE}/${team}-other/app`,
    ),
  );
  assert.match(r.stderr, /--allow-repository/);
  assert.doesNotMatch(r.stderr, /^\s+at /m);
  // Nothing of that repository in the registry: its tag list is unknown there.
  const tags = await run("curl", [
    "-s",
    "-o",
    "/dev/null",
    "-w",
    "%{http_code}",
    "--cacert",
    CLUSTER_CA,
    `https://${REGISTRY}/v2/${team}-other/app/tags/list`,
  ]);
  assert.equal(tags.stdout, "404");
});

test("a snapshot into an allowed repository is built and pushed", async () => {
  const r = await build(`${REGISTRY_NODE}/${team}/app`);
  assert.equal(r.code, 0, r.stderr);
  const m = /:(snap-[0-9a-f]{32})@sha256:/.exec(r.stdout);
  assert.ok(m, r.stdout);
  assert.equal(await registryHasTag(`${team}/app`, m[1] as string), true);
});
