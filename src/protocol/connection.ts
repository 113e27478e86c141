/**
 * A message connection over any byte stream (a unix or TCP socket, a port-forward or
 * exec channel), in the frames of frames.ts.
 */
import type { Duplex } from "node:stream";
import { encodeFrame, FRAME_DATA, FRAME_JSON, type Frame, FrameDecoder, ProtocolError } from "./frames.js";
import type { ClientMessage, Message } from "./messages.js";

/**
 * A message connection over a Duplex. Reading is pull-based (`next()`), so a slow
 * consumer pauses the stream and backpressure reaches the sender; writing resolves
 * once the stream accepted the bytes (waiting for 'drain' when its buffer is full).
 * `Out` is what this side sends: the client's messages by default, the agent's on its side.
 */
export class Connection<Out extends { t: string } = ClientMessage> {
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

  send(msg: Out): Promise<void> {
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
