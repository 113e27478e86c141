/**
 * `snapdeploy init` against the real cluster: with flags (stdin not a terminal), refusing
 * when answers are missing or a target does not exist, editing an existing file in place,
 * and asked on a terminal — a pseudo-terminal from util-linux's `script`, so the CLI sees
 * a TTY on stdin exactly as on a user's terminal.
 */
import assert from "node:assert/strict";
import { existsSync, promises as fs } from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before, test } from "node:test";
import { parse } from "yaml";
import { CLI, ROOT, run, sleepingDeployment, snapdeploy, tempNamespace } from "../helpers/cluster.js";

let ns = "";
let dropNs = async () => {};
const dirs: string[] = [];

before(async () => {
  ({ ns, cleanup: dropNs } = await tempNamespace("e2e-init"));
  await sleepingDeployment(ns, "web", ["web", "sidecar"]);
  await sleepingDeployment(ns, "api", ["api"]);
});
after(async () => {
  await dropNs();
  for (const d of dirs) await fs.rm(d, { recursive: true, force: true });
});

/** A copy of the example app (its Dockerfile and code, not its snapdeploy.yaml). */
async function project(): Promise<string> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), "snapdeploy-init-"));
  dirs.push(dir);
  for (const f of ["Dockerfile", "server.js", "greeting.txt"])
    await fs.copyFile(path.join(ROOT, "examples/hello-http", f), path.join(dir, f));
  await fs.mkdir(path.join(dir, "node_modules/x"), { recursive: true });
  await fs.writeFile(path.join(dir, "node_modules/x/Dockerfile"), "FROM scratch\n");
  await fs.writeFile(path.join(dir, ".dockerignore"), "node_modules\n");
  return dir;
}

interface Written {
  image: { repository?: string; dockerfile?: string };
  deploy: { targets?: unknown[] };
}
const configOf = async (dir: string) =>
  parse(await fs.readFile(path.join(dir, "snapdeploy.yaml"), "utf8")) as Written;

test("with flags: writes a commented snapdeploy.yaml that deploy's config loader accepts", async () => {
  const dir = await project();
  const r = await snapdeploy([
    "init",
    "-C",
    dir,
    "-n",
    ns,
    "-r",
    "10.245.0.1:5000/e2e/init",
    "-t",
    "web:sidecar",
    "-t",
    "deployment/api",
  ]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(
    r.stdout,
    /^wrote .*snapdeploy\.yaml \(project, image\.repository, image\.dockerfile, deploy\.namespace, deploy\.targets\)$/m,
  );
  assert.match(r.stdout, /^next: snapdeploy -C \S+ deploy$/m);
  const text = await fs.readFile(path.join(dir, "snapdeploy.yaml"), "utf8");
  assert.match(text, /^# snapdeploy's settings/m);
  assert.deepEqual(parse(text), {
    project: path.basename(dir).toLowerCase(),
    image: { repository: "10.245.0.1:5000/e2e/init", dockerfile: "Dockerfile" },
    deploy: {
      namespace: ns,
      targets: [
        { kind: "Deployment", name: "web", containers: ["sidecar"] },
        { kind: "Deployment", name: "api" },
      ],
    },
  });
  // The CLI loads it as any command would: history reads deploy.targets and deploy.namespace.
  const h = await snapdeploy(["history", "-C", dir]);
  assert.equal(h.code, 0, h.stderr);
  assert.match(h.stdout, new RegExp(`deployment/web \\(namespace ${ns}\\)`));
  assert.match(h.stdout, /deployment\/api/);
});

test("off a terminal, missing answers and unknown targets are refused before anything is written", async () => {
  const dir = await project();
  const missing = await snapdeploy(["init", "-C", dir, "-n", ns]);
  assert.equal(missing.code, 2, missing.stderr);
  assert.match(missing.stderr, /cannot ask \(stdin is not a terminal\) and needs: --repository .*; --target/);
  assert.doesNotMatch(missing.stderr, /at .*\.js:\d+/); // no stack trace

  const unknown = await snapdeploy([
    "init",
    "-C",
    dir,
    "-n",
    ns,
    "-r",
    "r.example/app",
    "-t",
    "statefulset/web",
  ]);
  assert.equal(unknown.code, 5, unknown.stderr);
  assert.match(unknown.stderr, new RegExp(`statefulset/web not found in namespace ${ns}`));
  assert.match(
    unknown.stderr,
    /hint: the Deployments and StatefulSets there: deployment\/api, deployment\/web/,
  );

  const container = await snapdeploy(["init", "-C", dir, "-n", ns, "-r", "r.example/app", "-t", "web:nope"]);
  assert.equal(container.code, 5, container.stderr);
  assert.match(container.stderr, /has no container named nope/);

  const badRepo = await snapdeploy(["init", "-C", dir, "-n", ns, "-r", "r.example/App:latest", "--yes"]);
  assert.equal(badRepo.code, 2, badRepo.stderr);
  assert.ok(!existsSync(path.join(dir, "snapdeploy.yaml")), "nothing was written");

  // --yes takes the defaults: the only Dockerfile outside .dockerignore, no targets.
  const yes = await snapdeploy(["init", "-C", dir, "-r", "r.example/app", "--yes"]);
  assert.equal(yes.code, 0, yes.stderr);
  const c = await configOf(dir);
  assert.equal(c.image.dockerfile, "Dockerfile");
  assert.deepEqual(c.deploy.targets, []);
});

test("an existing snapdeploy.yaml is edited: comments and other settings stay", async () => {
  const dir = await project();
  const before = `# the team's settings: keep this comment
project: shop # named after the repository
image:
  repository: old.example/shop
  buildArgs: {PYTHON: "3.11"}
deploy:
  timeout: 10m # slow start
dev:
  rebuildOn: [requirements.txt]
`;
  await fs.writeFile(path.join(dir, "snapdeploy.yaml"), before);
  const r = await snapdeploy(["init", "-C", dir, "-n", ns, "-r", "10.245.0.1:5000/e2e/shop", "-t", "api"]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(
    r.stdout,
    /^updated .*snapdeploy\.yaml \(image\.repository, image\.dockerfile, deploy\.namespace, deploy\.targets\)$/m,
  );
  const text = await fs.readFile(path.join(dir, "snapdeploy.yaml"), "utf8");
  for (const kept of [
    "# the team's settings: keep this comment",
    "# named after the repository",
    "# slow start",
  ])
    assert.ok(text.includes(kept), `${kept} was kept:\n${text}`);
  assert.deepEqual(parse(text), {
    project: "shop",
    image: {
      repository: "10.245.0.1:5000/e2e/shop",
      buildArgs: { PYTHON: "3.11" },
      dockerfile: "Dockerfile",
    },
    deploy: { timeout: "10m", namespace: ns, targets: [{ kind: "Deployment", name: "api" }] },
    dev: { rebuildOn: ["requirements.txt"] },
  });
  // Again with the same answers: nothing changes.
  const again = await snapdeploy([
    "init",
    "-C",
    dir,
    "-n",
    ns,
    "-r",
    "10.245.0.1:5000/e2e/shop",
    "-t",
    "api",
  ]);
  assert.equal(again.code, 0, again.stderr);
  assert.match(again.stdout, /^unchanged: /m);
  assert.equal(await fs.readFile(path.join(dir, "snapdeploy.yaml"), "utf8"), text);
});

test("on a terminal it lists what it found and asks, re-asking after a bad answer", async () => {
  const dir = await project();
  // Answers as typed: the Dockerfile's default (Enter), a bad repository, a good one, a
  // workload number with a container. The terminal is a pty made by script(1).
  const typed = ["", "Not A Repo", "10.245.0.1:5000/e2e/pty", "2:sidecar", ""].join("\n");
  const r = await run(
    "script",
    ["-q", "-e", "-c", `${process.execPath} ${CLI} init -C ${dir} -n ${ns}`, "/dev/null"],
    {
      input: typed,
      env: { ...process.env, TERM: "dumb" },
    },
  );
  assert.equal(r.code, 0, r.stdout + r.stderr);
  const screen = r.stdout.replace(/\r/g, "");
  assert.match(screen, /Dockerfiles here: Dockerfile\n/); // node_modules/x/Dockerfile is .dockerignored
  assert.match(screen, /Dockerfile \[Dockerfile\]: /);
  assert.match(screen, /is not a registry repository/);
  assert.match(screen, new RegExp(`Deployments and StatefulSets in namespace ${ns}:`));
  assert.match(screen, / 1\) deployment\/api {2}\(containers: api\)/);
  assert.match(screen, / 2\) deployment\/web {2}\(containers: web, sidecar\)/);
  assert.match(screen, /wrote .*snapdeploy\.yaml/);
  const c = await configOf(dir);
  assert.equal(c.image.repository, "10.245.0.1:5000/e2e/pty");
  assert.deepEqual(c.deploy.targets, [{ kind: "Deployment", name: "web", containers: ["sidecar"] }]);
});
