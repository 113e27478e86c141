/** The buildctl driver's pure parts (agent/buildkit.ts): its arguments and where a failure happened. */
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import net from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, test } from "node:test";
import {
  BuilderUnavailable,
  buildctlArgs,
  daemonGone,
  socketIdentity,
  daemonLost,
  failedInPush,
  repositoryOf,
  waitForDaemon,
} from "../../src/agent/buildkit.js";

describe("buildctl", () => {
  test("one build-and-push: context, Dockerfile, args, labels, secrets, target, platform, metadata", () => {
    const args = buildctlArgs(
      {
        contextDir: "/data/w/u/p/current",
        dockerfile: "/data/w/u/p/a/sub/Dockerfile.dev",
        ref: "reg:5000/app:snap-1",
        buildArgs: { MODE: "debug" },
        labels: { "snapdeploy.dev/user": "amy" },
        target: "prod",
        platform: "linux/amd64",
        secrets: { token: "/run/snapdeploy/secrets/x/token" },
      },
      "/data/w/u/p/a",
      "unix:///run/buildkit/buildkitd.sock",
      "/run/m.json",
    );
    const pairs = (flag: string) => args.flatMap((a, i) => (args[i - 1] === flag ? [a] : []));
    assert.deepEqual(args.slice(0, 3), ["--addr", "unix:///run/buildkit/buildkitd.sock", "build"]);
    assert.ok(args.includes("--progress=plain"));
    assert.deepEqual(pairs("--local"), ["context=/data/w/u/p/a", "dockerfile=/data/w/u/p/a/sub"]);
    assert.deepEqual(pairs("--opt"), [
      "filename=Dockerfile.dev",
      "build-arg:MODE=debug",
      "label:snapdeploy.dev/user=amy",
      "target=prod",
      "platform=linux/amd64",
    ]);
    assert.deepEqual(pairs("--secret"), ["id=token,src=/run/snapdeploy/secrets/x/token"]);
    assert.deepEqual(pairs("--output"), ["type=image,name=reg:5000/app:snap-1,push=true"]);
    assert.deepEqual(pairs("--metadata-file"), ["/run/m.json"]);
  });

  test("a failure while exporting is a push failure; one in a Dockerfile step is not", () => {
    const push = [
      "#7 [2/2] COPY app.txt /app.txt",
      "#7 DONE 0.1s",
      "#8 exporting to image",
      "#8 pushing layers 0.1s done",
      "#8 ERROR: failed to push reg:5001/app:snap-1: failed to authorize: 401 Unauthorized",
      "error: failed to solve: failed to push reg:5001/app:snap-1",
    ];
    assert.equal(failedInPush(push), true);
    const step = [
      "#6 [2/2] RUN exit 3",
      '#6 ERROR: process "/bin/sh -c exit 3" did not complete successfully: exit code: 3',
      'error: failed to solve: process "/bin/sh -c exit 3" did not complete successfully: exit code: 3',
    ];
    assert.equal(failedInPush(step), false);
  });

  /** A build with nothing but a context, a Dockerfile and a ref. */
  const p = {
    contextDir: "/c",
    dockerfile: "/c/Dockerfile",
    ref: "reg:5000/app:snap-1",
    buildArgs: {},
    labels: {},
    secrets: {},
  };

  test("--cache registry: exported (mode max) to and imported from <repository>:buildcache", () => {
    assert.equal(repositoryOf("reg:5000/team/app:snap-1"), "reg:5000/team/app");
    assert.equal(repositoryOf("reg:5000/team/app"), "reg:5000/team/app");
    assert.equal(repositoryOf("reg/app@sha256:ab"), "reg/app");
    const args = buildctlArgs(p, "/c", "unix:///s", "/m", { cache: "registry" });
    assert.equal(
      args[args.indexOf("--export-cache") + 1],
      "type=registry,ref=reg:5000/app:buildcache,mode=max",
    );
    assert.equal(args[args.indexOf("--import-cache") + 1], "type=registry,ref=reg:5000/app:buildcache");
    assert.ok(!buildctlArgs(p, "/c", "unix:///s", "/m").includes("--export-cache"));
  });

  test("zstd layers ask for OCI media types; gzip (or none said) leaves BuildKit's default", () => {
    const output = (o?: Parameters<typeof buildctlArgs>[4]) => {
      const args = buildctlArgs(p, "/c", "unix:///s", "/m", o);
      return args[args.indexOf("--output") + 1];
    };
    assert.equal(
      output({ compression: "zstd" }),
      "type=image,name=reg:5000/app:snap-1,push=true,compression=zstd,oci-mediatypes=true",
    );
    assert.equal(output({ compression: "gzip" }), "type=image,name=reg:5000/app:snap-1,push=true");
    assert.equal(output(), "type=image,name=reg:5000/app:snap-1,push=true");
  });
});

test("daemonLost: buildctl losing its daemon is told from a build that failed", () => {
  assert.equal(
    daemonLost([
      "#5 [2/2] RUN sleep 1000",
      "error: failed to receive status: rpc error: code = Unavailable desc = error reading from server: EOF",
    ]),
    "failed to receive status: rpc error: code = Unavailable desc = error reading from server: EOF",
  );
  assert.match(
    daemonLost([
      'error: listing workers for Build: failed to list workers: Unavailable: connection error: desc = "transport: Error while dialing: dial unix /run/buildkit/buildkitd.sock: connect: connection refused"',
    ]) ?? "",
    /connection refused/,
  );
  assert.equal(
    daemonLost(['#5 ERROR: process "/bin/sh -c false" did not complete successfully: exit code: 1']),
    undefined,
  );
  assert.equal(
    daemonLost(["error: failed to solve: code = Unknown desc = failed to push: connection refused"]),
    undefined,
  );
});

test("daemonGone: from buildctl's output, else from the daemon's socket refusing connections", async (t) => {
  const dir = await mkdtemp(path.join(tmpdir(), "snapdeploy-bk-"));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const sock = path.join(dir, "buildkitd.sock");
  const failed = ['#5 ERROR: process "/bin/sh -c false" did not complete successfully: exit code: 1'];
  // buildctl said so.
  assert.match(
    (await daemonGone(`unix://${sock}`, [
      "error: failed to receive status: rpc error: code = Unavailable desc = error reading from server: EOF",
    ])) ?? "",
    /Unavailable/,
  );
  // Its output ended before saying so, and the daemon is not there.
  assert.match(
    (await daemonGone(`unix://${sock}`, ["#5 [2/2] RUN sleep 1000"])) ?? "",
    /no longer takes connections \(ENOENT\)/,
  );
  // A step that failed while the daemon answers is the build's failure.
  const server = net.createServer((c) => c.destroy());
  await new Promise<void>((r) => server.listen(sock, r));
  t.after(() => server.close());
  assert.equal(await daemonGone(`unix://${sock}`, failed), undefined);
  // The daemon was started again before the check: its socket is another one.
  const before = await socketIdentity(`unix://${sock}`);
  assert.ok(before);
  assert.equal(await daemonGone(`unix://${sock}`, failed, before), undefined);
  await new Promise<void>((r) => server.close(() => r()));
  const again = net.createServer((c) => c.destroy());
  await new Promise<void>((r) => again.listen(sock, r));
  t.after(() => again.close());
  assert.match((await daemonGone(`unix://${sock}`, failed, before)) ?? "", /started again meanwhile/);
  // An address that is no unix socket is not probed.
  assert.equal(await daemonGone("tcp://127.0.0.1:1", failed), undefined);
});

test("waitForDaemon: returns once the socket takes connections, says once that it waits, gives up at the deadline", async (t) => {
  const dir = await mkdtemp(path.join(tmpdir(), "snapdeploy-bk-"));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const sock = path.join(dir, "buildkitd.sock");
  const lines: string[] = [];
  // Not there: waits, then gives up with the socket named.
  await assert.rejects(
    waitForDaemon(`unix://${sock}`, (l) => lines.push(l), 1200),
    (e: Error) => e instanceof BuilderUnavailable && e.message.includes(sock) && /ENOENT/.test(e.message),
  );
  assert.equal(lines.length, 1);
  assert.match(lines[0] as string, /waiting for the builder \(buildkitd\)/);
  // Comes up while it waits: it returns.
  const server = net.createServer((c) => c.end());
  t.after(() => server.close());
  setTimeout(() => server.listen(sock), 700);
  await waitForDaemon(`unix://${sock}`, () => {}, 10_000);
  // A TCP address is not checked.
  await waitForDaemon("tcp://127.0.0.1:1", () => {}, 10);
});
