/**
 * bin/snapdeploy.cjs compiles the bundle with V8's code cache: the real bin in real
 * processes, with the cache in a folder of the test's own (XDG_CACHE_HOME).
 */
import assert from "node:assert/strict";
import {
  chmodSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  statSync,
  utimesSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { test } from "node:test";
import { ROOT, run } from "../helpers/cluster.js";

const bin = `${ROOT}/bin/snapdeploy.cjs`;
const version = JSON.parse(readFileSync(`${ROOT}/package.json`, "utf8")).version as string;

function cacheHome() {
  const home = mkdtempSync(path.join(tmpdir(), "snapdeploy-compile-"));
  return { env: { ...process.env, XDG_CACHE_HOME: home }, dir: path.join(home, "snapdeploy", "compile") };
}

const files = (dir: string) => readdirSync(dir).sort();

test("the first run of a command writes its cache, private to the user; the next run uses it as it is", async () => {
  const { env, dir } = cacheHome();
  const first = await run("node", [bin, "--version"], { env });
  assert.equal(first.stdout.trim(), version);
  const [file, ...rest] = files(dir);
  assert.ok(file, "a cache file was written");
  assert.deepEqual(rest, []);
  assert.match(file, new RegExp(`-${process.version.replaceAll(".", "\\.")}\\.other\\.bin$`));
  assert.equal(statSync(dir).mode & 0o777, 0o700);
  assert.equal(statSync(path.join(dir, file)).mode & 0o777, 0o600);
  const before = statSync(path.join(dir, file));

  const second = await run("node", [bin, "--version"], { env });
  assert.equal(second.stdout.trim(), version);
  // V8 accepted the cache: it was not written again (a rewrite is a new file, renamed over it).
  const after = statSync(path.join(dir, file));
  assert.equal(after.ino, before.ino);
  assert.equal(after.mtimeMs, before.mtimeMs);

  // Another command has a cache of its own.
  await run("node", [bin, "sync", "--help"], { env });
  assert.deepEqual(
    files(dir).map((f) => f.split(".").at(-2)),
    ["other", "sync"],
  );
});

test("a cache V8 rejects (here: garbage) costs only the compile, and is written anew", async () => {
  const { env, dir } = cacheHome();
  await run("node", [bin, "--version"], { env });
  const [file] = files(dir);
  assert.ok(file);
  writeFileSync(path.join(dir, file), "not a code cache");
  const r = await run("node", [bin, "--version"], { env });
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout.trim(), version);
  assert.equal(r.stderr, "");
  assert.notEqual(readFileSync(path.join(dir, file), "latin1"), "not a code cache");
});

test("a cache others may write is not used: it is compiled anew and replaced by one of the user's own", async () => {
  const { env, dir } = cacheHome();
  await run("node", [bin, "--version"], { env });
  const [file] = files(dir);
  assert.ok(file);
  const cache = path.join(dir, file);
  chmodSync(cache, 0o666);
  const before = statSync(cache);
  const r = await run("node", [bin, "--version"], { env });
  assert.equal(r.stdout.trim(), version);
  const after = statSync(cache);
  assert.notEqual(after.ino, before.ino);
  assert.equal(after.mode & 0o777, 0o600);
});

test("caches of another install are removed once unused for a week, recent ones are kept", async () => {
  const { env, dir } = cacheHome();
  await run("node", [bin, "--version"], { env });
  const stale = path.join(dir, "1-2-3-v0.0.0.sync.bin");
  const recent = path.join(dir, "4-5-6-v0.0.0.sync.bin");
  writeFileSync(stale, "x");
  writeFileSync(recent, "x");
  const eightDaysAgo = (Date.now() - 8 * 86_400_000) / 1000;
  utimesSync(stale, eightDaysAgo, eightDaysAgo);
  // A command without a cache yet writes one, and tidies up then.
  await run("node", [bin, "deploy", "--help"], { env });
  const left = files(dir);
  assert.ok(!left.includes(path.basename(stale)), left.join(" "));
  assert.ok(left.includes(path.basename(recent)), left.join(" "));
});

test("the Kubernetes client is a bundle of its own, cached like the CLI, loaded only by the commands that use it", async () => {
  const { env, dir } = cacheHome();
  // `history` reads the kubeconfig with the client; the API server it names is not there.
  const kubeconfig = path.join(path.dirname(dir), "..", "kubeconfig");
  writeFileSync(
    kubeconfig,
    [
      "apiVersion: v1",
      "kind: Config",
      "clusters: [{name: c, cluster: {server: 'https://127.0.0.1:1'}}]",
      "users: [{name: u, user: {token: t}}]",
      "contexts: [{name: x, context: {cluster: c, user: u}}]",
      "current-context: x",
    ].join("\n"),
  );
  const project = mkdtempSync(path.join(tmpdir(), "snapdeploy-compile-project-"));
  writeFileSync(
    path.join(project, "snapdeploy.yaml"),
    "deploy:\n  targets: [{kind: Deployment, name: web}]\n",
  );
  const history = () =>
    run("node", [bin, "history", "-C", project], { env: { ...env, KUBECONFIG: kubeconfig } });
  const first = await history();
  assert.notEqual(first.code, 0);
  assert.doesNotMatch(first.stderr, /TypeError|is not a function|Cannot find module/);
  const written = files(dir);
  assert.deepEqual(
    written.map((f) => f.slice(f.indexOf(process.version) + process.version.length + 1)),
    ["other.bin", "other.kube.bin"],
    written.join(" "),
  );
  const before = written.map((f) => statSync(path.join(dir, f)).ino);
  await history();
  assert.deepEqual(
    files(dir).map((f) => statSync(path.join(dir, f)).ino),
    before,
    "both caches were taken as they are",
  );
});
