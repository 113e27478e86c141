/**
 * Hostile input for the build-server agent, property-based (fast-check), shared by the unit
 * suite (a fixed number of cases with a fixed seed) and `npm run bench -- fuzz` (a longer
 * run). The agent is the real one (serveSession over a real unix socket, a real blob store
 * and real workspaces under a temporary data folder); the client side is scripted here and
 * sends what no honest CLI sends. Two stand-ins, because no real part exists without a
 * cluster: the registry is 127.0.0.1:1 (nothing listens there, so a lookup fails at once as
 * the real client sees an unreachable registry), and buildctl is a shell script that prints
 * its arguments and either fails or writes a digest as BuildKit's metadata file would (the
 * daemon's socket it is given only takes connections, as the agent checks it is up first).
 *
 * After every case: the agent answered each failed operation with an error the CLI shows
 * (a known code, a message) and closed, its session ended, nothing outside its data and
 * secrets folders changed (a sentinel folder next to them), every symlink in a workspace
 * tree stays inside it, no secret file was left behind, and nothing was thrown anywhere.
 */
import { chmodSync, promises as fs } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { BlobStore, StoreGate } from "../../../src/agent/blobs.js";
import { BuildQueue } from "../../../src/agent/build.js";
import { RegistryClient } from "../../../src/agent/registry.js";
import { type AgentContext, serveSession } from "../../../src/agent/session.js";
import { WorkspaceLocks } from "../../../src/agent/workspace.js";
import { Connection } from "../../../src/protocol/connection.js";
import type { AgentMessage } from "../../../src/protocol/messages.js";

// ── The agent, in this process ───────────────────────────────────────────────────

export interface FuzzAgent {
  root: string;
  dataDir: string;
  secretsDir: string;
  outside: string;
  socket: string;
  ctx: AgentContext;
  /** Sessions still running. */
  active: number;
  /** The manifest each workspace holds after the syncs so far (syncs that failed switch nothing). */
  synced: Map<string, string>;
  /** What escaped: uncaught exceptions and unhandled rejections while it ran. */
  thrown: unknown[];
  stop(): Promise<void>;
}

const FAKE_BUILDCTL = `#!/bin/sh
# Stand-in for buildctl: prints its arguments; "fail" in a label makes it fail,
# otherwise it writes the metadata file BuildKit would.
meta=""
fail=""
prev=""
for a in "$@"; do
  echo "ARG $a"
  if [ "$prev" = "--metadata-file" ]; then meta="$a"; fi
  case "$a" in label:fail=*) fail=1 ;; esac
  prev="$a"
done
if [ -n "$fail" ]; then echo "#1 ERROR: stand-in failure"; exit 1; fi
printf '{"containerimage.digest":"sha256:%s"}' ${"0".repeat(64)} > "$meta"
`;

export async function startAgent(): Promise<FuzzAgent> {
  const root = await fs.mkdtemp(path.join(tmpdir(), "snapdeploy-fuzz-"));
  const dataDir = path.join(root, "data");
  const secretsDir = path.join(root, "secrets");
  const outside = path.join(root, "outside");
  const bin = path.join(root, "bin");
  await fs.mkdir(outside);
  await fs.mkdir(bin);
  await fs.mkdir(secretsDir);
  await fs.writeFile(path.join(outside, "marker"), "original\n");
  await fs.writeFile(path.join(bin, "buildctl"), FAKE_BUILDCTL);
  chmodSync(path.join(bin, "buildctl"), 0o755);
  const daemonSocket = path.join(bin, "buildkitd.sock");
  const daemon = net.createServer((c) => c.end());
  await new Promise<void>((resolve) => daemon.listen(daemonSocket, resolve));
  const blobs = new BlobStore(path.join(dataDir, "blobs"));
  await blobs.init();
  const workspacesDir = path.join(dataDir, "workspaces");
  await fs.mkdir(workspacesDir, { recursive: true });
  const ctx: AgentContext = {
    version: "fuzz",
    dataDir,
    volumeName: "the fuzz data folder",
    blobs,
    store: new StoreGate(),
    locks: new WorkspaceLocks(),
    workspacesDir,
    builder: "buildkit",
    log: () => {},
    registry: new RegistryClient({ insecure: ["127.0.0.1:1", "localhost:1"], timeoutMs: 2000 }),
    buildkit: { buildctl: path.join(bin, "buildctl"), addr: `unix://${daemonSocket}` },
    builds: new BuildQueue(2),
    secretsDir,
    // Pushes only to 127.0.0.1:1/team/…, snapshot tags only: refused refs are part of the input.
    policy: { repositories: ["127.0.0.1:1/team"], tagPrefixes: [] },
  };
  const thrown: unknown[] = [];
  const onThrow = (e: unknown) => thrown.push(e);
  process.on("uncaughtException", onThrow);
  process.on("unhandledRejection", onThrow);
  const socket = path.join(root, "agent.sock");
  const agent: FuzzAgent = {
    root,
    dataDir,
    secretsDir,
    outside,
    socket,
    ctx,
    active: 0,
    synced: new Map(),
    thrown,
    async stop() {
      server.close();
      daemon.close();
      process.off("uncaughtException", onThrow);
      process.off("unhandledRejection", onThrow);
      await fs.rm(root, { recursive: true, force: true });
    },
  };
  const server = net.createServer((s) => {
    agent.active++;
    serveSession(new Connection<AgentMessage>(s), ctx).then(
      () => agent.active--,
      (e) => {
        agent.active--;
        thrown.push(e);
      },
    );
  });
  await new Promise<void>((resolve) => server.listen(socket, resolve));
  return agent;
}
