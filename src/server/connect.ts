/**
 * Reaching the build-server agent: find its ready pod, exec the relay into the
 * agent's socket over the Kubernetes API, and say hello. Every session ends by
 * checking the relay's exit status.
 */
import type { V1Pod, V1PodList } from "@kubernetes/client-node";
import { UserError } from "../cli/errors.js";
import { VERSION } from "../cli/version.js";
import { type ClusterAccess, getJson } from "../kube/access.js";
import { PROTOCOL_VERSION, RELAY_COMMAND } from "../protocol/constants.js";
import { type ExecStream, openExec } from "../transport/exec.js";
import { Connection, ProtocolError, RemoteError } from "../transport/framing.js";
import { within } from "../util/time.js";
import { AGENT_CONTAINER, SELECTOR } from "./manifests.js";

export interface AgentSession {
  conn: Connection;
  exec: ExecStream;
  pod: string;
  agentVersion: string;
  /** Waits for the relay to exit and checks its status. */
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

export async function connectAgent(cluster: ClusterAccess, namespace: string): Promise<AgentSession> {
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
  const name = pod.metadata.name;
  const exec = await openExec(cluster, {
    namespace,
    pod: name,
    container: AGENT_CONTAINER,
    command: RELAY_COMMAND,
  });
  const conn = new Connection(exec);
  const relayFailure = async (e: unknown): Promise<Error> => {
    if (e instanceof RemoteError || e instanceof UserError) return e;
    const st = await within(exec.status, 2000, null);
    const detail = exec.stderr.trim() || st?.message || (e as Error).message;
    return new UserError("server", `lost the connection to the build server (pod ${name}): ${detail}`, {
      hint: "run the command again; if it keeps failing, see: snapdeploy server status",
      cause: e,
    });
  };
  try {
    await conn.send({ t: "hello", protocol: PROTOCOL_VERSION, client: `snapdeploy/${VERSION}` });
    const hello = await conn.expect("hello");
    return {
      conn,
      exec,
      pod: name,
      agentVersion: String(hello.agent),
      async finish() {
        await conn.send({ t: "bye" }).catch(() => {});
        conn.close();
        const st = await within(exec.status, 10_000, null);
        exec.destroy();
        if (st?.exitCode !== 0) {
          throw new UserError(
            "server",
            `the relay into the build server exited abnormally (${st?.message ?? "no exit status"})`,
            {
              details: exec.stderr.trim() ? exec.stderr.trim().split("\n").slice(-5) : undefined,
            },
          );
        }
      },
      abort() {
        exec.destroy();
      },
    };
  } catch (e) {
    const err = await relayFailure(e);
    exec.destroy();
    throw err;
  }
}

/** Runs `fn` with a session, mapping transport failures to clear errors and always finishing it. */
export async function withAgent<T>(
  cluster: ClusterAccess,
  namespace: string,
  fn: (s: AgentSession) => Promise<T>,
): Promise<T> {
  const s = await connectAgent(cluster, namespace);
  let interrupted = false;
  const onSigint = () => {
    interrupted = true;
    s.abort();
  };
  process.once("SIGINT", onSigint);
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
      const code = e.code === "input" ? "input" : e.code === "noSpace" ? "noSpace" : "server";
      throw new UserError(code, `build server: ${e.message}`, { hint: e.hint });
    }
    if (e instanceof ProtocolError) {
      throw new UserError(
        "server",
        `the connection to the build server broke: ${e.message}${s.exec.stderr ? ` (${s.exec.stderr.trim()})` : ""}`,
        {
          hint: "run the command again; an interrupted sync leaves the previous workspace intact",
          cause: e,
        },
      );
    }
    throw e;
  } finally {
    process.off("SIGINT", onSigint);
  }
}
