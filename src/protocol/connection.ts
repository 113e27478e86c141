/**
 * A message connection over any byte stream (a unix or TCP socket, a port-forward or
 * exec channel), in the frames of frames.ts.
 */
import type { Duplex } from "node:stream";
import { AGENT_KEEPALIVE_TIMEOUT_MS } from "./constants.js";
import { encodeFrame, FRAME_DATA, FRAME_JSON, type Frame, FrameDecoder, ProtocolError } from "./frames.js";
import type { ClientMessage, Message } from "./messages.js";

/**
 * A message connection over a Duplex. Reading is pull-based (`next()`), so a slow
 * consumer pauses the stream and backpressure reaches the sender; writing resolves
 * once the stream accepted the bytes (waiting for 'drain' when its buffer is full).
 * `Out` is what this side sends: the client's messages by default, the agent's on its side.
 *
 * Keepalives (constants.ts, KEEPALIVE_INTERVAL_MS) are handled here, below the operations:
 * a { t: "keepalive" } received is answered with { t: "keepalive-ack" } at once and arms the
 * receiving side's own deadline (AGENT_KEEPALIVE_TIMEOUT_MS); acks are dropped; `keepalive()`
 * makes this side send them and fail the connection with StalledConnection when nothing at
 * all has arrived for its deadline.
 */
export class Connection<Out extends { t: string } = ClientMessage> {
  private readonly decoder = new FrameDecoder();
  private readonly queue: Frame[] = [];
  private waiter: { resolve: (f: Frame) => void; reject: (e: Error) => void } | undefined;
  private ended: Error | undefined;
  /** When bytes last arrived from the peer. */
  private heard = Date.now();
  private watchdog: NodeJS.Timeout | undefined;
  /** The deadline this side takes on once its peer sends keepalives (tests shorten it). */
  peerTimeoutMs = AGENT_KEEPALIVE_TIMEOUT_MS;

  constructor(readonly stream: Duplex) {
    stream.on("data", (chunk: Buffer) => {
      this.heard = Date.now();
      let frames: Frame[];
      try {
        frames = this.decoder.push(chunk);
      } catch (e) {
        this.fail(e as Error);
        stream.destroy();
        return;
      }
      for (const f of frames) {
        if (f.kind === FRAME_JSON && f.msg.t === "keepalive") this.answerKeepalive();
        else if (!(f.kind === FRAME_JSON && f.msg.t === "keepalive-ack")) this.deliver(f);
      }
      // Stop reading while unconsumed frames pile up; resumed by next().
      if (this.queue.length > 64) stream.pause();
    });
    stream.on("end", () => this.fail(new PeerClosed("connection closed by peer")));
    stream.on("close", () => this.fail(new PeerClosed("connection closed")));
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
    this.stopKeepalive();
    if (this.waiter) {
      const w = this.waiter;
      this.waiter = undefined;
      w.reject(e);
    }
  }

  private answerKeepalive() {
    if (this.ended || !this.stream.writable) return;
    this.stream.write(KEEPALIVE_ACK);
    // The peer keeps the connection alive: from now on its silence means it is gone.
    if (!this.watchdog) this.keepalive(this.peerTimeoutMs);
  }

  /**
   * Fails the connection with StalledConnection (and destroys the stream) once nothing has
   * arrived for `timeoutMs`; with `intervalMs`, also sends a keepalive that often, so a live
   * peer always has something to answer. Time with this side's reading paused or its event
   * loop blocked is not the peer's silence. Calling it again replaces the previous settings.
   */
  keepalive(timeoutMs: number, intervalMs?: number): void {
    this.stopKeepalive();
    if (this.ended) return;
    const tick = Math.min(1000, timeoutMs / 4, intervalMs ?? Number.POSITIVE_INFINITY);
    let lastTick = Date.now();
    let lastPing = lastTick;
    this.heard = lastTick;
    this.watchdog = setInterval(() => {
      const now = Date.now();
      if (now - lastTick > 3 * tick || this.stream.isPaused()) this.heard = now;
      lastTick = now;
      const silent = now - this.heard;
      if (silent >= timeoutMs) {
        this.fail(new StalledConnection(silent));
        this.stream.destroy();
        return;
      }
      if (intervalMs !== undefined && now - lastPing >= intervalMs && this.stream.writable) {
        lastPing = now;
        this.stream.write(KEEPALIVE);
      }
    }, tick);
    this.watchdog.unref();
  }

  stopKeepalive(): void {
    if (this.watchdog) clearInterval(this.watchdog);
    this.watchdog = undefined;
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
    return this.write(jsonFrame(msg));
  }

  /**
   * Sends `msg` and resolves once the stream has handed its bytes on (its write callback):
   * for the last message before the stream is destroyed, which would drop what it still
   * buffers.
   */
  sendLast(msg: Out): Promise<void> {
    if (this.ended) return Promise.reject(this.ended);
    return new Promise((resolve, reject) => {
      this.stream.write(jsonFrame(msg), (err) => (err ? reject(err) : resolve()));
    });
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
    this.stopKeepalive();
    this.stream.end();
  }
}

const jsonFrame = (msg: { t: string }) => encodeFrame(FRAME_JSON, Buffer.from(JSON.stringify(msg)));
const KEEPALIVE = jsonFrame({ t: "keepalive" });
const KEEPALIVE_ACK = jsonFrame({ t: "keepalive-ack" });

/** The peer closed the connection (or it was closed under us). */
export class PeerClosed extends ProtocolError {
  override name = "PeerClosed";
}

/** Nothing arrived from the peer for `silentMs`: it or the path to it is frozen. */
export class StalledConnection extends ProtocolError {
  override name = "StalledConnection";
  constructor(readonly silentMs: number) {
    super(`nothing received for ${Math.round(silentMs / 1000)} s: the connection stalled`);
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
