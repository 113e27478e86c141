/** snapdeploy build: scan, registry check, sync, remote build, push. */
import { type Command, Option } from "commander";
import path from "node:path";
import { toName } from "../../config/config.js";
import { bytes, seconds } from "../../ui/format.js";
import { UserError } from "../../errors.js";
import type { BuildRequest } from "../../pipeline/build.js";
import { type CommandContext, commandContext } from "../context.js";
import {
  checked,
  keyValue,
  namespaceName,
  platform,
  resolveRenamed,
  repeatable,
  tagPrefix,
  workspaceName,
} from "../flags.js";

/** Flags shared by every command that builds a snapshot (build, deploy, run, dev). */
export function addBuildOptions(cmd: Command): Command {
  return addWorkspaceOptions(cmd)
    .option(
      "-r, --repository <repo>",
      "image repository to push to (default: image.repository in snapdeploy.yaml)",
    )
    .option("-f, --dockerfile <path>", "Dockerfile, relative to the project folder (default: Dockerfile)")
    .option("--build-arg <KEY=VALUE>", "build argument (repeatable)", repeatable(keyValue), [])
    .option("--build-target <stage>", "Dockerfile stage to build (docker build --target)")
    .option("--platform <platform>", "target platform, e.g. linux/amd64", platform)
    .option("--tag-prefix <prefix>", "prefix of snapshot tags (default: snap-)", tagPrefix)
    .option(
      "--secret <id=ID,secret=NAME[,key=KEY]>",
      "BuildKit secret from a Kubernetes Secret (repeatable)",
      repeatable(checked(parseSecret)),
      [],
    );
}

/** Which workspace on which build server: flags shared by sync and every command that builds. */
export function addWorkspaceOptions(cmd: Command): Command {
  return cmd
    .option(
      "--project <name>",
      "project name (default: snapdeploy.yaml, else the folder's name)",
      workspaceName,
    )
    .option(
      "--user <name>",
      "whose workspace (default: $SNAPDEPLOY_USER, snapdeploy.yaml, your Kubernetes identity)",
      workspaceName,
    )
    .option(
      "--server-namespace <ns>",
      "namespace of the build server (default: server.namespace in snapdeploy.yaml, else snapdeploy)",
      namespaceName,
    );
}

/**
 * sync and build, which reach only the build server, keep -n as the old spelling of
 * --server-namespace for one release (deploy, run and dev take -n for the workloads').
 */
export function addLegacyServerNamespace(cmd: Command): Command {
  cmd.addOption(
    new Option("-n, --namespace <ns>", "deprecated: use --server-namespace")
      .argParser(namespaceName)
      .hideHelp(),
  );
  return resolveRenamed(
    cmd,
    { now: "serverNamespace", old: "namespace" },
    {
      now: "--server-namespace",
      old: "-n",
      note: "on deploy, run and dev, -n names the workloads' namespace",
    },
  );
}

/** The build server's namespace: --server-namespace, else server.namespace in snapdeploy.yaml. */
export function serverNamespace(c: CommandContext, opts: Record<string, unknown>): string {
  return (opts.serverNamespace as string | undefined) ?? c.config.server.namespace;
}

function parseKeyValues(list: string[], what: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const item of list) {
    const eq = item.indexOf("=");
    if (eq <= 0) throw new UserError("usage", `${what} "${item}" must look like KEY=VALUE`);
    out[item.slice(0, eq)] = item.slice(eq + 1);
  }
  return out;
}

function parseSecret(spec: string): { id: string; secret: string; key?: string } {
  const kv = parseKeyValues(spec.split(","), "--secret part");
  if (!kv.id || !kv.secret)
    throw new UserError("usage", `--secret "${spec}" needs id=ID and secret=NAME (and optionally key=KEY)`);
  if (!/^[A-Za-z0-9._-]{1,64}$/.test(kv.id))
    throw new UserError(
      "usage",
      `--secret id "${kv.id}" may hold only letters, digits, '.', '_' or '-' (at most 64)`,
    );
  return { id: kv.id, secret: kv.secret, key: kv.key };
}

/** Resolves flags + snapdeploy.yaml into a build request and runs it. */
export async function runBuild(
  c: CommandContext,
  opts: Record<string, unknown>,
  extra: Pick<BuildRequest, "scan" | "signal"> = {},
) {
  const [{ buildSnapshot }, cluster] = await Promise.all([import("../../pipeline/build.js"), c.access()]);
  return await buildSnapshot(cluster, { ...(await buildRequest(c, opts)), ...extra }, c.reporter);
}

/** The build request that flags + snapdeploy.yaml describe (no side effect). */
export async function buildRequest(c: CommandContext, opts: Record<string, unknown>): Promise<BuildRequest> {
  const [{ resolveUser }, cluster] = await Promise.all([import("../../config/user.js"), c.access()]);
  const image = c.config.image;
  const repository = (opts.repository as string | undefined) ?? image.repository;
  if (!repository) {
    throw new UserError("usage", "no image repository given", {
      hint: "pass --repository registry.example.com/team/app, or set image.repository in snapdeploy.yaml",
    });
  }
  const project = (opts.project as string | undefined) ?? c.config.project ?? toName(path.basename(c.dir));
  const user = resolveUser({
    flag: opts.user as string | undefined,
    config: c.config.user,
    kubeUser: cluster.user,
  });
  const buildArgs = { ...image.buildArgs, ...parseKeyValues(opts.buildArg as string[], "--build-arg") };
  const secrets = [...image.secrets, ...(opts.secret as ReturnType<typeof parseSecret>[])];
  return {
    dir: c.dir,
    user,
    project,
    serverNamespace: serverNamespace(c, opts),
    repository,
    tagPrefix: (opts.tagPrefix as string | undefined) ?? image.tagPrefix,
    settings: {
      dockerfile: (opts.dockerfile as string | undefined) ?? image.dockerfile,
      buildArgs,
      target: (opts.buildTarget as string | undefined) ?? image.target,
      platform: (opts.platform as string | undefined) ?? image.platform,
    },
    secrets,
    secretsNamespace: cluster.namespace ?? "default",
    allowSecrets: c.config.context.allowSecrets,
  };
}

export function registerBuild(program: Command) {
  addLegacyServerNamespace(
    addBuildOptions(
      program
        .command("build")
        .description(
          "build the working tree on the build server and push it (skipped if the snapshot exists)",
        ),
    ),
  ).action(async (opts, cmd: Command) => {
    const c = await commandContext(cmd);
    const t0 = performance.now();
    const r = await runBuild(c, opts);
    const phases = Object.entries(r.timings)
      .map(([k, v]) => `${k} ${v.toFixed(2)}s`)
      .join(", ");
    c.reporter.summary(
      `${r.skipped ? "skipped build (snapshot exists)" : "built and pushed"} in ${seconds(performance.now() - t0)}: ${phases}${
        r.sync && !r.sync.noop ? `; sent ${bytes(r.sync.sentBytes)}` : ""
      }`,
    );
    c.reporter.result(`${r.ref}@${r.digest}`, r);
  });
}
