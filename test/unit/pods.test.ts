import assert from "node:assert/strict";
import { test } from "node:test";
import { isUserError } from "../../src/errors.js";
import { parsePortPair } from "../../src/pods/forward.js";
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

test("port pairs: LOCAL:REMOTE or one port for both; anything else is a usage error", () => {
  assert.deepEqual(parsePortPair("8080:80"), { localPort: 8080, remotePort: 80 });
  assert.deepEqual(parsePortPair("3000"), { localPort: 3000, remotePort: 3000 });
  assert.deepEqual(parsePortPair("0:80"), { localPort: 0, remotePort: 80 });
  for (const bad of ["", "80:", ":80", "a:b", "70000:80", "80:0", "80:70000", "1:2:3", "0"]) {
    assert.throws(
      () => parsePortPair(bad),
      (e) => isUserError(e) && e.exitCode === 2,
      bad,
    );
  }
});
