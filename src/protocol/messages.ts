/**
 * The JSON messages of a session between the CLI and the agent, by operation. A session
 * is a hello each way, then operations one after another until the client says bye:
 *
 *   sync:   client sync → agent synced (noop), or agent send-manifest → client manifest
 *           or its diff against the agent's (data frames) + manifest-end → agent need →
 *           client blobs (data frames, agent
 *           acks) + blobs-end → agent synced. The agent may say waiting (lock held) first.
 *           Inline (agents whose hello says `inlineSync`), when the client knows which
 *           manifest it sent last: client sync with `base` + the diff against it + manifest-end
 *           [+ the diff's new blobs + blobs-end] at once → agent need (the blobs still
 *           missing, usually none) → … → synced; or, when the workspace holds neither that
 *           base nor the snapshot, send-manifest and on as above.
 *   check:  client check → agent check.
 *   build:  client build → agent waiting / queued / phase / log … → agent built.
 *   status: client status → agent status.        ping → pong.
 *   gc:     client gc → agent gc (what went, or with dryRun what would go; nothing else changes).
 *
 * Keepalives ({ t: "keepalive" } → { t: "keepalive-ack" }, see KEEPALIVE_INTERVAL_MS) may
 * come at any point once the agent's hello said `keepalive: true`; the connections answer and
 * drop them, so no operation sees them.
 *
 * Any step may be answered with an error, after which the agent closes the connection.
 * What is sent is typed here; what is received is untrusted (the agent validates every
 * field, the client reads fields defensively), so the receiving side sees `Message`.
 */
import type { AgentErrorCode } from "./constants.js";

/** Any message as received: a type tag and whatever else the peer sent. */
export type Message = { t: string; [key: string]: unknown };

// ── Client → agent ──────────────────────────────────────────────────────────────

export interface ClientHello {
  t: "hello";
  protocol: number;
  client: string;
}

/** Asks for the workspace `user`/`project` to hold the snapshot with manifest `digest`. */
export interface SyncRequest {
  t: "sync";
  user: string;
  project: string;
  digest: string;
  /** Who syncs (user@host), shown to others waiting for the workspace lock. */
  client: string;
  /**
   * Inline: the manifest follows at once, as a diff against the manifest with this digest
   * (the one this client sent last), in data frames + manifest-end with the same `base`.
   */
  base?: string;
  /**
   * Inline, with `base`: after manifest-end, the blob stream of the diff's files (each
   * content once; at most INLINE_BLOBS_MAX bytes in all) + blobs-end, before any need.
   */
  blobs?: boolean;
}

export interface ManifestEnd {
  t: "manifest-end";
  /**
   * The data frames held a ManifestDiff (protocol/manifest.ts) against the manifest with this
   * digest, which the agent offered (SendManifest.diff), instead of the whole manifest.
   */
  base?: string;
}

export interface BlobsEnd {
  t: "blobs-end";
}

/** The client gives up on the sync (a file changed while it was sent): nothing is switched. */
export interface Abort {
  t: "abort";
  reason: string;
}

/** Does the registry hold `ref`? If not, why the cache missed (see CheckReply). */
export interface CheckRequest {
  t: "check";
  ref: string;
  user: string;
  project: string;
  /** The manifest digest of the snapshot. */
  manifest: string;
  settings: Record<string, unknown>;
}

/** A BuildKit secret: `data` base64. */
export interface BuildSecret {
  id: string;
  data: string;
}

/** Builds the workspace's current tree (which must hold `manifest`) as `ref` and pushes it. */
export interface BuildRequest {
  t: "build";
  user: string;
  project: string;
  manifest: string;
  ref: string;
  /** Relative to the tree; default "Dockerfile". */
  dockerfile?: string;
  buildArgs?: Record<string, string>;
  target?: string;
  platform?: string;
  settings?: Record<string, unknown>;
  labels?: Record<string, string>;
  secrets?: BuildSecret[];
}

export interface StatusRequest {
  t: "status";
}

/**
 * Garbage collection on the build server: workspaces unused for `olderThanSeconds`
 * (never one whose lock is held), the blobs no remaining workspace's trees name, and,
 * when `keepCacheBytes` is given, the builder's layer cache down to that size.
 */
export interface GcRequest {
  t: "gc";
  dryRun: boolean;
  olderThanSeconds: number;
  keepCacheBytes?: number;
}

export interface Ping {
  t: "ping";
}

export interface Bye {
  t: "bye";
}

/** Anything heard from the client? Answered with KeepaliveAck by the connection itself. */
export interface Keepalive {
  t: "keepalive";
}

export type ClientMessage =
  | ClientHello
  | SyncRequest
  | ManifestEnd
  | BlobsEnd
  | Abort
  | CheckRequest
  | BuildRequest
  | StatusRequest
  | GcRequest
  | Ping
  | Bye
  | Keepalive;

// ── Agent → client ──────────────────────────────────────────────────────────────

export interface AgentHello {
  t: "hello";
  protocol: number;
  /** The agent's version. */
  agent: string;
  /** The agent answers keepalives at any point of the session. */
  keepalive?: boolean;
  /** The agent takes a sync's manifest diff and blobs inline (SyncRequest.base, .blobs). */
  inlineSync?: boolean;
  /**
   * The data volume's id, made when the volume was first used: another id means other
   * workspaces (a new or another build server), so what this machine sent last to a
   * workspace is not what it holds.
   */
  volume?: string;
}

/** The workspace lock is held by `holder` since `since` (ms since the epoch). */
export interface Waiting {
  t: "waiting";
  holder: string;
  since: number;
}

/** The workspace holds something else (`have`, its digest): send the manifest. */
export interface SendManifest {
  t: "send-manifest";
  have: string | null;
  /** The agent accepts a diff against `have` instead of the whole manifest (see ManifestEnd). */
  diff?: boolean;
}

/**
 * The blobs to send: a bitmap (base64, bit i of byte i>>3 = file i of the manifest's
 * files in order) marking the first file with each content the agent lacks.
 */
export interface Need {
  t: "need";
  count: number;
  files: string;
}

/** Compressed blob-stream bytes consumed so far. */
export interface Ack {
  t: "ack";
  bytes: number;
}

export interface Synced {
  t: "synced";
  noop: boolean;
  digest: string;
  added: number;
  changed: number;
  removed: number;
  /** A few changed paths ("+ a", "~ b", "- c"). */
  sample: string[];
  /** Files in the workspace's tree. */
  files?: number;
  /** Blobs received. */
  blobs?: number;
}

export type CheckReply =
  | { t: "check"; exists: true; digest: string; labels: Record<string, string> }
  | { t: "check"; exists: false; reason?: string; lastRef?: string };

/** The build waits for a slot: `position` builds are ahead of it. */
export interface Queued {
  t: "queued";
  position: number;
}

export interface Phase {
  t: "phase";
  phase: "build" | "push";
}

/** One line of build or push output. */
export interface Log {
  t: "log";
  line: string;
}

export interface Built {
  t: "built";
  ref: string;
  /** The pushed image's manifest digest (sha256:…). */
  digest: string;
  buildMs: number;
  pushMs: number;
}

/** One workspace as `status` lists it. */
export interface WorkspaceSummary {
  user: string;
  project: string;
  digest: string;
  files: number;
  bytes: number;
  lastSync: string;
}

export interface Status {
  t: "status";
  agent: string;
  builder: string;
  disk: { total: number; free: number };
  blobs: number;
  workspaces: WorkspaceSummary[];
}

/** A workspace garbage collection removes (or would). */
export interface GcWorkspace {
  user: string;
  project: string;
  /** When it was last synced, built or synced without change (ISO time). */
  lastUsed: string;
  /** The disk space its removal frees (files whose every hard link goes with it), in bytes. */
  bytes: number;
}

export interface GcReply {
  t: "gc";
  dryRun: boolean;
  workspaces: GcWorkspace[];
  /** Idle workspaces left alone, and why (a sync or build holds their lock). */
  skipped: { user: string; project: string; reason: string }[];
  /** Blobs no remaining workspace names: how many, and the space they free (bytes). */
  blobs: { count: number; bytes: number };
  /**
   * The builder's layer cache, when asked to prune it: its size before, the size kept,
   * and what the prune freed (with dryRun: what it would free at most, from the cache's
   * reclaimable size; the builder decides which records go).
   */
  cache?: { builder: string; size: number; keep: number; freed: number };
  /** Workspaces and blobs together (exact); the cache's is on its own. */
  freed: number;
  disk: { total: number; free: number };
}

export interface Pong {
  t: "pong";
}

export interface KeepaliveAck {
  t: "keepalive-ack";
}

/** The operation failed; the agent closes the connection after it. */
export interface ErrorReply {
  t: "error";
  code: AgentErrorCode;
  message: string;
  hint?: string;
  /** Build and push failures: the failing step and the last lines of its output. */
  step?: string;
  tail?: string[];
  /** What kind of push or registry failure (auth, notFound, unreachable, …). */
  kind?: string;
  /**
   * A sync: the blob whose bytes did not hash to its name. The client checks only the size
   * of what it sends and leaves the hash to the agent, so this is how it learns that a file
   * changed after the scan.
   */
  blob?: string;
}

export type AgentMessage =
  | AgentHello
  | Waiting
  | SendManifest
  | Need
  | Ack
  | Synced
  | CheckReply
  | Queued
  | Phase
  | Log
  | Built
  | Status
  | GcReply
  | Pong
  | KeepaliveAck
  | ErrorReply;
