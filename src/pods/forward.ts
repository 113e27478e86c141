/**
 * A local port forwarded to a port of the targets' ready pods. Each accepted connection
 * goes to a pod that is ready at that moment (the newest, so a replaced pod's successor
 * takes over as soon as it is ready), over the API's port-forward WebSocket — the same
 * transport the CLI uses for the build server.
 */
import net from "node:net";
import { UserError } from "../errors.js";
import type { ClusterAccess } from "../kube/access.js";
import { parseRefusal, permissionError } from "../kube/api-errors.js";
import { Refused } from "../transport/channels.js";
import { openPortForward } from "../transport/portforward.js";
import type { ContainerInstance } from "./watch.js";

export interface ForwardOptions {
  /** Local address; default 127.0.0.1. */
  address?: string;
  localPort: number;
  remotePort: number;
  /** The ready pods to choose from, newest last. */
  pods(): ContainerInstance[];
  onConnection?(pod: string): void;
  onError?(e: Error): void;
}

export interface Forwarder {
  /** The local port (useful with localPort 0). */
  port: number;
  close(): Promise<void>;
}

export async function forwardPort(cluster: ClusterAccess, opts: ForwardOptions): Promise<Forwarder> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    socket.on("error", () => {});
    socket.pause();
    const ready = opts.pods().filter((p) => p.ready);
    const pod = ready[ready.length - 1];
    if (!pod) {
      opts.onError?.(new Error(`no ready pod to forward port ${opts.remotePort} to; connection closed`));
      socket.destroy();
      return;
    }
    openPortForward(cluster, { namespace: pod.namespace, pod: pod.pod, port: opts.remotePort }).then(
      (stream) => {
        opts.onConnection?.(pod.pod);
        stream.on("error", () => socket.destroy());
        stream.on("end", () => socket.end());
        socket.on("end", () => stream.close());
        socket.on("close", () => stream.destroy());
        socket.pipe(stream);
        stream.pipe(socket);
        socket.resume();
        void stream.status.then(() => {
          if (stream.errorText.trim()) opts.onError?.(new Error(`${pod.pod}: ${stream.errorText.trim()}`));
        });
      },
      (e: Error) => {
        socket.destroy();
        opts.onError?.(
          e instanceof Refused && e.code === 403
            ? permissionError(
                `port-forward to pod ${pod.pod} in namespace ${pod.namespace}`,
                parseRefusal(e.message),
                e.message,
              )
            : e,
        );
      },
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", (e: NodeJS.ErrnoException) =>
      reject(
        e.code === "EADDRINUSE"
          ? new UserError("usage", `local port ${opts.localPort} is already in use`, {
              hint: "pick another LOCAL port",
            })
          : e,
      ),
    );
    server.listen(opts.localPort, opts.address ?? "127.0.0.1", () => resolve());
  });
  const address = server.address() as net.AddressInfo;
  return {
    port: address.port,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
