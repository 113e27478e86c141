/**
 * rollback --to restores what the revision recorded: the containers it changed and their
 * images, not the containers the rollback's -t names (a deploy of web:worker is undone in
 * worker, with -t web). Images are given with --image: no build server is needed.
 */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import {
  deploymentImage,
  NODE_BASE_IMAGE,
  NODE_TOOLS_IMAGE,
  sleepingDeployment,
  snapdeploy,
  tempNamespace,
  jsonResult,
} from "../helpers/cluster.js";

let ns = "";
let dropNs = async () => {};

before(async () => {
  ({ ns, cleanup: dropNs } = await tempNamespace("e2e-rollback"));
  await sleepingDeployment(ns, "web", ["web", "worker"]);
});
after(async () => {
  await dropNs();
});

const cli = async (args: string[]) => {
  const r = await snapdeploy([...args, "-n", ns, "--user", "alice", "--timeout", "2m"]);
  assert.equal(r.code, 0, `${args.join(" ")}: exit ${r.code}\n${r.stderr}`);
  return r;
};

test("rollback --to N -t web restores the container revision N changed (worker), and its image", async () => {
  const images = async () => ({
    web: await deploymentImage(ns, "web", "web"),
    worker: await deploymentImage(ns, "web", "worker"),
  });
  await cli(["deploy", "-t", "web:worker", "--image", NODE_TOOLS_IMAGE]); // revision 1
  await cli(["deploy", "-t", "web:worker", "--image", NODE_BASE_IMAGE]); // revision 2
  assert.deepEqual(await images(), { web: NODE_BASE_IMAGE, worker: NODE_BASE_IMAGE });

  const r = await cli(["rollback", "--to", "1", "-t", "web", "-o", "json"]);
  assert.equal(jsonResult(r.stdout).image, NODE_TOOLS_IMAGE);
  assert.deepEqual(await images(), { web: NODE_BASE_IMAGE, worker: NODE_TOOLS_IMAGE });

  // The rollback is recorded with the containers it changed: undoing it restores worker only.
  const history = jsonResult((await snapdeploy(["history", "-t", "web", "-n", ns, "-o", "json"])).stdout);
  const entry = history["deployment/web"].at(-1);
  assert.equal(entry.action, "rollback");
  assert.deepEqual(entry.images, { worker: NODE_TOOLS_IMAGE });
  assert.deepEqual(entry.previous, { worker: NODE_BASE_IMAGE });
  await cli(["rollback", "-t", "web"]);
  assert.deepEqual(await images(), { web: NODE_BASE_IMAGE, worker: NODE_BASE_IMAGE });
});
