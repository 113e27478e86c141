/**
 * A connection to a TCP port inside a pod, forwarded by the Kubernetes API over
 * WebSocket (the v4 channel protocol of port-forward: channel 0 carries the port's data
 * both ways, channel 1 the kubelet's errors, and each channel's first message is the port
 * number). One WebSocket is one TCP connection. No process is started in the pod: on the
 * local cluster, opening it and a first round trip took 15-20 ms, against 45-60 ms for an
 * exec relay (most of it runc starting the relay).
 */
import type { ClusterAccess } from "../kube/access.js";
import { type ChannelStream, openChannels, Refused, refusalError } from "./channels.js";

export interface PortTarget {
  namespace: string;
  pod: string;
  port: number;
}

/** Opens the connection; rejects with Refused on HTTP 403 (the caller names the permission). */
export async function openPortForward(cluster: ClusterAccess, target: PortTarget): Promise<ChannelStream> {
  const path = `/api/v1/namespaces/${encodeURIComponent(target.namespace)}/pods/${encodeURIComponent(target.pod)}/portforward?ports=${target.port}`;
  try {
    return await openChannels(cluster, path, ["v4.channel.k8s.io"], {
      write: 0,
      read: 0,
      errors: 1,
      portPrefix: true,
    });
  } catch (e) {
    if (e instanceof Refused && e.code !== 403)
      throw refusalError(e, `pod ${target.pod} in namespace ${target.namespace}`, target.namespace);
    throw e;
  }
}
