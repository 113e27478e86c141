/**
 * Reaching the build-server agent: find its ready pod, connect to the agent through the
 * Kubernetes API, and say hello. The connection is a port-forward to the agent's port on
 * the pod's loopback (no process started in the pod); for users who may exec but not
 * port-forward it is an exec of a relay into the agent's socket, whose exit status is
 * checked at the end. Either way RBAC on the build server's namespace is the gate.
 */
import { isLoopbackUrl } from "../util/net.js";
import type { V1Pod, V1PodList } from "@kubernetes/client-node";
import { mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import { UserError } from "../errors.js";
import { VERSION } from "../version.js";
import { type ClusterAccess, getJson } from "../kube/access.js";
import { describeRight, parseRefusal, ROLES_HINT } from "../kube/api-errors.js";
import {
  AGENT_PORT,
  KEEPALIVE_INTERVAL_MS,
  KEEPALIVE_TIMEOUT_MS,
  PROTOCOL_VERSION,
  RELAY_COMMAND,
} from "../protocol/constants.js";
import { type ChannelStream, Refused } from "../transport/channels.js";
import { openExec } from "../transport/exec.js";
import { Connection, RemoteError, StalledConnection } from "../protocol/connection.js";
import { ProtocolError } from "../protocol/frames.js";
import { openPortForward } from "../transport/portforward.js";
import { cacheDir } from "../util/cache.js";
import { within } from "../util/time.js";
import { AGENT_CONTAINER, SELECTOR } from "./objects.js";

export type Transport = "port-forward" | "exec";

export interface AgentSession {
  conn: Connection;
  stream: ChannelStream;
  transport: Transport;
  pod: string;
  agentVersion: string;
  /** The agent takes a sync's manifest diff and blobs inline (protocol/messages.ts). */
  inlineSync: boolean;
  /**
   * The API server is on this machine (a loopback address: kind, k3d, Docker Desktop, a
   * local cluster), so the link's every hop is this machine's CPU too.
   */
  sameHost: boolean;
  /** The build server's data volume id (its hello), when it says one. */
  volume?: string;
  /** Says bye and closes; for an exec relay, waits for it to exit and checks its status. */
  finish(): Promise<void>;
  /** Tears the session down at once (Ctrl-C): the remote side sees its connection vanish. */
  abort(): void;
}

export function isReady(p: V1Pod): boolean {
  return (
    p.status?.phase === "Running" &&
    !p.metadata?.deletionTimestamp &&
    (p.status?.conditions ?? []).some((c) => c.type === "Ready" && c.status === "True")
  );
}

export async function findServerPod(cluster: ClusterAccess, namespace: string): Promise<V1Pod[]> {
  const list = await getJson<V1PodList>(
    cluster,
    `/api/v1/namespaces/${encodeURIComponent(namespace)}/pods?labelSelector=${encodeURIComponent(SELECTOR)}`,
    `list pods in namespace ${namespace}`,
  );
  return list.items ?? [];
}

/**
 * Opens a session with the agent. The pod that served the last session is tried first,
 * without looking it up (one API round trip less); if it no longer serves (deleted,
 * replaced, stopping), the ready pod is looked up and remembered. Refusals of permission
 * and an unreachable API server are final either way.
 */
export async function connectAgent(cluster: ClusterAccess, namespace: string): Promise<AgentSession> {
  const key = `${cluster.server} ${namespace}`;
  const remembered = rememberedPods()[key];
  let stalledThere: UserError | undefined;
  if (remembered) {
    try {
      return await openSession(cluster, namespace, remembered);
    } catch (e) {
      if (e instanceof UserError && (e.code === "permission" || e.code === "cluster")) throw e;
      if (e instanceof UserError && e.cause instanceof StalledConnection) stalledThere = e;
    }
  }
  const pod = await readyPod(cluster, namespace);
  // A pod that is still the ready one but stopped answering would only stall again.
  if (stalledThere && pod === remembered) throw stalledThere;
  const session = await openSession(cluster, namespace, pod);
  if (pod !== remembered) rememberPod(key, pod);
  return session;
}

/** Where the last session's pod is remembered, per API server and namespace. */
const PODS_FILE = () => cacheDir("server-pods.json");

function rememberedPods(): Record<string, string> {
  try {
    const data = JSON.parse(readFileSync(PODS_FILE(), "utf8")) as unknown;
    return data && typeof data === "object" ? (data as Record<string, string>) : {};
  } catch {
    return {};
  }
}

/** Best effort: a cache that cannot be written only costs the lookup next time. */
function rememberPod(key: string, pod: string): void {
  const file = PODS_FILE();
  const tmp = `${file}.${process.pid}.tmp`;
  try {
    const pods = { ...rememberedPods(), [key]: pod };
    mkdirSync(path.dirname(file), { recursive: true });
    writeFileSync(tmp, JSON.stringify(pods), { mode: 0o600 });
    renameSync(tmp, file);
  } catch {
    rmSync(tmp, { force: true });
  }
}

async function readyPod(cluster: ClusterAccess, namespace: string): Promise<string> {
  const pods = await findServerPod(cluster, namespace);
  const pod = pods.find(isReady);
  if (!pod?.metadata?.name) {
    throw new UserError(
      "server",
      pods.length
        ? `the build server in namespace ${namespace} is not ready (pod ${pods[0]?.metadata?.name}: ${pods[0]?.status?.phase})`
        : `no build server found in namespace ${namespace}`,
      { hint: pods.length ? "see: snapdeploy server status" : "install it with: snapdeploy server install" },
    );
  }
  return pod.metadata.name;
}

async function openSession(cluster: ClusterAccess, namespace: string, name: string): Promise<AgentSession> {
  const { stream, transport } = await openAgentStream(cluster, namespace, name);
  const conn = new Connection(stream);
  // The hello must come within the deadline too (a frozen agent still has its port open).
  conn.keepalive(KEEPALIVE_TIMEOUT_MS);
  const relayFailure = async (e: unknown): Promise<Error> => {
    if (e instanceof RemoteError || e instanceof UserError) return e;
    if (e instanceof StalledConnection) return stalled(e, name);
    const st = await within(stream.status, 2000, null);
    const detail = stream.errorText.trim() || st?.message || (e as Error).message;
    const refused = transport === "port-forward" && /connection refused/.test(detail);
    return new UserError("server", `lost the connection to the build server (pod ${name}): ${detail}`, {
      hint: refused
        ? `its agent does not listen on port ${AGENT_PORT}: is the build server older than this CLI? update it with: snapdeploy server install`
        : "run the command again; if it keeps failing, see: snapdeploy server status",
      cause: e,
    });
  };
  try {
    await conn.send({ t: "hello", protocol: PROTOCOL_VERSION, client: `snapdeploy/${VERSION}` });
    const hello = await conn.expect("hello");
    // Agents that answer keepalives say so; with older ones a long silent build step is normal.
    if (hello.keepalive === true) conn.keepalive(KEEPALIVE_TIMEOUT_MS, KEEPALIVE_INTERVAL_MS);
    else conn.stopKeepalive();
    return {
      conn,
      stream,
      transport,
      pod: name,
      agentVersion: String(hello.agent),
      inlineSync: hello.inlineSync === true,
      sameHost: isLoopbackUrl(cluster.server),
      volume: typeof hello.volume === "string" && hello.volume.length <= 64 ? hello.volume : undefined,
      async finish() {
        conn.stopKeepalive();
        if (transport === "port-forward") {
          // Destroying the stream drops what it still buffers: the bye must have left.
          await conn.sendLast({ t: "bye" }).catch(() => {});
          // Nothing runs in the pod for us, so there is no exit status to wait for:
          // the agent ends the session on bye (or on the connection closing).
          stream.close();
          stream.destroy();
          if (stream.errorText.trim()) {
            throw new UserError(
              "server",
              `the port-forward to the build server failed: ${stream.errorText.trim()}`,
            );
          }
          return;
        }
        await conn.send({ t: "bye" }).catch(() => {});
        conn.close();
        const st = await within(stream.status, 10_000, null);
        stream.destroy();
        if (st?.exitCode !== 0) {
          throw new UserError(
            "server",
            `the relay into the build server exited abnormally (${st?.message ?? "no exit status"})`,
            {
              details: stream.errorText.trim() ? stream.errorText.trim().split("\n").slice(-5) : undefined,
            },
          );
        }
      },
      abort() {
        stream.destroy();
      },
    };
  } catch (e) {
    const err = await relayFailure(e);
    stream.destroy();
    throw err;
  }
}

/**
 * Port-forward, or the exec relay when port-forward is refused (403) or
 * SNAPDEPLOY_TRANSPORT=exec asks for it; a refusal of both names both permissions.
 */
async function openAgentStream(
  cluster: ClusterAccess,
  namespace: string,
  pod: string,
): Promise<{ stream: ChannelStream; transport: Transport }> {
  let forwardRefused: Refused | undefined;
  if (process.env.SNAPDEPLOY_TRANSPORT !== "exec") {
    try {
      const stream = await openPortForward(cluster, { namespace, pod, port: AGENT_PORT });
      return { stream, transport: "port-forward" };
    } catch (e) {
      if (!(e instanceof Refused)) throw e;
      forwardRefused = e;
    }
  }
  try {
    const stream = await openExec(cluster, {
      namespace,
      pod,
      container: AGENT_CONTAINER,
      command: RELAY_COMMAND,
    });
    return { stream, transport: "exec" };
  } catch (e) {
    if (!(e instanceof Refused)) throw e;
    throw bothRefused(namespace, pod, forwardRefused, e);
  }
}

/** Port-forward and exec both refused: the rights the API server named, and the rule that grants them. */
function bothRefused(namespace: string, pod: string, forward: Refused | undefined, exec: Refused): UserError {
  const named = (r: Refused | undefined, sub: string) =>
    (r && parseRefusal(r.message)) ?? { verb: "create", resource: `pods/${sub}`, group: "", namespace };
  const missing = [
    ...(forward || process.env.SNAPDEPLOY_TRANSPORT !== "exec" ? [named(forward, "portforward")] : []),
    named(exec, "exec"),
  ];
  const user = missing.map((r) => (r as { user?: string }).user).find(Boolean);
  return new UserError(
    "permission",
    `you are not allowed to port-forward to or exec into pod ${pod} in namespace ${namespace}: missing RBAC permission ${missing.map(describeRight).join(" (or ")}${missing.length > 1 ? ")" : ""} in namespace ${namespace}`,
    {
      details: [
        ...(user ? [`as user ${user}`] : []),
        `check with: kubectl auth can-i ${missing[0]?.verb} ${missing[0]?.resource} -n ${namespace}`,
      ],
      hint: `ask a cluster admin for a Role in namespace ${namespace} with the rule {apiGroups: [""], resources: ["pods/portforward"], verbs: ["get", "create"]} (WebSocket clients are asked for "get", newer API servers also ask "create"), and "get","list" on "pods"; ${ROLES_HINT}`,
    },
  );
}

/** The build server stopped answering: its process or the path to it is frozen. */
function stalled(e: StalledConnection, pod: string): UserError {
  return new UserError(
    "server",
    `the build server stopped answering: nothing arrived from pod ${pod} for ${Math.round(e.silentMs / 1000)} s (keepalive deadline ${KEEPALIVE_TIMEOUT_MS / 1000} s)`,
    {
      hint: "its agent or the network path to it is frozen or overloaded; see: snapdeploy server status. An interrupted sync leaves the previous workspace intact; run the command again",
      cause: e,
    },
  );
}

/** Runs `fn` with a session, mapping transport failures to clear errors and always finishing it. */
export async function withAgent<T>(
  cluster: ClusterAccess,
  namespace: string,
  fn: (s: AgentSession) => Promise<T>,
  signal?: AbortSignal,
): Promise<T> {
  if (signal?.aborted) throw new UserError("interrupted", "interrupted before the build server was reached");
  const s = await connectAgent(cluster, namespace);
  let interrupted = false;
  const onSigint = () => {
    interrupted = true;
    s.abort();
  };
  process.once("SIGINT", onSigint);
  signal?.addEventListener("abort", onSigint, { once: true });
  try {
    const out = await fn(s);
    await s.finish();
    return out;
  } catch (e) {
    s.abort();
    if (interrupted) {
      throw new UserError("interrupted", "interrupted: the build server stopped the operation", {
        hint: "an interrupted sync leaves the previous workspace intact; the next sync completes it",
      });
    }
    if (e instanceof RemoteError) {
      const code =
        e.code === "input"
          ? "input"
          : e.code === "noSpace"
            ? "noSpace"
            : e.code === "denied"
              ? "permission"
              : "server";
      throw new UserError(code, `build server: ${e.message}`, { hint: e.hint });
    }
    if (e instanceof StalledConnection) throw stalled(e, s.pod);
    if (e instanceof ProtocolError) {
      throw new UserError(
        "server",
        `the connection to the build server broke: ${e.message}${s.stream.errorText ? ` (${s.stream.errorText.trim()})` : ""}`,
        {
          hint: "run the command again; an interrupted sync leaves the previous workspace intact",
          cause: e,
        },
      );
    }
    throw e;
  } finally {
    process.off("SIGINT", onSigint);
    signal?.removeEventListener("abort", onSigint);
  }
}
