/**
 * snapdeploy init: writes (or edits) the project's snapdeploy.yaml from what it finds —
 * the tree's Dockerfiles, the namespace's Deployments and StatefulSets — and what it asks
 * on a terminal (or reads from flags elsewhere). Nothing is written until every answer
 * is checked and the result passes the config schema.
 */
import { existsSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import path from "node:path";
import type { Command } from "commander";
import { CONFIG_FILE, toName } from "../../config/config.js";
import { parseTarget, type TargetSpec } from "../../deploy/target-spec.js";
import { isUserError, UserError } from "../../errors.js";
import {
  checkRepository,
  checkTargets,
  defaultDockerfile,
  describeWorkloads,
  parseTargetAnswer,
} from "../../init/answers.js";
import type { InitAnswers } from "../../init/config-file.js";
import type { Workload } from "../../init/workloads.js";
import { type CommandContext, commandContext } from "../context.js";
import { checked, namespaceName, repeatable, workspaceName } from "../flags.js";
import { askValid, type Prompter, terminalPrompter } from "../prompt.js";
import { targetText } from "./deploy.js";

export function registerInit(program: Command) {
  program
    .command("init")
    .description(
      "write snapdeploy.yaml for this project (or edit the one there): Dockerfile, registry repository, targets",
    )
    .option(
      "-r, --repository <repo>",
      "registry repository for snapshots, e.g. registry.example.com/team/app",
      checked(checkRepository),
    )
    .option(
      "-t, --target <[deployment/|statefulset/]NAME[:container,...]>",
      "workload deploy rolls to each snapshot (repeatable)",
      repeatable(checked(targetText)),
      [],
    )
    .option("-f, --dockerfile <path>", "the Dockerfile, relative to the project folder")
    .option(
      "-n, --namespace <ns>",
      "the workloads' namespace, written as deploy.namespace (default: the kubeconfig context's)",
      namespaceName,
    )
    .option(
      "--project <name>",
      "the project's name on the build server (default: the folder's)",
      workspaceName,
    )
    .option("-y, --yes", "ask nothing: take the defaults for what no flag gives (no targets if none are set)")
    .action(async (opts, cmd: Command) => {
      const c = await commandContext(cmd);
      await runInit(c, opts);
    });
}

interface InitFlags {
  repository?: string;
  target: string[];
  dockerfile?: string;
  namespace?: string;
  project?: string;
  yes?: boolean;
}

async function runInit(c: CommandContext, opts: InitFlags): Promise<void> {
  // The YAML editor is loaded here, not with the CLI: other commands start without it.
  const [{ findDockerfiles }, { parse }, { changedKeys, editConfigText, newConfigText }] = await Promise.all([
    import("../../init/dockerfiles.js"),
    import("yaml"),
    import("../../init/config-file.js"),
  ]);
  const file = path.join(c.dir, CONFIG_FILE);
  const text = existsSync(file) ? readFileSync(file, "utf8") : undefined;
  // What the file itself says (not the defaults filled in for what it leaves out).
  const raw = (text === undefined ? {} : (parse(text) ?? {})) as {
    project?: string;
    image?: { repository?: string; dockerfile?: string };
    deploy?: { targets?: unknown[] };
  };
  const configured = text === undefined ? undefined : c.config;
  const interactive = Boolean(process.stdin.isTTY) && !opts.yes;

  const repository = opts.repository;
  const found = await findDockerfiles(c.dir);
  const dockerfileDefault = defaultDockerfile(
    raw.image?.dockerfile && existsSync(path.join(c.dir, raw.image.dockerfile))
      ? raw.image.dockerfile
      : undefined,
    found,
  );
  if (!opts.dockerfile && !found.length && !raw.image?.dockerfile)
    throw new UserError("input", `no Dockerfile in ${c.dir} (outside what .dockerignore leaves out)`, {
      hint: "write the Dockerfile snapdeploy builds your image with, or pass --dockerfile PATH",
    });
  const targetFlags = opts.target.map(parseTarget);
  const haveTargets = targetFlags.length > 0 || (raw.deploy?.targets?.length ?? 0) > 0;

  // Off a terminal nothing can be asked: every answer without a default must come from a flag.
  if (!interactive) {
    const missing: string[] = [];
    if (!repository && !raw.image?.repository) missing.push("--repository (the registry repository)");
    if (!opts.dockerfile && !dockerfileDefault)
      missing.push(`--dockerfile (found several: ${found.join(", ")})`);
    if (!haveTargets && !opts.yes) missing.push("--target (repeatable; or --yes for none)");
    if (missing.length)
      throw new UserError(
        "usage",
        `snapdeploy init cannot ask (${opts.yes ? "--yes" : "stdin is not a terminal"}) and needs: ${missing.join("; ")}`,
        {
          hint: "e.g. snapdeploy init --repository registry.example.com/team/app -t deployment/web (run it on a terminal to be asked)",
        },
      );
  }

  const access = await c.access();
  const namespace = opts.namespace ?? configured?.deploy.namespace ?? access.namespace ?? "default";
  const { listWorkloads } = await import("../../init/workloads.js");
  let workloads: Workload[] | undefined;
  try {
    workloads = await listWorkloads(access, namespace);
  } catch (e) {
    // Without the right to list them, the targets are written as given, unchecked.
    if (!isUserError(e) || e.code !== "permission") throw e;
    c.reporter.warn(
      `cannot list the workloads of namespace ${namespace} (${e.message}): targets not checked`,
    );
  }
  if (workloads && targetFlags.length) checkTargets(targetFlags, workloads, namespace);

  const answers: InitAnswers = {
    repository,
    dockerfile: opts.dockerfile ?? (raw.image?.dockerfile ? undefined : dockerfileDefault),
    namespace: opts.namespace,
    targets: targetFlags.length ? targetFlags : undefined,
    project: opts.project ?? (raw.project ? undefined : toName(path.basename(c.dir)) || undefined),
  };
  if (interactive) {
    const p = terminalPrompter();
    try {
      await ask(p, answers, {
        dir: c.dir,
        opts,
        raw,
        found,
        dockerfileDefault,
        workloads,
        namespace,
        configured,
      });
    } finally {
      p.close();
    }
  }
  if (text === undefined) answers.targets ??= [];

  const out = text === undefined ? newConfigText(answers) : editConfigText(text, answers, file);
  // The file as written must load: the schema checks everything, this file's other keys included.
  const { validateConfig } = await import("../../config/schema.js");
  validateConfig(parse(out) ?? {}, file);
  const changed = changedKeys(text, answers);
  // An answer the file already holds is no edit: the file is left byte for byte as it was.
  const write = text === undefined || changed.length > 0;
  if (write) {
    const tmp = `${file}.${process.pid}.tmp`;
    writeFileSync(tmp, out);
    renameSync(tmp, file);
  }
  const rel = path.relative(process.cwd(), c.dir);
  const next = `snapdeploy${rel ? ` -C ${rel}` : ""} deploy`;
  c.reporter.info(
    "the build server is installed once per cluster (snapdeploy server install --help); then deploy",
  );
  c.reporter.result(
    `${text === undefined ? "wrote" : write ? "updated" : "unchanged:"} ${file}${changed.length ? ` (${changed.join(", ")})` : ""}\nnext: ${next}`,
    { file, created: text === undefined, changed, next },
  );
}

/** The questions on a terminal, each with what the flags, the file or the search suggest. */
async function ask(
  p: Prompter,
  answers: InitAnswers,
  ctx: {
    dir: string;
    opts: InitFlags;
    raw: { image?: { repository?: string; dockerfile?: string } };
    found: string[];
    dockerfileDefault?: string;
    workloads?: Workload[];
    namespace: string;
    configured?: CommandContext["config"];
  },
): Promise<void> {
  const err = process.stderr;
  if (!ctx.opts.dockerfile) {
    if (ctx.found.length) err.write(`Dockerfiles here: ${ctx.found.join(", ")}\n`);
    answers.dockerfile = await askValid(
      p,
      "Dockerfile",
      ctx.raw.image?.dockerfile ?? ctx.dockerfileDefault,
      (a) => {
        if (!a) throw new UserError("usage", "a Dockerfile is needed");
        if (!existsSync(path.join(ctx.dir, a)) && !ctx.found.includes(a))
          throw new UserError("usage", `there is no ${a} in the project folder`);
        return a;
      },
    );
  }
  if (!answers.repository) {
    answers.repository = await askValid(
      p,
      "Registry repository for snapshots (e.g. registry.example.com/team/app)",
      ctx.raw.image?.repository,
      (a) => {
        if (!a) throw new UserError("usage", "a repository is needed");
        return checkRepository(a);
      },
    );
  }
  if (!ctx.opts.target.length) {
    const w = ctx.workloads ?? [];
    if (ctx.workloads) {
      err.write(
        w.length
          ? `Deployments and StatefulSets in namespace ${ctx.namespace}:\n${describeWorkloads(w).join("\n")}\n`
          : `namespace ${ctx.namespace} has no Deployments or StatefulSets yet\n`,
      );
    }
    const current = ctx.configured?.deploy.targets ?? [];
    const fallback = current.length ? current.map(targetAnswer).join(" ") : w.length === 1 ? "1" : undefined;
    answers.targets = await askValid(
      p,
      'Targets: numbers or [deployment/|statefulset/]NAME, space-separated, ":c1,c2" for containers; "-" for none',
      fallback,
      (a) => {
        if (a === "-" || a === "") return [] as TargetSpec[];
        const t = parseTargetAnswer(a, w);
        if (ctx.workloads) checkTargets(t, w, ctx.namespace);
        return t;
      },
    );
  }
}

function targetAnswer(t: TargetSpec): string {
  return `${t.kind.toLowerCase()}/${t.name}${t.containers?.length ? `:${t.containers.join(",")}` : ""}`;
}
