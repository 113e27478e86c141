/**
 * The user's own manifests as deploy input: a folder of YAML files, one file, or a
 * kustomization. Kustomizations are handled here (a subset of kustomize: resources,
 * namespace, images, commonLabels, commonAnnotations) so that neither kustomize nor
 * kubectl is needed; any other kustomization field is refused by name rather than
 * ignored, since ignoring it would deploy something else than the user wrote.
 *
 * Then the snapshot image goes into every workload container that runs the project's
 * image repository. Everything here works on plain objects and is free of cluster
 * access; only the loaders read files.
 */
import { existsSync, readdirSync, readFileSync, realpathSync, statSync } from "node:fs";
import path from "node:path";
import { parseAllDocuments } from "yaml";
import { UserError } from "../errors.js";

export interface ManifestObject {
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
  object: ManifestObject;
  source: string;
}

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

/**
 * Loads a manifests path: a kustomization folder, a folder of `*.yaml`/`*.yml` files
 * (not recursive, in name order), or a single file. Objects come out in that order.
 */
export function loadManifests(p: string): LoadedObject[] {
  const objects = loadPath(p, []);
  if (!objects.length)
    throw new UserError("input", `${p} holds no Kubernetes objects`, {
      hint: "put your Deployments, Services, ... there as YAML files, or point --manifests elsewhere",
    });
  checkDuplicates(objects);
  return objects;
}

function loadPath(p: string, stack: string[]): LoadedObject[] {
  let st: ReturnType<typeof statSync>;
  try {
    st = statSync(p);
  } catch {
    throw new UserError("input", `manifests ${p} do not exist`, {
      hint: "pass --manifests PATH (a folder of YAML files or a kustomization), or fix deploy.manifests",
    });
  }
  if (!st.isDirectory()) return parseManifests(readText(p), p);
  const k = kustomizationFile(p);
  if (k) return loadKustomization(k, stack);
  const files = readdirSync(p)
    .filter((f) => /\.ya?ml$/i.test(f))
    .sort()
    .map((f) => path.join(p, f))
    .filter((f) => statSync(f).isFile());
  if (!files.length)
    throw new UserError("input", `${p} has no *.yaml or *.yml files and no kustomization.yaml`);
  return files.flatMap((f) => parseManifests(readText(f), f));
}

function readText(file: string): string {
  try {
    return readFileSync(file, "utf8");
  } catch (e) {
    throw new UserError("input", `cannot read ${file}: ${(e as Error).message}`);
  }
}

const isRecord = (v: unknown): v is Record<string, unknown> =>
  typeof v === "object" && v !== null && !Array.isArray(v);

/** Parses multi-document YAML into objects; empty documents are skipped, `kind: List` is flattened. */
export function parseManifests(text: string, source: string): LoadedObject[] {
  const out: LoadedObject[] = [];
  parseAllDocuments(text).forEach((doc, i) => {
    const where = `${source}, document ${i + 1}`;
    if (doc.errors.length) {
      throw new UserError("input", `${where} is not valid YAML: ${doc.errors[0]?.message}`);
    }
    const value = doc.toJS() as unknown;
    if (value === null || value === undefined) return;
    const items =
      isRecord(value) && typeof value.kind === "string" && value.kind.endsWith("List") && "items" in value
        ? value.items
        : [value];
    if (!Array.isArray(items)) throw new UserError("input", `${where}: "items" of a List must be a list`);
    for (const item of items) out.push({ object: checkObject(item, where), source });
  });
  return out;
}

function checkObject(v: unknown, where: string): ManifestObject {
  const ok =
    isRecord(v) &&
    typeof v.apiVersion === "string" &&
    typeof v.kind === "string" &&
    isRecord(v.metadata) &&
    typeof v.metadata.name === "string" &&
    v.metadata.name !== "";
  if (!ok) {
    throw new UserError("input", `${where} is not a Kubernetes object`, {
      hint: "every document needs apiVersion, kind and metadata.name (generateName cannot be applied)",
    });
  }
  return v as ManifestObject;
}

function objectLabel(o: ManifestObject): string {
  return `${o.kind.toLowerCase()}/${o.metadata.name}`;
}

function checkDuplicates(objects: LoadedObject[]) {
  const seen = new Map<string, string>();
  for (const { object: o, source } of objects) {
    const group = o.apiVersion.includes("/") ? o.apiVersion.split("/")[0] : "";
    const key = `${group}/${o.kind}/${o.metadata.namespace ?? ""}/${o.metadata.name}`;
    const first = seen.get(key);
    if (first !== undefined) {
      throw new UserError(
        "input",
        `${objectLabel(o)}${o.metadata.namespace ? ` in namespace ${o.metadata.namespace}` : ""} is defined twice: in ${first} and ${source}`,
      );
    }
    seen.set(key, source);
  }
}

// ---- kustomizations ------------------------------------------------------------

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

function loadKustomization(file: string, stack: string[]): LoadedObject[] {
  const dir = path.dirname(file);
  const real = realpathSync(dir);
  if (stack.includes(real)) {
    throw new UserError("input", `${file}: resources loop back to ${dir}`, {
      hint: "a kustomization cannot include itself or a folder that includes it",
    });
  }
  const docs = parseAllDocuments(readText(file));
  const firstError = docs.flatMap((d) => d.errors)[0];
  if (firstError) throw new UserError("input", `${file} is not valid YAML: ${firstError.message}`);
  if (docs.length > 1) throw new UserError("input", `${file} must hold one YAML document`);
  const k = parseKustomization(docs[0]?.toJS(), file);
  const objects: LoadedObject[] = [];
  for (const r of k.resources) {
    if (/^[a-z][a-z0-9+.-]*:\/\//i.test(r) || /^(github\.com|gitlab\.com|bitbucket\.org)\//.test(r)) {
      throw new UserError("input", `${file}: remote resource ${r} is not supported`, {
        hint: "list local files and folders only",
      });
    }
    const p = path.resolve(dir, r);
    if (!existsSync(p)) {
      throw new UserError("input", `${file}: resource ${r} does not exist (looked for ${p})`);
    }
    objects.push(...loadPath(p, [...stack, real]));
  }
  return applyKustomization(k, objects);
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
function addCommonLabels(o: ManifestObject, labels: Record<string, string>) {
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

// ---- workloads and images ------------------------------------------------------

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

interface Container {
  name: string;
  image?: unknown;
}
interface PodTemplate {
  meta: { labels?: Record<string, string>; annotations?: Record<string, string> };
  spec: { containers?: Container[]; initContainers?: Container[] };
}

/**
 * The pod template of a workload (for a Pod: the Pod itself), or undefined. Only with
 * `forWriting` is a missing template metadata added to the object.
 */
export function podTemplate(o: ManifestObject, forWriting = false): PodTemplate | undefined {
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

function containers(o: ManifestObject): Container[] {
  const t = podTemplate(o);
  if (!t) return [];
  const list = (v: unknown) => (Array.isArray(v) ? (v.filter(isRecord) as unknown as Container[]) : []);
  return [...list(t.spec.initContainers), ...list(t.spec.containers)];
}

/** An image reference split into name (registry/repository), tag and digest. */
export function splitImage(ref: string): { name: string; tag?: string; digest?: string } {
  const at = ref.indexOf("@");
  const digest = at >= 0 ? ref.slice(at + 1) : undefined;
  const rest = at >= 0 ? ref.slice(0, at) : ref;
  const colon = rest.lastIndexOf(":");
  const out: { name: string; tag?: string; digest?: string } =
    colon > rest.lastIndexOf("/")
      ? { name: rest.slice(0, colon), tag: rest.slice(colon + 1) }
      : { name: rest };
  if (digest) out.digest = digest;
  return out;
}

/**
 * The repository of an image reference, spelled out the way registries see it:
 * `web:1` and `docker.io/library/web` are the same repository.
 */
export function imageRepository(ref: string): string {
  const name = splitImage(ref.trim()).name;
  const first = name.split("/")[0] ?? "";
  const hasRegistry = name.includes("/") && (/[.:]/.test(first) || first === "localhost");
  const full = hasRegistry ? name : `docker.io/${name}`;
  return /^docker\.io\/[^/]+$/.test(full) ? full.replace(/^docker\.io\//, "docker.io/library/") : full;
}

export interface ImageUse {
  object: string;
  container: string;
  init: boolean;
  image: string;
}

/** Every container image in the workloads, in order. */
export function imageUses(objects: ManifestObject[]): ImageUse[] {
  const out: ImageUse[] = [];
  for (const o of objects) {
    const t = podTemplate(o);
    if (!t) continue;
    for (const [init, list] of [
      [true, t.spec.initContainers],
      [false, t.spec.containers],
    ] as const) {
      for (const c of Array.isArray(list) ? list : []) {
        if (isRecord(c) && typeof c.image === "string")
          out.push({ object: objectLabel(o), container: String(c.name), init, image: c.image });
      }
    }
  }
  return out;
}

/** Fails (before anything is built or applied) unless some container runs `repository`. */
export function requireImageUse(objects: ManifestObject[], repository: string, where: string): void {
  const want = imageRepository(repository);
  const uses = imageUses(objects);
  if (uses.some((u) => imageRepository(u.image) === want)) return;
  throw new UserError("input", `no container in ${where} runs an image of ${repository}`, {
    details: uses.length
      ? uses.map((u) => `${u.object} ${u.init ? "init container" : "container"} ${u.container}: ${u.image}`)
      : ["(the manifests have no Deployment, StatefulSet, DaemonSet, Job, CronJob or Pod with containers)"],
    hint: `give the containers snapdeploy should update the image ${repository}:latest (any tag works), or set --repository / image.repository to the repository the manifests use`,
  });
}

export interface ChangedWorkload {
  /** The object as it will be applied (image substituted). */
  object: ManifestObject;
  /** The containers (and init containers) that now run the new image. */
  containers: string[];
  image: string;
}

/**
 * Points every container whose image repository is `repository` at `image`, on copies
 * of the objects. Returns all objects and the workloads that changed; fails if none did.
 */
export function substituteImage(
  objects: ManifestObject[],
  repository: string,
  image: string,
  where = "the manifests",
): { objects: ManifestObject[]; changed: ChangedWorkload[] } {
  requireImageUse(objects, repository, where);
  const want = imageRepository(repository);
  const changed: ChangedWorkload[] = [];
  const out = objects.map((original) => {
    const o = structuredClone(original);
    const names: string[] = [];
    for (const c of containers(o)) {
      if (typeof c.image === "string" && imageRepository(c.image) === want) {
        c.image = image;
        names.push(c.name);
      }
    }
    if (names.length) changed.push({ object: o, containers: names, image });
    return o;
  });
  return { objects: out, changed };
}

/**
 * Adds annotations to a workload's pod template (a rollout is what they describe)
 * and to the workload itself. A Pod is its own template: both land on it.
 */
export function annotateWorkload(
  o: ManifestObject,
  template: Record<string, string>,
  workload: Record<string, string>,
): void {
  const t = podTemplate(o, true);
  if (t) t.meta.annotations = { ...t.meta.annotations, ...template };
  o.metadata.annotations = { ...o.metadata.annotations, ...workload };
}
