/**
 * The snapdeploy.yaml that `init` writes: a new file from a commented template, or an
 * existing one edited in place with the `yaml` package's Document API, so its comments,
 * its other keys and their order stay as they were. Pure: text in, text out.
 */
import { type Document, isMap, isScalar, isSeq, parseDocument, type YAMLMap, type YAMLSeq } from "yaml";
import { UserError } from "../errors.js";
import type { TargetSpec } from "../deploy/target-spec.js";

/** What `init` decided; an undefined field leaves the file's value as it is. */
export interface InitAnswers {
  project?: string;
  repository?: string;
  dockerfile?: string;
  /** The workloads' namespace (deploy.namespace). */
  namespace?: string;
  targets?: TargetSpec[];
}

/** A new file's lines: each setting with its comment, in this order; those not answered are left out. */
const TEMPLATE: [keyof InitAnswers | "", string][] = [
  ["", "# snapdeploy's settings for this project; flags override them. Written by snapdeploy init:"],
  ["", "# edit it freely, or run snapdeploy init again to change the answers (it keeps the rest)."],
  ["project", "# The workspace on the build server is <user>/<project>.\nproject: app"],
  ["", "image:"],
  [
    "repository",
    "  # Snapshots are pushed here as <repository>:snap-<id>: the build server pushes, the nodes pull.\n  repository: r",
  ],
  [
    "dockerfile",
    "  # The Dockerfile, relative to this folder; the build context is the folder (minus .dockerignore).\n  dockerfile: Dockerfile",
  ],
  ["", "deploy:"],
  [
    "namespace",
    "  # The workloads' namespace (-n); without it, the kubeconfig context's.\n  namespace: default",
  ],
  [
    "targets",
    "  # What snapdeploy deploy rolls to each snapshot (-t overrides): a Deployment or StatefulSet,\n  # and which of its containers (default: the first).\n  targets: []",
  ],
];

/** The text of a new snapdeploy.yaml holding `answers`. */
export function newConfigText(answers: InitAnswers): string {
  const full = { targets: [], ...answers };
  const lines = TEMPLATE.filter(([key]) => key === "" || full[key] !== undefined).map(([, line]) => line);
  const doc = parseDocument(`${lines.join("\n")}\n`);
  // A section whose settings were all left out is dropped.
  for (const section of ["image", "deploy"]) if (doc.get(section) === null) doc.delete(section);
  return editDocument(doc, full);
}

const PATHS: Record<keyof InitAnswers, string[]> = {
  project: ["project"],
  repository: ["image", "repository"],
  dockerfile: ["image", "dockerfile"],
  namespace: ["deploy", "namespace"],
  targets: ["deploy", "targets"],
};

/**
 * `text` (an existing snapdeploy.yaml, `file` for messages) with `answers` set; every
 * other key, comment and blank line as it was.
 */
export function editConfigText(text: string, answers: InitAnswers, file = "snapdeploy.yaml"): string {
  const doc = parseDocument(text);
  if (doc.errors.length)
    throw new UserError("usage", `${file} is not valid YAML: ${doc.errors[0]?.message}`, {
      hint: "fix it (or move it away) and run snapdeploy init again",
    });
  if (doc.contents !== null && !isMap(doc.contents))
    throw new UserError("usage", `${file} is not a mapping of settings (key: value)`, {
      hint: "fix it (or move it away) and run snapdeploy init again",
    });
  return editDocument(doc, answers);
}

/** Which settings `answers` would change in `text` (for the summary), by their dotted paths. */
export function changedKeys(text: string | undefined, answers: InitAnswers): string[] {
  const doc = text === undefined ? undefined : parseDocument(text);
  const out: string[] = [];
  for (const [key, p] of Object.entries(PATHS) as [keyof InitAnswers, string[]][]) {
    const want = key === "targets" ? answers.targets?.map(targetEntry) : answers[key];
    if (want === undefined) continue;
    const have = doc?.getIn(p);
    const haveJs = have && typeof have === "object" && "toJSON" in have ? (have as YAMLSeq).toJSON() : have;
    if (JSON.stringify(haveJs) !== JSON.stringify(want)) out.push(p.join("."));
  }
  return out;
}

function editDocument(doc: Document, answers: InitAnswers): string {
  if (doc.contents === null) doc.contents = doc.createNode({}) as YAMLMap;
  for (const key of ["project", "repository", "dockerfile", "namespace"] as const) {
    const value = answers[key];
    if (value === undefined) continue;
    const node = doc.getIn(PATHS[key], true);
    // The scalar itself changes, so a comment on its line stays with it.
    if (isScalar(node)) node.value = value;
    else doc.setIn(PATHS[key], value);
  }
  if (answers.targets !== undefined) {
    const items = answers.targets.map((t) => {
      const n = doc.createNode(targetEntry(t)) as YAMLMap;
      n.flow = true; // one target per line: {kind: Deployment, name: web}
      return n;
    });
    const node = doc.getIn(PATHS.targets, true);
    if (isSeq(node)) {
      node.items = items;
      node.flow = items.length === 0;
    } else {
      const seq = doc.createNode([]) as YAMLSeq;
      seq.items = items;
      seq.flow = items.length === 0;
      doc.setIn(PATHS.targets, seq);
    }
  }
  return doc.toString({ lineWidth: 0 });
}

/** A target as deploy.targets lists it. */
function targetEntry(t: TargetSpec): Record<string, unknown> {
  return { kind: t.kind, name: t.name, ...(t.containers?.length ? { containers: t.containers } : {}) };
}
