/**
 * Whether the targets already run a snapshot, read from the objects as resolved: a
 * deploy of that same snapshot has nothing to do (no registry check, no build server, no
 * patch, no new pods).
 */
import { type ClusterAccess, getJson } from "../kube/access.js";
import { ANNOTATION } from "./annotations.js";
import { rolloutState } from "./rollout-state.js";
import type { ResolvedTarget, TargetSpec } from "./targets.js";

export type Running = { snapshot: string } | { snapshot?: undefined; why: string };

/**
 * The snapshot every target runs, when all of them have the same one on their pod
 * template, every named container runs an image of `repository` by digest, and the
 * rollout is complete (as `kubectl rollout status` would say). Otherwise why not.
 */
export function runningSnapshot(targets: readonly ResolvedTarget[], repository: string): Running {
  let snapshot: string | undefined;
  for (const t of targets) {
    const label = `${t.kind.toLowerCase()}/${t.name}`;
    const template = t.object.spec?.template;
    const s = template?.metadata?.annotations?.[ANNOTATION.snapshot];
    if (!s) return { why: `${label} runs no snapshot` };
    if (snapshot !== undefined && s !== snapshot) return { why: "the targets run different snapshots" };
    snapshot = s;
    for (const name of t.containers) {
      const image = template?.spec?.containers.find((c) => c.name === name)?.image ?? "";
      if (!image.startsWith(`${repository}@sha256:`))
        return { why: `${label} container ${name} runs ${image || "no image"}, not ${repository}` };
    }
    const state = rolloutState(t.kind, t.object);
    if (!state.done) return { why: `${label} is still rolling out (${state.message})` };
  }
  return snapshot ? { snapshot } : { why: "no targets" };
}

/**
 * The targets' objects read with direct API access (no Kubernetes client loaded), for the
 * no-op check only; undefined when any read fails (the full path then says why).
 */
export async function readTargetsDirect(
  access: ClusterAccess,
  namespace: string,
  specs: readonly TargetSpec[],
): Promise<ResolvedTarget[] | undefined> {
  try {
    return await Promise.all(
      specs.map(async (spec) => {
        const plural = spec.kind === "Deployment" ? "deployments" : "statefulsets";
        const object = await getJson<ResolvedTarget["object"]>(
          access,
          `/apis/apps/v1/namespaces/${encodeURIComponent(namespace)}/${plural}/${encodeURIComponent(spec.name)}`,
          `read ${spec.kind} ${spec.name}`,
        );
        const all = (object.spec?.template.spec?.containers ?? []).map((c) => c.name);
        const containers = spec.containers?.length ? spec.containers : all.slice(0, 1);
        if (containers.some((c) => !all.includes(c))) throw new Error("no such container");
        return { kind: spec.kind, name: spec.name, namespace, containers, object };
      }),
    );
  } catch {
    return undefined;
  }
}
