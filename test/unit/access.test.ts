/**
 * Reading a kubeconfig without the Kubernetes client (kube/access.ts): the TLS material and
 * credentials a request gets, the context rules and their errors, and the hand-over to
 * client-node for what the direct reader does not handle (an exec credential plugin here,
 * run for real).
 */
import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { test } from "node:test";
import { stringify } from "yaml";
import { UserError } from "../../src/errors.js";
import { loadClusterAccess } from "../../src/kube/access.js";
import { loadKubeConfig } from "../../src/kube/client.js";

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

/** Writes each document as a kubeconfig file of its own folder; returns the paths. */
function files(...docs: Record<string, unknown>[]): string[] {
  return docs.map((doc, i) => {
    const dir = mkdtempSync(join(tmpdir(), `sd-kubeconfig-${i}-`));
    writeFileSync(join(dir, "ca.pem"), `CA OF FILE ${i}`);
    writeFileSync(join(dir, "config"), stringify(doc));
    return join(dir, "config");
  });
}

/** Runs `f` with KUBECONFIG set to `value`, then puts it back. */
async function withKubeconfigEnv<T>(value: string, f: () => Promise<T> | T): Promise<T> {
  const saved = process.env.KUBECONFIG;
  process.env.KUBECONFIG = value;
  try {
    return await f();
  } finally {
    if (saved === undefined) delete process.env.KUBECONFIG;
    else process.env.KUBECONFIG = saved;
  }
}

test("KUBECONFIG with several files: merged as kubectl does, on both paths", async () => {
  const [first, second] = files(
    {
      // No current-context here: the second file's is used.
      clusters: [
        { name: "c1", cluster: { server: "https://first:6443", "certificate-authority": "ca.pem" } },
      ],
      users: [{ name: "u1", user: { token: "first" } }],
      contexts: [{ name: "ctx-a", context: { cluster: "c1", user: "u1", namespace: "from-first" } }],
    },
    {
      "current-context": "ctx-a",
      clusters: [
        { name: "c1", cluster: { server: "https://second:6443" } },
        { name: "c2", cluster: { server: "https://c2:6443", "certificate-authority": "ca.pem" } },
      ],
      users: [
        { name: "u1", user: { token: "second" } },
        { name: "u2", user: { token: "u2" } },
      ],
      contexts: [
        { name: "ctx-a", context: { cluster: "c2", user: "u2" } },
        { name: "ctx-b", context: { cluster: "c2", user: "u2", namespace: "b" } },
      ],
    },
  ) as [string, string];
  const missing = join(tmpdir(), "no-such-kubeconfig");
  await withKubeconfigEnv([missing, first, "", second].join(":"), async () => {
    // The first file that names a context, cluster or user wins it; a missing file is skipped.
    const a = await loadClusterAccess({});
    assert.equal(a.server, "https://first:6443");
    assert.equal(a.namespace, "from-first");
    const o = await a.requestOptions();
    assert.equal(o.headers?.Authorization, "Bearer first");
    // A relative path is relative to the folder of the file that holds it.
    assert.equal(String(o.ca), "CA OF FILE 0");
    const b = await loadClusterAccess({ context: "ctx-b" });
    assert.equal(b.server, "https://c2:6443");
    assert.equal(String((await b.requestOptions()).ca), "CA OF FILE 1");
    // The Kubernetes client's path (every other command) reads the same merge.
    const kc = loadKubeConfig({});
    assert.equal(kc.getCurrentContext(), "ctx-a");
    assert.equal(kc.getCurrentCluster()?.server, "https://first:6443");
    assert.equal(kc.getCurrentUser()?.token, "first");
    assert.equal(kc.getCluster("c2")?.caFile, join(dirname(second), "ca.pem"));
  });
  await withKubeconfigEnv(missing, async () => {
    await assert.rejects(
      loadClusterAccess({}),
      (e: unknown) => e instanceof UserError && e.exitCode === 3 && /does not exist/.test(e.message),
    );
  });
});
