/** snapdeploy server install | status | uninstall */
import { type Command, InvalidArgumentError, Option } from "commander";
import { readFileSync } from "node:fs";
import {
  DEFAULT_AGENT_IMAGE,
  DEFAULT_BUILDKIT_IMAGE,
  DEFAULT_BUILDKIT_PRIVILEGED_IMAGE,
} from "../../server/images.js";
import { BUILDERS, type BuilderMode, usesBuildkit } from "../../server/objects.js";
import { diskSpace, readAgentBundle, resources } from "../install-input.js";
import { ago, bytes } from "../../ui/format.js";
import { UserError } from "../../errors.js";
import { age, byteSize } from "./gc.js";
import { commandContext } from "../context.js";
import {
  checked,
  duration,
  hostPort,
  namespaceName,
  objectName,
  repeatable,
  repositoryPrefix,
  tagPrefix,
  wholeNumber,
} from "../flags.js";
import { checkQuantity } from "../../run/job.js";

/** --registry-ca HOST[:PORT]=FILE: the host and the certificate, read when the flag is parsed. */
function registryCA(spec: string): [string, string] {
  const eq = spec.indexOf("=");
  if (eq <= 0) throw new InvalidArgumentError("Expected HOST[:PORT]=FILE.");
  const host = hostPort(spec.slice(0, eq));
  const file = spec.slice(eq + 1);
  let pem: string;
  try {
    pem = readFileSync(file, "utf8");
  } catch (e) {
    throw new InvalidArgumentError(`Cannot read the CA certificate ${file}: ${(e as Error).message}.`);
  }
  if (!pem.includes("BEGIN CERTIFICATE"))
    throw new InvalidArgumentError(`${file} is not a PEM certificate (no BEGIN CERTIFICATE).`);
  return [host, pem];
}

/** -n/--namespace of the server subcommands: the build server's own (the objects they act on). */
const serverNamespaceOption = () =>
  new Option(
    "-n, --namespace <ns>",
    "namespace of the build server (default: server.namespace, else snapdeploy)",
  ).argParser(namespaceName);

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
        "buildkit: a rootless BuildKit daemon in the pod (no privileges, no Docker); buildkit-privileged: BuildKit as root in a privileged container, for nodes without user namespaces; docker-socket: the node's Docker daemon (root on the node); dind: its own privileged Docker daemon",
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
      `BuildKit image (default: ${DEFAULT_BUILDKIT_IMAGE}; with buildkit-privileged: ${DEFAULT_BUILDKIT_PRIVILEGED_IMAGE})`,
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
    .addOption(
      new Option(
        "--compression <how>",
        "how BuildKit compresses the layers it pushes: zstd (faster, smaller; pulled by containerd 1.5+, current CRI-O, Docker 23+) or gzip (any runtime, Docker 20.10 too)",
      )
        .choices(["zstd", "gzip"])
        .default("zstd"),
    )
    .option(
      "--agent-resources <spec>",
      "the agent's requests/limits, e.g. cpu=100m,memory=256Mi/memory=1Gi (default: cpu=50m,memory=64Mi/memory=1Gi)",
    )
    .option(
      "--builder-resources <spec>",
      "the BuildKit daemon's requests/limits, e.g. cpu=500m,memory=1Gi/memory=4Gi (default: cpu=250m,memory=256Mi, no limits)",
    )
    .option(
      "--size <quantity>",
      "size of its data volume (blob store, workspaces, dind layer cache)",
      checked((v) => checkQuantity(v, "--size")),
      "50Gi",
    )
    .option(
      "--storage-class <name>",
      "storage class of the data volume (default: the cluster's default)",
      objectName,
    )
    .option(
      "--insecure-registry <host:port...>",
      "registries reached over plain HTTP (dind daemon and tag checks)",
      repeatable(hostPort),
      [],
    )
    .option(
      "--registry-secret <name>",
      "Secret (type kubernetes.io/dockerconfigjson, in the server's namespace) with registry credentials",
      objectName,
    )
    .option("--max-builds <n>", "builds that may run at once; more wait in a queue", wholeNumber(1, 64), 2)
    .option(
      "--registry-ca <host=file...>",
      "trust this CA certificate (PEM file) for a registry with private TLS",
      repeatable(registryCA),
      [],
    )
    .option(
      "--allow-repository <prefix...>",
      "builds may push only to repositories under this prefix (host/path), and only snapshot tags; repeatable (default: anywhere the registry credentials allow)",
      repeatable(repositoryPrefix),
      [],
    )
    .option(
      "--allow-tag-prefix <prefix...>",
      "the snapshot tag prefixes builds may push (<prefix><id>); repeatable (default with --allow-repository: snap-)",
      repeatable(tagPrefix),
      [],
    )
    .addOption(
      new Option("--gc-every <age>", "the server runs gc this often by itself: 1d, 12h, 30m; 0: never")
        .argParser(age)
        .default(86400, "1d"),
    )
    .addOption(
      new Option(
        "--gc-older-than <age>",
        "its gc removes workspaces unused this long, and the blobs only they name",
      )
        .argParser(age)
        .default(7 * 86400, "7d"),
    )
    .option(
      "--gc-keep-cache <size>",
      "its gc also prunes the builder's cache down to this: 20GB (default: not; BuildKit keeps to --cache-size on its own)",
      byteSize,
    )
    .addOption(serverNamespaceOption())
    .option(
      "--timeout <duration>",
      "how long to wait for it to become ready: 300, 90s, 5m, 1h30m",
      duration(),
      300,
    )
    .action(async (opts, cmd: Command) => {
      const c = await commandContext(cmd);
      const { installServer } = await import("../../server/ops.js");
      const builder = opts.builder as BuilderMode;
      const given = opts.image ?? process.env.SNAPDEPLOY_SERVER_IMAGE;
      if (!given && !usesBuildkit(builder)) {
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
      if (opts.cache === "registry" && !usesBuildkit(builder)) {
        throw new UserError("usage", "--cache registry needs --builder buildkit (or buildkit-privileged)");
      }
      if (cmd.getOptionValueSource("compression") === "cli" && !usesBuildkit(builder)) {
        throw new UserError("usage", `--compression needs --builder buildkit (or buildkit-privileged)`, {
          hint: `--builder ${builder} pushes what the Docker daemon makes (gzip)`,
        });
      }
      const agentBundle = given ? undefined : readAgentBundle();
      const namespace = opts.namespace ?? c.config.server.namespace;
      const applied = await installServer(
        await c.kube(),
        {
          namespace,
          image,
          agentBundle,
          builderImage:
            opts.builderImage ??
            (builder === "buildkit-privileged" ? DEFAULT_BUILDKIT_PRIVILEGED_IMAGE : DEFAULT_BUILDKIT_IMAGE),
          cacheSize,
          cache: opts.cache,
          compression: opts.compression,
          agentResources,
          builderResources,
          builder,
          size: opts.size,
          storageClass: opts.storageClass,
          insecureRegistries: opts.insecureRegistry,
          registrySecret: opts.registrySecret,
          maxBuilds: opts.maxBuilds as number,
          registryCAs: Object.fromEntries(opts.registryCa as [string, string][]),
          allowRepositories: opts.allowRepository as string[],
          allowTagPrefixes: opts.allowTagPrefix as string[],
          gc: {
            everySeconds: opts.gcEvery as number,
            olderThanSeconds: opts.gcOlderThan as number,
            keepCacheBytes: opts.gcKeepCache as number | undefined,
          },
        },
        { timeoutMs: (opts.timeout as number) * 1000, onProgress: (s) => c.reporter.info(s) },
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
    .addOption(serverNamespaceOption())
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
      const full = diskWarning(a.disk, namespace);
      if (full) c.reporter.warn(full);
      c.reporter.result(lines.join("\n"), s);
    });

  server
    .command("uninstall")
    .description("remove the build server; its data volume is kept unless --purge")
    .addOption(serverNamespaceOption())
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

/** The warning `server status` prints when the data volume is more than 80% full. */
export function diskWarning(disk: { total: number; free: number }, namespace: string): string | undefined {
  const used = disk.total > 0 ? (disk.total - disk.free) / disk.total : 0;
  if (used <= 0.8) return undefined;
  return `the build server's data volume is ${Math.round(used * 100)}% full: see what gc would free with snapdeploy gc --dry-run${namespace === "snapdeploy" ? "" : ` -n ${namespace}`}, or grow it (server install --size)`;
}
