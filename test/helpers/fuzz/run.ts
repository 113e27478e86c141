/** Runs one fuzz script against the agent (agent.ts) and checks what agent.ts promises. */
import { promises as fs } from "node:fs";
import net from "node:net";
import path from "node:path";
import { deflateRawSync } from "node:zlib";
import fc from "fast-check";
import { Connection } from "../../../src/protocol/connection.js";
import { BATCH_DEFLATE, BATCH_RAW, BLOB_HEADER, PROTOCOL_VERSION } from "../../../src/protocol/constants.js";
import { FRAME_JSON, type Frame } from "../../../src/protocol/frames.js";
import { type Entry, manifestDigest } from "../../../src/protocol/manifest.js";
import type { ClientMessage, Message } from "../../../src/protocol/messages.js";
import { type FuzzAgent, startAgent } from "./agent.js";
import { CONTENTS, materialize, type Op, type Script, scriptArb, sha256 } from "./arbitraries.js";

const CODES = new Set([
  "input",
  "noSpace",
  "protocol",
  "internal",
  "build",
  "push",
  "registry",
  "busy",
  "denied",
]);
const STEP_MS = 5000;

// ── Running one script ───────────────────────────────────────────────────────────

/** What a case showed: the agent's error codes, in order, and how far the script got. */
export interface Outcome {
  errors: string[];
  ok: string[];
}

class Violation extends Error {}

function within<T>(p: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p,
    new Promise<T>((_, reject) => {
      timer = setTimeout(
        () => reject(new Violation(`the agent did not answer within ${STEP_MS} ms: ${what}`)),
        STEP_MS,
      );
    }),
  ]).finally(() => clearTimeout(timer));
}

/** The agent's connection ended (after an error, or because it refused the input). */
class Closed extends Error {}

/** The next JSON message; Closed when the agent ended the connection; a Violation for garbage. */
async function next(conn: Connection, errors: string[], what: string): Promise<Message> {
  let f: Frame;
  try {
    f = await within(conn.next(), what);
  } catch (e) {
    if (e instanceof Violation) throw e;
    throw new Closed();
  }
  if (f.kind !== FRAME_JSON) throw new Violation(`the agent sent a data frame (${what})`);
  if (f.msg.t === "error") {
    const { code, message } = f.msg;
    if (typeof code !== "string" || !CODES.has(code))
      throw new Violation(`unknown error code ${String(code)}`);
    if (typeof message !== "string" || !message) throw new Violation(`error without a message (${code})`);
    if (code === "internal") throw new Violation(`internal error on ${what}: ${message}`);
    errors.push(`${what.split(" ")[0]}:${code}`);
    if (process.env.FUZZ_DEBUG) console.error(what.slice(0, 40), code, message.slice(0, 200));
    throw new Closed();
  }
  return f.msg;
}

const send = (conn: Connection, msg: unknown) => conn.send(msg as ClientMessage);

function record(content: Buffer, hash: string, size = content.length): Buffer {
  const head = Buffer.alloc(BLOB_HEADER);
  Buffer.from(hash, "hex").copy(head, 0);
  head.writeBigUInt64BE(BigInt(size), 32);
  return Buffer.concat([head, content]);
}

/** The manifests this script synced successfully, by workspace, for the builds that follow. */
type Synced = Map<string, string>;

async function runSync(
  conn: Connection,
  op: Extract<Op, { op: "sync" }>,
  errors: string[],
  synced: Synced,
  ok: string[],
) {
  const entries = materialize(op.entries, op.sorted, op.parents);
  let digest: unknown;
  try {
    digest = manifestDigest(entries as unknown as Entry[]);
  } catch {
    digest = "0".repeat(64);
  }
  if (op.digest === "wrong") digest = sha256(String(digest));
  if (op.digest === "missing") digest = undefined;
  await send(conn, { t: "sync", user: op.user, project: op.project, digest, client: "fuzz" });
  let m = await next(conn, errors, "sync");
  while (m.t === "waiting") m = await next(conn, errors, "sync (waiting)");
  if (m.t === "synced") {
    ok.push("sync-noop");
    return;
  }
  if (m.t !== "send-manifest") throw new Violation(`expected send-manifest, got ${m.t}`);
  const json = Buffer.from(
    op.manifest === "notJson" ? "[{" : JSON.stringify(op.manifest === "notList" ? { entries } : entries),
  );
  let wire = deflateRawSync(json);
  if (op.manifest === "truncated") wire = wire.subarray(0, Math.floor(wire.length / 2));
  if (op.manifest === "garbage") wire = Buffer.from("\xff\xfe garbage, not deflate", "latin1");
  // Two frames: the agent's inflater sees the stream split.
  const cut = Math.floor(wire.length / 3);
  await conn.sendData(wire.subarray(0, cut));
  await conn.sendData(wire.subarray(cut));
  if (op.manifest === "abort") {
    await send(conn, { t: "abort", reason: "fuzz" });
  } else if (op.manifest === "other") {
    await send(conn, { t: "blobs-end" });
  } else await send(conn, { t: "manifest-end" });
  m = await next(conn, errors, "manifest");
  if (m.t !== "need") throw new Violation(`expected need, got ${m.t}`);
  if (m.count === 0) {
    // Nothing to send: the agent switches the workspace at once (as the CLI expects).
    m = await next(conn, errors, "blobs");
    if (m.t !== "synced") throw new Violation(`expected synced, got ${m.t}`);
    synced.set(`${String(op.user)}/${String(op.project)}`, String(digest));
    ok.push("sync");
    return;
  }
  const files = entries.filter((e) => e.type === "file");
  const bitmap = Buffer.from(String(m.files), "base64");
  const want = files.filter((_, i) => ((bitmap[i >> 3] ?? 0) >> (i & 7)) & 1);
  const byHash = new Map(CONTENTS.map((c) => [sha256(c), Buffer.from(c)]));
  const records: Buffer[] = [];
  for (const e of want) {
    const hash = String(e.hash);
    const body = byHash.get(hash) ?? Buffer.from("unknown content");
    if (op.blobs === "missing") continue;
    if (op.blobs === "wrongContent") records.push(record(Buffer.from("tampered"), hash, Number(e.size)));
    else records.push(record(body, hash, Math.min(Number(e.size), 2 ** 53)));
  }
  if (op.blobs === "unasked") records.push(record(Buffer.from("extra"), sha256("extra")));
  let stream = Buffer.concat(records);
  if (op.blobs === "truncated") stream = stream.subarray(0, Math.max(0, stream.length - 3));
  if (op.blobs === "badBatch") await conn.sendData(Buffer.from([9, 1, 2, 3]));
  else if (op.blobs === "deflated")
    await conn.sendData(Buffer.concat([Buffer.from([BATCH_DEFLATE]), deflateRawSync(stream)]));
  else if (op.blobs === "split") {
    for (let i = 0; i < stream.length; i += 17)
      await conn.sendData(Buffer.concat([Buffer.from([BATCH_RAW]), stream.subarray(i, i + 17)]));
  } else if (stream.length) await conn.sendData(Buffer.concat([Buffer.from([BATCH_RAW]), stream]));
  if (op.blobs === "abort") await send(conn, { t: "abort", reason: "fuzz" });
  else await send(conn, { t: "blobs-end" });
  m = await next(conn, errors, "blobs");
  while (m.t === "ack") m = await next(conn, errors, "blobs (ack)");
  if (m.t !== "synced") throw new Violation(`expected synced, got ${m.t}`);
  if (m.digest !== digest) throw new Violation(`synced ${String(m.digest)}, sent ${String(digest)}`);
  synced.delete(`${String(op.user)}/${String(op.project)}`);
  synced.set(`${String(op.user)}/${String(op.project)}`, String(digest));
  ok.push("sync");
}

async function runOp(
  agent: FuzzAgent,
  conn: Connection,
  op: Op,
  errors: string[],
  synced: Synced,
  ok: string[],
) {
  if (op.op === "sync") return runSync(conn, op, errors, synced, ok);
  if (op.op === "status") {
    await send(conn, { t: "status" });
    const m = await next(conn, errors, "status");
    if (m.t !== "status") throw new Violation(`expected status, got ${m.t}`);
    ok.push("status");
    return;
  }
  if (op.op === "ping") {
    await send(conn, { t: "ping" });
    const m = await next(conn, errors, "ping");
    if (m.t !== "pong") throw new Violation(`expected pong, got ${m.t}`);
    ok.push("ping");
    return;
  }
  if (op.op === "message") {
    await send(conn, op.msg);
    // Anything but an operation is refused; the agent answers and closes.
    const m = await next(conn, errors, `message ${JSON.stringify(op.msg)?.slice(0, 60)}`);
    if (m.t === "pong" || m.t === "status") return; // it was a ping or a status after all
    throw new Violation(`unexpected answer ${m.t} to ${JSON.stringify(op.msg)?.slice(0, 60)}`);
  }
  if (op.op === "check") {
    await send(conn, {
      t: "check",
      user: op.user,
      project: op.project,
      ref: op.ref,
      manifest: "0".repeat(64),
      settings: op.settings,
    });
    const m = await next(conn, errors, "check");
    if (m.t !== "check") throw new Violation(`expected check, got ${m.t}`);
    ok.push("check");
    return;
  }
  const lastKey = [...synced.keys()].pop();
  const [user, project] = op.last && lastKey ? lastKey.split("/") : [op.user, op.project];
  const key = `${String(user)}/${String(project)}`;
  const manifest = op.manifest === "current" ? (synced.get(key) ?? "0".repeat(64)) : sha256("other");
  await send(conn, {
    t: "build",
    user,
    project,
    manifest,
    ref: op.ref,
    dockerfile: op.dockerfile,
    buildArgs: op.buildArgs,
    labels: op.labels,
    target: op.target,
    secrets: op.secrets,
  });
  const tree = path.join(agent.ctx.workspacesDir, String(user), String(project));
  for (;;) {
    const m = await next(conn, errors, "build");
    if (m.t === "log") {
      // The stand-in prints buildctl's arguments: the folders it would send stay in the workspace.
      const local = /^ARG (context|dockerfile)=(.*)$/.exec(String(m.line));
      if (local) {
        const rel = path.relative(tree, local[2] as string);
        if (rel.startsWith("..") || path.isAbsolute(rel))
          throw new Violation(`the build would send ${local[2]} (outside ${tree})`);
      }
      continue;
    }
    if (m.t === "built") {
      ok.push("build");
      return;
    }
    if (m.t !== "waiting" && m.t !== "queued" && m.t !== "phase")
      throw new Violation(`unexpected ${m.t} during a build`);
  }
}

/** Runs one script against the agent and checks everything the header promises. */
export async function runScript(agent: FuzzAgent, script: Script): Promise<Outcome> {
  const errors: string[] = [];
  const ok: string[] = [];
  const sock = net.connect(agent.socket);
  await new Promise<void>((resolve, reject) => {
    sock.once("connect", resolve);
    sock.once("error", reject);
  });
  sock.on("error", () => {});
  const conn = new Connection(sock);
  const synced = agent.synced;
  try {
    if (script.hello === "garbage") sock.write(Buffer.from([3, 0, 0, 0, 1, 0]));
    else if (script.hello !== "none")
      await send(conn, {
        t: "hello",
        protocol: script.hello === "ok" ? PROTOCOL_VERSION : PROTOCOL_VERSION + 7,
        client: "fuzz",
      });
    if (script.hello !== "none") {
      const m = await next(conn, errors, "hello");
      if (m.t !== "hello") throw new Violation(`expected hello, got ${m.t}`);
    }
    for (const op of script.ops) {
      if (script.keepalives) await send(conn, { t: "keepalive" });
      await runOp(agent, conn, op, errors, synced, ok);
    }
    for (const t of script.tail) sock.write(t);
    if (script.end === "bye") await send(conn, { t: "bye" });
    if (script.end === "destroy") sock.destroy();
    else sock.end();
  } catch (e) {
    if (!(e instanceof Closed)) {
      sock.destroy();
      throw e;
    }
  } finally {
    if (!sock.destroyed) sock.end();
  }
  await settle(agent);
  await checkFilesystem(agent);
  if (agent.thrown.length)
    throw new Violation(
      `thrown in the agent: ${String((agent.thrown[0] as Error)?.stack ?? agent.thrown[0])}`,
    );
  return { errors, ok };
}

/** Waits for every session to end (bounded: a session that never ends is a hang). */
async function settle(agent: FuzzAgent) {
  const deadline = Date.now() + STEP_MS;
  while (agent.active > 0) {
    if (Date.now() > deadline)
      throw new Violation(`${agent.active} sessions still running ${STEP_MS} ms after the client left`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

export async function checkFilesystem(agent: FuzzAgent) {
  const top = (await fs.readdir(agent.root)).sort();
  const expected = ["agent.sock", "bin", "data", "outside", "secrets"];
  if (JSON.stringify(top) !== JSON.stringify(expected))
    throw new Violation(`the temporary root holds ${top.join(", ")}`);
  const out = await fs.readdir(agent.outside);
  if (out.length !== 1 || (await fs.readFile(path.join(agent.outside, "marker"), "utf8")) !== "original\n")
    throw new Violation(`the sentinel folder changed: ${out.join(", ")}`);
  const left = await fs.readdir(agent.secretsDir);
  if (left.length) throw new Violation(`secrets folder not cleaned: ${left.join(", ")}`);
  // Every link in a workspace tree resolves (lexically) inside that tree.
  for (const user of await fs.readdir(agent.ctx.workspacesDir)) {
    for (const project of await fs.readdir(path.join(agent.ctx.workspacesDir, user))) {
      for (const slot of ["a", "b"]) {
        const tree = path.join(agent.ctx.workspacesDir, user, project, slot);
        await walkLinks(tree, tree);
      }
    }
  }
}

async function walkLinks(tree: string, dir: string) {
  let names: string[];
  try {
    names = await fs.readdir(dir);
  } catch {
    return;
  }
  for (const n of names) {
    const p = path.join(dir, n);
    const st = await fs.lstat(p);
    if (st.isSymbolicLink()) {
      const target = await fs.readlink(p);
      const resolved = path.resolve(path.dirname(p), target);
      const rel = path.relative(tree, resolved);
      if (path.isAbsolute(target) || rel === ".." || rel.startsWith("../"))
        throw new Violation(`link ${path.relative(tree, p)} -> ${target} leaves its tree`);
    } else if (st.isDirectory()) await walkLinks(tree, p);
  }
}

/** Tallies of a run, for the bench's report. */
export interface Tally {
  cases: number;
  errors: Record<string, number>;
  ok: Record<string, number>;
}

export function tally(into: Tally, o: Outcome) {
  into.cases++;
  for (const c of o.errors) into.errors[c] = (into.errors[c] ?? 0) + 1;
  for (const c of o.ok) into.ok[c] = (into.ok[c] ?? 0) + 1;
}

/** The property over whole sessions: `numRuns` scripts against one agent. */
export async function fuzzSessions(opts: { numRuns: number; seed: number; tally?: Tally }) {
  const agent = await startAgent();
  try {
    await fc.assert(
      fc.asyncProperty(scriptArb(agent.outside), async (script) => {
        const o = await runScript(agent, script);
        if (opts.tally) tally(opts.tally, o);
      }),
      { numRuns: opts.numRuns, seed: opts.seed, endOnFailure: true },
    );
  } finally {
    await agent.stop();
  }
}

export { startAgent } from "./agent.js";
