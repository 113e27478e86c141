/**
 * The agent's registry side: image references split into host, repository and tag, and
 * the credentials for a host from a docker config.json (auth or username/password; keyed
 * by host or by URL).
 */
import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type TestContext, test } from "node:test";
import { credentialsFor, parseRef } from "../../src/agent/registry.js";

async function config(t: TestContext, content: unknown): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "snapdeploy-registry-"));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const file = join(dir, "config.json");
  await writeFile(file, typeof content === "string" ? content : JSON.stringify(content));
  return file;
}
const b64 = (s: string) => Buffer.from(s).toString("base64");

test("parseRef: host (with a dot, a port or localhost), repository path, tag (default latest)", () => {
  assert.deepEqual(parseRef("registry.example.com/team/app:v1"), {
    host: "registry.example.com",
    repository: "team/app",
    tag: "v1",
  });
  assert.deepEqual(parseRef("127.0.0.1:5000/app:snap-1"), {
    host: "127.0.0.1:5000",
    repository: "app",
    tag: "snap-1",
  });
  assert.deepEqual(parseRef("localhost/app"), { host: "localhost", repository: "app", tag: "latest" });
  assert.deepEqual(parseRef("host:5000/app"), { host: "host:5000", repository: "app", tag: "latest" });
  for (const bad of ["app:v1", "team/app:v1", "/app", ""]) {
    assert.throws(() => parseRef(bad), /must start with a registry host/, bad);
  }
});

test("credentialsFor: base64 auth split at the first colon, username/password, lookup by host or URL", async (t) => {
  const file = await config(t, {
    auths: {
      "a.example.com": { auth: b64("alice:pa:ss") },
      "https://b.example.com": { username: "bob", password: "pw" },
      "http://c.example.com:5000": { auth: b64("carol:") },
      "d.example.com": { username: "dave" },
      "e.example.com": {},
    },
  });
  assert.deepEqual(credentialsFor(file, "a.example.com"), { username: "alice", password: "pa:ss" });
  assert.deepEqual(credentialsFor(file, "b.example.com"), { username: "bob", password: "pw" });
  assert.deepEqual(credentialsFor(file, "c.example.com:5000"), { username: "carol", password: "" });
  assert.deepEqual(credentialsFor(file, "d.example.com"), { username: "dave", password: undefined });
  assert.equal(credentialsFor(file, "e.example.com"), undefined);
  assert.equal(credentialsFor(file, "unknown.example.com"), undefined);
  // The host must match exactly: no suffix or prefix matches.
  assert.equal(credentialsFor(file, "example.com"), undefined);
  assert.equal(credentialsFor(file, "a.example.com:443"), undefined);
});

test("credentialsFor: no file, an unreadable or invalid one, or one without auths gives no credentials", async (t) => {
  assert.equal(credentialsFor(undefined, "a.example.com"), undefined);
  assert.equal(credentialsFor("/nonexistent/config.json", "a.example.com"), undefined);
  assert.equal(credentialsFor(await config(t, "{not json"), "a.example.com"), undefined);
  assert.equal(credentialsFor(await config(t, { credsStore: "desktop" }), "a.example.com"), undefined);
});
