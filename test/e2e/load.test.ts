/**
 * A small load run against a real build server (the default builder): 4 users deploying the 4
 * load apps at once, 2 deploys each. Every deploy succeeds, every user's Service answers that
 * user's own greeting, and the agent's open files and processes come back to where they started.
 * The full run (8 users, 50 deploys) is `npm run bench -- load`.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { CLI, REGISTRY_CA_FLAGS, REGISTRY_NODE, serverAndNamespace, uniqueName } from "../helpers/cluster.js";
import { fmtSample, loadTable, runLoad } from "../helpers/load.js";
import { pushPlaceholder, startClient } from "../helpers/web.js";

const RUN_ID = uniqueName("load");
let placeholder = "";
const ctx = serverAndNamespace("e2e-load", REGISTRY_CA_FLAGS, async ({ ns, dirs }) => {
  placeholder = await pushPlaceholder(dirs, RUN_ID);
  await startClient(ns);
});

test("4 users deploying 4 apps at once: all succeed, each serves its own, the agent returns to its start", {
  timeout: 900_000,
}, async () => {
  const opts = { users: 4, apps: 4, deploys: 8 };
  const r = await runLoad({
    ...opts,
    cli: CLI,
    serverNs: ctx.server,
    appNs: ctx.ns,
    repository: `${REGISTRY_NODE}/e2e/load`,
    placeholder,
    runId: RUN_ID,
    dirs: ctx.dirs,
    log: (line) => process.stderr.write(`[load] ${line}\n`),
  });
  process.stderr.write(`${loadTable(opts, r).join("\n")}\n`);
  const failed = r.records.filter((x) => x.code !== 0);
  assert.deepEqual(
    failed.map((x) => `${x.user} deploy ${x.round}: exit ${x.code}\n${x.stderrTail}`),
    [],
    "every deploy succeeds",
  );
  assert.equal(r.records.length, opts.deploys);
  assert.deepEqual(
    r.records.filter((x) => x.wrongAnswer !== undefined).map((x) => `${x.user}/${x.round}: ${x.wrongAnswer}`),
    [],
    "each deploy's own greeting is served after it",
  );
  assert.deepEqual(r.finalMismatches, [], "each user's app still serves their last greeting");
  assert.ok(r.peak.processes > r.start.processes, `the builds were seen running (${fmtSample(r.peak)})`);
  assert.ok(
    r.end.openFiles <= r.start.openFiles,
    `open files back: ${fmtSample(r.start)} -> ${fmtSample(r.end)}`,
  );
  assert.ok(
    r.end.processes <= r.start.processes,
    `processes back: ${fmtSample(r.start)} -> ${fmtSample(r.end)}`,
  );
});
