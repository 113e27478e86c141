/**
 * The Roles shipped in server/rbac/user-role.yaml, for real: a service account bound to
 * exactly them (its token from the TokenRequest API) deploys, runs `dev` (a live update
 * into the pod, its logs), reads the history, rolls back and reads logs; with one right
 * taken out, the command fails with exit code 4 and a message naming the missing verb,
 * resource and namespace. The build server has a namespace of its own, so the two Roles
 * are tested apart.
 */
import assert from "node:assert/strict";
import type { ChildProcess } from "node:child_process";
import { promises as fs } from "node:fs";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { parseAllDocuments } from "yaml";
import { ExitCode } from "../../src/errors.js";
import {
  exitOf,
  installServer,
  mustKubectl,
  REGISTRY_CA_FLAGS,
  REGISTRY_NODE,
  ROOT,
  serviceAccountKubeconfig,
  snapdeploy,
  tempNamespace,
  uninstallServer,
  uniqueName,
  jsonResult,
} from "../helpers/cluster.js";
import { startCli } from "../helpers/running.js";
import { pushPlaceholder, servedSoon, startClient, webApp, webWorkload } from "../helpers/web.js";

interface Rule {
  apiGroups: string[];
  resources: string[];
  verbs: string[];
}
interface RoleDoc {
  kind: string;
  metadata: { name: string; labels: Record<string, string> };
  rules?: Rule[];
}

const SHIPPED = parseAllDocuments(
  await fs.readFile(path.join(ROOT, "server/rbac/user-role.yaml"), "utf8"),
).map((d) => d.toJS() as RoleDoc);
const shippedRole = (name: string): RoleDoc => {
  const r = SHIPPED.find((d) => d.kind === "Role" && d.metadata.name === name);
  assert.ok(r, `server/rbac/user-role.yaml has Role ${name}`);
  return r;
};

let server = "";
let ns = "";
let dropNs = async () => {};
const dirs: string[] = [];
const children: ChildProcess[] = [];
const repo = `${REGISTRY_NODE}/e2e/rbac`;
const RUN_ID = `${uniqueName("run")}\n`;
let PLACEHOLDER = "";

before(async () => {
  server = await installServer("e2e-rbac-server", REGISTRY_CA_FLAGS);
  ({ ns, cleanup: dropNs } = await tempNamespace("e2e-rbac"));
  PLACEHOLDER = await pushPlaceholder(dirs, RUN_ID);
  await startClient(ns);
  await webWorkload(ns, "hello", PLACEHOLDER);
});
after(async () => {
  await dropNs();
  await uninstallServer(server);
  for (const c of children) if (c.exitCode === null) c.kill("SIGKILL");
  for (const d of dirs) await fs.rm(d, { recursive: true, force: true });
});

/**
 * A fresh service account in the workloads' namespace bound to the shipped workloads Role
 * there and the build-server Role in the server's namespace, each changed by `edit`
 * (which takes rights out); returns a kubeconfig acting as it.
 */
async function userKubeconfig(
  edit: { workloads?: (r: Rule[]) => Rule[]; server?: (r: Rule[]) => Rule[] } = {},
) {
  const sa = uniqueName("user");
  await mustKubectl(["-n", ns, "create", "serviceaccount", sa]);
  const bind = async (role: RoleDoc, namespace: string, change?: (r: Rule[]) => Rule[]) => {
    const name = `${role.metadata.name}-${sa}`;
    const rules = change ? change(structuredClone(role.rules ?? [])) : role.rules;
    await mustKubectl(
      ["-n", namespace, "apply", "-f", "-"],
      JSON.stringify({ ...role, metadata: { name, labels: role.metadata.labels }, rules }),
    );
    await mustKubectl([
      "-n",
      namespace,
      "create",
      "rolebinding",
      name,
      `--role=${name}`,
      `--serviceaccount=${ns}:${sa}`,
    ]);
  };
  await bind(shippedRole("snapdeploy-workloads"), ns, edit.workloads);
  await bind(shippedRole("snapdeploy-build-server"), server, edit.server);
  return await serviceAccountKubeconfig(ns, sa);
}

/** The rules without `verb` on `resource`. */
const without =
  (resource: string, verb: string) =>
  (rules: Rule[]): Rule[] =>
    rules.flatMap((r) => {
      if (!r.resources.includes(resource) || !r.verbs.includes(verb)) return [r];
      const rest = r.resources.filter((x) => x !== resource);
      return [
        ...(rest.length ? [{ ...r, resources: rest }] : []),
        { ...r, resources: [resource], verbs: r.verbs.filter((v) => v !== verb) },
      ];
    });

/** Runs snapdeploy as the user of `kubeconfig`, in the workloads' namespace (flags before any `--`). */
const as = (kubeconfig: string, args: string[]) => {
  const end = args.includes("--") ? args.indexOf("--") : args.length;
  return snapdeploy([...args.slice(0, end), "--kubeconfig", kubeconfig, "-n", ns, ...args.slice(end)]);
};

describe("the shipped Roles", () => {
  test("are enough for deploy, history, run, rollback and logs", async () => {
    const kc = await userKubeconfig();
    const dir = await webApp(dirs, RUN_ID, "deployed with the shipped roles\n");
    const common = ["--server-namespace", server, "--user", "rbac", "-r", repo, "-C", dir];

    const deployed = await as(kc, ["deploy", "-t", "hello", "--timeout", "3m", ...common]);
    assert.equal(deployed.code, 0, deployed.stderr);
    await servedSoon(ns, "hello", "deployed with the shipped roles\n");

    const history = await as(kc, ["history", "-t", "hello", "-o", "json"]);
    assert.equal(history.code, 0, history.stderr);
    const entries = jsonResult(history.stdout)["deployment/hello"];
    assert.equal(entries.at(-1).outcome, "succeeded");
    assert.match(entries.at(-1).image, new RegExp(`^${repo}@sha256:`));

    const ran = await as(kc, ["run", "-t", "hello", ...common, "--", "cat", "/app/greeting.txt"]);
    assert.equal(ran.code, 0, ran.stderr);
    assert.equal(ran.stdout, "deployed with the shipped roles\n");

    const logs = await as(kc, ["logs", "-t", "hello"]);
    assert.equal(logs.code, 0, logs.stderr);
    assert.match(logs.stdout, /^hello-\S+\/web listening on 8080$/m);

    const rolledBack = await as(kc, ["rollback", "-t", "hello", "--user", "rbac", "--timeout", "3m"]);
    assert.equal(rolledBack.code, 0, rolledBack.stderr);
    await servedSoon(ns, "hello", "placeholder\n");
  });

  test("are enough for dev: the first deploy, a live update into the pod, its logs", async () => {
    const kc = await userKubeconfig();
    await webWorkload(ns, "devhello", PLACEHOLDER);
    const dir = await webApp(dirs, RUN_ID, "dev with the shipped roles\n", {
      "snapdeploy.yaml": "dev:\n  sync:\n    - {src: greeting.txt, dest: /app/greeting.txt}\n",
    });
    const common = ["--server-namespace", server, "--user", "rbac-dev", "-r", repo, "-C", dir];
    const dev = startCli(["dev", "-t", "devhello", ...common, "--kubeconfig", kc, "-n", ns], children);
    await dev.waitFor(/\[dev\] running snapshot [0-9a-f]{12}/);
    await servedSoon(ns, "devhello", "dev with the shipped roles\n");
    await dev.waitFor(/^devhello-\S+\/web listening on 8080$/m);
    await fs.writeFile(path.join(dir, "greeting.txt"), "live-updated with the shipped roles\n");
    await dev.waitFor(/\[dev\] live update: 1 file into 1 container in [\d.]+ s/);
    await servedSoon(ns, "devhello", "live-updated with the shipped roles\n");
    assert.doesNotMatch(dev.out.stderr, /forbidden|cannot /i);
    dev.child.kill("SIGINT");
    assert.equal(await exitOf(dev.child), 130);
  });

  test("without patch on deployments: exit 4 naming the verb, resource and namespace", async () => {
    const kc = await userKubeconfig({ workloads: without("deployments", "patch") });
    const r = await as(kc, ["deploy", "-t", "hello", "--image", PLACEHOLDER, "--user", "rbac"]);
    assert.equal(r.code, ExitCode.permission, r.stderr);
    assert.match(
      r.stderr,
      new RegExp(
        `not allowed to patch deployments/hello in namespace ${ns}: missing RBAC permission "patch" on "deployments" \\(API group "apps"\\) in namespace ${ns}`,
      ),
    );
    assert.match(r.stderr, /check with: kubectl auth can-i patch deployments\.apps -n /);
    assert.doesNotMatch(r.stderr, /\n\s+at /);
  });

  test("without watch on deployments: exit 4 naming it, not a wait until the timeout", async () => {
    const kc = await userKubeconfig({ workloads: without("deployments", "watch") });
    const t0 = Date.now();
    const r = await as(kc, ["deploy", "-t", "hello", "--image", PLACEHOLDER, "--user", "rbac"]);
    assert.equal(r.code, ExitCode.permission, r.stderr);
    assert.match(
      r.stderr,
      new RegExp(
        `missing RBAC permission "watch" on "deployments" \\(API group "apps"\\) in namespace ${ns}`,
      ),
    );
    assert.ok(Date.now() - t0 < 60_000, `took ${Date.now() - t0} ms`);
  });

  test("without pods/portforward in the build server's namespace: exit 4 naming it", async () => {
    const kc = await userKubeconfig({
      server: (rules) => rules.filter((r) => !r.resources.includes("pods/portforward")),
    });
    const dir = await webApp(dirs, RUN_ID, "never built\n");
    const r = await as(kc, [
      "deploy",
      "-t",
      "hello",
      "--server-namespace",
      server,
      "--user",
      "rbac",
      "-r",
      repo,
      "-C",
      dir,
    ]);
    assert.equal(r.code, ExitCode.permission, r.stderr);
    assert.match(
      r.stderr,
      new RegExp(
        `not allowed to port-forward to or exec into pod \\S+ in namespace ${server}: missing RBAC permission "get" on "pods/portforward" \\(or "get" on "pods/exec"\\) in namespace ${server}`,
      ),
    );
    assert.match(r.stderr, /verbs: \["get", "create"\]/);
  });
});
