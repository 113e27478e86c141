/** snapdeploy.yaml: defaults, and every problem reported with its location. */
import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { test } from "node:test";
import { isUserError } from "../../src/errors.js";
import { loadConfig } from "../../src/config/config.js";

function dirWith(yaml?: string): string {
  const dir = mkdtempSync(path.join(tmpdir(), "snapdeploy-config-"));
  if (yaml !== undefined) writeFileSync(path.join(dir, "snapdeploy.yaml"), yaml);
  return dir;
}

async function problems(yaml: string): Promise<{ message: string; details: string[] }> {
  try {
    await loadConfig(dirWith(yaml));
  } catch (e) {
    assert.ok(isUserError(e), `expected a UserError, got ${e}`);
    assert.equal(e.exitCode, 2);
    return { message: e.message, details: e.details ?? [] };
  }
  assert.fail("the config was accepted");
}

test("no snapdeploy.yaml means all defaults", async () => {
  const defaults = {
    image: { dockerfile: "Dockerfile", buildArgs: {}, tagPrefix: "snap-", secrets: [] },
    deploy: { targets: [], timeout: 300 },
    dev: { sync: [], rebuildOn: [], run: [] },
    context: { allowSecrets: [] },
    server: { namespace: "snapdeploy" },
  };
  assert.deepEqual(await loadConfig(dirWith()), defaults);
  // The defaults without a file (no schema loaded) are the schema's for an empty file.
  assert.deepEqual(await loadConfig(dirWith("")), defaults);
  assert.deepEqual(await loadConfig(dirWith("{}\n")), defaults);
  // Each load gets its own copy.
  const a = await loadConfig(dirWith());
  a.image.buildArgs.X = "1";
  assert.deepEqual((await loadConfig(dirWith())).image.buildArgs, {});
});

test("values given are kept and the rest defaulted", async () => {
  const c = await loadConfig(
    dirWith(
      "project: backtest\nimage: {repository: r.example/team/app, buildArgs: {PY: '3.11'}}\ndeploy:\n  targets: [{name: web}]\n",
    ),
  );
  assert.equal(c.project, "backtest");
  assert.equal(c.image.repository, "r.example/team/app");
  assert.deepEqual(c.image.buildArgs, { PY: "3.11" });
  assert.equal(c.image.dockerfile, "Dockerfile");
  assert.deepEqual(c.deploy.targets, [{ kind: "Deployment", name: "web" }]);
  assert.equal(c.server.namespace, "snapdeploy");
});

test("every problem is reported with where it is", async () => {
  const p = await problems(
    "project: Bad_Name\nbogus: 1\ndeploy:\n  timeout: 1.5\n  targets: [{kind: Job, name: x}]\nimage: {buildArgs: {A: 1}}\n",
  );
  assert.match(p.message, /snapdeploy\.yaml has 5 problem\(s\)/);
  const text = p.details.join("\n");
  assert.match(text, /^project: use lowercase letters/m);
  assert.match(text, /^\(top level\): Unrecognized key: "bogus"/m);
  assert.match(text, /^deploy\.timeout: expected a whole number of seconds \(300\) or .* 5m, 1h30m/m);
  assert.match(text, /^deploy\.targets\.0\.kind: .*"Deployment"\|"StatefulSet"/m);
  assert.match(text, /^image\.buildArgs\.A: .*expected string/m);
});

test("deploy.timeout: seconds, or a duration as the flags take it", async () => {
  const timeout = async (v: string) =>
    (await loadConfig(dirWith(`deploy: {timeout: ${v}}\n`))).deploy.timeout;
  assert.equal(await timeout("120"), 120);
  assert.equal(await timeout("'90s'"), 90);
  assert.equal(await timeout("5m"), 300);
  assert.equal(await timeout("1h30m"), 5400);
  for (const bad of ["0", "5x", "'1.5h'", "-3", "true", "99999999"]) {
    const p = await problems(`deploy: {timeout: ${bad}}\n`);
    assert.match(p.details.join("\n"), /^deploy\.timeout: /m, bad);
  }
});

test("dev rules: a sync dest must be an absolute path inside the container, not / or with '..'", async () => {
  const c = await loadConfig(
    dirWith(
      "dev:\n  sync: [{src: 'app/**', dest: /app}]\n  rebuildOn: [requirements.txt]\n  run: [{cmd: 'kill -HUP 1', on: ['*.py']}]\n",
    ),
  );
  assert.deepEqual(c.dev.sync, [{ src: "app/**", dest: "/app" }]);
  assert.deepEqual(c.dev.run, [{ cmd: "kill -HUP 1", on: ["*.py"] }]);
  const p = await problems(
    "dev:\n  sync: [{src: a, dest: app}, {src: b, dest: /}, {src: c, dest: /x/../etc}, {dest: /y}]\n",
  );
  const text = p.details.join("\n");
  assert.match(text, /^dev\.sync\.0\.dest: must be an absolute path/m);
  assert.match(text, /^dev\.sync\.1\.dest: must be an absolute path/m);
  assert.match(text, /^dev\.sync\.2\.dest: must be an absolute path/m);
  assert.match(text, /^dev\.sync\.3\.src: /m);
});

test("YAML that does not parse is a usage error naming the file", async () => {
  const p = await problems("deploy: [unclosed\n");
  assert.match(p.message, /snapdeploy\.yaml is not valid YAML/);
});

test("context.allowSecrets: a list of paths or globs; anything else is refused with its location", async () => {
  const c = await loadConfig(dirWith('context: {allowSecrets: [".env.test", "certs/*.pem"]}\n'));
  assert.deepEqual(c.context.allowSecrets, [".env.test", "certs/*.pem"]);
  await assert.rejects(
    loadConfig(dirWith("context: {allowSecrets: .env}\n")),
    (e: Error & { details?: string[] }) =>
      (e.details ?? []).some((d) => d.startsWith("context.allowSecrets")),
  );
});
