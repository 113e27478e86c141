/**
 * TLS session resumption across commands (kube/tls-resume.ts), against a real TLS server on
 * loopback with certificates made by openssl: each "command" is a new agent and store, as
 * a new process would have. The server says whether each handshake was resumed.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { chmodSync, mkdtempSync, readFileSync, statSync, writeFileSync } from "node:fs";
import https from "node:https";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import type { TLSSocket } from "node:tls";
import { ResumingAgent, SessionStore } from "../../src/kube/tls-resume.js";

const work = mkdtempSync(join(tmpdir(), "sd-tls-"));
const openssl = (...args: string[]) => execFileSync("openssl", args, { cwd: work, stdio: "pipe" });

/** A CA and a server certificate for 127.0.0.1 that it signed. */
function make(name: string) {
  const p = (f: string) => join(work, `${name}-${f}`);
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"];
  openssl(
    "req",
    "-x509",
    ...ec,
    "-keyout",
    p("ca.key"),
    "-out",
    p("ca.pem"),
    "-days",
    "2",
    "-subj",
    `/CN=${name} CA`,
  );
  openssl("req", ...ec, "-keyout", p("srv.key"), "-out", p("srv.csr"), "-subj", "/CN=apiserver");
  writeFileSync(p("ext"), "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n");
  openssl(
    "x509",
    "-req",
    "-in",
    p("srv.csr"),
    "-CA",
    p("ca.pem"),
    "-CAkey",
    p("ca.key"),
    "-CAcreateserial",
    "-out",
    p("srv.pem"),
    "-days",
    "2",
    "-extfile",
    p("ext"),
  );
  return { ca: readFileSync(p("ca.pem")), key: readFileSync(p("srv.key")), cert: readFileSync(p("srv.pem")) };
}

const trusted = make("trusted");
const impostor = make("impostor");

interface Server {
  port: number;
  /** Per handshake: whether it resumed a session. */
  handshakes: boolean[];
  requests: number;
  close(): Promise<void>;
}

/** A TLS server with ticket keys of its own (a restart, or another server, has others). */
async function serve(pem: { key: Buffer; cert: Buffer }): Promise<Server> {
  const s: Server = { port: 0, handshakes: [], requests: 0, close: async () => {} };
  const server = https.createServer({ key: pem.key, cert: pem.cert }, (_req, res) => {
    s.requests++;
    res.end("ok");
  });
  server.on("secureConnection", (sock: TLSSocket) => s.handshakes.push(sock.isSessionReused()));
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  s.port = (server.address() as AddressInfo).port;
  s.close = () =>
    new Promise((r) => {
      server.closeAllConnections();
      server.close(() => r());
    });
  return s;
}

const dir = join(work, "cache", "tls");
/** The identity decides the session's file, not the port: tests move the server around. */
const identity = { server: "https://apiserver.test:6443", ca: trusted.ca };

/** One command: a new store and agent, one GET. */
async function command(port: number, ca = trusted.ca): Promise<string> {
  const agent = new ResumingAgent(new SessionStore({ ...identity, ca }, dir));
  try {
    return await new Promise<string>((resolve, reject) => {
      const req = https.get({ host: "127.0.0.1", port, path: "/", ca, agent }, (res) => {
        let body = "";
        res.on("data", (d) => (body += d));
        res.on("end", () => resolve(body));
      });
      req.on("error", reject);
    });
  } finally {
    agent.destroy();
  }
}

const sessionFile = () => new SessionStore(identity, dir).file;
/** The server sends its ticket just after the handshake; the client keeps it on arrival. */
const settle = () => new Promise((r) => setTimeout(r, 50));

after(() => execFileSync("rm", ["-rf", work]));

test("the first command verifies in full and keeps the session (0600 in a 0700 folder); the next resumes it", async () => {
  const server = await serve(trusted);
  try {
    assert.equal(await command(server.port), "ok");
    await settle();
    assert.equal(statSync(sessionFile()).mode & 0o777, 0o600);
    assert.equal(statSync(dir).mode & 0o777, 0o700);
    assert.equal(await command(server.port), "ok");
    assert.equal(await command(server.port), "ok");
    assert.deepEqual(server.handshakes, [false, true, true]);
  } finally {
    await server.close();
  }
});

test("a server that does not take the session gets the full verification: the right one connects, an impostor is refused", async () => {
  const first = await serve(trusted);
  await command(first.port);
  await settle();
  await first.close();
  const kept = readFileSync(sessionFile());

  // A restarted server (new ticket keys) with the trusted certificate: verified, a new session kept.
  const restarted = await serve(trusted);
  try {
    assert.equal(await command(restarted.port), "ok");
    await settle();
    // The resume attempt never completes (the client refuses it before its Finished), the
    // full handshake does.
    assert.deepEqual(restarted.handshakes, [false]);
    assert.notDeepEqual(readFileSync(sessionFile()), kept);
  } finally {
    await restarted.close();
  }

  // Another server at that address, with a certificate of another CA: nothing reaches it.
  const other = await serve(impostor);
  try {
    await assert.rejects(command(other.port), (e: NodeJS.ErrnoException) => {
      assert.match(e.code ?? "", /VERIFY|ISSUER|CERT/);
      return true;
    });
    assert.equal(other.requests, 0);
  } finally {
    await other.close();
  }
});

test("a session under another CA is not offered, and the kubeconfig's CA still decides", async () => {
  const server = await serve(trusted);
  try {
    await command(server.port);
    await settle();
    // The same server, a kubeconfig naming the impostor's CA: refused, as without sessions.
    await assert.rejects(command(server.port, impostor.ca), /certificate/);
    assert.equal(server.handshakes.at(-1), false);
  } finally {
    await server.close();
  }
});

test("a session file others could change, or that is not a session, is not used", async () => {
  const server = await serve(trusted);
  try {
    await command(server.port);
    await settle();
    chmodSync(sessionFile(), 0o644);
    assert.equal(await command(server.port), "ok");
    chmodSync(dir, 0o755);
    assert.equal(await command(server.port), "ok");
    chmodSync(dir, 0o700);
    writeFileSync(sessionFile(), "not a TLS session", { mode: 0o600 });
    chmodSync(sessionFile(), 0o600);
    assert.equal(await command(server.port), "ok");
    await settle();
    assert.equal(await command(server.port), "ok");
    // Full, full (0644 file), full (0755 folder; the file is rewritten 0600), full after the
    // garbage, then resumed.
    assert.deepEqual(server.handshakes.slice(-1), [true]);
    assert.equal(server.handshakes.slice(0, 3).filter(Boolean).length, 0);
    assert.equal(server.requests, 5);
  } finally {
    await server.close();
  }
});
