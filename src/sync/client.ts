/**
 * The client side of a sync: tell the agent which snapshot we want, send the
 * manifest only if its workspace holds something else, then send only the blobs it
 * lacks, compressed, within a bounded window of unacknowledged bytes (so a 1 GB file
 * never sits in memory on either side).
 */
import { createHash } from "node:crypto";
import { createReadStream, promises as fs } from "node:fs";
import path from "node:path";
import { createDeflateRaw } from "node:zlib";
import { UserError } from "../cli/errors.js";
import type { Entry } from "../context/scan.js";
import { BLOB_HEADER, DATA_CHUNK, SEND_WINDOW } from "../protocol/constants.js";
import {
  type Connection,
  FRAME_DATA,
  type Message,
  ProtocolError,
  remoteError,
} from "../transport/framing.js";

export interface SyncRequest {
  root: string;
  user: string;
  project: string;
  digest: string;
  entries: Entry[];
  client: string;
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

const SMALL = 1024 * 1024;
const PREFETCH = 16;

export async function syncTree(
  conn: Connection,
  req: SyncRequest,
  hooks: { onWaiting?: (holder: string) => void } = {},
): Promise<SyncResult> {
  await conn.send({
    t: "sync",
    user: req.user,
    project: req.project,
    digest: req.digest,
    client: req.client,
  });
  for (;;) {
    const m = await conn.expect();
    if (m.t === "waiting") {
      hooks.onWaiting?.(String(m.holder));
      continue;
    }
    if (m.t === "synced") return result(m, 0, 0, 0);
    if (m.t === "send-manifest") break;
    throw new ProtocolError(`unexpected "${m.t}" from the build server`);
  }

  let sent = 0;
  const manifest = await deflate(Buffer.from(JSON.stringify(req.entries)));
  for (let i = 0; i < manifest.length; i += DATA_CHUNK) {
    const part = manifest.subarray(i, i + DATA_CHUNK);
    await conn.sendData(part);
    sent += part.length;
  }
  await conn.send({ t: "manifest-end" });
  const need = (await conn.expect("need")).hashes as string[];
  if (!Array.isArray(need)) throw new ProtocolError("malformed need list");
  if (need.length === 0) return result(await conn.expect("synced"), 0, 0, sent);

  const byHash = new Map<string, Entry>();
  for (const e of req.entries) if (e.type === "file" && e.hash && !byHash.has(e.hash)) byHash.set(e.hash, e);
  const files = need.map((h) => {
    const e = byHash.get(h);
    if (!e) throw new ProtocolError(`the build server asked for unknown blob ${h}`);
    return e;
  });
  const { blobBytes, wire, final } = await sendBlobs(conn, req.root, files);
  return result(final, files.length, blobBytes, sent + wire);
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

function deflate(buf: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const out: Buffer[] = [];
    const z = createDeflateRaw({ level: 1 });
    z.on("data", (d: Buffer) => out.push(d));
    z.on("end", () => resolve(Buffer.concat(out)));
    z.on("error", reject);
    z.end(buf);
  });
}

function changedDuringSync(p: string): UserError {
  return new UserError("input", `${p} changed while it was being sent`, {
    hint: "nothing was switched on the build server; run the command again",
  });
}

/** Sends the blob stream and returns the uncompressed and on-the-wire byte counts. */
async function sendBlobs(conn: Connection, root: string, files: Entry[]) {
  const z = createDeflateRaw({ level: 1, chunkSize: DATA_CHUNK });
  let wire = 0;
  let acked = 0;
  let wake: (() => void) | undefined;
  let failure: unknown;

  // Acks (and errors) arrive while we send; a reader runs alongside until "synced".
  const reader = (async (): Promise<Message> => {
    for (;;) {
      const f = await conn.next();
      if (f.kind === FRAME_DATA) throw new ProtocolError("unexpected data from the build server");
      if (f.msg.t === "ack") {
        acked = Number(f.msg.bytes);
        wake?.();
        continue;
      }
      if (f.msg.t === "synced") return f.msg;
      if (f.msg.t === "error") throw remoteError(f.msg);
      throw new ProtocolError(`unexpected "${f.msg.t}" while sending blobs`);
    }
  })();
  reader.catch((e) => {
    failure = e;
    wake?.();
  });

  // Compressed output goes out in frames, never more than SEND_WINDOW ahead of the acks.
  const pump = (async () => {
    for await (const chunk of z) {
      while (wire - acked > SEND_WINDOW && !failure) await new Promise<void>((r) => (wake = r));
      if (failure) throw failure;
      await conn.sendData(chunk as Buffer);
      wire += (chunk as Buffer).length;
    }
  })();
  pump.catch(() => {});

  // Small writes are gathered into one compressor call each 256 KiB: every call
  // is a trip through the thread pool, and most files are small.
  let gathered: Buffer[] = [];
  let gatheredBytes = 0;
  const flushGathered = async () => {
    if (!gatheredBytes) return;
    const buf = gathered.length === 1 ? (gathered[0] as Buffer) : Buffer.concat(gathered);
    gathered = [];
    gatheredBytes = 0;
    if (failure) throw failure;
    if (!z.write(buf)) await Promise.race([new Promise((r) => z.once("drain", r)), pump]);
  };
  const put = async (buf: Buffer) => {
    gathered.push(buf);
    gatheredBytes += buf.length;
    if (gatheredBytes >= DATA_CHUNK) await flushGathered();
  };

  let blobBytes = 0;
  // Small files are read a few at a time ahead of the writer.
  const pending: Promise<Buffer | null>[] = [];
  const readSmall = (e: Entry) =>
    e.size <= SMALL ? fs.readFile(path.join(root, e.path)).catch(() => null) : Promise.resolve(null);
  let next = 0;
  try {
    for (let i = 0; i < files.length; i++) {
      while (next < files.length && next < i + PREFETCH) pending.push(readSmall(files[next++] as Entry));
      const e = files[i] as Entry;
      const small = await pending.shift();
      const header = Buffer.alloc(BLOB_HEADER);
      Buffer.from(e.hash as string, "hex").copy(header, 0);
      header.writeBigUInt64BE(BigInt(e.size), 32);
      await put(header);
      const h = createHash("sha256");
      let n = 0;
      if (small && e.size <= SMALL) {
        if (small.length !== e.size) throw changedDuringSync(e.path);
        h.update(small);
        n = small.length;
        await put(small);
      } else {
        const stream = createReadStream(path.join(root, e.path), {
          highWaterMark: DATA_CHUNK,
          end: e.size - 1,
        });
        for await (const chunk of e.size ? stream : []) {
          h.update(chunk as Buffer);
          n += (chunk as Buffer).length;
          await put(chunk as Buffer);
        }
      }
      if (n !== e.size || h.digest("hex") !== e.hash) throw changedDuringSync(e.path);
      blobBytes += n;
    }
    await flushGathered();
    z.end();
    await pump;
    if (failure) throw failure;
    await conn.send({ t: "blobs-end" });
  } catch (err) {
    z.destroy();
    if (!(err instanceof ProtocolError))
      await conn.send({ t: "abort", reason: String((err as Error).message) }).catch(() => {});
    throw failure ?? err;
  }
  return { blobBytes, wire, final: await reader };
}
