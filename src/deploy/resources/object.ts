/**
 * The user's Kubernetes objects as loaded (what kubectl calls manifests) and the parts
 * of them snapdeploy reads and writes: the pod template of each kind of workload, its
 * containers, its annotations. Plain objects, no cluster access.
 */

/** One object of the user's YAML, checked to have apiVersion, kind and metadata.name. */
export interface ResourceObject {
  apiVersion: string;
  kind: string;
  metadata: {
    name: string;
    namespace?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
    [key: string]: unknown;
  };
  [key: string]: unknown;
}

/** An object and the file it came from (for messages). */
export interface LoadedObject {
  object: ResourceObject;
  source: string;
}

export const isRecord = (v: unknown): v is Record<string, unknown> =>
  typeof v === "object" && v !== null && !Array.isArray(v);

export function objectLabel(o: ResourceObject): string {
  return `${o.kind.toLowerCase()}/${o.metadata.name}`;
}

/** The kinds whose containers snapdeploy feeds, by API group. */
const WORKLOADS: Record<string, string> = {
  Deployment: "apps",
  StatefulSet: "apps",
  DaemonSet: "apps",
  ReplicaSet: "apps",
  Job: "batch",
  CronJob: "batch",
  Pod: "",
};

export interface Container {
  name: string;
  image?: unknown;
}
export interface PodTemplate {
  meta: { labels?: Record<string, string>; annotations?: Record<string, string> };
  spec: { containers?: Container[]; initContainers?: Container[] };
}

/**
 * The pod template of a workload (for a Pod: the Pod itself), or undefined. Only with
 * `forWriting` is a missing template metadata added to the object.
 */
export function podTemplate(o: ResourceObject, forWriting = false): PodTemplate | undefined {
  const group = o.apiVersion.includes("/") ? o.apiVersion.split("/")[0] : "";
  if (!(o.kind in WORKLOADS) || WORKLOADS[o.kind] !== group) return undefined;
  const spec = o.spec as Record<string, unknown> | undefined;
  if (!isRecord(spec)) return undefined;
  if (o.kind === "Pod") return { meta: o.metadata, spec: spec as PodTemplate["spec"] };
  let holder: Record<string, unknown> = spec;
  if (o.kind === "CronJob") {
    const jt = spec.jobTemplate;
    if (!isRecord(jt) || !isRecord(jt.spec)) return undefined;
    holder = jt.spec;
  }
  const t = holder.template;
  if (!isRecord(t) || !isRecord(t.spec)) return undefined;
  if (!isRecord(t.metadata)) {
    if (!forWriting) return { meta: {}, spec: t.spec as PodTemplate["spec"] };
    t.metadata = {};
  }
  return { meta: t.metadata as PodTemplate["meta"], spec: t.spec as PodTemplate["spec"] };
}

/** The containers (init containers first) of a workload's pod template. */
export function containers(o: ResourceObject): Container[] {
  const t = podTemplate(o);
  if (!t) return [];
  const list = (v: unknown) => (Array.isArray(v) ? (v.filter(isRecord) as unknown as Container[]) : []);
  return [...list(t.spec.initContainers), ...list(t.spec.containers)];
}

/**
 * Adds annotations to a workload's pod template (a rollout is what they describe)
 * and to the workload itself. A Pod is its own template: both land on it.
 */
export function annotateWorkload(
  o: ResourceObject,
  template: Record<string, string>,
  workload: Record<string, string>,
): void {
  const t = podTemplate(o, true);
  if (t) t.meta.annotations = { ...t.meta.annotations, ...template };
  o.metadata.annotations = { ...o.metadata.annotations, ...workload };
}
