/**
 * What the CLI and the build-server agent agree on. Bump PROTOCOL_VERSION on any
 * incompatible change; both sides refuse a peer with another version.
 */
export const PROTOCOL_VERSION = 2;
/** The agent's socket inside the build-server pod; the exec relay connects here. */
export const AGENT_SOCKET = "/run/snapdeploy/agent.sock";
/**
 * The agent's TCP port on the build-server pod's loopback, reached by port-forward
 * (listening on 127.0.0.1 only: nothing outside the pod can connect to it directly).
 */
export const AGENT_PORT = 7611;
/**
 * The exec relay (for users who may exec but not port-forward): the agent bundle's own
 * relay copies the exec session's stdin/stdout to and from the agent's socket, and exits
 * once the agent has closed its side.
 */
export const RELAY_COMMAND = ["node", "/opt/snapdeploy/agent.cjs", "relay"];
/** Unacknowledged compressed bytes the client may have in flight while sending blobs. */
export const SEND_WINDOW = 8 * 1024 * 1024;
/**
 * The most a sync sends inline (SyncRequest.blobs): the uncompressed bytes of the diff's
 * files. Below SEND_WINDOW, so the client never waits for an ack before the agent speaks.
 */
export const INLINE_BLOBS_MAX = 4 * 1024 * 1024;
/** The agent acknowledges at least this often (in compressed bytes consumed). */
export const ACK_EVERY = 1024 * 1024;
/** Size of the binary data frames the client sends. */
export const DATA_CHUNK = 256 * 1024;
/**
 * The first byte of each data frame of the blob stream: the rest is a raw-deflate
 * stream of its own (BATCH_DEFLATE) or stored as it is (BATCH_RAW). Inflated, a frame
 * holds at most MAX_BATCH bytes of blob records.
 */
export const BATCH_RAW = 0;
export const BATCH_DEFLATE = 1;
export const MAX_BATCH = 4 * DATA_CHUNK;
/** Blob record header in the blob stream: 32-byte sha256 + 8-byte big-endian size. */
export const BLOB_HEADER = 40;
/**
 * Keepalive: the client sends { t: "keepalive" } every KEEPALIVE_INTERVAL_MS, at any point
 * of a session (between and inside operations); the agent's connection answers each with
 * { t: "keepalive-ack" } at once, without the operation in progress seeing either. A side
 * that has heard nothing at all from its peer for its deadline fails the connection: the
 * client after KEEPALIVE_TIMEOUT_MS (so a frozen build server or network path is reported
 * within 15-16 s, never a silent hang), the agent after AGENT_KEEPALIVE_TIMEOUT_MS (once the
 * client has sent a keepalive; it then drops the session: a build is cancelled, the
 * workspace lock released). Time spent with our own reading paused (backpressure) or our own
 * event loop blocked does not count against the peer.
 */
export const KEEPALIVE_INTERVAL_MS = 5_000;
export const KEEPALIVE_TIMEOUT_MS = 15_000;
export const AGENT_KEEPALIVE_TIMEOUT_MS = 30_000;
/** Names of users and projects (workspace path segments). */
export const NAME_PATTERN = /^[a-z0-9](?:[a-z0-9._-]{0,61}[a-z0-9])?$/;

/** Error codes the agent reports; the CLI maps them to exit codes. */
export type AgentErrorCode =
  | "input"
  | "noSpace"
  | "protocol"
  | "internal"
  | "build"
  | "push"
  | "registry"
  | "busy"
  /** Refused by the build server's policy (what it may push, set at install). */
  | "denied"
  /** The agent is stopping (its pod deleted, evicted or replaced): the operation is cancelled. */
  | "stopping"
  /** The builder daemon beside the agent is not answering (stopped, restarting). */
  | "builder";

/**
 * The labels a snapshot image carries. The CLI sends user, created and snapshot; the agent
 * checks them against the build (the workspace's user, the tag's snapshot), puts its own
 * clock's time in created, and adds the build server that built it.
 */
export const IMAGE_LABEL = {
  user: "dev.snapdeploy.user",
  created: "dev.snapdeploy.created",
  snapshot: "dev.snapdeploy.snapshot",
  buildServer: "dev.snapdeploy.build-server",
} as const;

/** The agent's periodic gc, as server install sets it in the agent's environment (agent/gc-schedule.ts). */
export const GC_ENV = {
  every: "SNAPDEPLOY_GC_EVERY_SECONDS",
  olderThan: "SNAPDEPLOY_GC_OLDER_THAN_SECONDS",
  keepCache: "SNAPDEPLOY_GC_KEEP_CACHE_BYTES",
} as const;
