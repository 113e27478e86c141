/**
 * Exec into a pod over WebSocket (the Kubernetes API's v5/v4 channel protocols),
 * exposed as a Node Duplex: writes go to the process's stdin, reads come from its
 * stdout. Written on `ws` rather than client-node's Exec because we need real
 * backpressure both ways (a slow reader pauses the socket; writes wait for the
 * socket to take them) and we never rely on closing stdin to end a session.
 *
 * The remote exit status arrives on the status channel; `status` resolves with it
 * and callers must check it (see ExecStatus).
 */
import { Duplex } from "node:stream";
import WebSocket from "ws";
import { UserError } from "../cli/errors.js";
import type { ClusterAccess } from "../kube/access.js";

const STDIN = 0;
const STDOUT = 1;
const STDERR = 2;
const STATUS = 3;
const PROTOCOLS = ["v5.channel.k8s.io", "v4.channel.k8s.io"];
const KEEPALIVE_MS = 20_000;
const STDERR_TAIL = 64 * 1024;

export interface ExecTarget {
  namespace: string;
  pod: string;
  container?: string;
  command: string[];
}

export interface ExecStatus {
  /** The process's exit code; null when the session ended without a status. */
  exitCode: number | null;
  /** The API server's message for a failure (e.g. "command terminated with non-zero exit code"). */
  message?: string;
}

export class ExecStream extends Duplex {
  /** The last 64 KiB the remote process wrote to stderr. */
  stderr = "";
  readonly status: Promise<ExecStatus>;
  private settle!: (s: ExecStatus) => void;
  private settled = false;
  private readonly keepalive: NodeJS.Timeout;

  constructor(
    private readonly ws: WebSocket,
    readonly protocol: string,
  ) {
    super({ highWaterMark: 1 << 20, allowHalfOpen: true });
    this.status = new Promise((resolve) => {
      this.settle = resolve;
    });
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

  private onMessage(data: Buffer) {
    if (data.length === 0) return;
    const channel = data[0];
    const payload = data.subarray(1);
    if (channel === STDOUT) {
      if (payload.length && !this.push(payload)) this.ws.pause();
    } else if (channel === STDERR) {
      this.stderr = (this.stderr + payload.toString("utf8")).slice(-STDERR_TAIL);
    } else if (channel === STATUS) {
      this.finishStatus(parseStatus(payload.toString("utf8")));
    }
  }

  private finishStatus(s: ExecStatus) {
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
      cb(new Error("exec session is closed"));
      return;
    }
    const frame = Buffer.allocUnsafe(chunk.length + 1);
    frame[0] = STDIN;
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

  /** Closes the session from our side (the remote process sees its stdin vanish). */
  close() {
    if (this.ws.readyState === WebSocket.OPEN) this.ws.close(1000);
  }
}

function parseStatus(text: string): ExecStatus {
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

/** Opens an exec session; fails with a UserError that says what to do when the API refuses. */
export async function openExec(cluster: ClusterAccess, target: ExecTarget): Promise<ExecStream> {
  const q = new URLSearchParams();
  for (const c of target.command) q.append("command", c);
  for (const k of ["stdin", "stdout", "stderr"]) q.set(k, "true");
  if (target.container) q.set("container", target.container);
  const base = cluster.server.replace(/^http/, "ws").replace(/\/$/, "");
  const url = `${base}/api/v1/namespaces/${encodeURIComponent(target.namespace)}/pods/${encodeURIComponent(target.pod)}/exec?${q}`;
  const opts: WebSocket.ClientOptions = {
    ...(await cluster.requestOptions()),
    perMessageDeflate: false,
    handshakeTimeout: 15_000,
  };
  const ws = new WebSocket(url, PROTOCOLS, opts);
  return await new Promise<ExecStream>((resolve, reject) => {
    ws.once("open", () => resolve(new ExecStream(ws, ws.protocol)));
    ws.once("unexpected-response", (_req, res) => {
      let body = "";
      res.on("data", (d: Buffer) => {
        body += d;
      });
      res.on("end", () => reject(refusal(res.statusCode ?? 0, body, target)));
    });
    ws.once("error", (e: NodeJS.ErrnoException) =>
      reject(
        new UserError(
          "cluster",
          `cannot reach the Kubernetes API server at ${cluster.server}: ${e.message}`,
          {
            hint: "check that the cluster is up and that your kubeconfig points at it (kubectl cluster-info)",
            cause: e,
          },
        ),
      ),
    );
  });
}

function refusal(code: number, body: string, t: ExecTarget): UserError {
  let message = body.trim();
  try {
    message = (JSON.parse(body) as { message?: string }).message ?? message;
  } catch {}
  const where = `pod ${t.pod} in namespace ${t.namespace}`;
  if (code === 401)
    return new UserError("cluster", `the API server rejected your credentials: ${message}`, {
      hint: "refresh your kubeconfig credentials",
    });
  if (code === 403)
    return new UserError("permission", `you are not allowed to exec into ${where}: ${message}`, {
      hint: `ask a cluster admin for a Role in namespace ${t.namespace} granting verb "create" on resource "pods/exec" (and "get","list" on "pods")`,
    });
  if (code === 404)
    return new UserError("server", `${where} was not found: ${message}`, {
      hint: "is the build server installed? run: snapdeploy server install",
    });
  return new UserError("cluster", `exec into ${where} failed with HTTP ${code}: ${message}`);
}
