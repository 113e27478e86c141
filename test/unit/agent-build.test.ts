/**
 * The agent's build queue (at most `limit` builds at once, the rest in order and told
 * their place) and the reading of BuildKit's output on failure. Deterministic: every
 * step is driven by the test, nothing relies on timing.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { BuildQueue, explainBuildFailure, pushFailureKind } from "../../src/agent/build.js";

/** Lets every pending promise callback run. */
const settle = () => new Promise((r) => setImmediate(r));

test("at most `limit` builds run; the others wait in arrival order and are told their position", async () => {
  const q = new BuildQueue(2);
  const started: string[] = [];
  const positions: Record<string, number[]> = { c: [], d: [], e: [], h: [] };
  const releases: Record<string, () => void> = {};
  const enter = (name: string) =>
    q
      .acquire((p) => positions[name]?.push(p))
      .then((release) => {
        started.push(name);
        releases[name] = release;
      });
  for (const name of ["a", "b", "c", "d", "e"]) void enter(name);
  await settle();
  assert.deepEqual(started, ["a", "b"]);
  assert.equal(q.queued, 3);
  assert.deepEqual(positions, { c: [1], d: [2], e: [3], h: [] });

  releases.b?.();
  await settle();
  assert.deepEqual(started, ["a", "b", "c"]); // the first in line gets the freed slot
  assert.deepEqual(positions, { c: [1], d: [2, 1], e: [3, 2], h: [] });
  assert.equal(q.queued, 2);

  releases.a?.();
  releases.c?.();
  await settle();
  assert.deepEqual(started, ["a", "b", "c", "d", "e"]);
  assert.equal(q.queued, 0);
  releases.d?.();
  releases.e?.();
  // Everything released: the next two start at once again, a third waits.
  void enter("f");
  void enter("g");
  await settle();
  assert.deepEqual(started.slice(5), ["f", "g"]);
  void enter("h");
  await settle();
  assert.deepEqual(started.slice(5), ["f", "g"]);
  assert.deepEqual(positions.h, [1]);
});

test("a cancelled build releases its slot once, however often its release is called", async () => {
  const q = new BuildQueue(1);
  const first = await q.acquire(() => {});
  let secondStarted = false;
  let thirdStarted = false;
  const second = q
    .acquire(() => {})
    .then((r) => {
      secondStarted = true;
      return r;
    });
  void q
    .acquire(() => {})
    .then(() => {
      thirdStarted = true;
    });
  await settle();
  first();
  first(); // the client went away and the session's cleanup releases again
  await settle();
  assert.equal(secondStarted, true);
  assert.equal(thirdStarted, false, "a repeated release must not hand out a second slot");
  // A build cancelled while queued takes its slot and gives it back at once (see ops/build.ts).
  (await second)();
  await settle();
  assert.equal(thirdStarted, true);
});

test("a failed BuildKit step is named with its error and its last output lines", () => {
  const lines = [
    "#1 [internal] load build definition from Dockerfile",
    "#1 DONE 0.0s",
    "#5 [2/3] RUN make",
    "#5 0.120 compiling",
    "#5 0.340 error: missing header",
    '#5 ERROR: process "/bin/sh -c make" did not complete successfully: exit code: 2',
    "ERROR: failed to solve: process did not complete",
  ];
  const r = explainBuildFailure(lines);
  assert.equal(r.step, "[2/3] RUN make");
  assert.deepEqual(r.tail, ["[2/3] RUN make", "compiling", "error: missing header"]);
  assert.match(r.summary, /^step \[2\/3\] RUN make failed: process/);
  const other = explainBuildFailure(["something", "ERROR: failed to read dockerfile"]);
  assert.equal(other.step, undefined);
  assert.equal(other.summary, "failed to read dockerfile");
});

test("a push failure's kind: a registry that is down is not taken for refused credentials", () => {
  const down =
    "#14 pushing layers\n#14 ERROR: failed to push 10.0.0.1:5000/app:snap-1@sha256:9c401fe4031b2: " +
    'failed to do request: Head "https://10.0.0.1:5000/v2/app/blobs/sha256:ab403f": dial tcp 10.0.0.1:5000: connect: connection refused';
  assert.equal(pushFailureKind(down), "unreachable");
  assert.equal(pushFailureKind("write tcp 10.0.0.2:40110->10.0.0.1:5000: write: broken pipe"), "unreachable");
  assert.equal(
    pushFailureKind("read tcp 10.0.0.2:40110->10.0.0.1:5000: read: connection reset by peer"),
    "unreachable",
  );
  assert.equal(pushFailureKind("unexpected status from HEAD request: 401 Unauthorized"), "auth");
  assert.equal(
    pushFailureKind("server message: insufficient_scope: authorization failed: 403 Forbidden"),
    "auth",
  );
  assert.equal(pushFailureKind("denied: requested access to the resource is denied"), "auth");
  assert.equal(pushFailureKind("open /tmp/x: permission denied\nno space left on device"), "noSpace");
  assert.equal(pushFailureKind("name unknown: repository name not known to registry"), "notFound");
});
