/** The CLI entry point as a user runs it: the real bin, a real process. */
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { test } from "node:test";
import { ROOT, run } from "../helpers/cluster.js";

const bin = `${ROOT}/bin/snapdeploy.cjs`;
const pkg = JSON.parse(readFileSync(`${ROOT}/package.json`, "utf8"));

test("--version prints the package version", async () => {
  const r = await run("node", [bin, "--version"]);
  assert.equal(r.code, 0);
  assert.equal(r.stdout.trim(), pkg.version);
});

test("--help describes the tool and exits 0", async () => {
  const r = await run("node", [bin, "--help"]);
  assert.equal(r.code, 0);
  assert.match(r.stdout, /Usage: snapdeploy/);
  assert.match(r.stdout, /--kubeconfig/);
});

test("an unknown option is a usage error (exit 2) without a stack trace", async () => {
  const r = await run("node", [bin, "--no-such-flag"]);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /unknown option '--no-such-flag'/);
  assert.doesNotMatch(r.stderr, /\n\s+at /);
});

test("no kubeconfig at all is a cluster error naming what is missing (exit 3)", async () => {
  const home = mkdtempSync(path.join(tmpdir(), "snapdeploy-home-"));
  const env: NodeJS.ProcessEnv = { ...process.env, HOME: home };
  delete env.KUBECONFIG;
  delete env.KUBERNETES_SERVICE_HOST;
  const r = await run("node", [bin, "sync", "-C", home], { env });
  assert.equal(r.code, 3, r.stderr);
  assert.match(r.stderr, /no kubeconfig: KUBECONFIG is not set and .*\.kube\/config does not exist/);
  assert.match(r.stderr, /hint: pass --kubeconfig FILE/);
  assert.doesNotMatch(r.stderr, /\n\s+at /);
});

test("every command's help names each default once, in words, and never an empty list", async () => {
  const { buildProgram } = await import("../../src/cli/main.js");
  const all = (c: import("commander").Command): import("commander").Command[] => [
    c,
    ...c.commands.flatMap(all),
  ];
  for (const c of all(buildProgram())) {
    const help = c.helpInformation().replace(/\s+/g, " ");
    assert.doesNotMatch(help, /\(default: \[\]\)/, `${c.name()}: ${help}`);
    assert.doesNotMatch(help, /default[^()]*\)? \(default:/, `${c.name()}: ${help}`);
  }
});
