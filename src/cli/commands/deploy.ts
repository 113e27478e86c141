/** snapdeploy deploy | history | rollback | personal delete */
import type { KubeConfig } from "@kubernetes/client-node";
import type { Command } from "commander";
import path from "node:path";
import type { ManifestObject } from "../../deploy/manifests.js";
import type { TargetSpec } from "../../deploy/targets.js";
import { ago, seconds } from "../../ui/format.js";
import { UserError } from "../../errors.js";
import { addBuildOptions, runBuild } from "./build.js";
import { type CommandContext, commandContext } from "../context.js";

const collect = (v: string, prev: string[]) => [...prev, v];

function addTargetOptions(cmd: Command): Command {
  return cmd
    .option(
      "-t, --target <[deployment/|statefulset/]NAME[:container,...]>",
      "workload to update (repeatable; default: deploy.targets)",
      collect,
      [],
    )
    .option(
      "--target-namespace <ns>",
      "namespace of the targets (default: deploy.namespace, else the kubeconfig context's)",
    );
}

/** The targets named by flags, else by snapdeploy.yaml, resolved against the cluster. */
async function resolveTargets(c: CommandContext, opts: Record<string, unknown>, kc: KubeConfig) {
  const { parseTarget, resolveTarget, ensureNamespace, targetNamespace } = await import(
    "../../deploy/targets.js"
  );
  const flags = opts.target as string[];
  const specs: TargetSpec[] = flags.length ? flags.map(parseTarget) : c.config.deploy.targets;
  if (!specs.length) {
    throw new UserError("usage", "no deploy target given", {
      hint: "pass --target deployment/NAME[:container], or list deploy.targets in snapdeploy.yaml",
    });
  }
  const namespace = targetNamespace(
    kc,
    opts.targetNamespace as string | undefined,
    c.config.deploy.namespace,
  );
  await ensureNamespace(kc, namespace);
  return await Promise.all(specs.map((s) => resolveTarget(kc, namespace, s)));
}

/**
 * With --manifests (or deploy.manifests when no --target and no --personal is given):
 * the manifests, loaded and checked before anything is built, and the repository
 * whose containers get the snapshot. Undefined when deploying to targets.
 */
async function loadDeployManifests(c: CommandContext, opts: Record<string, unknown>, kc: KubeConfig) {
  const flag = opts.manifests as string | undefined;
  const targetFlags = (opts.target as string[]).length > 0;
  if (flag && targetFlags) {
    throw new UserError("usage", "--manifests and --target cannot be combined", {
      hint: "with --manifests, the Deployments and StatefulSets in the manifests that run the image are the targets",
    });
  }
  if (flag && opts.personal) {
    throw new UserError("usage", "--manifests and --personal cannot be combined", {
      hint: "--personal makes copies of existing targets (-t); manifests name their own objects: give them your own names instead",
    });
  }
  const configured = c.config.deploy.manifests;
  const chosen = flag ?? (targetFlags || opts.personal ? undefined : configured);
  if (!chosen) return undefined;
  const [{ loadManifests, requireImageUse, imageRepository }, { ensureNamespace, targetNamespace }] =
    await Promise.all([import("../../deploy/manifests.js"), import("../../deploy/targets.js")]);
  const repository =
    (opts.repository as string | undefined) ??
    c.config.image.repository ??
    (opts.image ? imageRepository(opts.image as string) : undefined);
  if (!repository) {
    throw new UserError("usage", "no image repository given", {
      hint: "pass --repository registry.example.com/team/app, or set image.repository in snapdeploy.yaml: containers running it get the snapshot",
    });
  }
  // Relative to the project folder (-C), like --dockerfile and deploy.manifests.
  const where = path.resolve(c.dir, chosen);
  const objects: ManifestObject[] = loadManifests(where).map((l) => l.object);
  requireImageUse(objects, repository, where);
  const namespace = targetNamespace(
    kc,
    opts.targetNamespace as string | undefined,
    c.config.deploy.namespace,
  );
  await ensureNamespace(kc, namespace);
  return { objects, repository, where, namespace };
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
    .option("--timeout <seconds>", "how long to wait for each rollout (default: deploy.timeout, 300)")
    .option("--rollback-on-failure", "if a rollout fails, put the previous images back")
    .option("--personal", "deploy to your own copy of each target (<name>-<user>), out of shared Services")
    .option(
      "--manifests <path>",
      "apply these manifests (folder of YAML files or kustomization) with the snapshot image, instead of patching targets (default: deploy.manifests)",
    )
    .action(async (opts, cmd: Command) => {
      const c = await commandContext(cmd);
      const t0 = performance.now();
      const [{ rollTargets }, { gitInfo, describeCommit }, { resolveUser }, kc] = await Promise.all([
        import("../../pipeline/deploy.js"),
        import("../../deploy/git.js"),
        import("../../config/user.js"),
        c.kube(),
      ]);
      // Both are checked before the build: a wrong target or manifest fails in seconds.
      const manifests = await loadDeployManifests(c, opts, kc);
      const targets = manifests ? [] : await resolveTargets(c, opts, kc);
      const user = resolveUser({
        flag: opts.user,
        config: c.config.user,
        kubeUser: kc.getCurrentUser() ?? undefined,
      });
      let image = opts.image as string | undefined;
      let snapshot: string | undefined;
      if (!image) {
        const built = await runBuild(c, opts);
        image = `${built.ref.replace(/:[^:/]+$/, "")}@${built.digest}`;
        snapshot = built.snapshot;
      }
      const git = gitInfo(c.dir);
      const tBuild = performance.now();
      let manifestSet: import("../../deploy/apply.js").ManifestSet | undefined;
      if (manifests) {
        const { substituteImage } = await import("../../deploy/manifests.js");
        const s = substituteImage(manifests.objects, manifests.repository, image, manifests.where);
        manifestSet = { ...s, namespace: manifests.namespace };
      }
      const reports = await rollTargets(
        kc,
        {
          targets,
          manifests: manifestSet,
          image,
          action: "deploy",
          personal: Boolean(opts.personal),
          rollbackOnFailure: Boolean(opts.rollbackOnFailure),
          timeoutMs: Number(opts.timeout ?? c.config.deploy.timeout) * 1000,
          stamp: {
            snapshot,
            user,
            commit: git.commit,
            dirty: git.dirty,
            cause: `snapdeploy deploy ${snapshot ? `snapshot ${snapshot.slice(0, 12)}` : image} by ${user} (${describeCommit(git)})`,
          },
        },
        c.reporter,
      );
      const t1 = performance.now();
      c.reporter.info(
        `deployed in ${seconds(t1 - t0)} (build ${seconds(tBuild - t0)}, rollout ${seconds(t1 - tBuild)})`,
      );
      const lines = reports.map((r) => `${r.target} revision ${r.revision}: ${r.image}`);
      if (!lines.length) lines.push(`applied ${image} (no Deployment or StatefulSet to watch)`);
      c.reporter.result(lines.join("\n"), {
        image,
        snapshot,
        targets: reports,
      });
    });

  addTargetOptions(
    program.command("history").description("per target: revision, snapshot, user, commit, time, outcome"),
  )
    .option("--personal", "the history of your personal copies")
    .option("--user <name>", "whose personal copies (with --personal)")
    .action(async (opts, cmd: Command) => {
      const c = await commandContext(cmd);
      const [{ History }, { targetLabel }, kc] = await Promise.all([
        import("../../deploy/history.js"),
        import("../../deploy/targets.js"),
        c.kube(),
      ]);
      const targets = await personalise(c, opts, kc, await resolveTargets(c, opts, kc));
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
      .description("put the targets back to the images before the last deploy, or of --to REVISION"),
  )
    .option("--to <revision>", "the history revision whose image to restore")
    .option("--timeout <seconds>", "how long to wait for each rollout")
    .option("--user <name>", "who is rolling back (default: your identity)")
    .action(async (opts, cmd: Command) => {
      const c = await commandContext(cmd);
      const [
        { History },
        { targetLabel },
        { pointTargets },
        { waitForRollout, updateRevision },
        { unstick },
        { resolveUser },
        kc,
      ] = await Promise.all([
        import("../../deploy/history.js"),
        import("../../deploy/targets.js"),
        import("../../deploy/apply.js"),
        import("../../deploy/rollout.js"),
        import("../../pipeline/deploy.js"),
        import("../../config/user.js"),
        c.kube(),
      ]);
      const user = resolveUser({
        flag: opts.user,
        config: c.config.user,
        kubeUser: kc.getCurrentUser() ?? undefined,
      });
      const targets = await resolveTargets(c, opts, kc);
      const plans = [];
      for (const t of targets) {
        const history = new History(kc, t.namespace, t);
        const entries = await history.list();
        let images: Record<string, string>;
        let what: string;
        if (opts.to !== undefined) {
          const e = entries.find((x) => x.revision === Number(opts.to));
          if (!e) {
            throw new UserError("notFound", `${targetLabel(t)} has no history revision ${opts.to}`, {
              hint: `revisions: ${entries.map((x) => x.revision).join(", ") || "(none)"}; see: snapdeploy history`,
            });
          }
          images = Object.fromEntries(t.containers.map((cn) => [cn, e.image]));
          what = `revision ${e.revision}`;
        } else {
          const last = entries.at(-1);
          if (!last || !Object.keys(last.previous).length) {
            throw new UserError(
              "notFound",
              `${targetLabel(t)} has no earlier image recorded to roll back to`,
              { hint: "see: snapdeploy history" },
            );
          }
          images = last.previous;
          what = `the images before revision ${last.revision}`;
        }
        plans.push({ t, history, images, what });
      }
      const timeoutMs = Number(opts.timeout ?? c.config.deploy.timeout) * 1000;
      for (const p of plans) {
        const image = Object.values(p.images)[0] ?? "";
        const entry = await p.history.begin({
          action: "rollback",
          image,
          previous: Object.fromEntries(
            p.t.containers.map((cn) => [
              cn,
              p.t.object.spec?.template.spec?.containers.find((x) => x.name === cn)?.image ?? "",
            ]),
          ),
          user,
          time: new Date().toISOString(),
        });
        const failedRevision = p.t.kind === "StatefulSet" ? await updateRevision(kc, p.t) : undefined;
        await pointTargets(kc, [{ target: p.t, images: p.images }], {
          user,
          cause: `snapdeploy rollback to ${p.what} by ${user}`,
        });
        if (failedRevision) await unstick(kc, p.t, failedRevision, c.reporter);
        try {
          await waitForRollout(kc, p.t, { timeoutMs, onProgress: (m) => c.reporter.info(m) });
          await p.history.finish(entry.revision, "succeeded");
        } catch (e) {
          await p.history.finish(entry.revision, "failed", (e as Error).message);
          throw e;
        }
        c.reporter.result(`${targetLabel(p.t)} rolled back to ${p.what}: ${image}`, {
          target: targetLabel(p.t),
          image,
          revision: entry.revision,
        });
      }
    });

  const personal = program.command("personal").description("your personal copies of the targets");
  addTargetOptions(
    personal
      .command("delete")
      .description("delete your personal copies (all of yours in the namespace, or of --target)"),
  )
    .option("--user <name>", "whose copies (default: your identity)")
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
      const namespace = targetNamespace(kc, opts.targetNamespace, c.config.deploy.namespace);
      const { parseTarget } = await import("../../deploy/targets.js");
      const only = (opts.target as string[]).map(parseTarget);
      const removed = await deletePersonalCopies(kc, namespace, user, only);
      c.reporter.result(
        removed.length ? `deleted ${removed.join(", ")}` : `no personal copies of ${user} in ${namespace}`,
        { removed },
      );
    });
}

/** With --personal, the user's copies instead of the shared targets. */
async function personalise(
  c: CommandContext,
  opts: Record<string, unknown>,
  kc: KubeConfig,
  targets: Awaited<ReturnType<typeof resolveTargets>>,
) {
  if (!opts.personal) return targets;
  const { resolveUser } = await import("../../config/user.js");
  const user = resolveUser({
    flag: opts.user as string | undefined,
    config: c.config.user,
    kubeUser: kc.getCurrentUser() ?? undefined,
  });
  return targets.map((t) => ({ ...t, name: `${t.name}-${user}`.slice(0, 63) }));
}
