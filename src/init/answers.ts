/**
 * `init`'s answers checked against what exists: the Dockerfiles found, the namespace's
 * workloads. Pure, so every rule is unit-tested; the command asks or reads flags.
 */
import { UserError } from "../errors.js";
import { parseTarget, type TargetSpec, targetLabel } from "../deploy/target-spec.js";
import type { Workload } from "./workloads.js";

/** The Dockerfile to offer first: the configured one, else the root's, else the only one found. */
export function defaultDockerfile(configured: string | undefined, found: string[]): string | undefined {
  if (configured) return configured;
  if (found.includes("Dockerfile")) return "Dockerfile";
  return found.length === 1 ? found[0] : undefined;
}

/** The workloads as `init` lists them, numbered from 1. */
export function describeWorkloads(workloads: Workload[]): string[] {
  return workloads.map(
    (w, i) => `  ${String(i + 1).padStart(2)}) ${targetLabel(w)}  (containers: ${w.containers.join(", ")})`,
  );
}

/**
 * An answer to "which targets": space-separated, each a number of the list or a -t
 * value, either with `:container,...`; "" for none. UserError("usage") on anything else.
 */
export function parseTargetAnswer(text: string, workloads: Workload[]): TargetSpec[] {
  const out: TargetSpec[] = [];
  for (const token of text.trim().split(/\s+/).filter(Boolean)) {
    const m = /^(\d+)(?::(.+))?$/.exec(token);
    if (m) {
      const w = workloads[Number(m[1]) - 1];
      if (!w) throw new UserError("usage", `there is no workload number ${m[1]} (1 to ${workloads.length})`);
      const containers = m[2]?.split(",").filter(Boolean);
      out.push({ kind: w.kind, name: w.name, ...(containers?.length ? { containers } : {}) });
    } else {
      const t = parseTarget(token);
      out.push({ kind: t.kind, name: t.name, ...(t.containers?.length ? { containers: t.containers } : {}) });
    }
  }
  return out;
}

/** UserError("notFound") when a target or one of its containers is not in `workloads`. */
export function checkTargets(targets: TargetSpec[], workloads: Workload[], namespace: string): void {
  for (const t of targets) {
    const w = workloads.find((x) => x.kind === t.kind && x.name === t.name);
    if (!w) {
      const there = workloads.map(targetLabel);
      throw new UserError("notFound", `${targetLabel(t)} not found in namespace ${namespace}`, {
        hint: there.length
          ? `the Deployments and StatefulSets there: ${there.join(", ")}`
          : `namespace ${namespace} has no Deployments or StatefulSets: create the workload first, or pass -n for another namespace`,
      });
    }
    const wrong = (t.containers ?? []).filter((c) => !w.containers.includes(c));
    if (wrong.length)
      throw new UserError("notFound", `${targetLabel(t)} has no container named ${wrong.join(", ")}`, {
        hint: `its containers: ${w.containers.join(", ")}`,
      });
  }
}

/** A registry repository as image.repository takes it: [host[:port]/]path, lowercase path. */
export function checkRepository(text: string): string {
  const v = text.trim();
  if (!/^([A-Za-z0-9.-]+(:\d{1,5})?\/)?[a-z0-9]+([._-][a-z0-9]+)*(\/[a-z0-9]+([._-][a-z0-9]+)*)*$/.test(v))
    throw new UserError("usage", `"${v}" is not a registry repository`, {
      hint: "give HOST[:PORT]/PATH without a tag, e.g. registry.example.com/team/app",
    });
  return v;
}
