/** `server install`'s flag checks (cli/install-input.ts): refused before anything is applied. */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { diskSpace, readAgentBundle, resources } from "../../src/cli/install-input.js";
import { UserError } from "../../src/errors.js";

describe("server install input", () => {
  test("--cache-size: a share of the volume or bytes with a unit", () => {
    assert.equal(diskSpace("50%"), "50%");
    assert.equal(diskSpace("20GB"), "20GB");
    for (const bad of ["0%", "150%", "lots", "20"]) assert.throws(() => diskSpace(bad), UserError, bad);
  });

  test("--agent-resources / --builder-resources: REQUESTS[/LIMITS]", () => {
    assert.deepEqual(resources("cpu=100m,memory=256Mi/memory=1Gi", "--x"), {
      requests: { cpu: "100m", memory: "256Mi" },
      limits: { memory: "1Gi" },
    });
    assert.deepEqual(resources("/cpu=2", "--x"), { limits: { cpu: "2" } });
    for (const bad of ["gpu=1", "cpu=lots", "cpu=1/cpu=2/cpu=3"]) {
      assert.throws(() => resources(bad, "--x"), /--x/, bad);
    }
  });

  test("the agent bundle is found after npm run build", () => {
    assert.match(readAgentBundle(), /agent/);
  });
});
