/**
 * The client side of a sync: tell the agent which snapshot we want, send the
 * manifest only if its workspace holds something else (or, when it most likely holds
 * what this machine sent last, the diff and the changed contents at once), then send
 * only the blobs it lacks (blob-sender.ts).
 */
import { createDeflateRaw } from "node:zlib";
import { type Entry, type ManifestDiff, manifestText } from "../protocol/manifest.js";
import { collectGarbage } from "../util/memory.js";
import { DATA_CHUNK, INLINE_BLOBS_MAX } from "../protocol/constants.js";
import type { Connection } from "../protocol/connection.js";
import { ProtocolError } from "../protocol/frames.js";
import type { Message } from "../protocol/messages.js";
import { sendBlobStream, sendBlobs, sentFileError, type SyncProgress } from "./blob-sender.js";
import { diffFromKept, keepManifest, keptDigest, lastManifestFile } from "./last-manifest.js";

export type { SyncProgress } from "./blob-sender.js";

export interface SyncRequest {
  root: string;
  user: string;
  project: string;
  /** manifestDigest of the entries. */
  digest: string;
  /** The manifest, called only when the build server does not hold that snapshot already. */
  entries: () => Promise<Entry[]>;
  /** The entries' canonical lines (protocol/manifest.ts); default: made from entries(). */
  text?: () => Promise<string>;
  client: string;
  /** The agent takes the manifest diff and blobs inline (its hello said inlineSync). */
  inline?: boolean;
  /** The build server's data volume id: part of the key of what was sent last. */
  volume?: string;
  /** Whether blob batches may be deflated (packing.ts); default "auto". */
  packing?: "auto" | "never";
  /**
   * Where the manifest last sent to this workspace is kept (last-manifest.ts), for sending
   * only a diff next time; default: in the local cache; false: neither kept nor used.
   */
  kept?: string | false;
}

export interface SyncResult {
  noop: boolean;
  digest: string;
  added: number;
  changed: number;
  removed: number;
  sample: string[];
  files: number;
  blobs: number;
  /** Uncompressed bytes of the blobs sent. */
  blobBytes: number;
  /** Bytes on the wire after compression (manifest + blobs). */
  sentBytes: number;
}

export interface SyncHooks {
  onWaiting?: (holder: string) => void;
  onProgress?: (p: SyncProgress) => void;
  /**
   * Called once the request has been sent (with a kept manifest, its diff and contents too),
   * before the first wait for the build server's answer: CPU work of the caller's fits there.
   */
  onSent?: () => void;
}

export async function syncTree(
  conn: Connection,
  req: SyncRequest,
  hooks: SyncHooks = {},
): Promise<SyncResult> {
  const kept = req.kept ?? lastManifestFile(req.root, req.user, req.project, req.volume);
  const request = {
    t: "sync" as const,
    user: req.user,
    project: req.project,
    digest: req.digest,
    client: req.client,
  };
  let sent = 0;
  let inline: { blobBytes: number; wire: number; files: number } | undefined;
  /** The inline blobs, whose mismatch the agent reports with its next message. */
  let inlineFiles: Entry[] = [];
  let entries: Entry[] | undefined;
  // The manifest this machine sent last is most likely what the workspace holds: then the
  // diff against it, and the contents it names, go at once, without waiting to be asked.
  const base = req.inline && kept ? keptDigest(kept) : undefined;
  let text: string | undefined;
  if (base && base !== req.digest) {
    entries = await req.entries();
    text = await req.text?.();
  }
  const diff = base && entries ? diffFromKept(kept as string, base, entries, text) : undefined;
  if (base && diff && entries && diff.put.length + diff.remove.length < entries.length) {
    const files = distinctFiles(diff.put);
    const blobs = files.reduce((n, e) => n + e.size, 0) <= INLINE_BLOBS_MAX;
    await conn.send({ ...request, base, blobs });
    sent = await sendJson(conn, diffText(diff));
    await conn.send({ t: "manifest-end", base });
    if (blobs) {
      inlineFiles = files;
      const r = await sendBlobStream(conn, req.root, files, req.packing ?? "auto", hooks.onProgress);
      inline = { ...r, files: files.length };
      sent += r.wire;
    }
    if (kept) keepManifest(kept, req.digest, entries, text);
  } else {
    await conn.send(request);
  }
  hooks.onSent?.();

  let offer: Message;
  for (;;) {
    const m = await conn.expect().catch((e: unknown) => {
      throw sentFileError(e, inlineFiles);
    });
    if (m.t === "waiting") hooks.onWaiting?.(String(m.holder));
    else if (m.t === "ack")
      continue; // of the inline blobs: they fit the send window
    else if (m.t === "synced") return result(m, inline?.files ?? 0, inline?.blobBytes ?? 0, sent);
    else if (m.t === "need") return await sendNeeded(conn, req, m, entries as Entry[], sent, inline, hooks);
    else if (m.t === "send-manifest") {
      offer = m;
      break;
    } else throw new ProtocolError(`unexpected "${m.t}" from the build server`);
  }

  // The workspace holds neither the snapshot nor what this machine sent last.
  entries ??= await req.entries();
  text ??= (await req.text?.()) ?? manifestText(entries);
  // The agent holds another manifest and takes a diff against it: when it is the one this
  // machine sent last, only what changed since goes over the wire.
  const have = typeof offer.have === "string" && offer.diff === true ? offer.have : undefined;
  const offered = kept && have ? diffFromKept(kept, have, entries, text) : undefined;
  if (offered && offered.put.length + offered.remove.length < entries.length) {
    sent += await sendJson(conn, diffText(offered));
    await conn.send({ t: "manifest-end", base: have });
  } else {
    sent += await sendJson(conn, arrayText(entries));
    await conn.send({ t: "manifest-end" });
  }
  collectGarbage(entries.length);
  // Kept while the agent works on the manifest; what it holds is known by its digest, so a
  // sync that fails after this leaves nothing wrong behind.
  if (kept) keepManifest(kept, req.digest, entries, text);
  return await sendNeeded(conn, req, await conn.expect("need"), entries, sent, inline, hooks);
}

/** After the agent's need: the blobs it still lacks, then its synced. */
async function sendNeeded(
  conn: Connection,
  req: SyncRequest,
  need: Message,
  entries: Entry[],
  sent: number,
  inline: { blobBytes: number; wire: number; files: number } | undefined,
  hooks: { onProgress?: (p: SyncProgress) => void },
): Promise<SyncResult> {
  const early = { files: inline?.files ?? 0, bytes: inline?.blobBytes ?? 0 };
  const files = neededFiles(need, entries);
  if (files.length === 0) return result(await conn.expect("synced"), early.files, early.bytes, sent);
  const { blobBytes, wire, final } = await sendBlobs(
    conn,
    req.root,
    files,
    req.packing ?? "auto",
    hooks.onProgress,
  );
  return result(final, early.files + files.length, early.bytes + blobBytes, sent + wire);
}

/** The files of `entries`, each content once. */
function distinctFiles(entries: readonly Entry[]): Entry[] {
  const seen = new Set<string>();
  return entries.filter((e) => {
    if (e.type !== "file" || seen.has(e.hash as string)) return false;
    seen.add(e.hash as string);
    return true;
  });
}

/** The files whose content the agent lacks: its bitmap over the manifest's files, in order. */
function neededFiles(m: Message, entries: Entry[]): Entry[] {
  const bitmap = Buffer.from(String(m.files ?? ""), "base64");
  const out: Entry[] = [];
  let i = 0;
  for (const e of entries) {
    if (e.type !== "file") continue;
    if (((bitmap[i >> 3] ?? 0) >> (i & 7)) & 1) out.push(e);
    i++;
  }
  if (bitmap.length !== Math.ceil(i / 8) || out.length !== Number(m.count))
    throw new ProtocolError("malformed list of needed files");
  return out;
}

function result(m: Message, blobs: number, blobBytes: number, sentBytes: number): SyncResult {
  return {
    noop: Boolean(m.noop),
    digest: String(m.digest),
    added: Number(m.added ?? 0),
    changed: Number(m.changed ?? 0),
    removed: Number(m.removed ?? 0),
    sample: (m.sample as string[]) ?? [],
    files: Number(m.files ?? 0),
    blobs,
    blobBytes,
    sentBytes,
  };
}

/** The JSON text of `entries` a slice at a time: for 100k entries the whole text would be 15 MB held twice. */
function* arrayText(entries: readonly unknown[]): Generator<string> {
  const SLICE = 2000;
  for (let i = 0; i < entries.length || i === 0; i += SLICE) {
    const body = entries
      .slice(i, i + SLICE)
      .map((e) => JSON.stringify(e))
      .join(",");
    yield `${i === 0 ? "[" : ","}${body}${i + SLICE >= entries.length ? "]" : ""}`;
  }
}

function* diffText(diff: ManifestDiff): Generator<string> {
  yield '{"remove":';
  yield* arrayText(diff.remove);
  yield ',"put":';
  yield* arrayText(diff.put);
  yield "}";
}

/**
 * The manifest (or its diff) as one raw-deflate stream of its JSON over data frames.
 * Returns the bytes sent.
 */
async function sendJson(conn: Connection, text: Iterable<string>): Promise<number> {
  const z = createDeflateRaw({ level: 1, chunkSize: DATA_CHUNK });
  let sent = 0;
  const pump = (async () => {
    for await (const chunk of z) {
      await conn.sendData(chunk as Buffer);
      sent += (chunk as Buffer).length;
    }
  })();
  pump.catch(() => {});
  for (const part of text) {
    if (!z.write(part)) await Promise.race([new Promise((r) => z.once("drain", r)), pump]);
  }
  z.end();
  await pump;
  return sent;
}
