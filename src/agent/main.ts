/**
 * The build-server agent: the pod's main process. It owns the blob store, the
 * workspaces and their locks, and serves clients on a unix socket inside the pod;
 * clients reach that socket only through `kubectl exec`-style sessions relayed by
 * the Kubernetes API, so RBAC on pods/exec is the gate.
 *
 * Usage: node agent.cjs serve      (reads SNAPDEPLOY_DATA, SNAPDEPLOY_VOLUME, SNAPDEPLOY_BUILDER)
 *        node agent.cjs relay      (the exec relay: stdin/stdout <-> the agent's socket)
 */
import { promises as fs } from "node:fs";
import net from "node:net";
import path from "node:path";
import { AGENT_PORT, AGENT_SOCKET } from "../protocol/constants.js";
import { Connection } from "../protocol/connection.js";
import type { AgentMessage } from "../protocol/messages.js";
import { BlobStore, StoreGate } from "./blobs.js";
import { BuildQueue } from "./build.js";
import { policyFromEnv } from "./policy.js";
import { relay } from "./relay.js";
import { RegistryClient } from "./registry.js";
import { gcScheduleFromEnv, startGcSchedule } from "./gc-schedule.js";
import { type AgentContext, serveSession } from "./session.js";
import { volumeId } from "./volume-id.js";
import { WorkspaceLocks } from "./workspace.js";

declare const SNAPDEPLOY_VERSION: string | undefined;

function log(line: string) {
  process.stdout.write(`${new Date().toISOString()} ${line}\n`);
}

export async function serve(opts: {
  dataDir: string;
  socket: string;
  port: number;
  volumeName: string;
  builder: string;
}) {
  const blobs = new BlobStore(path.join(opts.dataDir, "blobs"));
  await blobs.init();
  const workspacesDir = path.join(opts.dataDir, "workspaces");
  await fs.mkdir(workspacesDir, { recursive: true });
  const ctx: AgentContext = {
    version: typeof SNAPDEPLOY_VERSION === "string" ? SNAPDEPLOY_VERSION : "dev",
    dataDir: opts.dataDir,
    volumeName: opts.volumeName,
    volume: await volumeId(opts.dataDir),
    blobs,
    store: new StoreGate(),
    locks: new WorkspaceLocks(),
    workspacesDir,
    builder: opts.builder,
    log,
    registry: new RegistryClient({
      insecure: (process.env.SNAPDEPLOY_INSECURE_REGISTRIES ?? "").split(",").filter(Boolean),
      dockerConfigFile: process.env.DOCKER_CONFIG
        ? path.join(process.env.DOCKER_CONFIG, "config.json")
        : undefined,
    }),
    buildkit:
      opts.builder === "buildkit" || opts.builder === "buildkit-privileged"
        ? {
            buildctl: process.env.SNAPDEPLOY_BUILDCTL ?? "buildctl",
            addr: process.env.BUILDKIT_HOST ?? "unix:///run/buildkit/buildkitd.sock",
            cache: process.env.SNAPDEPLOY_CACHE === "registry" ? "registry" : undefined,
            compression: process.env.SNAPDEPLOY_COMPRESSION === "gzip" ? "gzip" : "zstd",
            dockerConfigFile: process.env.DOCKER_CONFIG
              ? path.join(process.env.DOCKER_CONFIG, "config.json")
              : undefined,
          }
        : undefined,
    builds: new BuildQueue(Number(process.env.SNAPDEPLOY_MAX_BUILDS ?? 2)),
    secretsDir: process.env.SNAPDEPLOY_SECRETS ?? "/run/snapdeploy/secrets",
    policy: policyFromEnv(process.env),
  };
  await fs.mkdir(path.dirname(opts.socket), { recursive: true });
  await fs.rm(opts.socket, { force: true });
  // Open sessions, to be told when the agent stops.
  const sessions = new Set<Connection<AgentMessage>>();
  const accept = (socket: net.Socket) => {
    const conn = new Connection<AgentMessage>(socket);
    sessions.add(conn);
    void serveSession(conn, ctx).finally(() => sessions.delete(conn));
  };
  const server = net.createServer(accept);
  await new Promise<void>((resolve) => server.listen(opts.socket, resolve));
  // The same sessions on the pod's loopback, for port-forward (see AGENT_PORT).
  const tcp = net.createServer((socket) => {
    socket.setNoDelay(true);
    accept(socket);
  });
  await new Promise<void>((resolve, reject) => {
    tcp.once("error", reject);
    tcp.listen(opts.port, "127.0.0.1", resolve);
  });
  const schedule = gcScheduleFromEnv(process.env);
  if (schedule) startGcSchedule(ctx, schedule);
  log(
    `snapdeploy agent ${ctx.version} ready: ${blobs.count} blobs, data in ${opts.dataDir}, builder ${opts.builder}`,
  );
  // Stopping (the pod deleted, evicted or replaced): each client is told at once, rather
  // than finding its connection closed, and its operation ends with the process.
  const stop = async () => {
    log(`stopping; telling ${sessions.size} open sessions`);
    server.close();
    tcp.close();
    const pod = process.env.HOSTNAME ? `pod ${process.env.HOSTNAME}` : "pod";
    const told = [...sessions].map((c) =>
      c
        .send({
          t: "error",
          code: "stopping",
          message: `its ${pod} is stopping (deleted, evicted or replaced by a new version); this operation was cancelled`,
          hint: "run the command again once its replacement is ready: snapdeploy server status shows it",
        })
        .catch(() => {}),
    );
    await Promise.race([Promise.all(told), new Promise((r) => setTimeout(r, 2000))]);
    process.exit(0);
  };
  process.once("SIGTERM", () => void stop());
  process.once("SIGINT", () => void stop());
  return server;
}

const [cmd] = process.argv.slice(2);
if (cmd === "serve") {
  serve({
    dataDir: process.env.SNAPDEPLOY_DATA ?? "/data",
    socket: process.env.SNAPDEPLOY_SOCKET ?? AGENT_SOCKET,
    port: Number(process.env.SNAPDEPLOY_PORT ?? AGENT_PORT),
    volumeName: process.env.SNAPDEPLOY_VOLUME ?? "the data volume",
    builder: process.env.SNAPDEPLOY_BUILDER ?? "docker-socket",
  }).catch((e) => {
    log(`fatal: ${(e as Error).stack ?? e}`);
    process.exit(1);
  });
} else if (cmd === "relay") {
  relay(process.env.SNAPDEPLOY_SOCKET ?? AGENT_SOCKET);
} else if (cmd !== undefined) {
  process.stderr.write(`usage: agent serve | relay\n`);
  process.exit(2);
}
