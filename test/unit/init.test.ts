/** snapdeploy init's pure parts: the file it writes or edits, the answers it accepts, the Dockerfiles it finds. */
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { test } from "node:test";
import { parse } from "yaml";
import { validateConfig } from "../../src/config/schema.js";
import { isUserError } from "../../src/errors.js";
import {
  checkRepository,
  checkTargets,
  defaultDockerfile,
  parseTargetAnswer,
} from "../../src/init/answers.js";
import { changedKeys, editConfigText, newConfigText } from "../../src/init/config-file.js";
import { findDockerfiles } from "../../src/init/dockerfiles.js";

const web = { kind: "Deployment" as const, name: "web" };

test("a new file is commented, holds the answers and passes the schema", () => {
  const text = newConfigText({
    project: "shop",
    repository: "registry.example.com/team/shop",
    dockerfile: "docker/Dockerfile",
    namespace: "research",
    targets: [web, { kind: "StatefulSet", name: "db", containers: ["main", "sidecar"] }],
  });
  assert.match(text, /^# snapdeploy's settings/);
  assert.match(text, /# Snapshots are pushed here/);
  assert.match(text, /^ {4}- \{ kind: Deployment, name: web \}$/m);
  assert.match(text, /^ {4}- \{ kind: StatefulSet, name: db, containers: \[ main, sidecar \] \}$/m);
  const c = validateConfig(parse(text), "snapdeploy.yaml");
  assert.equal(c.project, "shop");
  assert.equal(c.image.repository, "registry.example.com/team/shop");
  assert.equal(c.image.dockerfile, "docker/Dockerfile");
  assert.equal(c.deploy.namespace, "research");
  assert.deepEqual(c.deploy.targets, [
    { kind: "Deployment", name: "web" },
    { kind: "StatefulSet", name: "db", containers: ["main", "sidecar"] },
  ]);
});

test("a new file leaves out what was not answered, with its comment", () => {
  const text = newConfigText({ repository: "r.example/app", dockerfile: "Dockerfile" });
  const c = validateConfig(parse(text), "snapdeploy.yaml");
  assert.equal(c.deploy.namespace, undefined);
  assert.equal(c.project, undefined);
  assert.doesNotMatch(text, /namespace|workloads' namespace/);
  assert.match(text, /targets: \[\]/);
});

const EXISTING = `# our team's settings
project: shop   # do not rename: the workspaces are named after it

image:
  repository: old.example/shop # moved in March
  buildArgs: {PYTHON: "3.11"}
deploy:
  timeout: 5m
  targets:
    - {kind: Deployment, name: old}
dev:
  rebuildOn: [requirements.txt]   # keep
`;

test("an existing file is edited in place: comments, other keys and their order kept", () => {
  // The yaml package prints the document again: comments and blank lines stay, spacing is its own.
  const out = editConfigText(EXISTING, {
    repository: "new.example/team/shop",
    dockerfile: "Dockerfile",
    targets: [web],
  });
  assert.equal(
    out,
    `# our team's settings
project: shop # do not rename: the workspaces are named after it

image:
  repository: new.example/team/shop # moved in March
  buildArgs: { PYTHON: "3.11" }
  dockerfile: Dockerfile
deploy:
  timeout: 5m
  targets:
    - { kind: Deployment, name: web }
dev:
  rebuildOn: [ requirements.txt ] # keep
`,
  );
  const c = validateConfig(parse(out), "snapdeploy.yaml");
  assert.equal(c.deploy.timeout, 300);
  assert.deepEqual(c.image.buildArgs, { PYTHON: "3.11" });
});

test("editing with nothing new changes nothing that matters; changedKeys names what does change", () => {
  const same = editConfigText(EXISTING, {});
  assert.deepEqual(parse(same), parse(EXISTING));
  assert.match(same, /# moved in March/);
  assert.deepEqual(changedKeys(EXISTING, { repository: "old.example/shop" }), []);
  assert.deepEqual(
    changedKeys(EXISTING, { repository: "x.example/shop", targets: [{ kind: "Deployment", name: "old" }] }),
    ["image.repository"],
  );
  assert.deepEqual(changedKeys(undefined, { repository: "x.example/shop", targets: [] }), [
    "image.repository",
    "deploy.targets",
  ]);
});

test("a file with sections missing gets them; an empty file becomes a mapping", () => {
  const out = editConfigText("project: a\n", { repository: "r.example/a", targets: [web] });
  assert.deepEqual(parse(out), {
    project: "a",
    image: { repository: "r.example/a" },
    deploy: { targets: [{ kind: "Deployment", name: "web" }] },
  });
  assert.deepEqual(parse(editConfigText("", { repository: "r.example/a" })), {
    image: { repository: "r.example/a" },
  });
});

test("a file that is not YAML or not a mapping is refused, not overwritten", () => {
  for (const bad of ["image: [unclosed\n", "- a\n- b\n"]) {
    assert.throws(
      () => editConfigText(bad, { repository: "r.example/a" }),
      (e) => isUserError(e) && e.exitCode === 2 && /snapdeploy\.yaml/.test(e.message),
    );
  }
});

const workloads = [
  { kind: "Deployment" as const, name: "api", containers: ["api", "proxy"] },
  { kind: "StatefulSet" as const, name: "db", containers: ["main"] },
];

test("target answers: numbers or names, containers after ':', anything else refused", () => {
  assert.deepEqual(parseTargetAnswer("1", workloads), [{ kind: "Deployment", name: "api" }]);
  assert.deepEqual(parseTargetAnswer(" 1:proxy  statefulset/db ", workloads), [
    { kind: "Deployment", name: "api", containers: ["proxy"] },
    { kind: "StatefulSet", name: "db" },
  ]);
  assert.deepEqual(parseTargetAnswer("", workloads), []);
  assert.throws(() => parseTargetAnswer("3", workloads), /no workload number 3 \(1 to 2\)/);
  assert.throws(
    () => parseTargetAnswer("Web!", workloads),
    (e) => isUserError(e) && e.exitCode === 2,
  );
});

test("targets are checked against the namespace's workloads and their containers", () => {
  checkTargets([{ kind: "Deployment", name: "api", containers: ["proxy"] }], workloads, "ns");
  assert.throws(
    () => checkTargets([{ kind: "Deployment", name: "db" }], workloads, "ns"),
    (e) => isUserError(e) && e.exitCode === 5 && /deployment\/api, statefulset\/db/.test(e.hint ?? ""),
  );
  assert.throws(
    () => checkTargets([{ kind: "Deployment", name: "api", containers: ["nope"] }], workloads, "ns"),
    (e) => isUserError(e) && /no container named nope/.test(e.message) && /api, proxy/.test(e.hint ?? ""),
  );
});

test("repositories: host, port and a lowercase path, no tag", () => {
  for (const ok of ["registry.example.com/team/app", "10.245.0.1:5000/demo/app", "app", "a/b-c_d.e"])
    assert.equal(checkRepository(ok), ok);
  for (const bad of [
    "",
    "registry.example.com/App",
    "r.example/app:latest",
    "r.example//app",
    "https://r/app",
  ])
    assert.throws(
      () => checkRepository(bad),
      (e) => isUserError(e) && e.exitCode === 2,
    );
});

test("Dockerfiles: found by name outside .dockerignore, the root's first; the default", async () => {
  const dir = mkdtempSync(path.join(tmpdir(), "snapdeploy-init-"));
  const put = (rel: string, text = "FROM scratch\n") => {
    mkdirSync(path.dirname(path.join(dir, rel)), { recursive: true });
    writeFileSync(path.join(dir, rel), text);
  };
  put("services/api/Dockerfile");
  put("services/web/web.Dockerfile");
  put("Dockerfile.dev");
  put("node_modules/pkg/Dockerfile");
  put(".git/Dockerfile");
  put("docs/Dockerfile"); // .dockerignore leaves docs out
  put("notes.txt", "");
  put("README.md", "");
  put(".dockerignore", "node_modules\ndocs\n");
  assert.deepEqual(await findDockerfiles(dir), [
    "Dockerfile.dev",
    "services/api/Dockerfile",
    "services/web/web.Dockerfile",
  ]);
  assert.equal(defaultDockerfile(undefined, await findDockerfiles(dir)), undefined);
  put("Dockerfile");
  // The root's Dockerfile is always in the context, even when .dockerignore names it.
  put(".dockerignore", "node_modules\ndocs\nDockerfile\n");
  const found = await findDockerfiles(dir);
  assert.equal(found[0], "Dockerfile");
  assert.equal(defaultDockerfile(undefined, found), "Dockerfile");
  assert.equal(defaultDockerfile("services/api/Dockerfile", found), "services/api/Dockerfile");
  assert.equal(defaultDockerfile(undefined, ["only/Dockerfile"]), "only/Dockerfile");
});
