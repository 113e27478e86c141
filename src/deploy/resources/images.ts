/**
 * Image references in the user's objects: which containers run the project's image
 * repository, and putting the snapshot image into them. Pure.
 */
import { UserError } from "../../errors.js";
import { containers, isRecord, objectLabel, podTemplate, type ResourceObject } from "./object.js";

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
export function imageUses(objects: ResourceObject[]): ImageUse[] {
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
export function requireImageUse(objects: ResourceObject[], repository: string, where: string): void {
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
  object: ResourceObject;
  /** The containers (and init containers) that now run the new image. */
  containers: string[];
  image: string;
}

/**
 * Points every container whose image repository is `repository` at `image`, on copies
 * of the objects. Returns all objects and the workloads that changed; fails if none did.
 */
export function substituteImage(
  objects: ResourceObject[],
  repository: string,
  image: string,
  where = "the manifests",
): { objects: ResourceObject[]; changed: ChangedWorkload[] } {
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
