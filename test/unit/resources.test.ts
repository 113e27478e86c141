/** Loading the user's objects (--manifests: folders, kustomizations) and putting the snapshot image in. */
import assert from "node:assert/strict";
import { promises as fs } from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, describe, test } from "node:test";
import { imageRepository, splitImage, substituteImage } from "../../src/deploy/resources/images.js";
import { loadResources, parseResources } from "../../src/deploy/resources/load.js";
import { annotateWorkload, type ResourceObject } from "../../src/deploy/resources/object.js";

const dirs: string[] = [];
after(async () => {
  for (const d of dirs) await fs.rm(d, { recursive: true, force: true });
});

/** A temporary folder with these files (paths may have sub-folders). */
async function tree(files: Record<string, string>): Promise<string> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), "snapdeploy-manifests-"));
  dirs.push(dir);
  for (const [p, text] of Object.entries(files)) {
    await fs.mkdir(path.dirname(path.join(dir, p)), { recursive: true });
    await fs.writeFile(path.join(dir, p), text);
  }
  return dir;
}

const REPO = "registry.example.com/team/web";

function deployment(name: string, image: string, extra = ""): string {
  return `apiVersion: apps/v1
kind: Deployment
metadata:
  name: ${name}
spec:
  selector:
    matchLabels: {app: ${name}}
  template:
    metadata:
      labels: {app: ${name}}
    spec:
      containers:
        - name: web
          image: ${image}
${extra}`;
}

const service = (name: string) => `apiVersion: v1
kind: Service
metadata:
  name: ${name}
spec:
  selector: {app: ${name}}
  ports: [{port: 80}]
`;

const names = (objects: { object: ResourceObject }[]) =>
  objects.map((o) => `${o.object.kind}/${o.object.metadata.name}`);

async function rejects(fn: () => unknown, code: string, message: RegExp, hint?: RegExp) {
  await assert.rejects(
    async () => fn(),
    (e: Error & { code?: string; hint?: string; details?: string[] }) => {
      assert.equal(e.name, "UserError", e.stack);
      assert.equal(e.code, code);
      assert.match(e.message, message);
      if (hint) assert.match(`${e.hint ?? ""}\n${(e.details ?? []).join("\n")}`, hint);
      return true;
    },
  );
}

describe("loading a folder", () => {
  test("reads *.yaml and *.yml in name order, several documents per file, skips other files", async () => {
    const dir = await tree({
      "b.yml": `${service("web")}---\n# only a comment\n---\n${deployment("web", `${REPO}:latest`)}`,
      "a.yaml": deployment("api", `${REPO}:latest`),
      "notes.txt": "not yaml",
      "sub/c.yaml": service("nested"),
    });
    assert.deepEqual(names(loadResources(dir)), ["Deployment/api", "Service/web", "Deployment/web"]);
  });

  test("a single file, and a List is flattened", async () => {
    const dir = await tree({
      "list.yaml": JSON.stringify({
        apiVersion: "v1",
        kind: "List",
        items: [{ ...obj("v1", "ConfigMap", "a") }],
      }),
    });
    assert.deepEqual(names(loadResources(path.join(dir, "list.yaml"))), ["ConfigMap/a"]);
  });

  test("bad YAML, a document that is no object, duplicates and a missing path are input errors", async () => {
    await rejects(
      () => parseResources("a: [1, 2", "x.yaml"),
      "input",
      /x\.yaml, document 1 is not valid YAML/,
    );
    await rejects(
      () => parseResources("---\nkind: Deployment\n", "x.yaml"),
      "input",
      /x\.yaml, document 1 is not a Kubernetes object/,
      /apiVersion, kind and metadata\.name/,
    );
    const dup = await tree({ "a.yaml": service("web"), "b.yaml": service("web") });
    await rejects(
      () => loadResources(dup),
      "input",
      /service\/web is defined twice: in .*a\.yaml and .*b\.yaml/,
    );
    await rejects(() => loadResources(path.join(dup, "nope")), "input", /nope do not exist/);
    const empty = await tree({ "README.md": "" });
    await rejects(() => loadResources(empty), "input", /has no \*\.yaml or \*\.yml files/);
  });
});

/** The value at a dotted path of an object (numbers index lists). */
function at(o: unknown, p: string): unknown {
  return p.split(".").reduce<unknown>((v, k) => (v as Record<string, unknown> | undefined)?.[k], o);
}

function obj(apiVersion: string, kind: string, name: string): ResourceObject {
  return { apiVersion, kind, metadata: { name } };
}

describe("kustomizations", () => {
  test("resources (files, plain folders, nested kustomizations), namespace, labels, annotations, images", async () => {
    const dir = await tree({
      "base/kustomization.yaml": "resources: [deploy.yaml, service.yaml]\ncommonLabels: {tier: base}\n",
      "base/deploy.yaml": deployment(
        "web",
        "placeholder/web:1",
        "      initContainers:\n        - {name: migrate, image: placeholder/web}\n",
      ),
      "base/service.yaml": service("web"),
      "extra/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\n",
      "extra/ns.yaml": "apiVersion: v1\nkind: Namespace\nmetadata: {name: research}\n",
      "overlay/Kustomization": [
        "apiVersion: kustomize.config.k8s.io/v1beta1",
        "kind: Kustomization",
        "resources: [../base, ../extra]",
        "namespace: research",
        "commonLabels: {team: quant}",
        "commonAnnotations: {owner: alice}",
        "images:",
        `  - {name: placeholder/web, newName: ${REPO}, newTag: latest}`,
        "",
      ].join("\n"),
    });
    const loaded = loadResources(path.join(dir, "overlay"));
    assert.deepEqual(names(loaded), [
      "Deployment/web",
      "Service/web",
      "ConfigMap/settings",
      "Namespace/research",
    ]);
    const [d, s, cm, ns] = loaded.map((l) => l.object) as [
      ResourceObject,
      ResourceObject,
      ResourceObject,
      ResourceObject,
    ];
    assert.equal(d.metadata.namespace, "research");
    assert.equal(cm.metadata.namespace, "research");
    assert.equal(ns.metadata.namespace, undefined, "cluster-scoped objects get no namespace");
    assert.deepEqual(d.metadata.labels, { tier: "base", team: "quant" });
    assert.deepEqual(at(d, "spec.selector.matchLabels"), { app: "web", tier: "base", team: "quant" });
    assert.deepEqual(at(d, "spec.template.metadata.labels"), { app: "web", tier: "base", team: "quant" });
    assert.deepEqual(at(s, "spec.selector"), { app: "web", tier: "base", team: "quant" });
    assert.equal(d.metadata.annotations?.owner, "alice");
    assert.equal(at(d, "spec.template.metadata.annotations.owner"), "alice");
    assert.equal(at(d, "spec.template.spec.containers.0.image"), `${REPO}:latest`);
    assert.equal(at(d, "spec.template.spec.initContainers.0.image"), `${REPO}:latest`);
  });

  test("images: newName keeps the tag, digest replaces it; other names are left alone", async () => {
    const dir = await tree({
      "kustomization.yml": [
        "resources: [a.yaml]",
        "images:",
        "  - {name: app, newName: registry.example.com/app}",
        `  - {name: db, digest: sha256:${"1".repeat(64)}}`,
        "",
      ].join("\n"),
      "a.yaml": [
        deployment("a", "app:3"),
        "---",
        deployment("b", "db:16"),
        "---",
        deployment("c", "cache:7"),
      ].join("\n"),
    });
    const images = loadResources(dir).map((l) => at(l.object, "spec.template.spec.containers.0.image"));
    assert.deepEqual(images, ["registry.example.com/app:3", `db@sha256:${"1".repeat(64)}`, "cache:7"]);
  });

  test("an unsupported field is refused with the file and the field named", async () => {
    const dir = await tree({
      "kustomization.yaml": "resources: [a.yaml]\npatches:\n  - path: p.yaml\n",
      "a.yaml": service("web"),
    });
    await rejects(
      () => loadResources(dir),
      "input",
      /kustomization\.yaml: the kustomization field "patches" is not supported/,
      /resources, namespace, images, commonLabels, commonAnnotations/,
    );
    const prefix = await tree({ "kustomization.yaml": "namePrefix: dev-\n" });
    await rejects(() => loadResources(prefix), "input", /field "namePrefix" is not supported/);
    const tag = await tree({ "kustomization.yaml": "images: [{name: a, tagSuffix: x}]\n" });
    await rejects(() => loadResources(tag), "input", /images\[0\]\.tagSuffix is not supported/);
  });

  test("missing, remote and looping resources are input errors", async () => {
    const missing = await tree({ "kustomization.yaml": "resources: [gone.yaml]\n" });
    await rejects(() => loadResources(missing), "input", /resource gone\.yaml does not exist/);
    const remote = await tree({ "kustomization.yaml": "resources: [https://example.com/x.yaml]\n" });
    await rejects(() => loadResources(remote), "input", /remote resource .* is not supported/);
    const loop = await tree({
      "a/kustomization.yaml": "resources: [../b]\n",
      "b/kustomization.yaml": "resources: [../a]\n",
    });
    await rejects(() => loadResources(path.join(loop, "a")), "input", /resources loop back to/);
  });
});

describe("image references", () => {
  test("split into name, tag and digest; repositories compared the way registries see them", () => {
    assert.deepEqual(splitImage("10.0.0.1:5000/a/b:1"), { name: "10.0.0.1:5000/a/b", tag: "1" });
    assert.deepEqual(splitImage("10.0.0.1:5000/a/b"), { name: "10.0.0.1:5000/a/b" });
    assert.deepEqual(splitImage(`r.io/a@sha256:${"2".repeat(64)}`), {
      name: "r.io/a",
      digest: `sha256:${"2".repeat(64)}`,
    });
    assert.equal(imageRepository("nginx:1.27"), "docker.io/library/nginx");
    assert.equal(imageRepository("docker.io/nginx"), "docker.io/library/nginx");
    assert.equal(imageRepository("team/app"), "docker.io/team/app");
    assert.equal(imageRepository("localhost/app:1"), "localhost/app");
    assert.equal(imageRepository(`${REPO}:latest`), REPO);
  });
});

describe("substituting the snapshot image", () => {
  const IMAGE = `${REPO}@sha256:${"a".repeat(64)}`;

  test("containers and init containers running the repository, with a tag or a digest, get the image", () => {
    const objects = [
      ...parseResources(
        deployment(
          "web",
          `${REPO}:latest`,
          [
            "        - name: sidecar",
            "          image: envoy:1.30",
            "      initContainers:",
            "        - name: migrate",
            `          image: ${REPO}@sha256:${"b".repeat(64)}`,
          ].join("\n"),
        ),
        "d.yaml",
      ),
      ...parseResources(
        [
          "apiVersion: batch/v1",
          "kind: CronJob",
          "metadata: {name: nightly}",
          "spec:",
          "  schedule: '0 3 * * *'",
          "  jobTemplate:",
          "    spec:",
          "      template:",
          "        spec:",
          "          restartPolicy: Never",
          `          containers: [{name: job, image: "${REPO}"}]`,
        ].join("\n"),
        "c.yaml",
      ),
      ...parseResources(service("web"), "s.yaml"),
    ].map((l) => l.object);
    const before = JSON.stringify(objects);
    const r = substituteImage(objects, REPO, IMAGE);
    assert.equal(JSON.stringify(objects), before, "the input is not changed");
    assert.deepEqual(
      r.changed.map((c) => [c.object.metadata.name, c.containers]),
      [
        ["web", ["migrate", "web"]],
        ["nightly", ["job"]],
      ],
    );
    const d = r.objects[0] as ResourceObject;
    assert.deepEqual(
      (at(d, "spec.template.spec.containers") as { image: string }[]).map((c) => c.image),
      [IMAGE, "envoy:1.30"],
    );
    assert.equal(at(d, "spec.template.spec.initContainers.0.image"), IMAGE);
    const cj = r.objects[1] as ResourceObject;
    assert.equal(at(cj, "spec.jobTemplate.spec.template.spec.containers.0.image"), IMAGE);
    assert.ok(
      r.changed[0] && r.objects.includes(r.changed[0].object),
      "changed objects are the output objects",
    );

    annotateWorkload(d, { "snapdeploy.dev/user": "alice" }, { "kubernetes.io/change-cause": "deploy" });
    assert.equal(
      (at(d, "spec.template.metadata.annotations") as Record<string, string>)["snapdeploy.dev/user"],
      "alice",
    );
    assert.equal(d.metadata.annotations?.["kubernetes.io/change-cause"], "deploy");
  });

  test("kinds of other API groups are not workloads", () => {
    const fake = parseResources(deployment("x", `${REPO}:1`).replace("apps/v1", "example.com/v1"), "x.yaml");
    assert.throws(
      () =>
        substituteImage(
          fake.map((l) => l.object),
          REPO,
          IMAGE,
        ),
      /no container/,
    );
  });

  test("no container running the repository fails and lists the images found", async () => {
    const objects = parseResources(
      `${deployment("web", "nginx:1.27")}---\n${deployment("api", `${REPO}-api:1`)}`,
      "d.yaml",
    ).map((l) => l.object);
    await rejects(
      () => substituteImage(objects, REPO, IMAGE, "k8s/"),
      "input",
      new RegExp(`no container in k8s/ runs an image of ${REPO}$`),
      /deployment\/web container web: nginx:1\.27\n.*deployment\/api container web: .*-api:1/,
    );
  });
});
