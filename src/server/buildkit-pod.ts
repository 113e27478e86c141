/**
 * The parts of the build-server pod for the `buildkit` builder: a rootless BuildKit
 * daemon (BuildKit's own rootless image; uid 1000, no privileged container, no host
 * path), its socket in a folder shared with the agent, its state (the layer cache) on
 * the data volume, garbage collection bounded, and an init container that copies
 * buildctl from the same image for the agent. Pure, like objects.ts.
 */
import { caKey } from "./registry-ca.js";
import { STEP_REAPER_SCRIPT } from "./step-reaper.js";

/** The daemon's socket, in an emptyDir both containers mount. */
export const BUILDKIT_SOCKET_DIR = "/run/buildkit";
export const BUILDKIT_ADDR = `unix://${BUILDKIT_SOCKET_DIR}/buildkitd.sock`;
/** Where the init container puts buildctl for the agent. */
export const BUILDCTL_DIR = "/opt/buildkit/bin";
export const BUILDKITD_CONFIGMAP = "snapdeploy-buildkitd";
/** The uid BuildKit's rootless image runs as (and the agent, so they share the socket). */
export const BUILD_UID = 1000;

export interface BuildkitSettings {
  namespace: string;
  image: string;
  /** Registries reached over plain HTTP. */
  insecureRegistries: string[];
  /** Hosts with a CA certificate in the registry-CA ConfigMap. */
  caHosts: string[];
  /** Most the layer cache may take: bytes with a unit (e.g. 20GB) or a share of the volume (e.g. 50%). */
  cacheSize: string;
  resources?: object;
  /**
   * A daemon run as root in a privileged container (builder "buildkit-privileged"), for
   * nodes without unprivileged user namespaces: each step gets its own PID namespace.
   */
  privileged?: boolean;
}

const q = (s: string) => JSON.stringify(s);

/** buildkitd.toml: registries (plain HTTP, private CAs) and the cache's bound. */
export function buildkitdConfig(s: BuildkitSettings): string {
  const lines = [
    "# Written by snapdeploy server install.",
    "[worker.oci]",
    "  gc = true",
    `  maxUsedSpace = ${q(s.cacheSize)}`,
    "[worker.containerd]",
    "  enabled = false",
  ];
  const hosts = [...new Set([...s.insecureRegistries, ...s.caHosts])].sort();
  for (const h of hosts) {
    lines.push(`[registry.${q(h)}]`);
    if (s.insecureRegistries.includes(h)) lines.push("  http = true");
    if (s.caHosts.includes(h)) lines.push(`  ca = [${q(`/etc/snapdeploy/registry-ca/${caKey(h)}`)}]`);
  }
  return `${lines.join("\n")}\n`;
}

/** Security context of containers that need nothing: the Pod Security "restricted" one. */
export const RESTRICTED = {
  runAsNonRoot: true,
  runAsUser: BUILD_UID,
  runAsGroup: BUILD_UID,
  allowPrivilegeEscalation: false,
  readOnlyRootFilesystem: true,
  capabilities: { drop: ["ALL"] },
  seccompProfile: { type: "RuntimeDefault" },
};

export function buildkitPodParts(s: BuildkitSettings) {
  const volumes: object[] = [
    { name: "buildkit-socket", emptyDir: {} },
    { name: "buildkit-tools", emptyDir: {} },
    { name: "buildkitd-config", configMap: { name: BUILDKITD_CONFIGMAP } },
  ];
  const agentMounts = [
    { name: "buildkit-socket", mountPath: BUILDKIT_SOCKET_DIR },
    { name: "buildkit-tools", mountPath: BUILDCTL_DIR, readOnly: true },
  ];
  const agentEnv = [
    { name: "BUILDKIT_HOST", value: BUILDKIT_ADDR },
    { name: "SNAPDEPLOY_BUILDCTL", value: `${BUILDCTL_DIR}/buildctl` },
  ];
  const initContainers = [
    {
      name: "buildctl",
      image: s.image,
      command: ["cp", "/usr/bin/buildctl", `${BUILDCTL_DIR}/buildctl`],
      securityContext: RESTRICTED,
      volumeMounts: [{ name: "buildkit-tools", mountPath: BUILDCTL_DIR }],
    },
  ];
  const daemon = s.privileged
    ? {
        // Root in a privileged container: each step in namespaces of its own (a PID
        // namespace included, so a cancelled step ends whole). Its state has a folder of
        // its own: root-owned files the rootless daemon could not use.
        command: ["buildkitd"],
        args: [
          `--addr=${BUILDKIT_ADDR}`,
          `--group=${BUILD_UID}`,
          "--root=/data/buildkit-privileged",
          "--config=/etc/buildkit/buildkitd.toml",
        ],
        securityContext: { privileged: true, runAsUser: 0, runAsGroup: 0, runAsNonRoot: false },
      }
    : {
        // As the image's entrypoint, rootlesskit starts buildkitd in a user namespace of its
        // own; a shell before it runs what ends a cancelled step's processes (step-reaper.ts).
        command: ["rootlesskit", "sh", "-c", STEP_REAPER_SCRIPT, "buildkitd"],
        args: [
          `--addr=${BUILDKIT_ADDR}`,
          "--root=/data/buildkit",
          "--config=/etc/buildkit/buildkitd.toml",
          // Builds share the daemon's process namespace: no new /proc to mount, which a
          // container without privileges may not do.
          "--oci-worker-no-process-sandbox",
        ],
        // As BuildKit's rootless Kubernetes examples: user namespaces and mounts need the
        // syscalls the runtime's default seccomp and AppArmor profiles refuse. Not
        // privileged: no capabilities beyond the runtime's defaults, no host devices.
        securityContext: {
          runAsNonRoot: true,
          runAsUser: BUILD_UID,
          runAsGroup: BUILD_UID,
          seccompProfile: { type: "Unconfined" },
          appArmorProfile: { type: "Unconfined" },
        },
      };
  const buildkitd = {
    name: "buildkitd",
    image: s.image,
    ...daemon,
    readinessProbe: {
      exec: { command: ["buildctl", `--addr=${BUILDKIT_ADDR}`, "debug", "workers"] },
      periodSeconds: 2,
      failureThreshold: 3,
      timeoutSeconds: 5,
    },
    ...(s.resources ? { resources: s.resources } : {}),
    volumeMounts: [
      { name: "data", mountPath: "/data" },
      { name: "buildkit-socket", mountPath: BUILDKIT_SOCKET_DIR },
      { name: "buildkitd-config", mountPath: "/etc/buildkit", readOnly: true },
      ...(s.caHosts.length
        ? [{ name: "registry-ca", mountPath: "/etc/snapdeploy/registry-ca", readOnly: true }]
        : []),
    ],
  };
  const config = buildkitdConfig(s);
  const configMap = {
    apiVersion: "v1",
    kind: "ConfigMap",
    metadata: { name: BUILDKITD_CONFIGMAP, namespace: s.namespace },
    data: { "buildkitd.toml": config },
  };
  return { volumes, agentMounts, agentEnv, initContainers, buildkitd, configMap, config };
}
