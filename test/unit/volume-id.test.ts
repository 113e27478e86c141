/** The data volume's id (src/agent/volume-id.ts) and the CLI's key for what it sent last. */
import assert from "node:assert/strict";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { volumeId } from "../../src/agent/volume-id.js";
import { lastManifestFile } from "../../src/sync/last-manifest.js";

test("a volume gets an id once and keeps it; a damaged id file gets a new one", async (t) => {
  const dir = await mkdtemp(join(tmpdir(), "snapdeploy-volume-"));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const first = await volumeId(dir);
  assert.match(first, /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
  assert.equal(await volumeId(dir), first);
  assert.equal((await readFile(join(dir, "volume-id"), "utf8")).trim(), first);
  await writeFile(join(dir, "volume-id"), "not an id\n");
  const second = await volumeId(dir);
  assert.notEqual(second, first);
  assert.equal(await volumeId(dir), second);
  const other = await mkdtemp(join(tmpdir(), "snapdeploy-volume-"));
  t.after(() => rm(other, { recursive: true, force: true }));
  assert.notEqual(await volumeId(other), second, "another volume, another id");
});

test("what was sent last is kept per tree, workspace and volume", () => {
  const a = lastManifestFile("/src/app", "alice", "p", "11111111-1111-4111-8111-111111111111");
  assert.equal(lastManifestFile("/src/app", "alice", "p", "11111111-1111-4111-8111-111111111111"), a);
  assert.notEqual(lastManifestFile("/src/app", "alice", "p", "22222222-2222-4222-8222-222222222222"), a);
  assert.notEqual(lastManifestFile("/src/app", "alice", "q", "11111111-1111-4111-8111-111111111111"), a);
});
