/** The original design's parts, shared by the benchmarks that run it as their baseline. */

/**
 * The original design's build pod: the node's Docker daemon through its socket (hostPath), the
 * context on an emptyDir (a plain folder on the node's disk, as the build server's data volume
 * is; the container's overlayfs would be slower for many small files).
 */
export function originalBuildPod(namespace: string, name: string, image: string) {
  return {
    apiVersion: "v1",
    kind: "Pod",
    metadata: { name, namespace },
    spec: {
      terminationGracePeriodSeconds: 0,
      containers: [
        {
          name: "builder",
          image,
          command: ["sleep", "infinity"],
          env: [{ name: "DOCKER_BUILDKIT", value: "1" }],
          volumeMounts: [
            { name: "docker-socket", mountPath: "/var/run/docker.sock" },
            { name: "work", mountPath: "/work" },
          ],
        },
      ],
      volumes: [
        { name: "docker-socket", hostPath: { path: "/var/run/docker.sock", type: "Socket" } },
        { name: "work", emptyDir: {} },
      ],
    },
  };
}
