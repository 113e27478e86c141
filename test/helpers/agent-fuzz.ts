/**
 * Hostile input for the build-server agent, property-based (fast-check), shared by the unit
 * suite (a fixed number of cases with a fixed seed) and `npm run bench -- fuzz` (a longer
 * run). The agent is the real one (serveSession over a real unix socket, a real blob store
 * and real workspaces under a temporary data folder); the client side is scripted here and
 * sends what no honest CLI sends. Two stand-ins, because no real part exists without a
 * cluster: the registry is 127.0.0.1:1 (nothing listens there, so a lookup fails at once as
 * the real client sees an unreachable registry), and buildctl is a shell script that prints
 * its arguments and either fails or writes a digest as BuildKit's metadata file would.
 *
 * After every case: the agent answered each failed operation with an error the CLI shows
 * (a known code, a message) and closed, its session ended, nothing outside its data and
 * secrets folders changed (a sentinel folder next to them), every symlink in a workspace
 * tree stays inside it, no secret file was left behind, and nothing was thrown anywhere.
 */
import { createHash } from "node:crypto";
import { chmodSync, promises as fs } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { deflateRawSync } from "node:zlib";
import fc from "fast-check";
import { BlobStore } from "../../src/agent/blobs.js";
import { BuildQueue } from "../../src/agent/build.js";
import { RegistryClient } from "../../src/agent/registry.js";
import { type AgentContext, serveSession } from "../../src/agent/session.js";
import { WorkspaceLocks } from "../../src/agent/workspace.js";
import { Connection } from "../../src/protocol/connection.js";
import { BATCH_DEFLATE, BATCH_RAW, BLOB_HEADER, PROTOCOL_VERSION } from "../../src/protocol/constants.js";
import { encodeFrame, FRAME_JSON, type Frame } from "../../src/protocol/frames.js";
import { type Entry, manifestDigest } from "../../src/protocol/manifest.js";
import type { AgentMessage, ClientMessage, Message } from "../../src/protocol/messages.js";

const CODES = new Set(["input", "noSpace", "protocol", "internal", "build", "push", "registry", "busy"]);
const STEP_MS = 5000;

const sha256 = (b: Buffer | string) => createHash("sha256").update(b).digest("hex");

// ── The agent, in this process ───────────────────────────────────────────────────

export interface FuzzAgent {
  root: string;
  dataDir: string;
  secretsDir: string;
  outside: string;
  socket: string;
  ctx: AgentContext;
  /** Sessions still running. */
  active: number;
  /** The manifest each workspace holds after the syncs so far (syncs that failed switch nothing). */
  synced: Map<string, string>;
  /** What escaped: uncaught exceptions and unhandled rejections while it ran. */
  thrown: unknown[];
  stop(): Promise<void>;
}

const FAKE_BUILDCTL = `#!/bin/sh
# Stand-in for buildctl: prints its arguments; "fail" in a label makes it fail,
# otherwise it writes the metadata file BuildKit would.
meta=""
fail=""
prev=""
for a in "$@"; do
  echo "ARG $a"
  if [ "$prev" = "--metadata-file" ]; then meta="$a"; fi
  case "$a" in label:fail=*) fail=1 ;; esac
  prev="$a"
done
if [ -n "$fail" ]; then echo "#1 ERROR: stand-in failure"; exit 1; fi
printf '{"containerimage.digest":"sha256:%s"}' ${"0".repeat(64)} > "$meta"
`;

export async function startAgent(): Promise<FuzzAgent> {
  const root = await fs.mkdtemp(path.join(tmpdir(), "snapdeploy-fuzz-"));
  const dataDir = path.join(root, "data");
  const secretsDir = path.join(root, "secrets");
  const outside = path.join(root, "outside");
  const bin = path.join(root, "bin");
  await fs.mkdir(outside);
  await fs.mkdir(bin);
  await fs.mkdir(secretsDir);
  await fs.writeFile(path.join(outside, "marker"), "original\n");
  await fs.writeFile(path.join(bin, "buildctl"), FAKE_BUILDCTL);
  chmodSync(path.join(bin, "buildctl"), 0o755);
  const blobs = new BlobStore(path.join(dataDir, "blobs"));
  await blobs.init();
  const workspacesDir = path.join(dataDir, "workspaces");
  await fs.mkdir(workspacesDir, { recursive: true });
  const ctx: AgentContext = {
    version: "fuzz",
    dataDir,
    volumeName: "the fuzz data folder",
    blobs,
    locks: new WorkspaceLocks(),
    workspacesDir,
    builder: "buildkit",
    log: () => {},
    registry: new RegistryClient({ insecure: ["127.0.0.1:1", "localhost:1"], timeoutMs: 2000 }),
    buildkit: { buildctl: path.join(bin, "buildctl"), addr: "unix:///nonexistent" },
    builds: new BuildQueue(2),
    secretsDir,
  };
  const thrown: unknown[] = [];
  const onThrow = (e: unknown) => thrown.push(e);
  process.on("uncaughtException", onThrow);
  process.on("unhandledRejection", onThrow);
  const socket = path.join(root, "agent.sock");
  const agent: FuzzAgent = {
    root,
    dataDir,
    secretsDir,
    outside,
    socket,
    ctx,
    active: 0,
    synced: new Map(),
    thrown,
    async stop() {
      server.close();
      process.off("uncaughtException", onThrow);
      process.off("unhandledRejection", onThrow);
      await fs.rm(root, { recursive: true, force: true });
    },
  };
  const server = net.createServer((s) => {
    agent.active++;
    serveSession(new Connection<AgentMessage>(s), ctx).then(
      () => agent.active--,
      (e) => {
        agent.active--;
        thrown.push(e);
      },
    );
  });
  await new Promise<void>((resolve) => server.listen(socket, resolve));
  return agent;
}

// ── What the client sends ────────────────────────────────────────────────────────

/** Names of users and projects: mostly valid (so operations get further), some hostile. */
const name = fc.oneof(
  { weight: 6, arbitrary: fc.constantFrom("alice", "bob", "p", "web-1") },
  {
    weight: 2,
    arbitrary: fc.constantFrom(".", "..", "", "a/b", "../outside", "/etc", "a\0b", "A", "x".repeat(64), "-a"),
  },
  { weight: 1, arbitrary: fc.oneof(fc.string(), fc.integer(), fc.constant(null), fc.constant(undefined)) },
);

/** Path segments: ordinary names, and everything a path must not be made of. */
const segment = fc.oneof(
  { weight: 8, arbitrary: fc.constantFrom("a", "b", "src", "Dockerfile", "x.txt", "d", "lnk") },
  {
    weight: 2,
    arbitrary: fc.constantFrom(
      "..",
      ".",
      "",
      "\0",
      "a\nb",
      "a\rb",
      "n".repeat(256),
      "é".repeat(128),
      "%2e%2e",
      "~",
      "a\\..\\b",
    ),
  },
  { weight: 1, arbitrary: fc.string({ maxLength: 8 }) },
);

const relPath = fc.array(segment, { minLength: 1, maxLength: 4 }).map((s) => s.join("/"));
/** Absolute paths aim at the sentinel: a write there would be seen. */
const hostilePath = (outside: string) =>
  fc.oneof(
    { weight: 6, arbitrary: relPath },
    {
      weight: 1,
      arbitrary: fc.constantFrom(
        `${outside}/pwn`,
        "/tmp/pwn",
        "a/".repeat(1100),
        `${"../".repeat(6)}outside/pwn`,
      ),
    },
    { weight: 1, arbitrary: fc.oneof(fc.integer(), fc.constant(null), fc.string()) },
  );

/** Link targets: inside, above, absolute, through other links (chains), cycles. */
const linkTarget = (outside: string) =>
  fc.oneof(
    fc.constantFrom("a", "b", "d", "lnk", "d/lnk", ".", "x.txt", "Dockerfile"),
    fc.constantFrom("..", "../..", "d/..", "d/../..", "lnk/..", "lnk/../..", "d/lnk/../../.."),
    fc.constantFrom(outside, `${outside}/marker`, "/", "/etc/passwd", "a\0b", ""),
    fc.integer({ min: 1, max: 7 }).map((n) => `${"../".repeat(n)}outside`),
    fc.string({ maxLength: 12 }),
  );

const CONTENTS = ["", "hello\n", "FROM scratch\n", "x".repeat(3000)];
/** Contents for files; `hash`/`size` may lie about them. */
const content = fc.constantFrom(...CONTENTS);

type RawEntry = Record<string, unknown>;

const mode = fc.oneof(
  { weight: 6, arbitrary: fc.constantFrom(0o644, 0o755, 0o600, 0o555, 0o777) },
  {
    weight: 1,
    arbitrary: fc.oneof(
      fc.constantFrom(0o4755, 0o7777, -1, 0o10000, 1.5, Number.NaN),
      fc.integer(),
      fc.string({ maxLength: 3 }),
    ),
  },
);

const entry = (outside: string): fc.Arbitrary<RawEntry> =>
  fc.oneof(
    { weight: 3, arbitrary: fc.record({ path: hostilePath(outside), type: fc.constant("dir"), mode }) },
    {
      weight: 4,
      arbitrary: fc.record({
        path: hostilePath(outside),
        type: fc.constant("file"),
        mode,
        content,
        lie: fc.constantFrom("none", "none", "none", "hash", "size", "hugeSize", "negSize", "noHash"),
      }),
    },
    {
      weight: 3,
      arbitrary: fc.record({
        path: hostilePath(outside),
        type: fc.constant("symlink"),
        mode: fc.constant(0o777),
        target: linkTarget(outside),
      }),
    },
    {
      weight: 1,
      arbitrary: fc.record({
        path: hostilePath(outside),
        type: fc.oneof(fc.constantFrom("fifo", "hardlink", "device", ""), fc.integer()),
        mode,
      }),
    },
  );

/** Entries an honest scan could produce, but for link targets that may climb out through chains. */
const cleanSegment = fc.constantFrom("a", "b", "src", "Dockerfile", "x.txt", "d", "lnk");
const cleanPath = fc.array(cleanSegment, { minLength: 1, maxLength: 3 }).map((s) => s.join("/"));
const cleanEntry = (outside: string): fc.Arbitrary<RawEntry> =>
  fc.oneof(
    {
      weight: 2,
      arbitrary: fc.record({
        path: cleanPath,
        type: fc.constant("dir"),
        mode: fc.constantFrom(0o755, 0o555, 0o700),
      }),
    },
    {
      weight: 4,
      arbitrary: fc.record({
        path: cleanPath,
        type: fc.constant("file"),
        mode: fc.constantFrom(0o644, 0o755, 0o600, 0o4755),
        content,
        lie: fc.constant("none"),
      }),
    },
    {
      weight: 2,
      arbitrary: fc.record({
        path: cleanPath,
        type: fc.constant("symlink"),
        mode: fc.constant(0o777),
        target: fc.oneof(
          {
            weight: 3,
            arbitrary: fc.constantFrom(
              "a",
              "b",
              "d",
              "lnk",
              "d/lnk",
              "x.txt",
              "Dockerfile",
              "../a",
              "d/../b",
            ),
          },
          { weight: 1, arbitrary: linkTarget(outside) },
        ),
      }),
    },
  );

/** The manifest as sent: entries with sizes/hashes filled in (or lied about), usually sorted. */
function materialize(raw: RawEntry[], sorted: boolean, withParents: boolean): Record<string, unknown>[] {
  const out: Record<string, unknown>[] = [];
  const seen = new Set<string>();
  const add = (e: Record<string, unknown>) => {
    const key = String(e.path);
    if (seen.has(key)) return;
    seen.add(key);
    out.push(e);
  };
  for (const r of raw) {
    if (withParents && typeof r.path === "string") {
      const parts = r.path.split("/");
      for (let i = 1; i < parts.length; i++)
        add({ path: parts.slice(0, i).join("/"), type: "dir", mode: 0o755, size: 0 });
    }
    if (r.type === "file") {
      const c = String(r.content);
      const e: Record<string, unknown> = {
        path: r.path,
        type: "file",
        mode: r.mode,
        size: Buffer.byteLength(c),
        hash: sha256(c),
      };
      if (r.lie === "hash") e.hash = sha256(`${c}!`);
      if (r.lie === "size") e.size = Buffer.byteLength(c) + 1;
      if (r.lie === "hugeSize") e.size = 2 ** 53 - 1;
      if (r.lie === "negSize") e.size = -1;
      if (r.lie === "noHash") delete e.hash;
      add(e);
    } else if (r.type === "symlink") {
      add({ path: r.path, type: "symlink", mode: 0o777, size: String(r.target).length, target: r.target });
    } else add({ path: r.path, type: r.type, mode: r.mode, size: 0 });
  }
  if (sorted)
    out.sort((a, b) => (String(a.path) < String(b.path) ? -1 : String(a.path) > String(b.path) ? 1 : 0));
  return out;
}

/** How the manifest's bytes are sent. */
const manifestWire = fc.constantFrom(
  "ok",
  "ok",
  "ok",
  "ok",
  "truncated",
  "garbage",
  "notJson",
  "notList",
  "abort",
  "other",
);
/** How the blob stream is sent. */
const blobWire = fc.constantFrom(
  "ok",
  "ok",
  "ok",
  "ok",
  "deflated",
  "truncated",
  "unasked",
  "wrongContent",
  "badBatch",
  "abort",
  "missing",
  "split",
);

const ref = fc.oneof(
  { weight: 4, arbitrary: fc.constantFrom("127.0.0.1:1/team/app:snap-1", "localhost:1/app:snap-abc") },
  {
    weight: 2,
    arbitrary: fc.constantFrom(
      "app:latest",
      "127.0.0.1:1/UPPER:tag",
      "127.0.0.1:1/a/../b:t",
      "127.0.0.1:1/app:../x",
      "127.0.0.1:1/app:t\0",
      "127.0.0.1:1/app:t,push=false",
      "127.0.0.1:1/app:t name=x",
      "127.0.0.1:1//app:t",
      "",
      `127.0.0.1:1/app:${"t".repeat(200)}`,
    ),
  },
  { weight: 1, arbitrary: fc.oneof(fc.string(), fc.integer(), fc.constant(null)) },
);

const dockerfile = (outside: string) =>
  fc.oneof(
    { weight: 3, arbitrary: fc.constantFrom("Dockerfile", undefined) },
    fc.constantFrom("d/Dockerfile", "lnk", "d", "x.txt", "a/../Dockerfile"),
    fc.constantFrom(
      "../Dockerfile",
      "../../../../outside/marker",
      `${outside}/marker`,
      "/etc/passwd",
      "d/../../Dockerfile",
      "./Dockerfile",
      "Dockerfile\0",
      "",
    ),
    fc.oneof(fc.string({ maxLength: 10 }), fc.integer()),
  );

const secrets = fc.oneof(
  { weight: 3, arbitrary: fc.constant(undefined) },
  fc.array(
    fc.record({
      id: fc.oneof(
        fc.constantFrom("npmrc", "token", ".", "..", "../x", "a/b", "", "x".repeat(65), "a\0", ".hidden"),
        fc.string({ maxLength: 6 }),
        fc.integer(),
      ),
      data: fc.oneof(fc.base64String({ maxLength: 16 }), fc.string({ maxLength: 8 }), fc.integer()),
    }),
    { maxLength: 3 },
  ),
  fc.oneof(fc.string(), fc.integer(), fc.constant({ id: "x" })),
);

const stringMap = fc.oneof(
  { weight: 3, arbitrary: fc.constant(undefined) },
  fc.dictionary(fc.string({ maxLength: 6 }), fc.string({ maxLength: 6 }), { maxKeys: 3 }),
  fc.constant({ fail: "1" }),
  fc.oneof(fc.string(), fc.integer(), fc.constant([1, 2]), fc.constant({ a: { b: 1 } })),
);

export type Op =
  | {
      op: "sync";
      user: unknown;
      project: unknown;
      entries: RawEntry[];
      sorted: boolean;
      parents: boolean;
      digest: "right" | "wrong" | "missing";
      manifest: string;
      blobs: string;
    }
  | { op: "check"; user: unknown; project: unknown; ref: unknown; settings: unknown }
  | {
      op: "build";
      user: unknown;
      project: unknown;
      ref: unknown;
      dockerfile: unknown;
      secrets: unknown;
      buildArgs: unknown;
      labels: unknown;
      target: unknown;
      manifest: "current" | "other";
      last: boolean;
    }
  | { op: "status" }
  | { op: "ping" }
  | { op: "message"; msg: unknown };

const opArb = (outside: string): fc.Arbitrary<Op> =>
  fc.oneof(
    {
      weight: 5,
      arbitrary: fc.record({
        op: fc.constant("sync" as const),
        user: name,
        project: name,
        entries: fc.array(entry(outside), { maxLength: 8 }),
        sorted: fc.boolean(),
        parents: fc.boolean(),
        digest: fc.constantFrom(
          "right" as const,
          "right" as const,
          "right" as const,
          "wrong" as const,
          "missing" as const,
        ),
        manifest: manifestWire,
        blobs: blobWire,
      }),
    },
    {
      // Mostly well-formed: gets past validation to the blob store and the workspace trees.
      weight: 6,
      arbitrary: fc.record({
        op: fc.constant("sync" as const),
        user: fc.constantFrom("alice", "bob"),
        project: fc.constantFrom("p", "q"),
        entries: fc
          .tuple(fc.boolean(), fc.array(cleanEntry(outside), { maxLength: 10 }))
          .map(([df, es]) =>
            df
              ? [
                  { path: "Dockerfile", type: "file", mode: 0o644, content: "FROM scratch\n", lie: "none" },
                  ...es,
                ]
              : es,
          ),
        sorted: fc.constant(true),
        parents: fc.constant(true),
        digest: fc.constant("right" as const),
        manifest: fc.constantFrom("ok", "ok", "ok", "ok", "ok", "ok", "truncated", "abort"),
        blobs: fc.constantFrom(
          "ok",
          "ok",
          "ok",
          "ok",
          "deflated",
          "split",
          "truncated",
          "wrongContent",
          "missing",
        ),
      }),
    },
    {
      weight: 2,
      arbitrary: fc.record({
        op: fc.constant("check" as const),
        user: name,
        project: name,
        ref,
        settings: stringMap,
      }),
    },
    {
      weight: 4,
      arbitrary: fc.record({
        op: fc.constant("build" as const),
        user: fc.oneof(
          { weight: 3, arbitrary: fc.constantFrom("alice", "bob") },
          { weight: 1, arbitrary: name },
        ),
        project: fc.oneof(
          { weight: 3, arbitrary: fc.constantFrom("p", "q") },
          { weight: 1, arbitrary: name },
        ),
        ref,
        dockerfile: dockerfile(outside),
        secrets,
        buildArgs: stringMap,
        labels: stringMap,
        target: fc.oneof(fc.constant(undefined), fc.string({ maxLength: 6 }), fc.integer()),
        manifest: fc.constantFrom("current" as const, "current" as const, "other" as const),
        /** The workspace the script synced last, rather than user/project. */
        last: fc.boolean(),
      }),
    },
    {
      // Well-formed but for one thing at most: reaches the builder (the stand-in).
      weight: 4,
      arbitrary: fc.record({
        op: fc.constant("build" as const),
        user: fc.constant("alice"),
        project: fc.constant("p"),
        ref: fc.oneof(
          { weight: 4, arbitrary: fc.constant("127.0.0.1:1/team/app:snap-1") },
          { weight: 1, arbitrary: ref },
        ),
        dockerfile: fc.oneof(
          { weight: 4, arbitrary: fc.constantFrom("Dockerfile", undefined) },
          { weight: 1, arbitrary: dockerfile(outside) },
        ),
        secrets: fc.oneof(
          { weight: 2, arbitrary: fc.constant(undefined) },
          {
            weight: 2,
            arbitrary: fc.constant([
              { id: "npmrc", data: "dG9rZW4=" },
              { id: ".hidden", data: "" },
            ]),
          },
          { weight: 1, arbitrary: secrets },
        ),
        buildArgs: fc.oneof(
          { weight: 3, arbitrary: fc.constant(undefined) },
          { weight: 1, arbitrary: stringMap },
        ),
        labels: fc.oneof(
          { weight: 3, arbitrary: fc.constant(undefined) },
          { weight: 1, arbitrary: stringMap },
        ),
        target: fc.constant(undefined),
        manifest: fc.constant("current" as const),
        last: fc.constant(true),
      }),
    },
    { weight: 1, arbitrary: fc.constant({ op: "status" as const }) },
    { weight: 1, arbitrary: fc.constant({ op: "ping" as const }) },
    {
      weight: 2,
      arbitrary: fc.record({
        op: fc.constant("message" as const),
        msg: fc.oneof(
          fc.record({
            t: fc.constantFrom(
              "bogus",
              "manifest-end",
              "blobs-end",
              "abort",
              "hello",
              "need",
              "error",
              "__proto__",
              "constructor",
            ),
          }),
          fc.record({ t: fc.string({ maxLength: 8 }) }),
          fc.jsonValue({ maxDepth: 2 }),
        ),
      }),
    },
  );

export interface Script {
  hello: "ok" | "wrongVersion" | "none" | "garbage";
  ops: Op[];
  /** Bytes sent after the operations (random frames, partial headers), then the end. */
  tail: Uint8Array[];
  end: "bye" | "end" | "destroy";
  /** A keepalive before each operation (the agent answers it; no operation sees it). */
  keepalives: boolean;
}

export const scriptArb = (outside: string): fc.Arbitrary<Script> =>
  fc.record({
    hello: fc.constantFrom(
      "ok" as const,
      "ok" as const,
      "ok" as const,
      "ok" as const,
      "ok" as const,
      "wrongVersion" as const,
      "none" as const,
      "garbage" as const,
    ),
    ops: fc.array(opArb(outside), { minLength: 1, maxLength: 5 }),
    tail: fc.array(
      fc.oneof(
        fc.uint8Array({ maxLength: 40 }),
        fc.constant(new Uint8Array([1, 0xff, 0xff, 0xff, 0xff])),
        fc.constant(new Uint8Array([2, 0, 0, 0, 9, 1])),
        fc.constant(new Uint8Array([7, 0, 0, 0, 0])),
        fc.constant(new Uint8Array(encodeFrame(FRAME_JSON, Buffer.from('{"t":5}')))),
        fc.constant(new Uint8Array(encodeFrame(FRAME_JSON, Buffer.from("not json")))),
      ),
      { maxLength: 2 },
    ),
    end: fc.constantFrom("bye" as const, "end" as const, "destroy" as const),
    keepalives: fc.boolean(),
  });

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
