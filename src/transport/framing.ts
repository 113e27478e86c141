/**
 * Our own framing over any byte stream (the exec relay's stdin/stdout, a unix
 * socket): nothing depends on half-closing a stream, and both sides always know
 * where one message ends.
 *
 * Frame = [kind: u8][length: u32 big-endian][payload]
 *   kind 1: a JSON control message ({ t: "...", ... })
 *   kind 2: a chunk of binary data belonging to the current data phase
 */
import type { Duplex } from "node:stream";

export const FRAME_JSON = 1;
export const FRAME_DATA = 2;
const HEADER = 5;
/** Upper bound for one frame's payload; a peer sending more is broken or hostile. */
export const MAX_FRAME = 32 * 1024 * 1024;

export type Message = { t: string; [key: string]: unknown };
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

/**
 * A message connection over a Duplex. Reading is pull-based (`next()`), so a slow
 * consumer pauses the stream and backpressure reaches the sender; writing resolves
 * once the stream accepted the bytes (waiting for 'drain' when its buffer is full).
 */
export class Connection {
  private readonly decoder = new FrameDecoder();
  private readonly queue: Frame[] = [];
  private waiter: { resolve: (f: Frame) => void; reject: (e: Error) => void } | undefined;
  private ended: Error | undefined;

  constructor(readonly stream: Duplex) {
    stream.on("data", (chunk: Buffer) => {
      let frames: Frame[];
      try {
        frames = this.decoder.push(chunk);
      } catch (e) {
        this.fail(e as Error);
        stream.destroy();
        return;
      }
      for (const f of frames) this.deliver(f);
      // Stop reading while unconsumed frames pile up; resumed by next().
      if (this.queue.length > 64) stream.pause();
    });
    stream.on("end", () => this.fail(new ProtocolError("connection closed by peer")));
    stream.on("close", () => this.fail(new ProtocolError("connection closed")));
    stream.on("error", (e) => this.fail(e));
  }

  private deliver(f: Frame) {
    if (this.waiter) {
      const w = this.waiter;
      this.waiter = undefined;
      w.resolve(f);
    } else this.queue.push(f);
  }

  private fail(e: Error) {
    if (this.ended) return;
    this.ended = e;
    if (this.waiter) {
      const w = this.waiter;
      this.waiter = undefined;
      w.reject(e);
    }
  }

  /** The next frame; rejects when the connection ends first. */
  next(): Promise<Frame> {
    const f = this.queue.shift();
    if (this.queue.length < 16 && this.stream.isPaused()) this.stream.resume();
    if (f) return Promise.resolve(f);
    if (this.ended) return Promise.reject(this.ended);
    return new Promise((resolve, reject) => {
      this.waiter = { resolve, reject };
    });
  }

  /** The next frame, which must be a JSON message (of type `t`, when given). */
  async expect(t?: string): Promise<Message> {
    const f = await this.next();
    if (f.kind !== FRAME_JSON) throw new ProtocolError(`expected a message${t ? ` "${t}"` : ""}, got data`);
    if (f.msg.t === "error") throw remoteError(f.msg);
    if (t && f.msg.t !== t) throw new ProtocolError(`expected "${t}", got "${f.msg.t}"`);
    return f.msg;
  }

  send(msg: Message): Promise<void> {
    return this.write(encodeFrame(FRAME_JSON, Buffer.from(JSON.stringify(msg))));
  }

  sendData(data: Buffer): Promise<void> {
    return this.write(encodeFrame(FRAME_DATA, data));
  }

  private write(buf: Buffer): Promise<void> {
    if (this.ended) return Promise.reject(this.ended);
    // Resolve at once while the stream has room; otherwise when it drains (or fails).
    if (this.stream.write(buf)) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const onDrain = () => {
        this.stream.off("close", onClose);
        resolve();
      };
      const onClose = () => {
        this.stream.off("drain", onDrain);
        reject(this.ended ?? new ProtocolError("connection closed"));
      };
      this.stream.once("drain", onDrain);
      this.stream.once("close", onClose);
    });
  }

  close() {
    this.stream.end();
  }
}

/** An error the other side reported with { t: "error", code, message, hint, ...details }. */
export class RemoteError extends Error {
  override name = "RemoteError";
  constructor(
    readonly code: string,
    message: string,
    readonly hint?: string,
    /** The whole error message, for operation-specific details (failing step, output tail). */
    readonly detail: Message = { t: "error" },
  ) {
    super(message);
  }
}

export function remoteError(msg: Message): RemoteError {
  return new RemoteError(
    String(msg.code ?? "internal"),
    String(msg.message ?? "unknown error"),
    msg.hint ? String(msg.hint) : undefined,
    msg,
  );
}
