/**
 * Secrets around a build: a context with likely secrets is warned about (and built
 * anyway), unless snapdeploy.yaml allows them; the registry password the build server
 * pushes with appears nowhere: not in the CLI's output, not in the build server's
 * container logs, not in the pushed image (its manifest, config and every layer, read back
 * from the registry over HTTP and decompressed).
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { promises as fs } from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before, test } from "node:test";
import { gunzipSync } from "node:zlib";
import {
  CLUSTER_CA,
  must,
  mustKubectl,
  REGISTRY_CA_FLAGS,
  REGISTRY_NODE,
  ROOT,
  serverPod,
  snapdeploy,
  uninstallServer,
  uniqueName,
  jsonResult,
} from "../helpers/cluster.js";

const PASSWORD_FILE = "/var/lib/snapdeploy-cluster/registry-auth/password";
const AUTH_HOST = "127.0.0.1:5001";
let ns = "";
let password = "";
const dirs: string[] = [];

before(async () => {
  password = (await fs.readFile(PASSWORD_FILE, "utf8")).trim();
  ns = uniqueName("e2e-secrets");
  await mustKubectl(["create", "namespace", ns]);
  await mustKubectl([
    "-n",
    ns,
    "create",
    "secret",
    "docker-registry",
    "regcred",
    "--docker-server=10.245.0.1:5001",
    "--docker-username=snapdeploy",
    `--docker-password=${password}`,
  ]);
  await must(`${ROOT}/cluster/volumes`, ["4"]);
});
after(async () => {
  await uninstallServer(ns);
  await mustKubectl(["delete", "namespace", ns, "--wait=false"]);
  for (const d of dirs) await fs.rm(d, { recursive: true, force: true });
});

async function tree(files: Record<string, string>): Promise<string> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), "snapdeploy-secrets-"));
  dirs.push(dir);
  for (const [p, c] of Object.entries(files)) {
    await fs.mkdir(path.dirname(path.join(dir, p)), { recursive: true });
    await fs.writeFile(path.join(dir, p), c);
  }
  return dir;
}

/** GETs a registry path with the registry's credentials; the raw bytes. */
async function registryGet(apiPath: string, accept?: string): Promise<Buffer> {
  const out = path.join(await fs.mkdtemp(path.join(os.tmpdir(), "snapdeploy-blob-")), "body");
  await must("curl", [
    "-sSfL",
    "--cacert",
    CLUSTER_CA,
    "-u",
    `snapdeploy:${password}`,
    ...(accept ? ["-H", `Accept: ${accept}`] : []),
    "-o",
    out,
    `https://${AUTH_HOST}${apiPath}`,
  ]);
  const body = await fs.readFile(out);
  await fs.rm(path.dirname(out), { recursive: true, force: true });
  return body;
}

const ACCEPT =
  "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json";

/** A layer's tar, from gzip (BuildKit's default, Docker's) or zstd (snapdeploy's buildkit builders). */
function decompressed(mediaType: string, blob: Buffer): Buffer {
  if (mediaType.endsWith("+gzip") || mediaType.endsWith(".tar.gzip")) return gunzipSync(blob);
  // Node.js 20's zlib has no zstd: the zstd tool (a Debian package cluster/up installs) does it.
  if (mediaType.endsWith("+zstd")) return execFileSync("zstd", ["-dcq"], { input: blob, maxBuffer: 1 << 30 });
  return blob;
}

/** Every document and decompressed layer of `repo@digest`, as text to search. */
async function imageTexts(repo: string, digest: string): Promise<string[]> {
  const texts: string[] = [];
  const manifests = [digest];
  while (manifests.length) {
    const raw = await registryGet(`/v2/${repo}/manifests/${manifests.pop()}`, ACCEPT);
    texts.push(raw.toString("utf8"));
    const doc = JSON.parse(raw.toString("utf8")) as {
      manifests?: { digest: string }[];
      config?: { digest: string };
      layers?: { digest: string; mediaType: string }[];
    };
    for (const m of doc.manifests ?? []) manifests.push(m.digest);
    if (doc.config)
      texts.push((await registryGet(`/v2/${repo}/blobs/${doc.config.digest}`)).toString("utf8"));
    for (const l of doc.layers ?? []) {
      const blob = await registryGet(`/v2/${repo}/blobs/${l.digest}`);
      texts.push(decompressed(l.mediaType, blob).toString("latin1"));
    }
  }
  return texts;
}

test("likely secrets are warned about, the build goes on; the push password is in no output, log or layer", async () => {
  const r0 = await snapdeploy([
    "server",
    "install",
    "-n",
    ns,
    "--builder",
    "buildkit",
    ...REGISTRY_CA_FLAGS,
    "--registry-secret",
    "regcred",
  ]);
  assert.equal(r0.code, 0, r0.stderr);
  const repo = "e2e/secret-check";
  const dir = await tree({
    Dockerfile: `FROM ${REGISTRY_NODE}/snapdeploy/debian:bookworm\nCOPY . /app/\n`,
    ".env": "API_KEY=not-a-real-one\n",
    "certs/server.key": "-----BEGIN PRIVATE KEY-----\n",
    ".env.example": "API_KEY=\n",
    "app.txt": `${uniqueName("run")}\n`,
  });
  const build = (d: string) =>
    snapdeploy([
      "build",
      "--server-namespace",
      ns,
      "--user",
      "sam",
      "--project",
      "secrets",
      "-r",
      `10.245.0.1:5001/${repo}`,
      "-C",
      d,
      "-o",
      "json",
    ]);
  const r = await build(dir);
  assert.equal(r.code, 0, r.stderr);
  assert.match(
    r.stderr,
    /warning: the build context holds 2 files that look like secrets: \.env \(environment file\), certs\/server\.key \(key or certificate\)\n/,
  );
  assert.match(r.stderr, /\.dockerignore/);
  assert.doesNotMatch(r.stderr, /\.env\.example/);

  // Allowed in snapdeploy.yaml: no warning.
  await fs.writeFile(path.join(dir, "snapdeploy.yaml"), 'context: {allowSecrets: [".env", "certs/*.key"]}\n');
  const allowed = await build(dir);
  assert.equal(allowed.code, 0, allowed.stderr);
  assert.doesNotMatch(allowed.stderr, /look like secrets/);

  const outputs = [r.stdout, r.stderr, allowed.stdout, allowed.stderr].join("\n");
  assert.ok(!outputs.includes(password), "the CLI's output holds the registry password");
  const logs = await mustKubectl(["-n", ns, "logs", await serverPod(ns), "--all-containers", "--prefix"]);
  assert.ok(logs.length > 0, "the build server logged something");
  assert.ok(!logs.includes(password), "the build server's logs hold the registry password");

  for (const out of [r.stdout, allowed.stdout]) {
    const digest = jsonResult(out).digest as string;
    assert.match(digest, /^sha256:[0-9a-f]{64}$/);
    const texts = await imageTexts(repo, digest);
    assert.ok(texts.length >= 3, `manifest, config and layers read: ${texts.length}`);
    assert.ok(
      texts.some((t) => t.includes("API_KEY=not-a-real-one")),
      "the layers were searched (the copied .env is in them)",
    );
    for (const t of texts) assert.ok(!t.includes(password), "the image holds the registry password");
  }
});
