/** snapdeploy deploy | history | rollback | personal delete */
import { type Command, Option } from "commander";
import { ago, bytes, seconds } from "../../ui/format.js";
import type { Snapshot } from "../../context/scan.js";
import type { ResolvedTarget } from "../../deploy/targets.js";
import type { RolloutReport } from "../../pipeline/deploy.js";
import type { DeployResources } from "../../pipeline/deploy-input.js";
import { addBuildOptions, buildRequest, runBuild } from "./build.js";
import { type CommandContext, commandContext } from "../context.js";
import {
  checked,
  duration,
  namespaceName,
  resolveRenamed,
  repeatable,
  wholeNumber,
  workspaceName,
} from "../flags.js";
import { parseTarget } from "../../deploy/target-spec.js";

/** -n/--namespace for the workloads, and its old spelling --target-namespace (one more release). */
export function addNamespaceOptions(cmd: Command, what = "the targets"): Command {
  cmd
    .option(
      "-n, --namespace <ns>",
      `namespace of ${what} (default: deploy.namespace, else the kubeconfig context's)`,
      namespaceName,
    )
    .addOption(
      new Option("--target-namespace <ns>", "deprecated: use -n/--namespace")
        .argParser(namespaceName)
        .hideHelp(),
    );
  return resolveRenamed(
    cmd,
    { now: "namespace", old: "targetNamespace" },
    {
      now: "-n/--namespace",
      old: "--target-namespace",
      note: "the build server's namespace is --server-namespace",
    },
  );
}

export function addTargetOptions(cmd: Command): Command {
  return addNamespaceOptions(
    cmd.option(
      "-t, --target <[deployment/|statefulset/]NAME[:container,...]>",
      "workload to update (repeatable; default: deploy.targets)",
      repeatable(checked(targetText)),
      [],
    ),
  );
}

/** A -t value, checked (parsed again where it is used). */
export function targetText(text: string): string {
  parseTarget(text);
  return text;
}

/** What --target and -n choose, with snapdeploy.yaml's defaults. */
export function targetChoice(c: CommandContext, opts: Record<string, unknown>) {
  return {
    flags: opts.target as string[],
    configured: c.config.deploy.targets,
    namespaceFlag: opts.namespace as string | undefined,
    configuredNamespace: c.config.deploy.namespace,
  };
}

export function registerDeploy(program: Command) {
  addTargetOptions(
    addBuildOptions(
      program
        .command("deploy")
        .description(
          "build (or reuse) the snapshot and roll the targets to it, waiting until they are really up",
        ),
    ),
  )
    .option("--image <ref>", "deploy this image instead of building the working tree")
    .option(
      "--timeout <duration>",
      "how long to wait for each rollout: 300, 90s, 5m, 1h30m (default: deploy.timeout, 5m)",
      duration(),
    )
    .option("--rollback-on-failure", "if a rollout fails, put the previous images back")
    .option("--personal", "deploy to your own copy of each target (<name>-<user>), out of shared Services")
    .option(
      "--manifests <path>",
      "apply these manifests (folder of YAML files or kustomization) with the snapshot image, instead of patching targets (default: deploy.manifests)",
    )
    .option("--restart", "roll the targets even when they already run this snapshot (new pods)")
    .action(async (opts, cmd: Command) => {
      const c = await commandContext(cmd);
      const r = await deployOnce(c, opts);
      if (r.noop) {
        c.reporter.info(
          `nothing to do: ${r.targets.join(", ")} already run snapshot ${r.snapshot?.slice(0, 12)} (use --restart to roll them anyway)`,
        );
        c.reporter.result(`${r.targets.join(", ")}: already running ${r.image ?? r.snapshot}`, {
          noop: true,
          snapshot: r.snapshot,
          targets: r.targets,
        });
        return;
      }
      const lines = r.reports.map((x) => `${x.target} revision ${x.revision}: ${x.image}`);
      if (!lines.length) lines.push(`applied ${r.image} (no Deployment or StatefulSet to watch)`);
      c.reporter.result(lines.join("\n"), { image: r.image, snapshot: r.snapshot, targets: r.reports });
    });

  addTargetOptions(
    program.command("history").description("per target: revision, snapshot, user, commit, time, outcome"),
  )
    .option("--personal", "the history of your personal copies")
    .option("--user <name>", "whose personal copies (with --personal)", workspaceName)
    .action(async (opts, cmd: Command) => {
      const c = await commandContext(cmd);
      const [{ History }, { targetLabel }, { personalTargets, resolveTargets }, { resolveUser }, kc] =
        await Promise.all([
          import("../../deploy/history.js"),
          import("../../deploy/targets.js"),
          import("../../pipeline/deploy-input.js"),
          import("../../config/user.js"),
          c.kube(),
        ]);
      const shared = await resolveTargets(kc, targetChoice(c, opts));
      // With --personal, the user's copies instead of the shared targets.
      const targets = opts.personal
        ? personalTargets(
            shared,
            resolveUser({
              flag: opts.user,
              config: c.config.user,
              kubeUser: kc.getCurrentUser() ?? undefined,
            }),
          )
        : shared;
      const out: string[] = [];
      const data: Record<string, unknown> = {};
      for (const t of targets) {
        const entries = await new History(kc, t.namespace, t).list();
        data[targetLabel(t)] = entries;
        out.push(`${targetLabel(t)} (namespace ${t.namespace})`);
        if (!entries.length) out.push("  no deploys recorded");
        for (const e of entries.slice().reverse()) {
          const commit = e.commit ? `${e.commit.slice(0, 12)}${e.dirty ? "+dirty" : ""}` : "-";
          out.push(
            `  ${String(e.revision).padStart(3)}  ${e.action.padEnd(8)} ${(e.snapshot?.slice(0, 12) ?? "-").padEnd(12)}  ${e.user.padEnd(12)} ${commit.padEnd(18)} ${ago(e.time).padEnd(10)} ${e.outcome}${e.reason ? `: ${e.reason.split("\n")[0]}` : ""}`,
          );
          out.push(`       ${e.image}`);
        }
      }
      c.reporter.result(out.join("\n"), data);
    });

  addTargetOptions(
    program
      .command("rollback")
      .description(
        "put the targets back to the images before the last deploy, or of --to REVISION; " +
          "the containers restored are those the history recorded, whatever -t names",
      ),
  )
    .option("--to <revision>", "the history revision whose images to restore", wholeNumber(1))
    .option(
      "--timeout <duration>",
      "how long to wait for each rollout: 300, 90s, 5m, 1h30m (default: deploy.timeout, 5m)",
      duration(),
    )
    .option("--user <name>", "who is rolling back (default: your identity)", workspaceName)
    .action(async (opts, cmd: Command) => {
      const c = await commandContext(cmd);
      const [{ rollBack }, { resolveTargets }, { resolveUser }, kc] = await Promise.all([
        import("../../pipeline/rollback.js"),
        import("../../pipeline/deploy-input.js"),
        import("../../config/user.js"),
        c.kube(),
      ]);
      const user = resolveUser({
        flag: opts.user,
        config: c.config.user,
        kubeUser: kc.getCurrentUser() ?? undefined,
      });
      const targets = await resolveTargets(kc, targetChoice(c, opts));
      await rollBack(
        kc,
        {
          targets,
          to: opts.to as number | undefined,
          user,
          timeoutMs: ((opts.timeout as number | undefined) ?? c.config.deploy.timeout) * 1000,
        },
        c.reporter,
        (r) =>
          c.reporter.result(`${r.target} rolled back to ${r.what}: ${r.image}`, {
            target: r.target,
            image: r.image,
            revision: r.revision,
          }),
      );
    });

  const personal = program.command("personal").description("your personal copies of the targets");
  addTargetOptions(
    personal
      .command("delete")
      .description("delete your personal copies (all of yours in the namespace, or of --target)"),
  )
    .option("--user <name>", "whose copies (default: your identity)", workspaceName)
    .action(async (opts, cmd: Command) => {
      const c = await commandContext(cmd);
      const [{ deletePersonalCopies }, { resolveUser }, { targetNamespace }, kc] = await Promise.all([
        import("../../deploy/personal.js"),
        import("../../config/user.js"),
        import("../../deploy/targets.js"),
        c.kube(),
      ]);
      const user = resolveUser({
        flag: opts.user,
        config: c.config.user,
        kubeUser: kc.getCurrentUser() ?? undefined,
      });
      const namespace = targetNamespace(kc, opts.namespace, c.config.deploy.namespace);
      const { parseTarget } = await import("../../deploy/targets.js");
      const only = (opts.target as string[]).map(parseTarget);
      const removed = await deletePersonalCopies(kc, namespace, user, only);
      c.reporter.result(
        removed.length ? `deleted ${removed.join(", ")}` : `no personal copies of ${user} in ${namespace}`,
        { removed },
      );
    });
}

export type DeployOutcome =
  | { noop: true; snapshot: string; image?: string; targets: string[] }
  | { noop: false; snapshot?: string; image: string; reports: RolloutReport[]; targets: string[] };

/**
 * One deploy as `deploy` does it: the targets (or objects) checked first, then — when
 * the targets already run the tree's snapshot and --restart is not given — nothing at all;
 * else build (or reuse) and roll out. `dev` calls it for each rebuild.
 */
export async function deployOnce(
  c: CommandContext,
  opts: Record<string, unknown>,
  extra: { signal?: AbortSignal; rollbackOnInterrupt?: boolean } = {},
): Promise<DeployOutcome> {
  const t0 = performance.now();
  // Before the Kubernetes client loads: with direct API access, do the targets already run this tree?
  const early = await noopCheck(c, opts);
  if (early.outcome) return early.outcome;
  const [
    { rollTargets },
    { loadDeployResources, resolveTargets, withImage },
    { gitInfo, describeCommit },
    { resolveUser },
    kc,
  ] = await Promise.all([
    import("../../pipeline/deploy.js"),
    import("../../pipeline/deploy-input.js"),
    import("../../deploy/git.js"),
    import("../../config/user.js"),
    c.kube(),
  ]);
  const git = gitInfo(c.dir);
  // Both are checked before the build: a wrong target or manifest fails in seconds.
  const resources = await loadDeployResources(kc, {
    flag: opts.manifests as string | undefined,
    configured: c.config.deploy.manifests,
    targetFlags: (opts.target as string[]).length > 0,
    personal: Boolean(opts.personal),
    repositoryFlag: opts.repository as string | undefined,
    configuredRepository: c.config.image.repository,
    image: opts.image as string | undefined,
    dir: c.dir,
    namespaceFlag: opts.namespace as string | undefined,
    configuredNamespace: c.config.deploy.namespace,
  });
  const targets = resources ? [] : await resolveTargets(kc, targetChoice(c, opts));
  const user = resolveUser({
    flag: opts.user as string | undefined,
    config: c.config.user,
    kubeUser: kc.getCurrentUser() ?? undefined,
  });
  let image = opts.image as string | undefined;
  let snapshot: string | undefined;
  if (!image) {
    let scan = early.scan;
    if (!early.checked) {
      const late = await noopCheck(c, opts, resources ? undefined : targets, scan, resources);
      if (late.outcome) return late.outcome;
      scan = late.scan;
    }
    const built = await runBuild(c, opts, { scan, signal: extra.signal });
    const phases = Object.entries(built.timings).map(([k, v]) => `${k} ${v.toFixed(2)}s`);
    c.reporter.summary(
      `${built.skipped ? "skipped build (snapshot exists)" : "built and pushed"}: ${phases.join(", ")}${
        built.sync && !built.sync.noop ? `; sent ${bytes(built.sync.sentBytes)}` : ""
      }`,
      { final: false },
    );
    image = `${built.ref.replace(/:[^:/]+$/, "")}@${built.digest}`;
    snapshot = built.snapshot;
  }
  const { commit, dirty } = await git;
  const tBuild = performance.now();
  const reports = await rollTargets(
    kc,
    {
      targets,
      resources: resources && withImage(resources, image),
      image,
      action: "deploy",
      personal: Boolean(opts.personal),
      rollbackOnFailure: Boolean(opts.rollbackOnFailure),
      rollbackOnInterrupt: extra.rollbackOnInterrupt,
      signal: extra.signal,
      timeoutMs: ((opts.timeout as number | undefined) ?? c.config.deploy.timeout) * 1000,
      stamp: {
        snapshot,
        user,
        commit,
        dirty,
        cause: `snapdeploy deploy ${snapshot ? `snapshot ${snapshot.slice(0, 12)}` : image} by ${user} (${describeCommit({ commit, dirty })})`,
      },
    },
    c.reporter,
  );
  const t1 = performance.now();
  c.reporter.summary(
    `deployed in ${seconds(t1 - t0)} (build ${seconds(tBuild - t0)}, rollout ${seconds(t1 - tBuild)})`,
  );
  return { noop: false, snapshot, image, reports, targets: reports.map((r) => r.target) };
}

/**
 * Whether the targets already run the tree's snapshot (see deploy/running.ts): `outcome`
 * when they do; else the scan, started, for the build to reuse. Without `targets` they
 * are read with direct API access; `checked` is false when that read failed (the full path
 * then resolves them and says what is wrong) or the check does not apply yet. With the
 * user's objects (`resources`), their Deployments and StatefulSets are the targets, and
 * each must also carry the digest of exactly these objects as applied (resources/digest.ts).
 */
async function noopCheck(
  c: CommandContext,
  opts: Record<string, unknown>,
  resolved?: ResolvedTarget[],
  started?: Promise<Snapshot>,
  resources?: DeployResources,
): Promise<{ outcome?: DeployOutcome; scan?: Promise<Snapshot>; checked: boolean }> {
  const repository = (opts.repository as string | undefined) ?? c.config.image.repository;
  const targetFlags = opts.target as string[];
  const ownObjects = Boolean(opts.manifests) || (!targetFlags.length && Boolean(c.config.deploy.manifests));
  if (opts.image || opts.restart || opts.personal || !repository) return { checked: true };
  // The user's objects are loaded (and checked) first: the late check has them.
  if (ownObjects && !resources) return { checked: false };
  const [{ readTargetsDirect, runningSnapshot }, { scanPhase }, { snapshotId }, { parseTarget }] =
    await Promise.all([
      import("../../deploy/running.js"),
      import("../../pipeline/scan.js"),
      import("../../snapshot/id.js"),
      import("../../deploy/target-spec.js"),
    ]);
  // The scan runs while the targets are read: the build reuses it when they differ.
  const scan = started ?? scanPhase(c.dir, c.reporter);
  scan.catch(() => {}); // awaited below, or by the build
  let targets = resolved;
  if (resources) {
    const { manifestWorkloads } = await import("../../pipeline/deploy-input.js");
    const workloads = manifestWorkloads(resources);
    if (!workloads) return { scan, checked: true };
    const access = await c.access();
    const read = await Promise.all(workloads.map((w) => readTargetsDirect(access, w.namespace, [w.spec])));
    if (read.some((r) => !r)) return { scan, checked: true };
    targets = read.flat() as ResolvedTarget[];
  } else if (!targets) {
    const specs = targetFlags.length ? targetFlags.map(parseTarget) : c.config.deploy.targets;
    if (!specs.length) return { scan, checked: false };
    const access = await c.access();
    const namespace =
      (opts.namespace as string | undefined) ?? c.config.deploy.namespace ?? access.namespace ?? "default";
    targets = await readTargetsDirect(access, namespace, specs);
    if (!targets) return { scan, checked: false };
  }
  const running = runningSnapshot(targets, repository);
  if (running.snapshot === undefined) return { scan, checked: true };
  // Only the local scan decides: no registry check, no build server, no patch.
  const [snapshot, request] = await Promise.all([scan, buildRequest(c, opts)]);
  const id = snapshotId(snapshot.digest, request.settings);
  const labels = targets.map((t) => `${t.kind.toLowerCase()}/${t.name}`);
  if (id !== running.snapshot) return { scan, checked: true };
  if (resources) {
    // The same snapshot, and the same objects as applied with it (the image the targets run)?
    const [{ manifestsChanged }, { withImage }] = await Promise.all([
      import("../../deploy/resources/digest.js"),
      import("../../pipeline/deploy-input.js"),
    ]);
    const first = targets[0] as ResolvedTarget;
    const image = first.object.spec?.template.spec?.containers.find(
      (x) => x.name === first.containers[0],
    )?.image;
    if (!image || manifestsChanged(targets, withImage(resources, image))) return { scan, checked: true };
  }
  return { outcome: { noop: true, snapshot: id, targets: labels }, checked: true };
}
