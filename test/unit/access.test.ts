/**
 * Reading a kubeconfig without the Kubernetes client (kube/access.ts): the TLS material and
 * credentials a request gets, the context rules and their errors, and the hand-over to
 * client-node for what the direct reader does not handle (an exec credential plugin here,
 * run for real).
 */
import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { stringify } from "yaml";
import { UserError } from "../../src/errors.js";
import { loadClusterAccess } from "../../src/kube/access.js";

const b64 = (s: string) => Buffer.from(s).toString("base64");

function kubeconfig(users: Record<string, unknown>[], extra: Record<string, unknown> = {}): string {
  const dir = mkdtempSync(join(tmpdir(), "sd-kubeconfig-"));
  writeFileSync(join(dir, "ca.pem"), "CA FROM FILE");
  writeFileSync(join(dir, "token"), "token-from-file\n");
  const doc = {
    apiVersion: "v1",
    kind: "Config",
    clusters: [
      {
        name: "c1",
        cluster: { server: "https://10.0.0.1:6443", "certificate-authority-data": b64("CA DATA") },
      },
      {
        name: "c2",
        cluster: {
          server: "https://k8s.example:443/proxy",
          "certificate-authority": "ca.pem",
          "tls-server-name": "api",
        },
      },
    ],
    users,
    contexts: users.map((u, i) => ({
      name: `ctx-${u.name}`,
      context: { cluster: i === 0 ? "c1" : "c2", user: u.name, namespace: `ns-${u.name}` },
    })),
    "current-context": `ctx-${users[0]?.name}`,
    ...extra,
  };
  const file = join(dir, "config");
  writeFileSync(file, stringify(doc));
  return file;
}

test("kubeconfig: client certificates, CA data, the context's namespace", async () => {
  const file = kubeconfig([
    { name: "alice", user: { "client-certificate-data": b64("CERT"), "client-key-data": b64("KEY") } },
  ]);
  const a = await loadClusterAccess({ kubeconfig: file });
  assert.equal(a.server, "https://10.0.0.1:6443");
  assert.equal(a.namespace, "ns-alice");
  assert.equal(a.user.name, "alice");
  assert.equal(a.user.certData, b64("CERT"));
  const o = await a.requestOptions();
  assert.equal(String(o.ca), "CA DATA");
  assert.equal(String(o.cert), "CERT");
  assert.equal(String(o.key), "KEY");
  assert.equal(o.headers?.Authorization, undefined);
});

test("kubeconfig: files relative to the kubeconfig's folder, token files, tls-server-name, --context", async () => {
  const file = kubeconfig([
    { name: "alice", user: { token: "abc" } },
    { name: "bob", user: { tokenFile: "token" } },
  ]);
  const alice = await loadClusterAccess({ kubeconfig: file });
  assert.equal((await alice.requestOptions()).headers?.Authorization, "Bearer abc");
  const bob = await loadClusterAccess({ kubeconfig: file, context: "ctx-bob" });
  assert.equal(bob.server, "https://k8s.example:443/proxy");
  const o = await bob.requestOptions();
  assert.equal(o.headers?.Authorization, "Bearer token-from-file");
  assert.equal(String(o.ca), "CA FROM FILE");
  assert.equal(o.servername, "api");
});

test("kubeconfig: basic auth and insecure-skip-tls-verify", async () => {
  const file = kubeconfig([{ name: "carol", user: { username: "carol", password: "pw" } }], {
    clusters: [
      { name: "c1", cluster: { server: "https://10.0.0.1:6443", "insecure-skip-tls-verify": true } },
    ],
  });
  const o = await (await loadClusterAccess({ kubeconfig: file })).requestOptions();
  assert.equal(o.headers?.Authorization, `Basic ${b64("carol:pw")}`);
  assert.equal(o.rejectUnauthorized, false);
});

test("kubeconfig: an unknown context or no current context is a clear error", async () => {
  const file = kubeconfig([{ name: "alice", user: { token: "abc" } }]);
  await assert.rejects(
    loadClusterAccess({ kubeconfig: file, context: "nope" }),
    (e: unknown) =>
      e instanceof UserError &&
      /context "nope" is not in the kubeconfig/.test(e.message) &&
      /ctx-alice/.test(e.hint ?? ""),
  );
  const none = kubeconfig([{ name: "alice", user: { token: "abc" } }], { "current-context": "" });
  await assert.rejects(
    loadClusterAccess({ kubeconfig: none }),
    (e: unknown) => e instanceof UserError && /no current context or cluster/.test(e.message),
  );
  await assert.rejects(
    loadClusterAccess({ kubeconfig: join(tmpdir(), "no-such-kubeconfig") }),
    (e: unknown) => e instanceof UserError && /does not exist/.test(e.message),
  );
});

test("kubeconfig: an exec credential plugin goes through the Kubernetes client, which runs it", async () => {
  const credential = JSON.stringify({
    apiVersion: "client.authentication.k8s.io/v1",
    kind: "ExecCredential",
    status: { token: "from-plugin" },
  });
  const file = kubeconfig([
    {
      name: "dave",
      user: {
        exec: {
          apiVersion: "client.authentication.k8s.io/v1",
          command: "sh",
          args: ["-c", `echo '${credential}'`],
          interactiveMode: "Never",
        },
      },
    },
  ]);
  const a = await loadClusterAccess({ kubeconfig: file });
  assert.equal(a.server, "https://10.0.0.1:6443");
  assert.equal(a.namespace, "ns-dave");
  const o = await a.requestOptions();
  assert.equal(o.headers?.Authorization, "Bearer from-plugin");
  assert.equal(String(o.ca), "CA DATA");
});
