/** 403s as messages naming the missing verb, resource and namespace (src/kube/api-errors.ts). */
import assert from "node:assert/strict";
import { test } from "node:test";
import { ExitCode } from "../../src/errors.js";
import { parseRefusal, statusError, watchRefusal } from "../../src/kube/api-errors.js";

const forbidden = (message: string) =>
  JSON.stringify({ kind: "Status", status: "Failure", reason: "Forbidden", code: 403, message });

test("an RBAC refusal is parsed: verb, resource with subresource, group, namespace, user", () => {
  assert.deepEqual(
    parseRefusal(
      'pods "p" is forbidden: User "system:serviceaccount:team:dev" cannot get resource "pods/portforward" in API group "" in the namespace "builds"',
    ),
    {
      user: "system:serviceaccount:team:dev",
      verb: "get",
      resource: "pods/portforward",
      group: "",
      namespace: "builds",
    },
  );
  assert.deepEqual(
    parseRefusal(
      'namespaces "x" is forbidden: User "bob" cannot get resource "namespaces" in API group "" at the cluster scope',
    ),
    { user: "bob", verb: "get", resource: "namespaces", group: "", namespace: undefined },
  );
  assert.equal(parseRefusal('pods "x" is forbidden: violates PodSecurity "restricted:latest"'), undefined);
});

test("statusError 403: exit 4, the action, the missing right, the rule and the can-i check", () => {
  const e = statusError(
    403,
    forbidden(
      'deployments.apps "web" is forbidden: User "u" cannot patch resource "deployments" in API group "apps" in the namespace "apps"',
    ),
    "patch deployments/web in namespace apps",
  );
  assert.equal(e.exitCode, ExitCode.permission);
  assert.equal(
    e.message,
    'you are not allowed to patch deployments/web in namespace apps: missing RBAC permission "patch" on "deployments" (API group "apps") in namespace apps',
  );
  assert.deepEqual(e.details, ["as user u", "check with: kubectl auth can-i patch deployments.apps -n apps"]);
  assert.match(
    e.hint ?? "",
    /Role in namespace apps holding the rule \{apiGroups: \["apps"\], resources: \["deployments"\], verbs: \["patch"\]\}/,
  );
  assert.match(e.hint ?? "", /server\/rbac\//);
});

test("statusError 403 that is no RBAC refusal keeps the server's words", () => {
  const e = statusError(403, forbidden("violates PodSecurity"), "create job j in namespace n");
  assert.equal(e.exitCode, ExitCode.permission);
  assert.equal(e.message, "you are not allowed to create job j in namespace n: violates PodSecurity");
});

test("statusError 403 for a namespace being deleted says so: no right is missing", () => {
  const e = statusError(
    403,
    forbidden(
      'serviceaccounts "snapdeploy-build-server" is forbidden: unable to create new content in namespace snapdeploy because it is being terminated',
    ),
    "apply ServiceAccount snapdeploy/snapdeploy-build-server",
  );
  assert.equal(e.exitCode, ExitCode.cluster);
  assert.equal(
    e.message,
    "cannot apply ServiceAccount snapdeploy/snapdeploy-build-server: namespace snapdeploy is being deleted",
  );
  assert.match(e.hint ?? "", /wait until it is gone \(kubectl get namespace snapdeploy\)/);
});

test("a refused watch names verb watch; other watch ends are not refusals", () => {
  const err = Object.assign(new Error("Forbidden"), { statusCode: 403 });
  const e = watchRefusal(
    err,
    { resource: "deployments", group: "apps", namespace: "n" },
    "watch deployments/web in namespace n",
  );
  assert.equal(e?.exitCode, ExitCode.permission);
  assert.match(
    e?.message ?? "",
    /missing RBAC permission "watch" on "deployments" \(API group "apps"\) in namespace n$/,
  );
  assert.equal(watchRefusal(null, { resource: "pods", group: "", namespace: "n" }, "x"), undefined);
  assert.equal(
    watchRefusal(
      Object.assign(new Error("x"), { statusCode: 500 }),
      { resource: "pods", group: "", namespace: "n" },
      "x",
    ),
    undefined,
  );
});
