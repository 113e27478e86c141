/**
 * snapdeploy deploy --manifests against the real local cluster: the user's own YAML
 * (a folder, a kustomization) applied by server-side apply with the snapshot image,
 * watched like targets; refusals change nothing. And a StatefulSet as a -t target.
 */
import assert from "node:assert/strict";
import { promises as fs } from "node:fs";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import {
  DOCKER,
  installServer,
  kubectl,
  must,
  mustKubectl,
  REGISTRY_CA_FLAGS,
  REGISTRY_NODE,
  restrictedKubeconfig,
  snapdeploy,
  tempNamespace,
  uninstallServer,
  uniqueName,
} from "../helpers/cluster.js";
import { servedSoon, startClient, webApp } from "../helpers/web.js";

let server = "";
let ns = "";
let dropNs = async () => {};
const dirs: string[] = [];
// The repository deploy.test.ts uses too: base layers are pushed once.
const repo = `${REGISTRY_NODE}/e2e/web`;
const RUN_ID = `${uniqueName("run")}\n`;
const DIGEST = new RegExp(`^${repo}@sha256:[0-9a-f]{64}$`);

before(async () => {
  server = await installServer("e2e-manifests", REGISTRY_CA_FLAGS);
  ({ ns, cleanup: dropNs } = await tempNamespace("e2e-manifests-apps"));
  await startClient(ns);
});
after(async () => {
  await dropNs();
  await uninstallServer(server);
  for (const d of dirs) await fs.rm(d, { recursive: true, force: true });
});

/** A Deployment of the web app as a user writes it: the repository with a placeholder tag. */
function deploymentYaml(name: string, image: string, replicas = 1): string {
  return `apiVersion: apps/v1
kind: Deployment
metadata:
  name: ${name}
spec:
  replicas: ${replicas}
  selector:
    matchLabels: {app: ${name}}
  template:
    metadata:
      labels: {app: ${name}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
        - name: web
          image: ${image}
          ports: [{containerPort: 8080}]
          readinessProbe: {httpGet: {path: /, port: 8080}, periodSeconds: 1}
`;
}

function serviceYaml(name: string): string {
  return `apiVersion: v1
kind: Service
metadata:
  name: ${name}
spec:
  selector: {app: ${name}}
  ports: [{port: 80, targetPort: 8080}]
`;
}

const deploy = (dir: string, args: string[], extra: string[] = []) =>
  snapdeploy([
    "deploy",
    "--server-namespace",
    server,
    "--user",
    "alice",
    "--project",
    "manifests",
    "-r",
    repo,
    "-n",
    ns,
    "-C",
    dir,
    ...extra,
    ...args,
  ]);

const getJson = async (kind: string, name: string) =>
  JSON.parse(await mustKubectl(["-n", ns, "get", kind, name, "-o", "json", "--show-managed-fields"]));

const exists = async (kind: string, name: string) =>
  (await kubectl(["-n", ns, "get", kind, name])).code === 0;

const history = async (target: string) => {
  const h = await snapdeploy(["history", "-t", target, "-n", ns]);
  assert.equal(h.code, 0, h.stderr);
  return h.stdout;
};

describe("deploy --manifests", () => {
  test("a folder: created by server-side apply with the snapshot image; a change is applied on the next deploy", async () => {
    const dir = await webApp(dirs, RUN_ID, "first version\n", {
      "k8s/10-web.yaml": deploymentYaml("mweb", `${repo}:latest`),
      "k8s/20-service.yml": serviceYaml("mweb"),
    });
    const r1 = await deploy(dir, ["--manifests", "k8s"]);
    assert.equal(r1.code, 0, r1.stderr);
    assert.match(r1.stderr, /deployment\/mweb created/);
    assert.match(r1.stderr, /service\/mweb created/);
    assert.match(r1.stdout, /deployment\/mweb revision 1: /);
    const d1 = await getJson("deploy", "mweb");
    const image1 = d1.spec.template.spec.containers[0].image;
    assert.match(image1, DIGEST);
    assert.ok(
      d1.metadata.managedFields.some(
        (m: { manager: string; operation: string }) => m.manager === "snapdeploy" && m.operation === "Apply",
      ),
      JSON.stringify(d1.metadata.managedFields.map((m: { manager: string }) => m.manager)),
    );
    assert.equal(d1.spec.template.metadata.annotations["snapdeploy.dev/user"], "alice");
    assert.match(d1.spec.template.metadata.annotations["snapdeploy.dev/snapshot"], /^[0-9a-f]{64}$/);
    assert.match(d1.metadata.annotations["kubernetes.io/change-cause"], /snapdeploy deploy snapshot/);
    // The command returns once the rollout is done: the new content is served.
    await servedSoon(ns, "mweb", "first version\n");

    await fs.writeFile(path.join(dir, "greeting.txt"), "second version\n");
    await fs.writeFile(path.join(dir, "k8s/10-web.yaml"), deploymentYaml("mweb", `${repo}:latest`, 2));
    const r2 = await deploy(dir, ["--manifests", "k8s"]);
    assert.equal(r2.code, 0, r2.stderr);
    assert.match(r2.stderr, /deployment\/mweb configured/);
    const d2 = await getJson("deploy", "mweb");
    assert.equal(d2.spec.replicas, 2);
    assert.equal(d2.status.readyReplicas, 2);
    assert.match(d2.spec.template.spec.containers[0].image, DIGEST);
    assert.notEqual(d2.spec.template.spec.containers[0].image, image1);
    await servedSoon(ns, "mweb", "second version\n");
    await servedSoon(ns, "mweb", "second version\n");
    const h = await history("deployment/mweb");
    assert.match(h, /^\s+2\s+deploy\s+[0-9a-f]{12}\s+alice .* succeeded$/m);
    assert.match(h, /^\s+1\s+deploy\s+[0-9a-f]{12}\s+alice .* succeeded$/m);
  });

  test("the same tree and manifests again: nothing applied, no new pods; a manifest edit or --restart applies", async () => {
    const dir = await webApp(dirs, RUN_ID, "same version\n", {
      "k8s/10-web.yaml": deploymentYaml("mnoop", `${repo}:latest`),
      "k8s/20-service.yml": serviceYaml("mnoop"),
    });
    const r1 = await deploy(dir, ["--manifests", "k8s"]);
    assert.equal(r1.code, 0, r1.stderr);
    const d1 = await getJson("deploy", "mnoop");
    assert.match(d1.metadata.annotations["snapdeploy.dev/manifests"], /^[0-9a-f]{64}$/);
    const pods = async () =>
      (await mustKubectl(["-n", ns, "get", "pods", "-l", "app=mnoop", "-o", "name"]))
        .trim()
        .split("\n")
        .sort();
    const pods1 = await pods();

    const r2 = await deploy(dir, ["--manifests", "k8s"]);
    assert.equal(r2.code, 0, r2.stderr);
    assert.match(r2.stdout, /deployment\/mnoop: already running [0-9a-f]{64}/);
    assert.doesNotMatch(r2.stderr, /configured|created|REMOTE:/);
    const d2 = await getJson("deploy", "mnoop");
    assert.equal(d2.metadata.generation, d1.metadata.generation);
    assert.equal(d2.metadata.resourceVersion, d1.metadata.resourceVersion);
    assert.deepEqual(await pods(), pods1);
    assert.doesNotMatch(await history("deployment/mnoop"), /^\s+2\s/m);

    // A manifest edit that leaves the snapshot alone is still a change to apply.
    await fs.writeFile(
      path.join(dir, "k8s/20-service.yml"),
      serviceYaml("mnoop").replace("port: 80", "port: 81"),
    );
    const r3 = await deploy(dir, ["--manifests", "k8s"]);
    assert.equal(r3.code, 0, r3.stderr);
    assert.match(r3.stderr, /service\/mnoop configured/);
    assert.match(
      await mustKubectl(["-n", ns, "get", "svc", "mnoop", "-o", "jsonpath={.spec.ports[0].port}"]),
      /^81$/,
    );
    const r4 = await deploy(dir, ["--manifests", "k8s"]);
    assert.equal(r4.code, 0, r4.stderr);
    assert.match(r4.stdout, /already running/);
    const pods4 = await pods();

    const r5 = await deploy(dir, ["--manifests", "k8s", "--restart"]);
    assert.equal(r5.code, 0, r5.stderr);
    assert.match(r5.stderr, /deployment\/mnoop configured/);
    assert.notDeepEqual(await pods(), pods4);
  });

  test("a kustomization named by snapdeploy.yaml: nested resources, commonLabels and images", async () => {
    const dir = await webApp(dirs, RUN_ID, "kustomized\n", {
      "snapdeploy.yaml": `deploy:\n  manifests: deploy/overlay\n`,
      "deploy/base/kustomization.yaml": "resources: [web.yaml, service.yaml]\n",
      "deploy/base/web.yaml": deploymentYaml("kweb", "web-placeholder:v0"),
      "deploy/base/service.yaml": serviceYaml("kweb"),
      "deploy/overlay/kustomization.yaml": [
        "apiVersion: kustomize.config.k8s.io/v1beta1",
        "kind: Kustomization",
        "resources: [../base]",
        "commonLabels: {team: e2e}",
        "commonAnnotations: {snapdeploy.dev/e2e: kustomized}",
        "images:",
        `  - {name: web-placeholder, newName: ${repo}, newTag: latest}`,
        "",
      ].join("\n"),
    });
    const r = await deploy(dir, []);
    assert.equal(r.code, 0, r.stderr);
    const d = await getJson("deploy", "kweb");
    assert.match(d.spec.template.spec.containers[0].image, DIGEST);
    assert.equal(d.metadata.labels.team, "e2e");
    assert.equal(d.spec.selector.matchLabels.team, "e2e");
    assert.equal(d.metadata.annotations["snapdeploy.dev/e2e"], "kustomized");
    assert.equal((await getJson("svc", "kweb")).spec.selector.team, "e2e");
    await servedSoon(ns, "kweb", "kustomized\n");
    assert.match(await history("deployment/kweb"), /^\s+1\s+deploy\s+.* succeeded$/m);
  });
});

describe("deploy --manifests: failures", () => {
  test("--rollback-on-failure restores what existed and names what this deploy created", async () => {
    const manifests = (names: string[]) =>
      Object.fromEntries(names.map((n) => [`k8s/${n}.yaml`, deploymentYaml(n, `${repo}:latest`)]));
    const good = await webApp(dirs, RUN_ID, "stable\n", manifests(["rb-old"]));
    assert.equal((await deploy(good, ["--manifests", "k8s"])).code, 0);
    const stable = (await getJson("deploy", "rb-old")).spec.template.spec.containers[0].image;
    const crashing = await webApp(dirs, RUN_ID, "unused\n", {
      ...manifests(["rb-old", "rb-new"]),
      "server.js": "console.error('fatal: no database'); process.exit(4);\n",
    });
    const r = await deploy(crashing, ["--manifests", "k8s", "--rollback-on-failure", "--timeout", "90"]);
    assert.equal(r.code, 10, r.stderr);
    assert.match(r.stderr, /container web exited with code 4/);
    assert.match(r.stderr, /\| fatal: no database/);
    assert.match(
      r.stderr,
      /deployment\/rb-new was created by this deploy: there is no previous image to restore/,
    );
    assert.match(r.stderr, /restored where there were any \(deployment\/rb-new had none/);
    assert.equal((await getJson("deploy", "rb-old")).spec.template.spec.containers[0].image, stable);
    await mustKubectl(["-n", ns, "rollout", "status", "deployment/rb-old", "--timeout=60s"]);
    assert.match(await history("deployment/rb-old"), /^\s+2\s+deploy\s+.* rolled back: /m);
    assert.match(await history("deployment/rb-new"), /^\s+1\s+deploy\s+.* failed: /m);
  });
});

describe("deploy --manifests: refusals change nothing", () => {
  const fakeImage = `${repo}@sha256:${"0".repeat(64)}`;

  test("no container runs the repository: an input error listing the images, before any build", async () => {
    const dir = await webApp(dirs, RUN_ID, "unused\n", {
      "k8s/web.yaml": deploymentYaml("nomatch", "nginx:1.27"),
    });
    const r = await deploy(dir, ["--manifests", "k8s"]);
    assert.equal(r.code, 6, r.stderr);
    assert.match(r.stderr, new RegExp(`no container in \\S+k8s runs an image of ${repo}`));
    assert.match(r.stderr, /deployment\/nomatch container web: nginx:1\.27/);
    assert.doesNotMatch(r.stderr, /REMOTE: |\n\s+at /);
    assert.equal(await exists("deploy", "nomatch"), false);
  });

  test("an unsupported kustomization field is named with its file", async () => {
    const dir = await webApp(dirs, RUN_ID, "unused\n", {
      "k8s/kustomization.yaml": "resources: [web.yaml]\nnamePrefix: dev-\n",
      "k8s/web.yaml": deploymentYaml("prefixed", `${repo}:latest`),
    });
    const r = await deploy(dir, ["--manifests", "k8s", "--image", fakeImage]);
    assert.equal(r.code, 6, r.stderr);
    assert.match(r.stderr, /k8s\/kustomization\.yaml: the kustomization field "namePrefix" is not supported/);
  });

  test("--manifests with --personal or --target is a usage error", async () => {
    const dir = await webApp(dirs, RUN_ID, "unused\n", {
      "k8s/web.yaml": deploymentYaml("usage", `${repo}:latest`),
    });
    const p = await deploy(dir, ["--manifests", "k8s", "--personal", "--image", fakeImage]);
    assert.equal(p.code, 2, p.stderr);
    assert.match(p.stderr, /--manifests and --personal cannot be combined/);
    const t = await deploy(dir, ["--manifests", "k8s", "-t", "web", "--image", fakeImage]);
    assert.equal(t.code, 2, t.stderr);
    assert.match(t.stderr, /--manifests and --target cannot be combined/);
  });

  test("an object the API server rejects stops the deploy in the dry run: the valid ones are not applied either", async () => {
    const dir = await webApp(dirs, RUN_ID, "unused\n", {
      "k8s/a-web.yaml": deploymentYaml("dryrun", `${repo}:latest`),
      "k8s/b-bad.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: Not_A_Valid_Name}\n",
    });
    const r = await deploy(dir, ["--manifests", "k8s", "--image", fakeImage]);
    assert.equal(r.code, 6, r.stderr);
    assert.match(r.stderr, /refused to apply ConfigMap \S+\/Not_A_Valid_Name \(server-side dry run\)/);
    assert.equal(await exists("deploy", "dryrun"), false);
  });

  test("no permission to apply: exit 4 and nothing created", async () => {
    const kubeconfig = await restrictedKubeconfig(ns, "get,list,watch", "deployments,services,configmaps");
    const dir = await webApp(dirs, RUN_ID, "unused\n", {
      "k8s/web.yaml": deploymentYaml("forbidden", `${repo}:latest`),
      "k8s/svc.yaml": serviceYaml("forbidden"),
    });
    const r = await deploy(dir, ["--manifests", "k8s", "--image", fakeImage], ["--kubeconfig", kubeconfig]);
    assert.equal(r.code, 4, r.stderr);
    assert.match(r.stderr, /not allowed to apply Service \S+\/forbidden \(server-side dry run\)/);
    assert.equal(await exists("deploy", "forbidden"), false);
    assert.equal(await exists("svc", "forbidden"), false);
  });
});

/** A StatefulSet (and its Services) on `image`, with two pods, rolled out. */
async function statefulSet(name: string, image: string) {
  await mustKubectl(
    ["-n", ns, "apply", "-f", "-"],
    JSON.stringify({
      apiVersion: "v1",
      kind: "List",
      items: [
        {
          apiVersion: "v1",
          kind: "Service",
          metadata: { name: `${name}-headless` },
          spec: { clusterIP: "None", selector: { app: name }, ports: [{ port: 8080 }] },
        },
        {
          apiVersion: "v1",
          kind: "Service",
          metadata: { name },
          spec: { selector: { app: name }, ports: [{ port: 80, targetPort: 8080 }] },
        },
        {
          apiVersion: "apps/v1",
          kind: "StatefulSet",
          metadata: { name },
          spec: {
            serviceName: `${name}-headless`,
            replicas: 2,
            selector: { matchLabels: { app: name } },
            template: {
              metadata: { labels: { app: name } },
              spec: {
                terminationGracePeriodSeconds: 1,
                containers: [
                  {
                    name: "web",
                    image,
                    ports: [{ containerPort: 8080 }],
                    readinessProbe: { httpGet: { path: "/", port: 8080 }, periodSeconds: 1 },
                  },
                ],
              },
            },
          },
        },
      ],
    }),
  );
  await mustKubectl(["-n", ns, "rollout", "status", `statefulset/${name}`, "--timeout=120s"]);
}

describe("StatefulSet targets", () => {
  // The StatefulSets start on an image of the same app that answers "placeholder".
  const placeholder = `${repo}:${uniqueName("sts-placeholder")}`;
  before(async () => {
    await must(DOCKER, ["build", "-q", "-t", placeholder, await webApp(dirs, RUN_ID, "placeholder\n")]);
    await must(DOCKER, ["push", "-q", placeholder]);
  });

  test("deploy -t statefulset/NAME rolls every pod to the snapshot and history records it", async () => {
    const name = "db";
    await statefulSet(name, placeholder);
    await servedSoon(ns, name, "placeholder\n");

    const dir = await webApp(dirs, RUN_ID, "stateful version\n");
    const r = await deploy(dir, ["-t", `statefulset/${name}`]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /statefulset\/db revision 1: /);
    assert.match(r.stderr, /statefulset\/db: 2 of 2 pods ready at the new revision/);
    // Done means done: every pod already runs the snapshot and is ready.
    const sts = await getJson("statefulset", name);
    const image = sts.spec.template.spec.containers[0].image;
    assert.match(image, DIGEST);
    assert.equal(sts.status.updatedReplicas, 2);
    assert.equal(sts.status.readyReplicas, 2);
    const pods = JSON.parse(await mustKubectl(["-n", ns, "get", "pods", "-l", `app=${name}`, "-o", "json"]));
    const live = pods.items.filter(
      (p: { metadata: { deletionTimestamp?: string } }) => !p.metadata.deletionTimestamp,
    );
    assert.equal(live.length, 2);
    for (const p of live) {
      assert.equal(p.spec.containers[0].image, image);
      assert.equal(p.metadata.labels["controller-revision-hash"], sts.status.updateRevision);
      assert.ok(
        p.status.conditions.some(
          (c: { type: string; status: string }) => c.type === "Ready" && c.status === "True",
        ),
      );
    }
    await servedSoon(ns, name, "stateful version\n");
    assert.match(
      await history(`statefulset/${name}`),
      /^\s+1\s+deploy\s+[0-9a-f]{12}\s+alice .* succeeded$/m,
    );
  });

  test("a crashing snapshot with --rollback-on-failure: the StatefulSet is back on its old image, all pods ready", async () => {
    const name = "db-rb";
    await statefulSet(name, placeholder);
    const crashing = await webApp(dirs, RUN_ID, "unused\n", {
      "server.js": "console.error('fatal: no database'); process.exit(4);\n",
    });
    const r = await deploy(crashing, [
      "-t",
      `statefulset/${name}`,
      "--rollback-on-failure",
      "--timeout",
      "60",
    ]);
    assert.equal(r.code, 10, r.stderr);
    assert.match(r.stderr, /container web exited with code 4/);
    assert.match(r.stderr, /the previous images were restored/);
    assert.doesNotMatch(r.stderr, /did not settle/);
    const sts = await getJson("statefulset", name);
    assert.equal(sts.spec.template.spec.containers[0].image, placeholder);
    assert.equal(sts.status.readyReplicas, 2);
    assert.equal(sts.status.currentRevision, sts.status.updateRevision);
    await servedSoon(ns, name, "placeholder\n");
    assert.match(await history(`statefulset/${name}`), /^\s+1\s+deploy\s+.* rolled back: /m);
  });
});
