/**
 * Kustomizations, handled here (a subset of kustomize: resources, namespace, images,
 * commonLabels, commonAnnotations) so that neither kustomize nor kubectl is needed;
 * any other kustomization field is refused by name rather than ignored, since ignoring
 * it would deploy something else than the user wrote. Pure: load.ts reads the files.
 */
import { existsSync } from "node:fs";
import path from "node:path";
import { UserError } from "../../errors.js";
import { splitImage } from "./images.js";
import { containers, isRecord, type LoadedObject, podTemplate, type ResourceObject } from "./object.js";

export const KUSTOMIZATION_FILES = ["kustomization.yaml", "kustomization.yml", "Kustomization"];
const SUPPORTED_FIELDS = [
  "apiVersion",
  "kind",
  "resources",
  "namespace",
  "images",
  "commonLabels",
  "commonAnnotations",
];

/** The kustomization file in `dir`, if `dir` is a kustomization. */
export function kustomizationFile(dir: string): string | undefined {
  return KUSTOMIZATION_FILES.map((f) => path.join(dir, f)).find((f) => existsSync(f));
}

export interface ImageOverride {
  name: string;
  newName?: string;
  newTag?: string;
  digest?: string;
}

export interface Kustomization {
  resources: string[];
  namespace?: string;
  images: ImageOverride[];
  commonLabels: Record<string, string>;
  commonAnnotations: Record<string, string>;
}

/** Validates a parsed kustomization file against the supported subset. */
export function parseKustomization(value: unknown, file: string): Kustomization {
  if (value === null || value === undefined) value = {};
  if (!isRecord(value)) throw new UserError("input", `${file} must be a YAML mapping`);
  for (const key of Object.keys(value)) {
    if (!SUPPORTED_FIELDS.includes(key)) {
      throw new UserError("input", `${file}: the kustomization field "${key}" is not supported`, {
        hint: `snapdeploy applies kustomizations itself and supports only ${SUPPORTED_FIELDS.slice(2).join(", ")}; render other kustomizations to YAML files (kustomize build) and deploy that folder`,
      });
    }
  }
  const bad = (field: string, what: string) => new UserError("input", `${file}: "${field}" must be ${what}`);
  const stringMap = (field: string): Record<string, string> => {
    const v = value[field] ?? {};
    if (!isRecord(v) || !Object.values(v).every((x) => typeof x === "string"))
      throw bad(field, "a mapping of strings to strings");
    return v as Record<string, string>;
  };
  const resources = value.resources ?? [];
  if (!Array.isArray(resources) || !resources.every((r) => typeof r === "string"))
    throw bad("resources", "a list of file or folder paths");
  if (value.namespace !== undefined && (typeof value.namespace !== "string" || !value.namespace))
    throw bad("namespace", "a namespace name");
  const images = value.images ?? [];
  if (!Array.isArray(images)) throw bad("images", "a list of {name, newName, newTag, digest}");
  images.forEach((img, i) => {
    if (!isRecord(img) || typeof img.name !== "string" || !img.name)
      throw bad(`images[${i}]`, "a mapping with at least a name");
    for (const [k, v] of Object.entries(img)) {
      if (!["name", "newName", "newTag", "digest"].includes(k)) {
        throw new UserError("input", `${file}: images[${i}].${k} is not supported`, {
          hint: "supported: name, newName, newTag, digest",
        });
      }
      if (typeof v !== "string") throw bad(`images[${i}].${k}`, "a string");
    }
  });
  return {
    resources: resources as string[],
    namespace: value.namespace as string | undefined,
    images: images as ImageOverride[],
    commonLabels: stringMap("commonLabels"),
    commonAnnotations: stringMap("commonAnnotations"),
  };
}

/** Kinds that have no namespace: kustomize's `namespace` leaves them alone. */
const CLUSTER_SCOPED = new Set([
  "Namespace",
  "Node",
  "PersistentVolume",
  "StorageClass",
  "ClusterRole",
  "ClusterRoleBinding",
  "CustomResourceDefinition",
  "PriorityClass",
  "RuntimeClass",
  "IngressClass",
  "CSIDriver",
  "CSINode",
  "VolumeAttachment",
  "APIService",
  "MutatingWebhookConfiguration",
  "ValidatingWebhookConfiguration",
  "ValidatingAdmissionPolicy",
  "ValidatingAdmissionPolicyBinding",
  "PodSecurityPolicy",
  "FlowSchema",
  "PriorityLevelConfiguration",
  "CertificateSigningRequest",
]);

/**
 * Applies a kustomization's transformations to the objects of its resources (already
 * transformed by their own kustomizations, so an outer kustomization wins).
 */
export function applyKustomization(k: Kustomization, objects: LoadedObject[]): LoadedObject[] {
  return objects.map(({ object, source }) => {
    const o = structuredClone(object);
    if (k.namespace && !CLUSTER_SCOPED.has(o.kind)) o.metadata.namespace = k.namespace;
    if (Object.keys(k.commonLabels).length) addCommonLabels(o, k.commonLabels);
    if (Object.keys(k.commonAnnotations).length) {
      o.metadata.annotations = { ...o.metadata.annotations, ...k.commonAnnotations };
      const t = podTemplate(o, true);
      if (t && t.meta !== o.metadata) t.meta.annotations = { ...t.meta.annotations, ...k.commonAnnotations };
    }
    for (const img of k.images) {
      for (const c of containers(o)) {
        if (typeof c.image !== "string") continue;
        const ref = splitImage(c.image);
        if (ref.name !== img.name) continue;
        const name = img.newName ?? ref.name;
        if (img.digest) c.image = `${name}@${img.digest}`;
        else if (img.newTag) c.image = `${name}:${img.newTag}`;
        else c.image = `${name}${ref.tag ? `:${ref.tag}` : ""}${ref.digest ? `@${ref.digest}` : ""}`;
      }
    }
    return { object: o, source };
  });
}

/**
 * Labels on the object and, like kustomize, on what must carry them for the object to
 * keep working: selectors and pod templates of workloads, Service selectors.
 */
function addCommonLabels(o: ResourceObject, labels: Record<string, string>) {
  o.metadata.labels = { ...o.metadata.labels, ...labels };
  const spec = o.spec as Record<string, unknown> | undefined;
  if (!isRecord(spec)) return;
  if (o.kind === "Service" && o.apiVersion === "v1") {
    if (spec.type !== "ExternalName") spec.selector = { ...(spec.selector as object), ...labels };
    return;
  }
  const t = podTemplate(o, true);
  if (!t || t.meta === o.metadata) return;
  t.meta.labels = { ...t.meta.labels, ...labels };
  if (["Deployment", "StatefulSet", "DaemonSet", "ReplicaSet"].includes(o.kind)) {
    const sel = isRecord(spec.selector) ? spec.selector : {};
    spec.selector = { ...sel, matchLabels: { ...(sel.matchLabels as object), ...labels } };
  } else if (o.kind === "Job" && isRecord(spec.selector) && isRecord(spec.selector.matchLabels)) {
    spec.selector.matchLabels = { ...spec.selector.matchLabels, ...labels };
  }
  if (o.kind === "CronJob") {
    const jt = spec.jobTemplate as { metadata?: { labels?: Record<string, string> } };
    jt.metadata = { ...jt.metadata, labels: { ...jt.metadata?.labels, ...labels } };
  }
}
