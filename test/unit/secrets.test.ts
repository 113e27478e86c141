/** Likely secrets in a build context (src/context/secrets.ts): names, the .npmrc check, allow globs, the warning. */
import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import {
  findLikelySecrets,
  npmrcHoldsToken,
  readHead,
  secretByName,
  secretsWarning,
} from "../../src/context/secrets.js";

test("names that look like secrets, at any depth, and names that do not", () => {
  for (const p of [
    ".env",
    ".env.production",
    "app/.env.local",
    "certs/server.pem",
    "tls/tls.key",
    "store.p12",
    "keys/id_rsa",
    "home/.ssh/id_ed25519",
    ".aws/credentials",
    "x/.kube/config",
    "prod.kubeconfig",
    "kubeconfig",
    "gcloud/application_default_credentials.json",
    ".docker/config.json",
    ".git-credentials",
    "ID_RSA",
  ])
    assert.ok(secretByName(p), `${p} looks like a secret`);
  for (const p of [
    ".env.example",
    "app/.env.sample",
    ".env.template",
    "id_rsa.pub",
    "keys/id_ed25519.pub",
    "src/environment.ts",
    "config.json",
    "docs/keys.md",
    ".envrc",
    "credentials.md",
    "aws/credentials.go",
    "monkey.js",
  ])
    assert.equal(secretByName(p), undefined, `${p} does not`);
});

test(".npmrc: a token in it is a secret, a registry line alone is not", () => {
  assert.ok(npmrcHoldsToken("//registry.npmjs.org/:_authToken=npm_abc123\n"));
  assert.ok(npmrcHoldsToken("registry=https://x\n_auth = dXNlcjpwYXNz\n"));
  assert.ok(npmrcHoldsToken('npmAuthToken: "xyz"\n'));
  assert.ok(!npmrcHoldsToken("registry=https://registry.example.com/\nsave-exact=true\n"));
  assert.ok(!npmrcHoldsToken("//registry.npmjs.org/:_authToken=\n"));
});

test("findLikelySecrets: allow globs (a name without '/' at any depth), content checks only with a reader", async () => {
  const paths = [
    ".env",
    ".env.test",
    "a/b/.env.test",
    "certs/ca.pem",
    "src/index.ts",
    ".npmrc",
    "web/.npmrc",
  ];
  const read = async (p: string) => (p === ".npmrc" ? "//r/:_authToken=abc\n" : "registry=https://r/\n");
  const all = await findLikelySecrets(paths, [], read);
  assert.deepEqual(all.paths, [".env", ".env.test", "a/b/.env.test", "certs/ca.pem", ".npmrc"]);
  assert.equal(all.reasons[".npmrc"], "registry token");
  const some = await findLikelySecrets(paths, [".env.test", "certs/*.pem"], read);
  assert.deepEqual(some.paths, [".env", ".npmrc"]);
  const noReader = await findLikelySecrets(paths, ["**"]);
  assert.deepEqual(noReader.paths, []);
  assert.deepEqual((await findLikelySecrets([".npmrc"], [])).paths, []);
});

test("the warning names a few files, the count, and both ways out; none for nothing", async () => {
  assert.equal(secretsWarning({ paths: [], reasons: {} }), undefined);
  const paths = Array.from({ length: 8 }, (_, i) => `k${i}.pem`);
  const w = secretsWarning(await findLikelySecrets(paths, [])) as string;
  assert.match(
    w,
    /^the build context holds 8 files that look like secrets: k0\.pem \(key or certificate\), /,
  );
  assert.match(w, /k4\.pem \(key or certificate\), and 3 more/);
  assert.doesNotMatch(w, /k5\.pem/);
  assert.match(w, /\.dockerignore/);
  assert.match(w, /context: \{allowSecrets:/);
  assert.match(
    secretsWarning(await findLikelySecrets([".env"], [])) as string,
    /holds 1 file that looks like/,
  );
});

test("readHead reads a file's start", async () => {
  const dir = mkdtempSync(join(tmpdir(), "sd-secrets-"));
  writeFileSync(join(dir, ".npmrc"), `${"x".repeat(100)}\n_authToken=1\n`);
  assert.ok(npmrcHoldsToken((await readHead(dir, ".npmrc")) as string));
});
