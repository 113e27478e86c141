/**
 * The blob stream a sync sends: the contents the agent lacks, read from the tree and
 * checked against the scan's hashes as they are read, in batches compressed on their own,
 * within a bounded window of unacknowledged bytes (so a 1 GB file never sits in memory on
 * either side).
 */
import { closeSync, constants, openSync, readSync } from "node:fs";
import path from "node:path";
import { promisify } from "node:util";
import { deflateRaw } from "node:zlib";
import { UserError } from "../errors.js";
import { GC_EVERY } from "../context/scan.js";
import type { Entry } from "../protocol/manifest.js";
import { collectGarbage } from "../util/memory.js";
import { BATCH_DEFLATE, BATCH_RAW, BLOB_HEADER, DATA_CHUNK, SEND_WINDOW } from "../protocol/constants.js";
import { type Connection, RemoteError, remoteError } from "../protocol/connection.js";
import { FRAME_DATA, ProtocolError } from "../protocol/frames.js";
import type { Message } from "../protocol/messages.js";
import { Packing } from "./packing.js";

/** How far the blobs' upload is: files and uncompressed bytes, done and to do. */
export interface SyncProgress {
  files: number;
  totalFiles: number;
  bytes: number;
  totalBytes: number;
}

/** Files up to this size are read whole; larger ones in DATA_CHUNK pieces. */
const SMALL = 1024 * 1024;
const deflateRawAsync = promisify(deflateRaw);

function changedDuringSync(p: string): UserError {
  return new UserError("input", `${p} changed while it was being sent`, {
    hint: "nothing was switched on the build server; run the command again",
  });
}

/**
 * Sends the blob stream while reading the agent's acks, keeping at most SEND_WINDOW bytes
 * unacknowledged; returns the byte counts and the agent's synced.
 */
export async function sendBlobs(
  conn: Connection,
  root: string,
  files: Entry[],
  packing: "auto" | "never",
  onProgress?: (p: SyncProgress) => void,
) {
  let acked = 0;
  let wake: (() => void) | undefined;
  let failure: unknown;
  const meter = new Packing(packing);
  const sending = { wire: 0 };

  // Acks (and errors) arrive while we send; a reader runs alongside until "synced".
  const reader = (async (): Promise<Message> => {
    for (;;) {
      const f = await conn.next();
      if (f.kind === FRAME_DATA) throw new ProtocolError("unexpected data from the build server");
      if (f.msg.t === "ack") {
        acked = Number(f.msg.bytes);
        meter.acked(acked, sending.wire);
        wake?.();
        continue;
      }
      if (f.msg.t === "synced") return f.msg;
      if (f.msg.t === "error") throw sentFileError(remoteError(f.msg), files);
      throw new ProtocolError(`unexpected "${f.msg.t}" while sending blobs`);
    }
  })();
  reader.catch((e) => {
    failure = e;
    wake?.();
  });
  const { blobBytes, wire } = await streamBlobs(conn, root, files, onProgress, meter, sending, {
    async room(wire) {
      while (wire - acked > SEND_WINDOW && !failure) await new Promise<void>((r) => (wake = r));
      if (failure) throw failure;
    },
    failure: () => failure,
  });
  return { blobBytes, wire, final: await reader };
}

/**
 * Sends the blob stream of a sync's inline blobs (at most INLINE_BLOBS_MAX bytes, within
 * the send window: no ack needs to be waited for, and what the agent says is read after).
 */
export function sendBlobStream(
  conn: Connection,
  root: string,
  files: Entry[],
  packing: "auto" | "never",
  onProgress?: (p: SyncProgress) => void,
) {
  return streamBlobs(
    conn,
    root,
    files,
    onProgress,
    new Packing(packing === "never" ? "never" : "always"),
    { wire: 0 },
    {
      room: async () => {},
      failure: () => undefined,
    },
  );
}

/**
 * Sends the blob stream and returns the uncompressed and on-the-wire byte counts.
 *
 * Records are gathered into batches of about DATA_CHUNK bytes; each batch is one data
 * frame, compressed on its own (so the agent can inflate and store it in one step),
 * or sent as it is when compression would not pay (already compressed files). Files
 * are read synchronously: almost all are small and in the page cache, where a read is
 * cheaper than a trip through libuv's thread pool, and meanwhile the compressor (in
 * the thread pool) and the socket work on earlier batches. `window.room` resolves once
 * a frame may go after `wire` bytes; `window.failure` is what the reading side met.
 */
async function streamBlobs(
  conn: Connection,
  root: string,
  files: Entry[],
  onProgress: ((p: SyncProgress) => void) | undefined,
  packing: Packing,
  sending: { wire: number },
  window: { room: (wire: number) => Promise<void>; failure: () => unknown },
) {
  const totalBytes = files.reduce((n, e) => n + e.size, 0);

  // Batches being compressed, oldest first; each is sent once it is done and the
  // window of unacknowledged bytes has room.
  const compressing: Promise<Buffer>[] = [];
  const sendOldest = async () => {
    const frame = await (compressing.shift() as Promise<Buffer>);
    await window.room(sending.wire);
    await conn.sendData(frame);
    sending.wire += frame.length;
  };
  let batch: Buffer[] = [];
  let batchBytes = 0;
  const flush = async () => {
    if (!batchBytes) return;
    const raw = batch.length === 1 ? (batch[0] as Buffer) : Buffer.concat(batch, batchBytes);
    batch = [];
    batchBytes = 0;
    const frame = encodeBatch(raw, packing);
    frame.catch(() => {});
    compressing.push(frame);
    if (compressing.length >= IN_FLIGHT) await sendOldest();
  };
  // A batch ends once it reaches DATA_CHUNK and takes at most DATA_CHUNK more, so it
  // stays under 2 * DATA_CHUNK <= MAX_BATCH, what the agent accepts.
  const put = async (buf: Buffer) => {
    for (let i = 0; i < buf.length; i += DATA_CHUNK) {
      const part = i === 0 && buf.length <= DATA_CHUNK ? buf : buf.subarray(i, i + DATA_CHUNK);
      batch.push(part);
      batchBytes += part.length;
      if (batchBytes >= DATA_CHUNK) await flush();
    }
  };

  let blobBytes = 0;
  try {
    for (const [i, e] of files.entries()) {
      const failure = window.failure();
      if (failure) throw failure;
      if (i % GC_EVERY === GC_EVERY - 1) collectGarbage(files.length);
      const header = Buffer.alloc(BLOB_HEADER);
      Buffer.from(e.hash as string, "hex").copy(header, 0);
      header.writeBigUInt64BE(BigInt(e.size), 32);
      await put(header);
      // The agent hashes what it receives and refuses a blob that does not match (see
      // sentFileError): hashing it here as well would cost the sender a second pass.
      let n = 0;
      const file = path.join(root, e.path);
      if (e.size <= SMALL) {
        const data = readSmall(file, e);
        n = data.length;
        await put(data);
      } else {
        let fd: number;
        try {
          fd = openSync(file, constants.O_RDONLY | constants.O_NOFOLLOW);
        } catch {
          throw changedDuringSync(e.path);
        }
        try {
          while (n < e.size) {
            const buf = Buffer.allocUnsafe(Math.min(DATA_CHUNK, e.size - n));
            const got = readSync(fd, buf, 0, buf.length, n);
            if (got === 0) break;
            const part = got === buf.length ? buf : buf.subarray(0, got);
            n += got;
            await put(part);
          }
        } finally {
          closeSync(fd);
        }
      }
      if (n !== e.size) throw changedDuringSync(e.path);
      blobBytes += n;
      onProgress?.({ files: i + 1, totalFiles: files.length, bytes: blobBytes, totalBytes });
    }
    await flush();
    while (compressing.length) await sendOldest();
    const failure = window.failure();
    if (failure) throw failure;
    await conn.send({ t: "blobs-end" });
  } catch (err) {
    if (!(err instanceof ProtocolError))
      await conn.send({ t: "abort", reason: String((err as Error).message) }).catch(() => {});
    throw window.failure() ?? err;
  }
  return { blobBytes, wire: sending.wire };
}

/** Batches compressed at a time (the thread pool has four threads; the CPU two or more cores). */
const IN_FLIGHT = 3;

/** A batch as a data frame: BATCH_DEFLATE + raw deflate of it, or BATCH_RAW + the batch. */
async function encodeBatch(raw: Buffer, packing: Packing): Promise<Buffer> {
  if (packing.shouldTry()) {
    const done = packing.deflating(raw.length);
    const packed = await deflateRawAsync(raw, { level: 1 });
    done(packed.length);
    // Compression that saves less than 1/16 is not worth the agent's time to undo.
    if (packed.length < raw.length - (raw.length >> 4)) return Buffer.concat([BATCH_DEFLATE_BYTE, packed]);
  }
  return Buffer.concat([BATCH_RAW_BYTE, raw]);
}
const BATCH_DEFLATE_BYTE = Buffer.from([BATCH_DEFLATE]);
const BATCH_RAW_BYTE = Buffer.from([BATCH_RAW]);

/**
 * The agent's refusal of a blob whose bytes did not match its hash, as the file it was
 * read from: it changed after the scan hashed it. Other errors are returned as they are.
 */
export function sentFileError(err: unknown, files: readonly Entry[]): unknown {
  const blob = err instanceof RemoteError ? err.detail.blob : undefined;
  const file = typeof blob === "string" ? files.find((e) => e.hash === blob) : undefined;
  return file ? changedDuringSync(file.path) : err;
}

/** The whole content of a small file, which must still have the size the scan saw. */
function readSmall(file: string, e: Entry): Buffer {
  let data: Buffer;
  try {
    const fd = openSync(file, constants.O_RDONLY | constants.O_NOFOLLOW);
    try {
      data = Buffer.allocUnsafe(e.size);
      let n = 0;
      while (n < e.size) {
        const got = readSync(fd, data, n, e.size - n, n);
        if (got === 0) break;
        n += got;
      }
      // One more byte would mean the file grew since the scan.
      if (n !== e.size || readSync(fd, Buffer.allocUnsafe(1), 0, 1, n) !== 0) throw changedDuringSync(e.path);
    } finally {
      closeSync(fd);
    }
  } catch (err) {
    if (err instanceof UserError) throw err;
    throw changedDuringSync(e.path);
  }
  return data;
}
