/** What every session of the agent shares: the stores, the queues and the settings. */
import type { Connection } from "../protocol/connection.js";
import type { AgentMessage } from "../protocol/messages.js";
import type { BlobStore, StoreGate } from "./blobs.js";
import type { PushPolicy } from "./policy.js";
import type { BuildQueue } from "./build.js";
import type { RegistryClient } from "./registry.js";
import type { WorkspaceLocks } from "./workspace.js";

export interface AgentContext {
  registry: RegistryClient;
  builds: BuildQueue;
  /** A memory-backed folder for BuildKit secret files, removed after each build. */
  secretsDir: string;
  version: string;
  dataDir: string;
  /** How users should name the volume in messages (e.g. "PVC snapdeploy/snapdeploy-data"). */
  volumeName: string;
  /** The data volume's id (volumeId in workspace.ts), said in the hello. */
  volume?: string;
  blobs: BlobStore;
  /** Shared by syncs, exclusive for garbage collection of blobs. */
  store: StoreGate;
  locks: WorkspaceLocks;
  workspacesDir: string;
  builder: string;
  /** Set when the builder is the pod's own BuildKit daemon (else builds use docker). */
  buildkit?: {
    buildctl: string;
    addr: string;
    dockerConfigFile?: string;
    cache?: "registry";
    compression?: "gzip" | "zstd";
  };
  log: (line: string) => void;
  /** What builds may push (set at install); undefined: anything. */
  policy?: PushPolicy;
}

/** The connection of an agent session: it sends the agent's messages. */
export type AgentConnection = Connection<AgentMessage>;
