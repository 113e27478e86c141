/**
 * A WebSocket to a pod through the Kubernetes API — exec or port-forward — exposed as a
 * Node Duplex. Both speak the API's channel protocol: every binary message starts with
 * one byte naming its channel. Written on `ws` rather than client-node's Exec and
 * PortForward because we need real backpressure both ways (a slow reader pauses the
 * socket; writes wait for the socket to take them) and never rely on half-closing.
 */
import { Duplex } from "node:stream";
import WebSocket from "ws";
import { UserError } from "../errors.js";
import type { ClusterAccess } from "../kube/access.js";
import { networkError } from "../kube/api-errors.js";

const KEEPALIVE_MS = 20_000;
const ERROR_TAIL = 64 * 1024;

/** Which channel carries what. */
export interface ChannelLayout {
  /** Where our writes go (exec: stdin; port-forward: the port's data). */
  write: number;
  /** Whose bytes we read (exec: stdout; port-forward: the port's data). */
  read: number;
  /** Text kept as the remote side's complaints (exec: stderr; port-forward: the error channel). */
  errors: number;
  /** exec only: the channel the process's exit status arrives on. */
  status?: number;
  /** port-forward: the first message of each channel is the port number (2 bytes), not data. */
  portPrefix?: boolean;
}

export interface StreamStatus {
  /** The remote process's exit code (exec); null when the session ended without one. */
  exitCode: number | null;
  /** The API server's message for a failure, or how the connection closed. */
  message?: string;
}

export class ChannelStream extends Duplex {
  /** The last 64 KiB of the errors channel (exec: stderr). */
  errorText = "";
  /** Resolves when the exit status arrives (exec) or the connection closes. */
  readonly status: Promise<StreamStatus>;
  private settle!: (s: StreamStatus) => void;
  private settled = false;
  private readonly keepalive: NodeJS.Timeout;
  private readonly prefixPending = new Set<number>();

  constructor(
    private readonly ws: WebSocket,
    private readonly layout: ChannelLayout,
  ) {
    super({ highWaterMark: 1 << 20, allowHalfOpen: true });
    this.status = new Promise((resolve) => {
      this.settle = resolve;
    });
    if (layout.portPrefix) {
      this.prefixPending.add(layout.read);
      this.prefixPending.add(layout.errors);
    }
    ws.on("message", (data: Buffer) => this.onMessage(data));
    ws.on("close", (code, reason) => {
      this.finishStatus({
        exitCode: null,
        message: `connection closed (${code}${reason.length ? ` ${reason}` : ""})`,
      });
      this.push(null);
    });
    ws.on("error", (e) => this.destroy(e));
    this.keepalive = setInterval(() => ws.ping(), KEEPALIVE_MS);
    this.keepalive.unref();
  }

  /** The protocol the server chose (e.g. v5.channel.k8s.io). */
  get protocol(): string {
    return this.ws.protocol;
  }

  private onMessage(data: Buffer) {
    if (data.length === 0) return;
    const channel = data[0] as number;
    let payload = data.subarray(1);
    if (this.prefixPending.has(channel)) {
      this.prefixPending.delete(channel);
      payload = payload.subarray(2);
    }
    if (channel === this.layout.read) {
      if (payload.length && !this.push(payload)) this.ws.pause();
    } else if (channel === this.layout.errors) {
      this.errorText = (this.errorText + payload.toString("utf8")).slice(-ERROR_TAIL);
    } else if (channel === this.layout.status) {
      this.finishStatus(parseStatus(payload.toString("utf8")));
    }
  }

  private finishStatus(s: StreamStatus) {
    if (this.settled) return;
    this.settled = true;
    clearInterval(this.keepalive);
    this.settle(s);
  }

  override _read() {
    if (this.ws.isPaused) this.ws.resume();
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void) {
    if (this.ws.readyState !== WebSocket.OPEN) {
      cb(new Error("the connection to the pod is closed"));
      return;
    }
    const frame = Buffer.allocUnsafe(chunk.length + 1);
    frame[0] = this.layout.write;
    chunk.copy(frame, 1);
    // The callback fires once the socket took the bytes: that is our backpressure.
    this.ws.send(frame, { binary: true }, (err) => cb(err ?? null));
  }

  override _final(cb: (err?: Error | null) => void) {
    cb();
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void) {
    clearInterval(this.keepalive);
    this.finishStatus({ exitCode: null, message: err?.message ?? "closed by the client" });
    if (this.ws.readyState === WebSocket.OPEN || this.ws.readyState === WebSocket.CONNECTING)
      this.ws.terminate();
    cb(err);
  }

  /** Closes the connection from our side, after what was written has been sent. */
  close() {
    if (this.ws.readyState === WebSocket.OPEN) this.ws.close(1000);
  }
}

function parseStatus(text: string): StreamStatus {
  try {
    const s = JSON.parse(text) as {
      status?: string;
      message?: string;
      details?: { causes?: { reason?: string; message?: string }[] };
    };
    if (s.status === "Success") return { exitCode: 0 };
    const cause = s.details?.causes?.find((c) => c.reason === "ExitCode");
    return { exitCode: cause ? Number(cause.message) : null, message: s.message };
  } catch {
    return { exitCode: null, message: text };
  }
}

/**
 * The masking key of every frame sent inside TLS. Masking (RFC 6455 section 10.3) keeps
 * script-chosen bytes from reading as requests to a plaintext proxy on the way; inside TLS
 * no proxy sees them, and the bytes are this tool's own. A key of zero makes masking a
 * no-op that ws skips: masking in JavaScript cost about 1 s of CPU per 100 MB sent.
 * Plain `ws:` (a local `kubectl proxy`) keeps ws's random keys.
 */
function zeroMask(mask: Buffer): void {
  mask.fill(0);
}

/** Thrown when the API server answers the upgrade with an HTTP error. */
export class Refused extends Error {
  constructor(
    readonly code: number,
    message: string,
  ) {
    super(message);
  }
}

/**
 * Opens `apiPath` (below the cluster's server URL) as a channel WebSocket. Rejects with
 * Refused when the API server answers with an HTTP error (the caller words it) and with a
 * UserError when it cannot be reached.
 */
export async function openChannels(
  cluster: ClusterAccess,
  apiPath: string,
  protocols: string[],
  layout: ChannelLayout,
): Promise<ChannelStream> {
  const url = `${cluster.server.replace(/^http/, "ws").replace(/\/$/, "")}${apiPath}`;
  const opts: WebSocket.ClientOptions = {
    ...(await cluster.requestOptions()),
    perMessageDeflate: false,
    handshakeTimeout: 15_000,
    ...(url.startsWith("wss:") ? { generateMask: zeroMask } : {}),
  };
  const ws = new WebSocket(url, protocols, opts);
  return await new Promise<ChannelStream>((resolve, reject) => {
    ws.once("open", () => resolve(new ChannelStream(ws, layout)));
    ws.once("unexpected-response", (_req, res) => {
      let body = "";
      res.on("data", (d: Buffer) => {
        body += d;
      });
      res.on("end", () => {
        let message = body.trim();
        try {
          message = (JSON.parse(body) as { message?: string }).message ?? message;
        } catch {}
        reject(new Refused(res.statusCode ?? 0, message));
      });
    });
    ws.once("error", (e: NodeJS.ErrnoException) =>
      reject(
        networkError(e, cluster.server) ??
          new UserError(
            "cluster",
            `cannot reach the Kubernetes API server at ${cluster.server}: ${e.message}`,
            {
              hint: "check that the cluster is up and your kubeconfig points at it",
              cause: e,
            },
          ),
      ),
    );
  });
}

/** The UserError for a refused upgrade other than a permission problem (the caller words 403). */
export function refusalError(r: Refused, what: string, namespace: string): UserError {
  if (r.code === 401)
    return new UserError("cluster", `the API server rejected your credentials: ${r.message}`, {
      hint: "refresh your kubeconfig credentials",
    });
  if (r.code === 404)
    return new UserError("server", `${what} was not found: ${r.message}`, {
      hint: `is the build server installed in namespace ${namespace}? run: snapdeploy server install`,
    });
  return new UserError("cluster", `connecting to ${what} failed with HTTP ${r.code}: ${r.message}`);
}
