import assert from "node:assert/strict";
import { test } from "node:test";
import { isUserError } from "../../src/errors.js";
import { selectorString } from "../../src/pods/sets.js";

const workload = (selector: object | undefined) => ({
  kind: "Deployment",
  name: "web",
  namespace: "ns",
  containers: ["app"],
  object: { spec: { selector } },
});

test("a workload's selector as the API's label selector string", () => {
  assert.equal(
    selectorString(workload({ matchLabels: { app: "web", tier: "front" } })),
    "app=web,tier=front",
  );
  assert.equal(
    selectorString(
      workload({
        matchLabels: { app: "web" },
        matchExpressions: [
          { key: "env", operator: "In", values: ["a", "b"] },
          { key: "x", operator: "NotIn", values: ["c"] },
          { key: "y", operator: "Exists" },
          { key: "z", operator: "DoesNotExist" },
        ],
      }),
    ),
    "app=web,env in (a,b),x notin (c),y,!z",
  );
  assert.throws(
    () => selectorString(workload(undefined)),
    (e) => isUserError(e) && /no pod selector/.test(e.message),
  );
});
