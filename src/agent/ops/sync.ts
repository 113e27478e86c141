/**
 * The sync operation: brings the workspace user/project to the announced manifest,
 * asking only for the manifest when the workspace holds another one and only for the
 * blobs the store lacks. A client that knows what it sent last sends the diff (and its
 * blobs) inline, without being asked: one round trip for a small change.
 */
import { createHash } from "node:crypto";
import { createInflateRaw } from "node:zlib";
import { FRAME_DATA, ProtocolError } from "../../protocol/frames.js";
import { INLINE_BLOBS_MAX, MAX_BATCH } from "../../protocol/constants.js";
import { type Entry, manifestText } from "../../protocol/manifest.js";
import type { Message } from "../../protocol/messages.js";
import { receiveBlobs } from "../blob-stream.js";
import { patchedText } from "../manifest-text.js";
import type { AgentConnection, AgentContext } from "../context.js";
import { ClientAbort, InvalidInput } from "../errors.js";
import { validateDigest, validateName } from "../validate.js";
import { validateManifest, validatePatched } from "../validate-manifest.js";
import { Workspace } from "../workspace.js";

const MAX_MANIFEST_BYTES = 512 * 1024 * 1024;

export async function sync(conn: AgentConnection, ctx: AgentContext, op: Message) {
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
  // Shared use of the blob store until the tree is in place (see StoreGate).
  const leaveStore = await ctx.store.enter();
  try {
    const current = await ws.currentDigest();
    const t0 = Date.now();
    let m: Patched | undefined;
    let sent = "";
    let inline = { blobs: 0, bytes: 0 };
    if (op.base !== undefined) {
      // Inline: the diff (and maybe its blobs) is on its way already; it is read whatever
      // the workspace holds, and used when the workspace holds its base.
      const base = validateDigest("base", op.base);
      const { raw, base: ended } = await receiveManifest(conn);
      if (ended !== base) throw new ProtocolError("the inline manifest-end names another base than the sync");
      if (current === base) {
        m = withDigest(await patched(ws, current, base, raw), digest);
        sent = `inline diff: ${diffCounts(raw)}`;
      }
      if (op.blobs === true) inline = await receiveInlineBlobs(conn, ctx, raw, m?.entries);
    }
    if (current === digest) {
      await ws.touch();
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
    if (!m) {
      await conn.send({ t: "send-manifest", have: current ?? null, diff: current !== undefined });
      const { raw, base } = await receiveManifest(conn);
      m = withDigest(
        base === undefined ? whole(validateManifest(raw)) : await patched(ws, current, base, raw),
        digest,
      );
      sent = base === undefined ? "whole" : `diff: ${diffCounts(raw)}`;
    }

    const { entries, text } = m;
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
    const changes = await ws.update(digest, entries, ctx.blobs, text);
    ctx.log(
      `sync ${key}: +${changes.added} ~${changes.changed} -${changes.removed}, ${need.length + inline.blobs} blobs, ${received + inline.bytes} bytes` +
        `${inline.blobs ? ` (${inline.blobs} inline)` : ""}; ` +
        `manifest (${sent}) ${tManifest - t0} ms, blobs ${tBlobs - tManifest} ms, workspace ${Date.now() - tBlobs} ms`,
    );
    await conn.send({
      t: "synced",
      noop: false,
      digest,
      ...changes,
      blobs: need.length + inline.blobs,
      files: entries.filter((e) => e.type === "file").length,
    });
  } finally {
    leaveStore();
    release();
  }
}

const diffCounts = (d: unknown) => {
  const { remove, put } = d as { remove: unknown[]; put: unknown[] };
  return `${remove.length} removed, ${put.length} put`;
};

/** A validated manifest and its canonical text. */
interface Patched {
  entries: Entry[];
  text: string;
}

const whole = (entries: Entry[]): Patched => ({ entries, text: manifestText(entries) });

/** The validated manifest, whose digest must be the one the sync announced. */
function withDigest(m: Patched, digest: string): Patched {
  const actual = createHash("sha256").update(m.text).digest("hex");
  if (actual !== digest)
    throw new InvalidInput(`manifest digest mismatch: announced ${digest}, received ${actual}`);
  return m;
}

/**
 * The blob stream a sync sent inline after its diff: the contents of the diff's files. Taken
 * into the store when the diff applied (`entries`, validated, says each blob's size); else
 * read and dropped, since the manifest will be asked for anew. Either way at most
 * INLINE_BLOBS_MAX bytes.
 */
async function receiveInlineBlobs(
  conn: AgentConnection,
  ctx: AgentContext,
  diff: unknown,
  entries: Entry[] | undefined,
): Promise<{ blobs: number; bytes: number }> {
  if (!entries) {
    let bytes = 0;
    for (;;) {
      const f = await conn.next();
      if (f.kind === FRAME_DATA) {
        bytes += f.data.length;
        if (bytes > INLINE_BLOBS_MAX + MAX_BATCH)
          throw new InvalidInput(`inline blobs exceed ${INLINE_BLOBS_MAX} bytes`);
        continue;
      }
      if (f.msg.t === "blobs-end") return { blobs: 0, bytes: 0 };
      if (f.msg.t === "abort") throw new ClientAbort(String(f.msg.reason ?? "client aborted"));
      throw new ProtocolError(`unexpected "${f.msg.t}" while receiving inline blobs`);
    }
  }
  const sizes = new Map(entries.filter((e) => e.type === "file").map((e) => [e.hash as string, e.size]));
  // The diff applied, so its entries are the validated manifest's.
  const put = (diff as { put: Entry[] }).put.filter((e) => e.type === "file");
  const wanted = new Set(put.map((e) => e.hash as string));
  let total = 0;
  for (const h of wanted) total += sizes.get(h) ?? 0;
  if (total > INLINE_BLOBS_MAX)
    throw new InvalidInput(`inline blobs of ${total} bytes exceed ${INLINE_BLOBS_MAX}`);
  const count = wanted.size;
  const bytes = await receiveBlobs(conn, ctx.blobs, wanted, sizes);
  // The decoder takes each blob out of `wanted` as it arrives.
  return { blobs: count - wanted.size, bytes };
}

/**
 * The whole manifest, validated, from a diff against the current tree's (which the agent
 * offered, or the client named inline).
 */
async function patched(
  ws: Workspace,
  current: string | undefined,
  base: string,
  diff: unknown,
): Promise<Patched> {
  if (current === undefined || base !== current)
    throw new InvalidInput(`a manifest diff against ${base}, which this workspace does not hold`);
  const held = await ws.currentManifest();
  if (held?.digest !== current)
    throw new InvalidInput(`a manifest diff against ${base}, which this workspace does not hold`);
  const entries = validatePatched(held.entries, diff);
  return { entries, text: patchedText(held.entries, held.text, entries) };
}

/**
 * The manifest (or a diff, then `base` names what it applies to): compressed JSON in data
 * frames, then { t: "manifest-end" }.
 */
async function receiveManifest(conn: AgentConnection): Promise<{ raw: unknown; base?: string }> {
  const inflate = createInflateRaw({ maxOutputLength: MAX_MANIFEST_BYTES });
  const out: Buffer[] = [];
  let base: string | undefined;
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
    if (f.msg.t === "manifest-end") {
      if (f.msg.base !== undefined) base = String(f.msg.base);
      break;
    }
    if (f.msg.t === "abort") throw new ClientAbort(String(f.msg.reason ?? "client aborted"));
    throw new ProtocolError(`unexpected "${f.msg.t}" while receiving the manifest`);
  }
  inflate.end();
  try {
    await done;
    return { raw: JSON.parse(Buffer.concat(out).toString("utf8")), base };
  } catch (e) {
    throw new InvalidInput(`the manifest could not be read: ${(e as Error).message}`);
  }
}
