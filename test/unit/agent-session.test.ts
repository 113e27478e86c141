/**
 * How the agent's session ends: a client may hang up between two operations (after its
 * last answer) without a bye, and that is not an error; one that goes away in the middle of
 * an operation is logged in one line, without a stack. The agent is the real one in this
 * process (test/helpers/fuzz), over a real unix socket.
 */
import assert from "node:assert/strict";
import net from "node:net";
import test, { type TestContext } from "node:test";
import { Connection } from "../../src/protocol/connection.js";
import { PROTOCOL_VERSION } from "../../src/protocol/constants.js";
import { startAgent } from "../helpers/fuzz/run.js";

async function sessionsEnded(agent: { active: number }) {
  const until = Date.now() + 5000;
  while (agent.active > 0) {
    if (Date.now() > until) throw new Error("the agent's session did not end");
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** The agent, with its log lines collected, and a client connection past the hello. */
async function connected(t: TestContext) {
  const agent = await startAgent();
  t.after(() => agent.stop());
  const lines: string[] = [];
  agent.ctx.log = (line: string) => lines.push(line);
  const sock = net.connect(agent.socket);
  const conn = new Connection(sock);
  await conn.send({ t: "hello", protocol: PROTOCOL_VERSION, client: "test" });
  await conn.expect("hello");
  return { agent, lines, sock, conn };
}

test("a client that hangs up between operations ends its session quietly", async (t) => {
  const { agent, lines, sock, conn } = await connected(t);
  await conn.send({ t: "ping" });
  await conn.expect("pong");
  sock.end(); // no bye
  await sessionsEnded(agent);
  assert.deepEqual(lines, []);
  assert.deepEqual(agent.thrown, []);
});

test("a client that goes away during a sync is logged in one line, without a stack", async (t) => {
  const { agent, lines, sock, conn } = await connected(t);
  await conn.send({ t: "sync", user: "u", project: "p", digest: "0".repeat(64), client: "test" });
  await conn.expect("send-manifest");
  sock.end(); // while the agent waits for the manifest
  await sessionsEnded(agent);
  assert.equal(lines.length, 1, lines.join("\n"));
  assert.match(lines[0] as string, /^client went away: connection closed/);
  assert.doesNotMatch(lines[0] as string, /\n\s+at /);
  assert.deepEqual(agent.thrown, []);
});
