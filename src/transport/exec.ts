/**
 * Exec into a pod over WebSocket (the v5/v4 channel protocols): writes go to the
 * process's stdin, reads come from its stdout, stderr is kept in `errorText`. The remote
 * exit status arrives on the status channel; `status` resolves with it and callers must
 * check it.
 */
import type { ClusterAccess } from "../kube/access.js";
import { type ChannelStream, openChannels, Refused, refusalError } from "./channels.js";

const PROTOCOLS = ["v5.channel.k8s.io", "v4.channel.k8s.io"];

export interface ExecTarget {
  namespace: string;
  pod: string;
  container?: string;
  command: string[];
}

/** Opens an exec session; rejects with Refused on HTTP 403 (the caller names the permission). */
export async function openExec(cluster: ClusterAccess, target: ExecTarget): Promise<ChannelStream> {
  const q = new URLSearchParams();
  for (const c of target.command) q.append("command", c);
  for (const k of ["stdin", "stdout", "stderr"]) q.set(k, "true");
  if (target.container) q.set("container", target.container);
  const path = `/api/v1/namespaces/${encodeURIComponent(target.namespace)}/pods/${encodeURIComponent(target.pod)}/exec?${q}`;
  try {
    return await openChannels(cluster, path, PROTOCOLS, { write: 0, read: 1, errors: 2, status: 3 });
  } catch (e) {
    if (e instanceof Refused && e.code !== 403)
      throw refusalError(e, `pod ${target.pod} in namespace ${target.namespace}`, target.namespace);
    throw e;
  }
}
