/**
 * One client connection to the agent: a hello, then one operation. Each operation
 * validates everything it receives; errors go back to the client as
 * { t: "error", code, message, hint } before the connection closes.
 */
import { randomBytes } from "node:crypto";
import { promises as fs } from "node:fs";
import path from "node:path";
import { createInflateRaw, inflateRawSync } from "node:zlib";
import { manifestDigest } from "../protocol/manifest.js";
import {
  ACK_EVERY,
  type AgentErrorCode,
  BATCH_DEFLATE,
  BATCH_RAW,
  BLOB_HEADER,
  MAX_BATCH,
  PROTOCOL_VERSION,
} from "../protocol/constants.js";
import { type Connection, FRAME_DATA, type Message, ProtocolError } from "../transport/framing.js";
import { BlobMismatch, type BlobStore, type BlobWriter } from "./blobs.js";
import { type BuildQueue, buildImage, pushImage, StepFailed } from "./build.js";
import { type RegistryClient, RegistryError } from "./registry.js";
import { InvalidInput, validateManifest, validateName } from "./validate.js";
import { Workspace, type WorkspaceLocks } from "./workspace.js";

export interface AgentContext {
  registry: RegistryClient;
  builds: BuildQueue;
  /** A memory-backed folder for BuildKit secret files, removed after each build. */
  secretsDir: string;
  version: string;
  dataDir: string;
  /** How users should name the volume in messages (e.g. "PVC snapdeploy/snapdeploy-data"). */
  volumeName: string;
  blobs: BlobStore;
  locks: WorkspaceLocks;
  workspacesDir: string;
  builder: string;
  log: (line: string) => void;
}

const MAX_MANIFEST_BYTES = 512 * 1024 * 1024;

export async function serveSession(conn: Connection, ctx: AgentContext): Promise<void> {
  try {
    const hello = await conn.expect("hello");
    if (hello.protocol !== PROTOCOL_VERSION) {
      throw new InvalidInput(
        `client speaks protocol ${String(hello.protocol)}, this build server speaks ${PROTOCOL_VERSION}; use matching versions of the CLI and the build server (snapdeploy server install)`,
      );
    }
    await conn.send({ t: "hello", protocol: PROTOCOL_VERSION, agent: ctx.version });
    // Operations run one after another until the client says bye.
    for (;;) {
      const op = await conn.expect();
      if (op.t === "bye") break;
      if (op.t === "sync") await sync(conn, ctx, op);
      else if (op.t === "check") await conn.send(await check(ctx, op));
      else if (op.t === "build") await build(conn, ctx, op);
      else if (op.t === "status") await conn.send(await status(ctx));
      else if (op.t === "ping") await conn.send({ t: "pong" });
      else throw new ProtocolError(`unknown operation "${op.t}"`);
    }
  } catch (e) {
    await reportError(conn, ctx, e);
  } finally {
    conn.close();
  }
}

async function sync(conn: Connection, ctx: AgentContext, op: Message) {
  const user = validateName("user", op.user);
  const project = validateName("project", op.project);
  const digest = String(op.digest ?? "");
  const ws = new Workspace(ctx.workspacesDir, user, project);
  const key = `${user}/${project}`;
  const release = await ctx.locks.acquire(
    key,
    `sync from ${String(op.client ?? "a client")}`,
    (holder, since) => {
      void conn.send({ t: "waiting", holder, since }).catch(() => {});
    },
  );
  try {
    const current = await ws.currentDigest();
    if (current === digest) {
      const info = await ws.info();
      await conn.send({
        t: "synced",
        noop: true,
        digest,
        added: 0,
        changed: 0,
        removed: 0,
        sample: [],
        files: info?.files,
      });
      return;
    }
    const t0 = Date.now();
    await conn.send({ t: "send-manifest", have: current ?? null });
    const entries = validateManifest(await receiveManifest(conn));
    const actual = manifestDigest(entries);
    if (actual !== digest)
      throw new InvalidInput(`manifest digest mismatch: announced ${digest}, received ${actual}`);

    const tManifest = Date.now();
    // What to send, as a bitmap over the manifest's files in order (the first file with
    // each missing content): 12 KB for 100k files, where hex hashes would be 6.6 MB.
    const files = entries.filter((e) => e.type === "file");
    const wanted = new Set<string>();
    const bitmap = Buffer.alloc(Math.ceil(files.length / 8));
    files.forEach((e, i) => {
      const h = e.hash as string;
      if (ctx.blobs.has(h) || wanted.has(h)) return;
      wanted.add(h);
      bitmap[i >> 3] = (bitmap[i >> 3] as number) | (1 << (i & 7));
    });
    const need = [...wanted];
    const sizes = new Map(files.map((e) => [e.hash as string, e.size]));
    await conn.send({ t: "need", count: need.length, files: bitmap.toString("base64") });
    let received = 0;
    if (need.length) received = await receiveBlobs(conn, ctx.blobs, new Set(need), sizes);
    const missing = need.filter((h) => !ctx.blobs.has(h));
    if (missing.length)
      throw new InvalidInput(`the client did not send ${missing.length} needed blobs (e.g. ${missing[0]})`);

    const tBlobs = Date.now();
    const changes = await ws.update(digest, entries, ctx.blobs);
    ctx.log(
      `sync ${key}: +${changes.added} ~${changes.changed} -${changes.removed}, ${need.length} blobs, ${received} bytes; ` +
        `manifest ${tManifest - t0} ms, blobs ${tBlobs - tManifest} ms, workspace ${Date.now() - tBlobs} ms`,
    );
    await conn.send({
      t: "synced",
      noop: false,
      digest,
      ...changes,
      blobs: need.length,
      files: entries.filter((e) => e.type === "file").length,
    });
  } finally {
    release();
  }
}

/** The manifest: compressed JSON in data frames, then { t: "manifest-end" }. */
async function receiveManifest(conn: Connection): Promise<unknown> {
  const inflate = createInflateRaw({ maxOutputLength: MAX_MANIFEST_BYTES });
  const out: Buffer[] = [];
  inflate.on("data", (d: Buffer) => out.push(d));
  const done = new Promise<void>((resolve, reject) => {
    inflate.on("end", resolve);
    inflate.on("error", reject);
  });
  for (;;) {
    const f = await conn.next();
    if (f.kind === FRAME_DATA) {
      inflate.write(f.data);
      continue;
    }
    if (f.msg.t === "manifest-end") break;
    if (f.msg.t === "abort") throw new ClientAbort(String(f.msg.reason ?? "client aborted"));
    throw new ProtocolError(`unexpected "${f.msg.t}" while receiving the manifest`);
  }
  inflate.end();
  try {
    await done;
    return JSON.parse(Buffer.concat(out).toString("utf8"));
  } catch (e) {
    throw new InvalidInput(`the manifest could not be read: ${(e as Error).message}`);
  }
}

class ClientAbort extends Error {}

/**
 * The blob stream: data frames, each a batch of records [sha256 (32 bytes)][size (u64
 * BE)][bytes] (a record may continue in the next frame) that is raw-deflated on its
 * own or stored (first byte BATCH_DEFLATE / BATCH_RAW), then { t: "blobs-end" }. Only
 * blobs this agent asked for are accepted, each verified before it enters the store.
 * A frame is inflated and stored before the next is read (see BlobWriter), and
 * consumed bytes are acknowledged so the sender keeps a bounded window.
 */
async function receiveBlobs(
  conn: Connection,
  store: BlobStore,
  wanted: Set<string>,
  sizes: Map<string, number>,
): Promise<number> {
  let header: Buffer = Buffer.alloc(0);
  let current: BlobWriter | undefined;
  let consumed = 0;
  let acked = 0;
  let raw = 0;

  const handle = (batch: Buffer) => {
    raw += batch.length;
    let buf = batch;
    while (buf.length) {
      if (!current) {
        const take = Math.min(BLOB_HEADER - header.length, buf.length);
        header = header.length ? Buffer.concat([header, buf.subarray(0, take)]) : buf.subarray(0, take);
        buf = buf.subarray(take);
        if (header.length < BLOB_HEADER) break;
        const hash = header.subarray(0, 32).toString("hex");
        const size = Number(header.readBigUInt64BE(32));
        header = Buffer.alloc(0);
        if (!wanted.has(hash)) throw new InvalidInput(`received blob ${hash} that was not asked for`);
        if (sizes.get(hash) !== size)
          throw new InvalidInput(`blob ${hash} has size ${size}, the manifest says ${sizes.get(hash)}`);
        wanted.delete(hash);
        current = store.receive(hash, size);
      }
      const take = Math.min(current.remaining, buf.length);
      if (take) current.write(buf.subarray(0, take));
      buf = buf.subarray(take);
      if (current.remaining === 0) {
        const done = current;
        current = undefined;
        done.finish();
      }
    }
  };

  try {
    for (;;) {
      const f = await conn.next();
      if (f.kind === FRAME_DATA) {
        handle(unpackBatch(f.data));
        consumed += f.data.length;
        if (consumed - acked >= ACK_EVERY) {
          acked = consumed;
          await conn.send({ t: "ack", bytes: consumed });
        }
        continue;
      }
      if (f.msg.t === "blobs-end") break;
      if (f.msg.t === "abort") throw new ClientAbort(String(f.msg.reason ?? "client aborted"));
      throw new ProtocolError(`unexpected "${f.msg.t}" while receiving blobs`);
    }
    if (current || header.length)
      throw new BlobMismatch(`the blob stream ended inside blob ${current?.hash ?? "(header)"}`);
    return raw;
  } catch (e) {
    current?.abort();
    throw e;
  }
}

/** The records a blob-stream frame holds; InvalidInput for a bad flag or an oversized batch. */
function unpackBatch(frame: Buffer): Buffer {
  const body = frame.subarray(1);
  if (frame[0] === BATCH_RAW) {
    if (body.length > MAX_BATCH)
      throw new InvalidInput(`a blob batch of ${body.length} bytes exceeds ${MAX_BATCH}`);
    return body;
  }
  if (frame[0] !== BATCH_DEFLATE) throw new InvalidInput(`unknown blob batch encoding ${frame[0]}`);
  try {
    return inflateRawSync(body, { maxOutputLength: MAX_BATCH });
  } catch (e) {
    throw new InvalidInput(`a blob batch could not be inflated: ${(e as Error).message}`);
  }
}

/**
 * Does the registry already have this snapshot's tag? If not, says why the cache
 * missed when the workspace's last build explains it (same files, other settings).
 */
async function check(ctx: AgentContext, op: Message): Promise<Message> {
  const ref = String(op.ref);
  const found = await ctx.registry.lookup(ref);
  if (found) return { t: "check", exists: true, digest: found.digest, labels: found.labels };
  const user = validateName("user", op.user);
  const project = validateName("project", op.project);
  const last = (await new Workspace(ctx.workspacesDir, user, project).info())?.lastBuild;
  let reason: string | undefined;
  if (!last) reason = "first build in this workspace";
  else if (last.manifest === op.manifest) {
    const now = (op.settings ?? {}) as Record<string, unknown>;
    const changed = Object.keys({ ...now, ...last.settings }).filter(
      (k) => JSON.stringify(now[k]) !== JSON.stringify(last.settings[k]),
    );
    reason = changed.length
      ? `same files, but ${changed.join(", ")} changed`
      : "same files and settings, but the tag is gone from the registry";
  }
  return { t: "check", exists: false, reason, lastRef: last?.ref };
}

/** Builds the workspace's current tree and pushes it; streams the output as { t: "log" }. */
async function build(conn: Connection, ctx: AgentContext, op: Message) {
  const user = validateName("user", op.user);
  const project = validateName("project", op.project);
  const ws = new Workspace(ctx.workspacesDir, user, project);
  const ref = String(op.ref);
  const dockerfile = String(op.dockerfile ?? "Dockerfile");
  const abort = new AbortController();
  const onGone = () => abort.abort();
  conn.stream.once("close", onGone);
  const release = await ctx.locks.acquire(`${user}/${project}`, `build by ${user}`, (holder, since) => {
    void conn.send({ t: "waiting", holder, since }).catch(() => {});
  });
  let secrets: string | undefined;
  let leaveQueue: (() => void) | undefined;
  try {
    const current = await ws.currentManifest();
    const tree = await ws.currentTree();
    if (!current || !tree || current.digest !== op.manifest) {
      throw new InvalidInput(
        "the workspace changed since this snapshot was synced (another sync ran); run the command again",
      );
    }
    const inTree = path.posix.normalize(dockerfile);
    if (
      inTree.startsWith("../") ||
      inTree.startsWith("/") ||
      !current.entries.some((e) => e.path === inTree && e.type === "file")
    ) {
      throw new InvalidInput(
        `Dockerfile ${dockerfile} is not a file in the synced tree (is it excluded by .dockerignore?)`,
      );
    }
    leaveQueue = await ctx.builds.acquire((position) => {
      void conn.send({ t: "queued", position }).catch(() => {});
    });
    if (abort.signal.aborted) return;
    secrets = path.join(ctx.secretsDir, randomBytes(8).toString("hex"));
    await fs.mkdir(secrets, { recursive: true, mode: 0o700 });
    const secretFiles: Record<string, string> = {};
    for (const s of (op.secrets ?? []) as { id: string; data: string }[]) {
      if (!/^[A-Za-z0-9._-]{1,64}$/.test(String(s.id)))
        throw new InvalidInput(`invalid secret id ${JSON.stringify(s.id)}`);
      const file = path.join(secrets, s.id);
      await fs.writeFile(file, Buffer.from(String(s.data), "base64"), { mode: 0o600 });
      secretFiles[s.id] = file;
    }
    const send = (line: string) => void conn.send({ t: "log", line }).catch(() => {});
    const t0 = Date.now();
    await conn.send({ t: "phase", phase: "build" });
    await buildImage(
      {
        contextDir: ws.buildContext,
        dockerfile: path.join(ws.buildContext, inTree),
        ref,
        buildArgs: (op.buildArgs ?? {}) as Record<string, string>,
        labels: (op.labels ?? {}) as Record<string, string>,
        target: op.target ? String(op.target) : undefined,
        platform: op.platform ? String(op.platform) : undefined,
        secrets: secretFiles,
      },
      send,
      abort.signal,
    );
    const t1 = Date.now();
    await conn.send({ t: "phase", phase: "push" });
    const digest = await pushImage(ref, send, abort.signal);
    const t2 = Date.now();
    await ws.recordBuild({
      ref,
      digest,
      manifest: current.digest,
      settings: (op.settings ?? {}) as Record<string, unknown>,
      time: new Date().toISOString(),
    });
    ctx.log(`build ${user}/${project}: ${ref}@${digest} (build ${t1 - t0} ms, push ${t2 - t1} ms)`);
    await conn.send({ t: "built", ref, digest, buildMs: t1 - t0, pushMs: t2 - t1 });
  } finally {
    conn.stream.off("close", onGone);
    if (secrets) await fs.rm(secrets, { recursive: true, force: true });
    leaveQueue?.();
    release();
  }
}

async function status(ctx: AgentContext): Promise<Message> {
  const disk = await fs.statfs(ctx.dataDir);
  const workspaces = [];
  for (const user of await fs.readdir(ctx.workspacesDir).catch(() => [] as string[])) {
    for (const project of await fs.readdir(`${ctx.workspacesDir}/${user}`).catch(() => [] as string[])) {
      const info = await new Workspace(ctx.workspacesDir, user, project).info();
      if (info) workspaces.push(info);
    }
  }
  return {
    t: "status",
    agent: ctx.version,
    builder: ctx.builder,
    disk: { total: disk.blocks * disk.bsize, free: disk.bavail * disk.bsize },
    blobs: ctx.blobs.count,
    workspaces,
  };
}

async function reportError(conn: Connection, ctx: AgentContext, e: unknown) {
  const err = e as NodeJS.ErrnoException;
  let code: AgentErrorCode = "internal";
  let message = err?.message ?? String(e);
  let hint: string | undefined;
  let extra: Record<string, unknown> = {};
  if (e instanceof InvalidInput || e instanceof BlobMismatch) code = "input";
  else if (e instanceof StepFailed) {
    code = e.phase;
    extra = { step: e.step, tail: e.tail, kind: e.kind };
  } else if (e instanceof RegistryError) {
    code = "registry";
    extra = { kind: e.kind };
  } else if (e instanceof ProtocolError) code = "protocol";
  else if (e instanceof ClientAbort) {
    ctx.log(`client aborted: ${message}`);
    return;
  } else if (err?.code === "ENOSPC") {
    code = "noSpace";
    const disk = await fs.statfs(ctx.dataDir).catch(() => undefined);
    const gib = (n: number) => `${(n / 2 ** 30).toFixed(2)} GiB`;
    message = `the build server's volume ${ctx.volumeName} (mounted at ${ctx.dataDir}) is full${
      disk ? `: ${gib(disk.bavail * disk.bsize)} free of ${gib(disk.blocks * disk.bsize)}` : ""
    }`;
    hint =
      "grow it (snapdeploy server install --size <bigger>, where the storage class allows expansion) or free space: see the workspaces and their sizes with snapdeploy server status, and delete old ones under /data/workspaces on the build server";
  }
  if (code === "internal" || code === "protocol") ctx.log(`error: ${err?.stack ?? message}`);
  await conn.send({ t: "error", code, message, hint, ...extra }).catch(() => {});
}
