/**
 * Our own framing over any byte stream (the exec relay's stdin/stdout, a unix
 * socket): nothing depends on half-closing a stream, and both sides always know
 * where one message ends.
 *
 * Frame = [kind: u8][length: u32 big-endian][payload]
 *   kind 1: a JSON control message ({ t: "...", ... })
 *   kind 2: a chunk of binary data belonging to the current data phase
 */
import type { Message } from "./messages.js";

export const FRAME_JSON = 1;
export const FRAME_DATA = 2;
const HEADER = 5;
/** Upper bound for one frame's payload; a peer sending more is broken or hostile. */
export const MAX_FRAME = 32 * 1024 * 1024;

export type Frame = { kind: typeof FRAME_JSON; msg: Message } | { kind: typeof FRAME_DATA; data: Buffer };

export class ProtocolError extends Error {
  override name = "ProtocolError";
}

export function encodeFrame(kind: number, payload: Buffer): Buffer {
  const head = Buffer.allocUnsafe(HEADER);
  head.writeUInt8(kind, 0);
  head.writeUInt32BE(payload.length, 1);
  return Buffer.concat([head, payload]);
}

/** Incremental decoder: feed it chunks, get whole frames. */
export class FrameDecoder {
  private chunks: Buffer[] = [];
  private buffered = 0;

  push(chunk: Buffer): Frame[] {
    this.chunks.push(chunk);
    this.buffered += chunk.length;
    const frames: Frame[] = [];
    for (;;) {
      if (this.buffered < HEADER) break;
      const head = this.peek(HEADER);
      const kind = head.readUInt8(0);
      const len = head.readUInt32BE(1);
      if (kind !== FRAME_JSON && kind !== FRAME_DATA) throw new ProtocolError(`unknown frame kind ${kind}`);
      if (len > MAX_FRAME)
        throw new ProtocolError(`frame of ${len} bytes exceeds the ${MAX_FRAME}-byte limit`);
      if (this.buffered < HEADER + len) break;
      const whole = this.take(HEADER + len);
      const payload = whole.subarray(HEADER);
      if (kind === FRAME_DATA) frames.push({ kind, data: payload });
      else {
        let msg: unknown;
        try {
          msg = JSON.parse(payload.toString("utf8"));
        } catch {
          throw new ProtocolError("malformed JSON message");
        }
        if (!msg || typeof msg !== "object" || typeof (msg as Message).t !== "string") {
          throw new ProtocolError("message without a type");
        }
        frames.push({ kind, msg: msg as Message });
      }
    }
    return frames;
  }

  private peek(n: number): Buffer {
    if ((this.chunks[0]?.length ?? 0) >= n) return (this.chunks[0] as Buffer).subarray(0, n);
    const all = Buffer.concat(this.chunks);
    this.chunks = [all];
    return all.subarray(0, n);
  }

  private take(n: number): Buffer {
    const all = this.chunks.length === 1 ? (this.chunks[0] as Buffer) : Buffer.concat(this.chunks);
    const out = all.subarray(0, n);
    const rest = all.subarray(n);
    this.chunks = rest.length ? [rest] : [];
    this.buffered = rest.length;
    return out;
  }
}
