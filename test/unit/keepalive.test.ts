/**
 * Keepalives (protocol/connection.ts) over real unix sockets: a silent peer fails the
 * connection with StalledConnection within the deadline, and pending reads and writes with
 * it; a live peer keeps a silent operation alive past many deadlines; the answering side
 * drops a client that stops sending them; this side's own blocked event loop is not taken
 * for the peer's silence; and the agent answers keepalives in the middle of an operation.
 */
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type TestContext, test } from "node:test";
import { Connection, StalledConnection } from "../../src/protocol/connection.js";
import { PROTOCOL_VERSION } from "../../src/protocol/constants.js";
import { encodeFrame, FRAME_JSON } from "../../src/protocol/frames.js";
import type { AgentMessage } from "../../src/protocol/messages.js";
import { startAgent } from "../helpers/fuzz/run.js";

/** A connected pair of unix sockets: [client side, server side]. */
async function pair(t: TestContext): Promise<[net.Socket, net.Socket]> {
  const dir = await mkdtemp(join(tmpdir(), "snapdeploy-ka-"));
  const path = join(dir, "s.sock");
  const accepted = new Promise<net.Socket>((resolve) => {
    const server = net.createServer(resolve);
    server.listen(path);
    t.after(() => server.close());
  });
  const client = net.connect(path);
  await new Promise((r) => client.once("connect", r));
  const server = await accepted;
  t.after(() => {
    client.destroy();
    server.destroy();
    return rm(dir, { recursive: true, force: true });
  });
  return [client, server];
}

const rejection = async (p: Promise<unknown>) => {
  try {
    await p;
  } catch (e) {
    return e as Error;
  }
  assert.fail("expected a rejection");
};

test("a peer that never answers fails the connection within the deadline, reads and writes with it", async (t) => {
  const [c, s] = await pair(t);
  s.pause(); // the frozen peer: reads nothing, sends nothing
  const conn = new Connection(c);
  const t0 = Date.now();
  conn.keepalive(400, 100);
  const read = conn.next();
  const e = await rejection(read);
  const took = Date.now() - t0;
  assert.ok(e instanceof StalledConnection, String(e));
  assert.match(e.message, /nothing received for 0 s: the connection stalled/);
  assert.ok(took >= 400 && took < 1500, `failed after ${took} ms`);
  assert.ok(c.destroyed);
  assert.ok((await rejection(conn.send({ t: "ping" }))) instanceof StalledConnection);
});

test("a live peer keeps a silent operation's connection open past many deadlines", async (t) => {
  const [c, s] = await pair(t);
  const agentSide = new Connection<AgentMessage>(s);
  const conn = new Connection(c);
  conn.keepalive(300, 50);
  let failed: unknown;
  const read = conn.next().catch((e) => {
    failed = e;
  });
  await new Promise((r) => setTimeout(r, 1500));
  assert.equal(failed, undefined, "the connection failed although the peer answered");
  // The operation's own message still arrives; the keepalive acks were never delivered.
  await agentSide.send({ t: "pong" });
  await read;
  conn.stopKeepalive();
});

test("the answering side drops a peer that stops sending keepalives", async (t) => {
  const [c, s] = await pair(t);
  const agentSide = new Connection<AgentMessage>(s);
  agentSide.peerTimeoutMs = 400;
  c.write(encodeFrame(FRAME_JSON, Buffer.from(JSON.stringify({ t: "keepalive" }))));
  const e = await rejection(agentSide.next());
  assert.ok(e instanceof StalledConnection, String(e));
  assert.ok(s.destroyed);
});

test("a blocked event loop on this side is not the peer's silence", async (t) => {
  const [c] = await pair(t);
  const conn = new Connection(c);
  conn.keepalive(300);
  let failed: unknown;
  conn.next().catch((e) => {
    failed = e;
  });
  const until = Date.now() + 800;
  while (Date.now() < until) {} // busy: no timer runs, nothing is read
  await new Promise((r) => setTimeout(r, 150));
  assert.equal(failed, undefined);
  conn.stopKeepalive();
});

test("the agent answers keepalives during an operation, which never sees them", async (t) => {
  const agent = await startAgent();
  t.after(() => agent.stop());
  const sock = net.connect(agent.socket);
  const conn = new Connection(sock);
  await conn.send({ t: "hello", protocol: PROTOCOL_VERSION, client: "test" });
  const hello = await conn.expect("hello");
  assert.equal(hello.keepalive, true);
  conn.keepalive(300, 20);
  // A sync waiting for the manifest: keepalives arrive in the middle of it.
  await conn.send({ t: "sync", user: "u", project: "p", digest: "0".repeat(64), client: "test" });
  await conn.expect("send-manifest");
  await new Promise((r) => setTimeout(r, 1000));
  await conn.send({ t: "manifest-end" });
  const e = await rejection(conn.expect());
  // The empty manifest stream is refused as such, not as an unexpected keepalive.
  assert.match(e.message, /the manifest could not be read/);
  sock.destroy();
});
