/** The build server's Kubernetes objects (server/objects.ts), as `server install` applies them. */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { AGENT_SOCKET } from "../../src/protocol/constants.js";
import { BUILDKITD_CONFIGMAP, buildkitdConfig } from "../../src/server/buildkit-pod.js";
import {
  AGENT_CONFIGMAP,
  AGENT_CONTAINER,
  BUNDLE_ANNOTATION,
  APP_LABEL,
  DEFAULT_AGENT_RESOURCES,
  DEFAULT_BUILDER_RESOURCES,
  caKey,
  DATA_CLAIM,
  REGISTRY_CA_CONFIGMAP,
  SERVER_NAME,
  type ServerOptions,
  serverObjects,
} from "../../src/server/objects.js";

const base: ServerOptions = {
  namespace: "snap",
  image: "registry.example/snapdeploy/server:1",
  builder: "docker-socket",
  size: "20Gi",
  insecureRegistries: [],
  maxBuilds: 2,
  registryCAs: {},
};

interface Container {
  name: string;
  image: string;
  command: string[];
  env?: { name: string; value: string }[];
  volumeMounts: { name: string; mountPath: string; readOnly?: boolean }[];
  args?: string[];
  securityContext?: Record<string, Any>;
  readinessProbe?: { exec: { command: string[] } };
  resources?: Record<string, Any>;
}
interface Volume {
  name: string;
  [k: string]: unknown;
}
interface PodSpec {
  initContainers?: Container[];
  securityContext?: Record<string, Any>;
  serviceAccountName: string;
  automountServiceAccountToken: boolean;
  containers: Container[];
  volumes: Volume[];
}

// biome-ignore lint/suspicious/noExplicitAny: the objects are plain JSON, read by path
type Any = any;

function parts(o: ServerOptions) {
  const objects = serverObjects(o) as Any[];
  const of = (kind: string) => objects.filter((x) => x.kind === kind);
  const deployment = of("Deployment")[0];
  const pod = deployment.spec.template.spec as PodSpec;
  const container = (name: string) => pod.containers.find((c) => c.name === name);
  const agent = container(AGENT_CONTAINER) as Container;
  const env = Object.fromEntries((agent.env ?? []).map((e) => [e.name, e.value]));
  const volume = (name: string) => pod.volumes.find((v) => v.name === name);
  const mount = (c: Container, name: string) => c.volumeMounts.find((m) => m.name === name);
  return { objects, of, deployment, pod, container, agent, env, volume, mount };
}

describe("serverObjects", () => {
  test("namespace, service account, volume claim and deployment, in that order, all labelled", () => {
    const { objects } = parts(base);
    assert.deepEqual(
      objects.map((o) => `${o.kind}/${o.metadata.name}`),
      [
        "Namespace/snap",
        `ServiceAccount/${SERVER_NAME}`,
        `PersistentVolumeClaim/${DATA_CLAIM}`,
        `Deployment/${SERVER_NAME}`,
      ],
    );
    for (const o of objects) {
      assert.equal(o.metadata.labels[APP_LABEL], SERVER_NAME, o.kind);
      assert.equal(o.metadata.labels["app.kubernetes.io/managed-by"], "snapdeploy", o.kind);
      if (o.kind !== "Namespace") assert.equal(o.metadata.namespace, "snap", o.kind);
    }
  });

  test("is pure: the same options give the same objects", () => {
    assert.deepEqual(serverObjects(base), serverObjects(base));
  });

  test("the agent has no API token, one pod owns the volume, its pods carry the selector's labels", () => {
    const { of, deployment, pod } = parts(base);
    assert.equal(of("ServiceAccount")[0].automountServiceAccountToken, false);
    assert.equal(pod.automountServiceAccountToken, false);
    assert.equal(pod.serviceAccountName, SERVER_NAME);
    assert.equal(deployment.spec.replicas, 1);
    assert.equal(deployment.spec.strategy.type, "Recreate");
    const selector = deployment.spec.selector.matchLabels;
    for (const [k, v] of Object.entries(selector))
      assert.equal(deployment.spec.template.metadata.labels[k], v);
  });

  test("every container has requests by default (never BestEffort); the flags replace them", () => {
    for (const builder of ["docker-socket", "dind", "buildkit"] as const) {
      const { pod, agent } = parts({ ...base, builder });
      for (const c of pod.containers)
        assert.ok(c.resources?.requests?.cpu, `${builder}: ${c.name} has a CPU request`);
      assert.deepEqual(agent.resources, DEFAULT_AGENT_RESOURCES);
      for (const c of pod.containers.filter((x) => x.name !== AGENT_CONTAINER))
        assert.deepEqual(c.resources, DEFAULT_BUILDER_RESOURCES, `${builder}: ${c.name}`);
    }
    const mine = { requests: { cpu: "2" }, limits: { memory: "8Gi" } };
    const { pod, agent } = parts({
      ...base,
      builder: "buildkit",
      builderResources: mine,
      agentResources: mine,
    });
    assert.deepEqual(agent.resources, mine);
    assert.deepEqual(pod.containers.find((c) => c.name === "buildkitd")?.resources, mine);
  });

  test("the agent's periodic gc: in its environment by default, none with --gc-every 0", () => {
    const withGc = parts({ ...base, gc: { everySeconds: 86400, olderThanSeconds: 7 * 86400 } }).env;
    assert.equal(withGc.SNAPDEPLOY_GC_EVERY_SECONDS, "86400");
    assert.equal(withGc.SNAPDEPLOY_GC_OLDER_THAN_SECONDS, String(7 * 86400));
    assert.equal("SNAPDEPLOY_GC_KEEP_CACHE_BYTES" in withGc, false);
    const keep = parts({ ...base, gc: { everySeconds: 60, olderThanSeconds: 0, keepCacheBytes: 2e10 } }).env;
    assert.equal(keep.SNAPDEPLOY_GC_KEEP_CACHE_BYTES, "20000000000");
    const off = parts({ ...base, gc: { everySeconds: 0, olderThanSeconds: 60 } }).env;
    assert.equal("SNAPDEPLOY_GC_EVERY_SECONDS" in off, false);
  });

  test("the volume claim has the size, and the storage class only when given", () => {
    const claim = (o: ServerOptions) => parts(o).of("PersistentVolumeClaim")[0].spec;
    assert.deepEqual(claim(base).resources.requests, { storage: "20Gi" });
    assert.equal("storageClassName" in claim(base), false);
    assert.equal(claim({ ...base, storageClass: "fast" }).storageClassName, "fast");
    // "" means no class at all (static volumes): it must be kept, not dropped.
    assert.equal(claim({ ...base, storageClass: "" }).storageClassName, "");
  });

  test("the agent runs the agent bundle, is ready once its socket exists, and is never privileged", () => {
    const { agent, env } = parts(base);
    assert.equal(agent.image, base.image);
    assert.deepEqual(agent.command, ["node", "/opt/snapdeploy/agent.cjs", "serve"]);
    assert.deepEqual(agent.readinessProbe?.exec.command, ["test", "-S", AGENT_SOCKET]);
    assert.equal(agent.securityContext?.privileged, undefined);
    assert.equal(env.SNAPDEPLOY_DATA, "/data");
    assert.equal(env.SNAPDEPLOY_BUILDER, "docker-socket");
    assert.equal(env.SNAPDEPLOY_MAX_BUILDS, "2");
    assert.equal(env.SNAPDEPLOY_VOLUME, `PVC snap/${DATA_CLAIM}`);
  });

  test("secrets and the socket live in a memory-backed volume; data on the claim", () => {
    const { agent, volume, mount } = parts(base);
    assert.deepEqual(volume("run")?.emptyDir, { medium: "Memory" });
    assert.equal(mount(agent, "run")?.mountPath, AGENT_SOCKET.slice(0, AGENT_SOCKET.lastIndexOf("/")));
    assert.deepEqual(volume("data")?.persistentVolumeClaim, { claimName: DATA_CLAIM });
    assert.equal(mount(agent, "data")?.mountPath, "/data");
  });

  test("docker-socket: the node's Docker socket is mounted into the agent, no dockerd container", () => {
    const { pod, agent, env, volume, mount, container } = parts(base);
    assert.deepEqual(
      pod.containers.map((c) => c.name),
      [AGENT_CONTAINER],
    );
    assert.equal(container("dockerd"), undefined);
    assert.deepEqual(volume("docker-socket")?.hostPath, { path: "/var/run/docker.sock", type: "Socket" });
    assert.equal(mount(agent, "docker-socket")?.mountPath, "/var/run/docker.sock");
    assert.equal(env.DOCKER_HOST, undefined);
    assert.equal(volume("dind-socket"), undefined);
  });

  test("dind: a privileged dockerd beside the agent, sharing a socket; no host path", () => {
    const o: ServerOptions = { ...base, builder: "dind", insecureRegistries: ["reg.local:5000"] };
    const { pod, agent, env, volume, mount, container } = parts(o);
    assert.deepEqual(
      pod.containers.map((c) => c.name),
      [AGENT_CONTAINER, "dockerd"],
    );
    const dockerd = container("dockerd") as Container;
    assert.equal(dockerd.securityContext?.privileged, true);
    assert.equal(agent.securityContext?.privileged, undefined);
    assert.ok(dockerd.command.includes("--host=unix:///run/dind/docker.sock"));
    assert.ok(dockerd.command.includes("--data-root=/data/docker"));
    assert.ok(dockerd.command.includes("--insecure-registry=reg.local:5000"));
    assert.equal(env.DOCKER_HOST, "unix:///run/dind/docker.sock");
    assert.equal(env.SNAPDEPLOY_BUILDER, "dind");
    assert.equal(env.SNAPDEPLOY_INSECURE_REGISTRIES, "reg.local:5000");
    assert.deepEqual(volume("dind-socket")?.emptyDir, {});
    assert.equal(mount(agent, "dind-socket")?.mountPath, "/run/dind");
    assert.equal(mount(dockerd, "dind-socket")?.mountPath, "/run/dind");
    assert.equal(volume("docker-socket"), undefined);
    for (const v of pod.volumes) assert.equal("hostPath" in v, false, v.name);
  });

  test("a registry secret becomes the agent's read-only DOCKER_CONFIG; without one it is on the volume", () => {
    const without = parts(base);
    assert.equal(without.env.DOCKER_CONFIG, "/data/docker");
    assert.equal(without.volume("registry-credentials"), undefined);
    const withSecret = parts({ ...base, registrySecret: "push-creds" });
    assert.equal(withSecret.env.DOCKER_CONFIG, "/etc/snapdeploy/docker");
    assert.deepEqual(withSecret.volume("registry-credentials")?.secret, {
      secretName: "push-creds",
      items: [{ key: ".dockerconfigjson", path: "config.json" }],
    });
    assert.equal(withSecret.mount(withSecret.agent, "registry-credentials")?.readOnly, true);
  });

  test("registry CAs: a ConfigMap with one key per host and a bundle, trusted by the agent and by dockerd", () => {
    const pem = (n: string) => `-----BEGIN CERTIFICATE-----\n${n}\n-----END CERTIFICATE-----\n`;
    const registryCAs = { "reg.b:5000": pem("b"), "reg.a": pem("a") };
    const none = parts(base);
    assert.equal(none.of("ConfigMap").length, 0);
    assert.equal(none.env.NODE_EXTRA_CA_CERTS, undefined);

    const { of, objects, agent, env, volume, mount, container } = parts({
      ...base,
      builder: "dind",
      registryCAs,
    });
    const cm = of("ConfigMap")[0];
    assert.equal(cm.metadata.name, REGISTRY_CA_CONFIGMAP);
    assert.equal(objects.indexOf(cm), 1, "before the deployment that mounts it");
    assert.equal(caKey("reg.b:5000"), "reg.b_5000.crt");
    assert.equal(cm.data["reg.b_5000.crt"], pem("b"));
    assert.equal(cm.data["reg.a.crt"], pem("a"));
    assert.equal(cm.data["bundle.crt"], [pem("a"), pem("b")].join("\n"), "hosts in sorted order");
    assert.equal(env.NODE_EXTRA_CA_CERTS, "/etc/snapdeploy/registry-ca/bundle.crt");
    assert.equal(mount(agent, "registry-ca")?.readOnly, true);
    assert.deepEqual((volume("registry-ca-certsd")?.configMap as Any)?.items, [
      { key: "reg.a.crt", path: "reg.a/ca.crt" },
      { key: "reg.b_5000.crt", path: "reg.b:5000/ca.crt" },
    ]);
    const dockerd = container("dockerd") as Container;
    assert.equal(mount(dockerd, "registry-ca-certsd")?.mountPath, "/etc/docker/certs.d");
  });

  const buildkit: ServerOptions = {
    ...base,
    builder: "buildkit",
    image: "docker.io/library/node:24-bookworm-slim",
    builderImage: "docker.io/moby/buildkit:v0.34.2-rootless",
    agentBundle: "console.log('agent')",
  };

  test("buildkit: a rootless buildkitd beside the agent; nothing privileged, no host path, all non-root", () => {
    const { pod, agent, container, mount, env, of } = parts({
      ...buildkit,
      registryCAs: { "reg:5000": "PEM" },
    });
    assert.deepEqual(
      pod.containers.map((c) => c.name),
      [AGENT_CONTAINER, "buildkitd"],
    );
    assert.ok(!pod.volumes.some((v) => "hostPath" in v), "no host path");
    const all = [...(pod.initContainers ?? []), ...pod.containers];
    for (const c of all) {
      assert.notEqual(c.securityContext?.privileged, true, c.name);
      assert.equal(c.securityContext?.runAsNonRoot, true, c.name);
      assert.equal(c.securityContext?.runAsUser, 1000, c.name);
    }
    assert.equal(pod.securityContext?.runAsNonRoot, true);
    assert.equal(pod.securityContext?.fsGroup, 1000);
    const bk = container("buildkitd") as Container;
    assert.equal(bk.image, buildkit.builderImage);
    assert.ok(bk.args?.includes("--oci-worker-no-process-sandbox"));
    // rootlesskit, as the image's entrypoint, runs a shell that ends a cancelled step's
    // processes and then becomes buildkitd with the flags.
    assert.deepEqual(bk.command?.slice(0, 3), ["rootlesskit", "sh", "-c"]);
    assert.match(bk.command?.[3] ?? "", /exec buildkitd "\$@"\s*$/);
    assert.equal(bk.command?.[4], "buildkitd");
    assert.ok(bk.args?.includes("--root=/data/buildkit"), "the layer cache on the data volume");
    assert.equal(bk.securityContext?.seccompProfile.type, "Unconfined");
    assert.equal(bk.securityContext?.appArmorProfile.type, "Unconfined");
    assert.equal(mount(bk, "data")?.mountPath, "/data");
    assert.equal(mount(bk, "registry-ca")?.readOnly, true);
    // The agent: non-root, read-only root, no capabilities, no escalation.
    const sc = agent.securityContext as Any;
    assert.equal(sc.readOnlyRootFilesystem, true);
    assert.equal(sc.allowPrivilegeEscalation, false);
    assert.deepEqual(sc.capabilities.drop, ["ALL"]);
    assert.equal(env.SNAPDEPLOY_BUILDER, "buildkit");
    assert.equal(env.BUILDKIT_HOST, "unix:///run/buildkit/buildkitd.sock");
    assert.equal(env.DOCKER_CONFIG, undefined, "no docker CLI state without a registry secret");
    assert.equal(env.SNAPDEPLOY_COMPRESSION, "zstd", "zstd layers unless the admin says gzip");
    assert.equal(parts({ ...buildkit, compression: "gzip" }).env.SNAPDEPLOY_COMPRESSION, "gzip");
    assert.equal(mount(agent, "buildkit-socket")?.mountPath, mount(bk, "buildkit-socket")?.mountPath);
    // buildctl comes from the BuildKit image, copied by an init container.
    const init = pod.initContainers?.[0] as Container;
    assert.equal(init.image, buildkit.builderImage);
    assert.equal(env.SNAPDEPLOY_BUILDCTL, `${mount(agent, "buildkit-tools")?.mountPath}/buildctl`);
    const cfg = of("ConfigMap").find((c: Any) => c.metadata.name === BUILDKITD_CONFIGMAP);
    assert.match(cfg.data["buildkitd.toml"], /ca = \["\/etc\/snapdeploy\/registry-ca\/reg_5000.crt"\]/);
  });

  test("buildkit-privileged: BuildKit as root in a privileged container, with a process sandbox; the agent stays unprivileged", () => {
    const { pod, agent, container, env } = parts({ ...buildkit, builder: "buildkit-privileged" });
    const bk = container("buildkitd") as Container;
    assert.deepEqual(bk.command, ["buildkitd"]);
    assert.equal(bk.securityContext?.privileged, true);
    assert.equal(bk.securityContext?.runAsUser, 0);
    assert.ok(!bk.args?.includes("--oci-worker-no-process-sandbox"), "steps in PID namespaces of their own");
    assert.ok(bk.args?.includes("--group=1000"), "the agent (uid 1000) may use the socket");
    assert.ok(bk.args?.includes("--root=/data/buildkit-privileged"), "not the rootless daemon's state");
    assert.equal((agent.securityContext as Any).runAsNonRoot, true);
    assert.equal((agent.securityContext as Any).privileged, undefined);
    assert.equal(env.SNAPDEPLOY_BUILDER, "buildkit-privileged");
    assert.equal(env.BUILDKIT_HOST, "unix:///run/buildkit/buildkitd.sock");
    assert.ok(!pod.volumes.some((v) => "hostPath" in v), "no host path");
  });

  test("buildkit without an image of its own: the agent bundle in a ConfigMap, a new bundle rolls the pod", () => {
    const { agent, mount, of, deployment, objects } = parts(buildkit);
    const cm = of("ConfigMap").find((c: Any) => c.metadata.name === AGENT_CONFIGMAP);
    assert.equal(cm.data["agent.cjs"], buildkit.agentBundle);
    assert.ok(objects.indexOf(cm) < objects.indexOf(deployment), "before the deployment that mounts it");
    assert.equal(mount(agent, "agent")?.mountPath, "/opt/snapdeploy");
    assert.deepEqual(agent.command, ["node", "/opt/snapdeploy/agent.cjs", "serve"]);
    const annotation = deployment.spec.template.metadata.annotations[BUNDLE_ANNOTATION];
    const next = parts({ ...buildkit, agentBundle: "console.log('agent 2')" });
    assert.notEqual(next.deployment.spec.template.metadata.annotations[BUNDLE_ANNOTATION], annotation);
    assert.deepEqual(parts(buildkit).deployment, deployment, "the same bundle: the same pod template");
  });

  test("the namespace carries the Pod Security level the builders need", () => {
    for (const builder of ["buildkit", "docker-socket", "dind"] as const) {
      const ns = parts({ ...buildkit, builder }).of("Namespace")[0];
      assert.equal(ns.metadata.labels["pod-security.kubernetes.io/enforce"], "privileged", builder);
    }
  });

  test("buildkitd.toml: plain-HTTP registries, private CAs, and the cache bound", () => {
    const toml = buildkitdConfig({
      namespace: "n",
      image: "i",
      insecureRegistries: ["reg.local:5000"],
      caHosts: ["reg.tls"],
      cacheSize: "30%",
    });
    assert.match(toml, /maxUsedSpace = "30%"/);
    assert.match(toml, /\[registry\."reg\.local:5000"\]\n {2}http = true/);
    assert.match(
      toml,
      /\[registry\."reg\.tls"\]\n {2}ca = \["\/etc\/snapdeploy\/registry-ca\/reg\.tls\.crt"\]/,
    );
  });
});
