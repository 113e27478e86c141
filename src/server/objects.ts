/**
 * The build server's Kubernetes objects. Pure: the same options always give the same
 * objects, so `server install` can be applied again and change nothing.
 */
import { createHash } from "node:crypto";
import type { KubernetesObject } from "@kubernetes/client-node";
import { AGENT_SOCKET, GC_ENV } from "../protocol/constants.js";
import { BUILD_UID, buildkitPodParts, RESTRICTED } from "./buildkit-pod.js";
import { REGISTRY_CA_CONFIGMAP, caKey } from "./registry-ca.js";

export { REGISTRY_CA_CONFIGMAP, caKey };
export type BuilderMode = "buildkit" | "buildkit-privileged" | "docker-socket" | "dind";
export const BUILDERS: BuilderMode[] = ["buildkit", "buildkit-privileged", "docker-socket", "dind"];
/** The builders the agent drives with buildctl (a BuildKit daemon in the pod). */
export const usesBuildkit = (b: BuilderMode | string) => b === "buildkit" || b === "buildkit-privileged";
export const SERVER_NAME = "snapdeploy-build-server";
export const DATA_CLAIM = "snapdeploy-data";
export const APP_LABEL = "app.kubernetes.io/name";
export const SELECTOR = `${APP_LABEL}=${SERVER_NAME}`;
export const AGENT_CONTAINER = "agent";

export const AGENT_CONFIGMAP = "snapdeploy-agent";
/** Pod template annotations that change when what the pod runs changes, so it rolls. */
export const BUNDLE_ANNOTATION = "snapdeploy.dev/agent-bundle";
export const BUILDKITD_CONFIG_ANNOTATION = "snapdeploy.dev/buildkitd-config";

export interface ServerOptions {
  namespace: string;
  /** The agent's image. With agentBundle: any image with Node.js; else one with the agent in it. */
  image: string;
  /** The agent's code (dist/server/agent.cjs), shipped in a ConfigMap; omit if the image has it. */
  agentBundle?: string;
  /** The BuildKit image (builder "buildkit"). */
  builderImage?: string;
  /** Most BuildKit's layer cache may take (builder "buildkit"), e.g. "50%" of the volume or "20GB". */
  cacheSize?: string;
  /** "registry": BuildKit also keeps its cache in <repository>:buildcache (builder "buildkit"). */
  cache?: "volume" | "registry";
  /** How BuildKit compresses new layers (builder "buildkit"): zstd (the default) or gzip. */
  compression?: "gzip" | "zstd";
  /** Requests and limits of the agent and the builder containers. */
  agentResources?: object;
  builderResources?: object;
  builder: BuilderMode;
  /** Repository prefixes (host/path) builds may push to; empty or absent: any (agent/policy.ts). */
  allowRepositories?: string[];
  /** Snapshot tag prefixes builds may push; with allowRepositories, default "snap-". */
  allowTagPrefixes?: string[];
  size: string;
  storageClass?: string;
  /** Registries reached over plain HTTP (e.g. a cluster-local registry): by the dind daemon and the agent's tag checks. */
  insecureRegistries: string[];
  /** A Secret of type kubernetes.io/dockerconfigjson with push (and pull) credentials. */
  registrySecret?: string;
  /** How many builds may run at once; more wait in a queue. */
  maxBuilds: number;
  /** CA certificates (PEM) of registries with private TLS, by host[:port]. */
  registryCAs: Record<string, string>;
  /** The agent's own gc pass (agent/gc-schedule.ts); absent or everySeconds 0: none. */
  gc?: { everySeconds: number; olderThanSeconds: number; keepCacheBytes?: number };
}

/**
 * Resources when none are given. Without requests a pod is BestEffort: its CPU weight is the
 * lowest there is (cpu.shares 2, against 1024 for the node's own daemons, so a busy node
 * starves its builds first) and it is the first evicted under pressure. The requests are small, so the server schedules on a busy node;
 * builds use whatever CPU is free above them. The agent's memory is bounded by design (it
 * streams), so it gets a limit; the builder gets none: a build's RUN steps run in the
 * daemon's cgroup, and a limit there would kill a build that needs the memory.
 */
export const DEFAULT_AGENT_RESOURCES = {
  requests: { cpu: "50m", memory: "64Mi" },
  limits: { memory: "1Gi" },
};
export const DEFAULT_BUILDER_RESOURCES = { requests: { cpu: "250m", memory: "256Mi" } };

const labels = { [APP_LABEL]: SERVER_NAME, "app.kubernetes.io/managed-by": "snapdeploy" };
const hash = (s: string) => createHash("sha256").update(s).digest("hex").slice(0, 16);
/**
 * Pod Security admission: every builder needs the "privileged" level. BuildKit rootless
 * runs without privileges but needs seccomp and AppArmor unconfined (for user
 * namespaces), which "baseline" refuses, as it does the Docker socket's host path and
 * dind's privileged container.
 */
export const POD_SECURITY_LEVEL = "privileged";
const namespaceLabels = {
  ...labels,
  "pod-security.kubernetes.io/enforce": POD_SECURITY_LEVEL,
  "pod-security.kubernetes.io/warn": POD_SECURITY_LEVEL,
};

export function serverObjects(o: ServerOptions): KubernetesObject[] {
  const dind = o.builder === "dind";
  const caHosts = Object.keys(o.registryCAs).sort();
  const volumes: object[] = [
    { name: "data", persistentVolumeClaim: { claimName: DATA_CLAIM } },
    // Memory-backed: BuildKit secret files pass through here and never touch a disk.
    { name: "run", emptyDir: { medium: "Memory" } },
  ];
  const agentMounts: object[] = [
    { name: "data", mountPath: "/data" },
    { name: "run", mountPath: AGENT_SOCKET.slice(0, AGENT_SOCKET.lastIndexOf("/")) },
  ];
  const env = [
    { name: "SNAPDEPLOY_DATA", value: "/data" },
    { name: "SNAPDEPLOY_VOLUME", value: `PVC ${o.namespace}/${DATA_CLAIM}` },
    { name: "SNAPDEPLOY_BUILDER", value: o.builder },
    { name: "SNAPDEPLOY_MAX_BUILDS", value: String(o.maxBuilds) },
    ...(o.gc?.everySeconds
      ? [
          { name: GC_ENV.every, value: String(o.gc.everySeconds) },
          { name: GC_ENV.olderThan, value: String(o.gc.olderThanSeconds) },
          ...(o.gc.keepCacheBytes !== undefined
            ? [{ name: GC_ENV.keepCache, value: String(o.gc.keepCacheBytes) }]
            : []),
        ]
      : []),
    // Syncs do many small file operations at once: more libuv threads than the default 4.
    { name: "UV_THREADPOOL_SIZE", value: "16" },
    { name: "SNAPDEPLOY_INSECURE_REGISTRIES", value: o.insecureRegistries.join(",") },
    { name: "SNAPDEPLOY_SECRETS", value: `${AGENT_SOCKET.slice(0, AGENT_SOCKET.lastIndexOf("/"))}/secrets` },
  ];
  // What builds may push (agent/policy.ts reads the same names).
  if (o.allowRepositories?.length)
    env.push({ name: "SNAPDEPLOY_ALLOW_REPOSITORIES", value: o.allowRepositories.join(",") });
  if (o.allowTagPrefixes?.length)
    env.push({ name: "SNAPDEPLOY_ALLOW_TAG_PREFIXES", value: o.allowTagPrefixes.join(",") });
  if (caHosts.length) {
    // The agent's tag checks trust them via NODE_EXTRA_CA_CERTS (one bundle); a
    // Docker daemon via certs.d/<host>/ca.crt.
    volumes.push({ name: "registry-ca", configMap: { name: REGISTRY_CA_CONFIGMAP } });
    agentMounts.push({ name: "registry-ca", mountPath: "/etc/snapdeploy/registry-ca", readOnly: true });
    env.push({ name: "NODE_EXTRA_CA_CERTS", value: "/etc/snapdeploy/registry-ca/bundle.crt" });
  }
  if (o.registrySecret) {
    volumes.push({
      name: "registry-credentials",
      secret: { secretName: o.registrySecret, items: [{ key: ".dockerconfigjson", path: "config.json" }] },
    });
    agentMounts.push({ name: "registry-credentials", mountPath: "/etc/snapdeploy/docker", readOnly: true });
    env.push({ name: "DOCKER_CONFIG", value: "/etc/snapdeploy/docker" });
  } else if (!usesBuildkit(o.builder)) {
    // The docker CLI keys BuildKit's incremental context transfer on a node id it keeps
    // in its config folder (read-only above: it then uses the folder's path). On the
    // volume, the id survives pod restarts, so the first build after one is incremental.
    env.push({ name: "DOCKER_CONFIG", value: "/data/docker" });
  }
  const containers: object[] = [];
  const initContainers: object[] = [];
  const extraObjects: KubernetesObject[] = [];
  const annotations: Record<string, string> = {};
  const buildkit = usesBuildkit(o.builder);
  if (o.agentBundle !== undefined) {
    volumes.push({ name: "agent", configMap: { name: AGENT_CONFIGMAP } });
    agentMounts.push({ name: "agent", mountPath: "/opt/snapdeploy", readOnly: true });
    annotations[BUNDLE_ANNOTATION] = hash(o.agentBundle);
    extraObjects.push({
      apiVersion: "v1",
      kind: "ConfigMap",
      metadata: { name: AGENT_CONFIGMAP, namespace: o.namespace, labels },
      data: { "agent.cjs": o.agentBundle },
    } as KubernetesObject);
  }
  if (buildkit) {
    const bk = buildkitPodParts({
      namespace: o.namespace,
      image: o.builderImage ?? o.image,
      insecureRegistries: o.insecureRegistries,
      caHosts,
      cacheSize: o.cacheSize ?? "50%",
      resources: o.builderResources ?? DEFAULT_BUILDER_RESOURCES,
      privileged: o.builder === "buildkit-privileged",
    });
    volumes.push(...bk.volumes, { name: "tmp", emptyDir: {} });
    agentMounts.push(...bk.agentMounts, { name: "tmp", mountPath: "/tmp" });
    env.push(...bk.agentEnv);
    if (o.cache === "registry") env.push({ name: "SNAPDEPLOY_CACHE", value: "registry" });
    env.push({ name: "SNAPDEPLOY_COMPRESSION", value: o.compression ?? "zstd" });
    initContainers.push(...bk.initContainers);
    containers.push(bk.buildkitd);
    annotations[BUILDKITD_CONFIG_ANNOTATION] = hash(bk.config);
    extraObjects.push({
      ...bk.configMap,
      metadata: { ...bk.configMap.metadata, labels },
    } as KubernetesObject);
  } else if (dind) {
    // The pod's own Docker daemon: privileged, its layer cache on the data volume so
    // it survives restarts. Only this container is privileged, not the agent.
    volumes.push({ name: "dind-socket", emptyDir: {} });
    if (caHosts.length) {
      volumes.push({
        name: "registry-ca-certsd",
        configMap: {
          name: REGISTRY_CA_CONFIGMAP,
          items: caHosts.map((h) => ({ key: caKey(h), path: `${h}/ca.crt` })),
        },
      });
    }
    agentMounts.push({ name: "dind-socket", mountPath: "/run/dind" });
    env.push({ name: "DOCKER_HOST", value: "unix:///run/dind/docker.sock" });
    containers.push({
      name: "dockerd",
      image: o.image,
      command: [
        "dockerd",
        "--host=unix:///run/dind/docker.sock",
        "--data-root=/data/docker",
        ...o.insecureRegistries.map((r) => `--insecure-registry=${r}`),
      ],
      securityContext: { privileged: true },
      resources: o.builderResources ?? DEFAULT_BUILDER_RESOURCES,
      volumeMounts: [
        { name: "data", mountPath: "/data" },
        { name: "dind-socket", mountPath: "/run/dind" },
        ...(caHosts.length
          ? [{ name: "registry-ca-certsd", mountPath: "/etc/docker/certs.d", readOnly: true }]
          : []),
      ],
    });
  } else {
    // The node's Docker daemon: whoever can port-forward to or exec into this pod is root on the node.
    volumes.push({ name: "docker-socket", hostPath: { path: "/var/run/docker.sock", type: "Socket" } });
    agentMounts.push({ name: "docker-socket", mountPath: "/var/run/docker.sock" });
  }
  containers.unshift({
    name: AGENT_CONTAINER,
    image: o.image,
    command: ["node", "/opt/snapdeploy/agent.cjs", "serve"],
    env,
    volumeMounts: agentMounts,
    // With the Docker builders the agent talks to a root-owned socket and stays root.
    ...(buildkit ? { securityContext: RESTRICTED } : {}),
    resources: o.agentResources ?? DEFAULT_AGENT_RESOURCES,
    readinessProbe: {
      exec: { command: ["test", "-S", AGENT_SOCKET] },
      periodSeconds: 2,
      failureThreshold: 2,
    },
  });

  const caConfigMap = caHosts.length
    ? [
        {
          apiVersion: "v1",
          kind: "ConfigMap",
          metadata: { name: REGISTRY_CA_CONFIGMAP, namespace: o.namespace, labels },
          data: {
            ...Object.fromEntries(caHosts.map((h) => [caKey(h), o.registryCAs[h] as string])),
            "bundle.crt": caHosts.map((h) => o.registryCAs[h]).join("\n"),
          },
        } as KubernetesObject,
      ]
    : [];
  return [
    { apiVersion: "v1", kind: "Namespace", metadata: { name: o.namespace, labels: namespaceLabels } },
    ...caConfigMap,
    ...extraObjects,
    {
      apiVersion: "v1",
      kind: "ServiceAccount",
      metadata: { name: SERVER_NAME, namespace: o.namespace, labels },
      // No token: the agent needs no Kubernetes API rights at all.
      automountServiceAccountToken: false,
    } as KubernetesObject,
    {
      apiVersion: "v1",
      kind: "PersistentVolumeClaim",
      metadata: { name: DATA_CLAIM, namespace: o.namespace, labels },
      spec: {
        accessModes: ["ReadWriteOnce"],
        resources: { requests: { storage: o.size } },
        ...(o.storageClass !== undefined ? { storageClassName: o.storageClass } : {}),
      },
    } as KubernetesObject,
    {
      apiVersion: "apps/v1",
      kind: "Deployment",
      metadata: { name: SERVER_NAME, namespace: o.namespace, labels },
      spec: {
        replicas: 1,
        // One pod owns the volume and the workspace locks at a time.
        strategy: { type: "Recreate" },
        selector: { matchLabels: { [APP_LABEL]: SERVER_NAME } },
        template: {
          metadata: { labels, ...(Object.keys(annotations).length ? { annotations } : {}) },
          spec: {
            serviceAccountName: SERVER_NAME,
            automountServiceAccountToken: false,
            terminationGracePeriodSeconds: 30,
            ...(buildkit
              ? {
                  // The volume's files belong to the build user (where the volume type
                  // supports fsGroup); checked at the root only, not file by file.
                  securityContext: {
                    runAsNonRoot: true,
                    runAsUser: BUILD_UID,
                    runAsGroup: BUILD_UID,
                    fsGroup: BUILD_UID,
                    fsGroupChangePolicy: "OnRootMismatch",
                  },
                }
              : {}),
            ...(initContainers.length ? { initContainers } : {}),
            containers,
            volumes,
          },
        },
      },
    } as KubernetesObject,
  ];
}
