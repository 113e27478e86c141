/**
 * The blob stream: data frames, each a batch of records [sha256 (32 bytes)][size (u64
 * BE)][bytes] (a record may continue in the next frame) that is raw-deflated on its
 * own or stored (first byte BATCH_DEFLATE / BATCH_RAW), then { t: "blobs-end" }. Only
 * blobs this agent asked for are accepted, each verified before it enters the store.
 * A frame is inflated and stored before the next is read (see BlobWriter), and
 * consumed bytes are acknowledged so the sender keeps a bounded window.
 */
import { inflateRawSync } from "node:zlib";
import { ACK_EVERY, BATCH_DEFLATE, BATCH_RAW, BLOB_HEADER, MAX_BATCH } from "../protocol/constants.js";
import { FRAME_DATA, ProtocolError } from "../protocol/frames.js";
import { BlobMismatch, type BlobStore, type BlobWriter } from "./blobs.js";
import type { AgentConnection } from "./context.js";
import { ClientAbort, InvalidInput } from "./errors.js";

/** Receives the blob stream into `store`; returns the uncompressed bytes received. */
export async function receiveBlobs(
  conn: AgentConnection,
  store: BlobStore,
  wanted: Set<string>,
  sizes: Map<string, number>,
): Promise<number> {
  const decoder = new BlobStreamDecoder(store, wanted, sizes);
  let consumed = 0;
  let acked = 0;
  try {
    for (;;) {
      const f = await conn.next();
      if (f.kind === FRAME_DATA) {
        decoder.push(f.data);
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
    return decoder.end();
  } catch (e) {
    decoder.abort();
    throw e;
  }
}

/**
 * Decodes the data frames of a blob stream into the store: InvalidInput for a blob not
 * asked for (`wanted`, each taken once) or of another size than `sizes` says, or a bad
 * frame; BlobMismatch for content that does not match its hash or a stream that ends
 * inside a record.
 */
export class BlobStreamDecoder {
  /** The part of a record header received so far. */
  private header: Buffer = Buffer.alloc(0);
  private current: BlobWriter | undefined;
  private raw = 0;

  constructor(
    private readonly store: BlobStore,
    private readonly wanted: Set<string>,
    private readonly sizes: Map<string, number>,
  ) {}

  /** Takes one data frame of the stream. */
  push(frame: Buffer): void {
    const batch = unpackBatch(frame);
    this.raw += batch.length;
    let buf = batch;
    while (buf.length) {
      if (!this.current) {
        const take = Math.min(BLOB_HEADER - this.header.length, buf.length);
        this.header = this.header.length
          ? Buffer.concat([this.header, buf.subarray(0, take)])
          : buf.subarray(0, take);
        buf = buf.subarray(take);
        if (this.header.length < BLOB_HEADER) break;
        const hash = this.header.subarray(0, 32).toString("hex");
        const size = Number(this.header.readBigUInt64BE(32));
        this.header = Buffer.alloc(0);
        if (!this.wanted.has(hash)) throw new InvalidInput(`received blob ${hash} that was not asked for`);
        if (this.sizes.get(hash) !== size)
          throw new InvalidInput(`blob ${hash} has size ${size}, the manifest says ${this.sizes.get(hash)}`);
        this.wanted.delete(hash);
        this.current = this.store.receive(hash, size);
      }
      const current = this.current;
      const take = Math.min(current.remaining, buf.length);
      if (take) current.write(buf.subarray(0, take));
      buf = buf.subarray(take);
      if (current.remaining === 0) {
        this.current = undefined;
        current.finish();
      }
    }
  }

  /** The stream ended: returns the uncompressed bytes received; throws when it ended inside a record. */
  end(): number {
    if (this.current || this.header.length)
      throw new BlobMismatch(`the blob stream ended inside blob ${this.current?.hash ?? "(header)"}`);
    return this.raw;
  }

  /** Drops the blob being received, if any. */
  abort(): void {
    this.current?.abort();
  }
}

/** The records a blob-stream frame holds; InvalidInput for a bad flag or an oversized batch. */
export function unpackBatch(frame: Buffer): Buffer {
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
