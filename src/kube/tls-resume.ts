/**
 * TLS session resumption across commands, for the API server's connection.
 *
 * Why: Node.js builds its whole bundled root store (~140 certificates, 45-50 ms on a small
 * VM, OpenSSL 3 inserts them slowly) the first time a process makes a TLS context with a
 * `ca` of its own, though that context never uses the store (nodejs/node#56301). A
 * kubeconfig always names its CA, so every command paid it before the first byte went
 * out: a fifth of a no-op sync.
 *
 * How: a full handshake verifies the server as usual (the kubeconfig's CA, the host name)
 * and keeps the session the server issues. The next command offers that session with an
 * empty CA list, which builds no store. OpenSSL restores the verification result stored
 * in a resumed session, so a resumed handshake is authorized exactly as the original was.
 * When the server does not resume it (restarted, ticket expired, another server at that
 * address), the empty CA list verifies nothing, Node.js refuses the connection
 * (`rejectUnauthorized` stays on), and the connection is made again with the CA: the
 * fallback is the full verification, never less.
 *
 * A session is keyed by everything that decides trust and identity: the server, the TLS
 * server name, the CA and the client certificate and key. A session can resume the
 * connection as this user (the server keeps the client certificate in it), so it is
 * kept as the kubeconfig's key is: a 0600 file in a 0700 folder, used only if this user
 * owns both and nobody else can write or read them.
 */
import { createHash } from "node:crypto";
import {
  closeSync,
  constants,
  fstatSync,
  lstatSync,
  mkdirSync,
  openSync,
  readSync,
  renameSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import https from "node:https";
import { join } from "node:path";
import type { Duplex } from "node:stream";
import tls from "node:tls";
import { cacheDir } from "../util/cache.js";

/** How long a resumed handshake may take before the full one is tried instead. */
const RESUME_TIMEOUT_MS = 10_000;

/** A session file is a few KB; anything larger is not one of ours. */
const SESSION_MAX = 64 * 1024;

/** The TLS material that decides whom we trust and who we are. */
export interface TlsIdentity {
  server: string;
  servername?: string;
  ca: Buffer;
  cert?: Buffer;
  key?: Buffer;
}

/** Where one identity's session is kept, and whether it may be used. */
export class SessionStore {
  readonly file: string;
  private latest: Buffer | undefined;

  constructor(
    identity: TlsIdentity,
    readonly dir: string = cacheDir("tls"),
  ) {
    const h = createHash("sha256");
    for (const part of [identity.server, identity.servername ?? "", identity.ca, identity.cert, identity.key])
      h.update(
        createHash("sha256")
          .update(part ?? "")
          .digest(),
      );
    this.file = join(dir, `${h.digest("hex").slice(0, 32)}.session`);
  }

  /** The kept session, if there is one this user alone could have written. */
  load(): Buffer | undefined {
    if (this.latest) return this.latest;
    const uid = process.getuid?.();
    if (uid === undefined) return undefined;
    let fd: number | undefined;
    try {
      const dir = lstatSync(this.dir);
      if (!dir.isDirectory() || dir.uid !== uid || (dir.mode & 0o077) !== 0) return undefined;
      fd = openSync(this.file, constants.O_RDONLY | constants.O_NOFOLLOW);
      const st = fstatSync(fd);
      if (!st.isFile() || st.uid !== uid || (st.mode & 0o077) !== 0 || st.size > SESSION_MAX)
        return undefined;
      const buf = Buffer.alloc(st.size);
      const n = readSync(fd, buf, 0, st.size, 0);
      return n === st.size && n > 0 ? buf : undefined;
    } catch {
      return undefined;
    } finally {
      if (fd !== undefined) closeSync(fd);
    }
  }

  /** Keeps `session` (the newest the server issued); a failure only costs the next command time. */
  save(session: Buffer): void {
    this.latest = session;
    if (process.getuid === undefined) return;
    try {
      mkdirSync(this.dir, { recursive: true, mode: 0o700 });
      const tmp = `${this.file}.${process.pid}.tmp`;
      writeFileSync(tmp, session, { mode: 0o600, flag: "wx" });
      renameSync(tmp, this.file);
    } catch {}
  }

  /** Forgets the session: the server did not take it. A file that stays is only tried again. */
  drop(): void {
    this.latest = undefined;
    try {
      rmSync(this.file, { force: true });
    } catch {}
  }
}

/**
 * A keep-alive agent that resumes the kept session when it can (see the module comment)
 * and verifies in full when it cannot.
 */
export class ResumingAgent extends https.Agent {
  constructor(private readonly sessions: SessionStore) {
    super({ keepAlive: true });
  }

  override createConnection(
    options: https.RequestOptions,
    oncreate?: (err: Error | null, stream: Duplex) => void,
  ): Duplex | null | undefined {
    const session = this.sessions.load();
    if (!session || !oncreate || options.rejectUnauthorized === false) return this.full(options);
    // No `ca`: an empty list, which builds no store and trusts nothing but the session.
    let socket: tls.TLSSocket;
    try {
      socket = tls.connect({ ...(options as tls.ConnectionOptions), ca: [], session });
    } catch {
      this.sessions.drop();
      return this.full(options);
    }
    // The request's own timeout starts once it has the socket: until then, this one.
    const timer = setTimeout(() => fallBack(new Error("no handshake")), RESUME_TIMEOUT_MS);
    const fallBack = (err?: Error) => {
      clearTimeout(timer);
      socket.removeListener("secureConnect", resumed);
      socket.removeListener("error", fallBack);
      socket.on("error", () => {});
      socket.destroy();
      // A handshake that ended without resuming (or in a refused certificate, which with no
      // CA means the same) had no use for the session; a network error says nothing of it.
      if (!err || isVerifyError(err)) this.sessions.drop();
      oncreate(null, this.full(options));
    };
    const resumed = () => {
      clearTimeout(timer);
      socket.removeListener("error", fallBack);
      if (!socket.authorized || !socket.isSessionReused()) return fallBack();
      this.keep(socket);
      oncreate(null, socket);
    };
    socket.once("secureConnect", resumed);
    socket.once("error", fallBack);
    return undefined;
  }

  /** A connection that verifies the server with the kubeconfig's CA, as without this module. */
  private full(options: https.RequestOptions): tls.TLSSocket {
    const socket = super.createConnection(options) as tls.TLSSocket;
    this.keep(socket);
    return socket;
  }

  private keep(socket: tls.TLSSocket): void {
    socket.on("session", (s: Buffer) => this.sessions.save(s));
  }
}

/** OpenSSL's certificate verification errors, as Node.js names them (e.g. UNABLE_TO_VERIFY_LEAF_SIGNATURE). */
function isVerifyError(err: Error): boolean {
  const code = (err as NodeJS.ErrnoException).code ?? "";
  return /CERT|VERIFY|ISSUER|SELF_SIGNED|CHAIN/.test(code);
}
