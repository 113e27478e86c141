/**
 * What the build server may push (agent/policy.ts): repository prefixes by whole path
 * segments, snapshot tags only, the environment it is read from, and a build refused with
 * code "denied" before anything runs (the real agent in this process).
 */
import assert from "node:assert/strict";
import net from "node:net";
import { test } from "node:test";
import { policyFromEnv, pushRefusal } from "../../src/agent/policy.js";
import { Connection } from "../../src/protocol/connection.js";
import { PROTOCOL_VERSION } from "../../src/protocol/constants.js";
import { startAgent } from "../helpers/fuzz/run.js";

const ID = "0123456789abcdef0123456789abcdef";

test("no policy: anything may be pushed", () => {
  assert.equal(policyFromEnv({}), undefined);
  assert.equal(pushRefusal(undefined, "reg.example.com/any/app:latest"), undefined);
});

test("repository prefixes match whole path segments; the host alone allows all of it", () => {
  const p = policyFromEnv({ SNAPDEPLOY_ALLOW_REPOSITORIES: "reg.example.com/team/, 10.0.0.1:5000" });
  assert.deepEqual(p, { repositories: ["reg.example.com/team", "10.0.0.1:5000"], tagPrefixes: [] });
  assert.equal(pushRefusal(p, `reg.example.com/team/app:snap-${ID}`), undefined);
  assert.equal(pushRefusal(p, `reg.example.com/team/a/b:snap-${ID}`), undefined);
  assert.equal(pushRefusal(p, `10.0.0.1:5000/x:snap-${ID}`), undefined);
  assert.match(
    pushRefusal(p, `reg.example.com/team-b/app:snap-${ID}`) ?? "",
    /may push only to repositories under reg.example.com\/team, 10.0.0.1:5000, not reg.example.com\/team-b\/app/,
  );
  assert.ok(pushRefusal(p, `other.example.com/team/app:snap-${ID}`));
});

test("only snapshot tags: the prefix (default snap-) and a 32-hex id", () => {
  const p = policyFromEnv({ SNAPDEPLOY_ALLOW_REPOSITORIES: "reg.example.com" });
  assert.equal(pushRefusal(p, `reg.example.com/app:snap-${ID}`), undefined);
  for (const tag of ["latest", "v1.2.3", `snap-${ID}x`, `snap-${ID.toUpperCase()}`, `dev-${ID}`, "snap-"])
    assert.match(
      pushRefusal(p, `reg.example.com/app:${tag}`) ?? "",
      /pushes only snapshot tags \(snap-<id>\)/,
      tag,
    );
  const custom = policyFromEnv({ SNAPDEPLOY_ALLOW_TAG_PREFIXES: "dev-,ci-" });
  assert.equal(pushRefusal(custom, `any.example.com/app:dev-${ID}`), undefined);
  assert.match(pushRefusal(custom, `any.example.com/app:snap-${ID}`) ?? "", /dev-<id>, ci-<id>/);
});

test("the agent refuses a build outside its policy with code denied, before taking the workspace lock", async (t) => {
  const agent = await startAgent();
  t.after(() => agent.stop());
  const sock = net.connect(agent.socket);
  t.after(() => sock.destroy());
  const conn = new Connection(sock);
  await conn.send({ t: "hello", protocol: PROTOCOL_VERSION, client: "test" });
  await conn.expect("hello");
  // Held by someone else: a refusal must not wait for it.
  const release = await agent.ctx.locks.acquire("alice/p", "another build");
  t.after(release);
  await conn.send({
    t: "build",
    user: "alice",
    project: "p",
    manifest: "0".repeat(64),
    ref: "127.0.0.1:1/prod/app:latest",
  });
  const f = await conn.next();
  const msg: Record<string, unknown> = f.kind === 1 ? f.msg : {};
  assert.equal(msg.t, "error");
  assert.equal(msg.code, "denied");
  assert.match(
    String(msg.message),
    /may push only to repositories under 127.0.0.1:1\/team, not 127.0.0.1:1\/prod\/app/,
  );
  assert.match(String(msg.hint), /--allow-repository/);
});
