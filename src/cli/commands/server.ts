/** snapdeploy server install | status | uninstall */
import { type Command, Option } from "commander";
import { readFileSync } from "node:fs";
import { DEFAULT_AGENT_IMAGE, DEFAULT_BUILDKIT_IMAGE } from "../../server/images.js";
import { BUILDERS, type BuilderMode } from "../../server/objects.js";
import { diskSpace, readAgentBundle, resources } from "../install-input.js";
import { ago, bytes } from "../../ui/format.js";
import { UserError } from "../../errors.js";
import { commandContext } from "../context.js";

function positiveInt(v: string, flag: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1)
    throw new UserError("usage", `${flag} must be a positive integer, got "${v}"`);
  return n;
}

function readCAs(specs: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const spec of specs) {
    const eq = spec.indexOf("=");
    if (eq <= 0) throw new UserError("usage", `--registry-ca "${spec}" must look like HOST[:PORT]=FILE`);
    const file = spec.slice(eq + 1);
    let pem: string;
    try {
      pem = readFileSync(file, "utf8");
    } catch (e) {
      throw new UserError("usage", `cannot read CA certificate ${file}: ${(e as Error).message}`);
    }
    if (!pem.includes("BEGIN CERTIFICATE")) throw new UserError("usage", `${file} is not a PEM certificate`);
    out[spec.slice(0, eq)] = pem;
  }
  return out;
}

export function registerServer(program: Command) {
  const server = program
    .command("server")
    .description("install, inspect or remove the in-cluster build server");

  server
    .command("install")
    .description("create or update the build server (idempotent) and wait until it is ready")
    .addOption(
      new Option(
        "--builder <mode>",
        "buildkit: a rootless BuildKit daemon in the pod (no privileges, no Docker); docker-socket: the node's Docker daemon (root on the node); dind: its own privileged daemon",
      )
        .choices(BUILDERS)
        .default("buildkit"),
    )
    .option(
      "--image <ref>",
      `agent image (default: $SNAPDEPLOY_SERVER_IMAGE; with --builder buildkit: ${DEFAULT_AGENT_IMAGE} plus the agent in a ConfigMap)`,
    )
    .option(
      "--builder-image <ref>",
      `BuildKit image for --builder buildkit (default: ${DEFAULT_BUILDKIT_IMAGE})`,
    )
    .option(
      "--cache-size <size>",
      "most BuildKit's layer cache may take: a share of the data volume (50%) or bytes (20GB)",
      "50%",
    )
    .addOption(
      new Option(
        "--cache <where>",
        "BuildKit's layer cache: on the data volume, or also in the registry as <repository>:buildcache (outlives the volume)",
      )
        .choices(["volume", "registry"])
        .default("volume"),
    )
    .option("--agent-resources <spec>", "the agent's requests/limits, e.g. cpu=100m,memory=256Mi/memory=1Gi")
    .option(
      "--builder-resources <spec>",
      "the BuildKit daemon's requests/limits, e.g. cpu=500m,memory=1Gi/memory=4Gi",
    )
    .option("--size <quantity>", "size of its data volume (blob store, workspaces, dind layer cache)", "50Gi")
    .option("--storage-class <name>", "storage class of the data volume (default: the cluster's default)")
    .option(
      "--insecure-registry <host:port...>",
      "registries reached over plain HTTP (dind daemon and tag checks)",
      [],
    )
    .option(
      "--registry-secret <name>",
      "Secret (type kubernetes.io/dockerconfigjson, in the server's namespace) with registry credentials",
    )
    .option("--max-builds <n>", "builds that may run at once; more wait in a queue", "2")
    .option(
      "--registry-ca <host=file...>",
      "trust this CA certificate (PEM file) for a registry with private TLS",
      [],
    )
    .option("-n, --namespace <ns>", "namespace of the build server")
    .option("--timeout <seconds>", "how long to wait for it to become ready", "300")
    .action(async (opts, cmd: Command) => {
      const c = await commandContext(cmd);
      const { installServer } = await import("../../server/ops.js");
      const builder = opts.builder as BuilderMode;
      const given = opts.image ?? process.env.SNAPDEPLOY_SERVER_IMAGE;
      if (!given && builder !== "buildkit") {
        throw new UserError("usage", `--builder ${builder} needs a build-server image with Docker in it`, {
          hint: "build server/Dockerfile, push it to a registry your cluster can pull from, and pass --image REF (or set SNAPDEPLOY_SERVER_IMAGE); or use --builder buildkit, which needs no image of its own",
        });
      }
      const image = given ?? DEFAULT_AGENT_IMAGE;
      const cacheSize = diskSpace(opts.cacheSize);
      const agentResources = opts.agentResources
        ? resources(opts.agentResources, "--agent-resources")
        : undefined;
      const builderResources = opts.builderResources
        ? resources(opts.builderResources, "--builder-resources")
        : undefined;
      if (opts.cache === "registry" && builder !== "buildkit") {
        throw new UserError("usage", "--cache registry needs --builder buildkit");
      }
      const agentBundle = given ? undefined : readAgentBundle();
      const namespace = opts.namespace ?? c.config.server.namespace;
      const applied = await installServer(
        await c.kube(),
        {
          namespace,
          image,
          agentBundle,
          builderImage: opts.builderImage ?? DEFAULT_BUILDKIT_IMAGE,
          cacheSize,
          cache: opts.cache,
          agentResources,
          builderResources,
          builder,
          size: opts.size,
          storageClass: opts.storageClass,
          insecureRegistries: opts.insecureRegistry,
          registrySecret: opts.registrySecret,
          maxBuilds: positiveInt(opts.maxBuilds, "--max-builds"),
          registryCAs: readCAs(opts.registryCa),
        },
        { timeoutMs: Number(opts.timeout) * 1000, onProgress: (s) => c.reporter.info(s) },
      );
      for (const a of applied) c.reporter.info(`${a.kind.toLowerCase()}/${a.name} ${a.outcome}`);
      c.reporter.result(
        `build server ready in namespace ${namespace} (builder: ${opts.builder}, image: ${image})`,
        {
          namespace,
          builder: opts.builder,
          image,
          objects: applied,
        },
      );
    });

  server
    .command("status")
    .description("is the build server ready; its agent version, disk, and workspaces")
    .option("-n, --namespace <ns>", "namespace of the build server")
    .action(async (opts, cmd: Command) => {
      const c = await commandContext(cmd);
      const namespace = opts.namespace ?? c.config.server.namespace;
      const { serverStatus } = await import("../../server/ops.js");
      const s = await serverStatus(await c.access(), namespace);
      if (!s.ready || !s.agent) {
        c.reporter.result(
          `build server in ${namespace}: not ready${s.pod ? ` (pod ${s.pod}: ${s.phase})` : " (not installed)"}`,
          s,
        );
        throw new UserError("server", `the build server in namespace ${namespace} is not ready`, {
          hint: s.pod
            ? `see: kubectl -n ${namespace} describe pod ${s.pod}`
            : "install it with: snapdeploy server install",
        });
      }
      const a = s.agent;
      const lines = [
        `build server in ${namespace}: ready (pod ${s.pod})`,
        `agent ${a.version}, builder ${a.builder}`,
        `disk: ${bytes(a.disk.total - a.disk.free)} used, ${bytes(a.disk.free)} free of ${bytes(a.disk.total)}; ${a.blobs} blobs`,
        `workspaces: ${a.workspaces.length}`,
        ...a.workspaces.map(
          (w) =>
            `  ${w.user}/${w.project}  ${w.files} files, ${bytes(w.bytes)}, last sync ${ago(w.lastSync)}`,
        ),
      ];
      c.reporter.result(lines.join("\n"), s);
    });

  server
    .command("uninstall")
    .description("remove the build server; its data volume is kept unless --purge")
    .option("-n, --namespace <ns>", "namespace of the build server")
    .option("--purge", "also delete the data volume (all workspaces and the layer cache) and the namespace")
    .action(async (opts, cmd: Command) => {
      const c = await commandContext(cmd);
      const namespace = opts.namespace ?? c.config.server.namespace;
      const { uninstallServer } = await import("../../server/ops.js");
      const removed = await uninstallServer(await c.kube(), namespace, Boolean(opts.purge));
      for (const r of removed) c.reporter.info(`deleted ${r}`);
      c.reporter.result(
        removed.length
          ? `build server removed from ${namespace}${opts.purge ? " (data purged)" : "; data volume kept (use --purge to delete it)"}`
          : `no build server in ${namespace}`,
        { namespace, removed },
      );
    });
}
