/**
 * The user's Kubernetes objects as deploy input: a folder of YAML files, one file, or a
 * kustomization (kustomize.ts applies it). The user and kubectl call these files
 * manifests, hence the `--manifests` flag and the `deploy.manifests` key; in the code
 * they are resources and objects, since "manifest" is the snapshot's file list
 * (src/protocol/manifest.ts). Only these loaders read files.
 */
import { existsSync, readdirSync, readFileSync, realpathSync, statSync } from "node:fs";
import path from "node:path";
import { parseAllDocuments } from "yaml";
import { UserError } from "../../errors.js";
import { applyKustomization, kustomizationFile, parseKustomization } from "./kustomize.js";
import { isRecord, type LoadedObject, objectLabel, type ResourceObject } from "./object.js";

/**
 * Loads the --manifests path: a kustomization folder, a folder of `*.yaml`/`*.yml` files
 * (not recursive, in name order), or a single file. Objects come out in that order.
 */
export function loadResources(p: string): LoadedObject[] {
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
  if (!st.isDirectory()) return parseResources(readText(p), p);
  const k = kustomizationFile(p);
  if (k) return loadKustomization(k, stack);
  const files = readdirSync(p)
    .filter((f) => /\.ya?ml$/i.test(f))
    .sort()
    .map((f) => path.join(p, f))
    .filter((f) => statSync(f).isFile());
  if (!files.length)
    throw new UserError("input", `${p} has no *.yaml or *.yml files and no kustomization.yaml`);
  return files.flatMap((f) => parseResources(readText(f), f));
}

function readText(file: string): string {
  try {
    return readFileSync(file, "utf8");
  } catch (e) {
    throw new UserError("input", `cannot read ${file}: ${(e as Error).message}`);
  }
}

/** Parses multi-document YAML into objects; empty documents are skipped, `kind: List` is flattened. */
export function parseResources(text: string, source: string): LoadedObject[] {
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

function checkObject(v: unknown, where: string): ResourceObject {
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
  return v as ResourceObject;
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
