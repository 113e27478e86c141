/**
 * The agent's garbage collection on real temporary directories (a blob store and
 * workspaces made by Workspace.update, as syncs make them): idle workspaces and the blobs
 * only they name go, a locked one stays, a dry run's plan is what the collection removes
 * and the space it counts is the blocks of inodes whose every link goes. Also the size
 * syntaxes of buildctl's output and of --keep-cache.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { existsSync, lstatSync } from "node:fs";
import { mkdtemp, rm, utimes } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type TestContext, test } from "node:test";
import { BlobStore, StoreGate } from "../../src/agent/blobs.js";
import { parseBuildctlTotals, parseHumanSize } from "../../src/agent/builder-cache.js";
import type { AgentContext } from "../../src/agent/context.js";
import { planGc, releaseAll, runGc } from "../../src/agent/gc.js";
import { gcScheduleFromEnv, MAX_GC_EVERY_SECONDS } from "../../src/agent/gc-schedule.js";
import { gc } from "../../src/agent/ops/gc.js";
import { Workspace, WorkspaceLocks } from "../../src/agent/workspace.js";
import { GC_ENV } from "../../src/protocol/constants.js";
import { byteSize } from "../../src/cli/commands/gc.js";
import { diskWarning } from "../../src/cli/commands/server.js";
import { parseDuration } from "../../src/util/duration.js";
import type { Entry } from "../../src/protocol/manifest.js";
import { manifestDigest } from "../../src/protocol/manifest.js";

const sha256 = (s: string) => createHash("sha256").update(s).digest("hex");
const DAY = 86400_000;

async function setup(t: TestContext) {
  const dir = await mkdtemp(join(tmpdir(), "snapdeploy-gc-"));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const blobs = new BlobStore(join(dir, "blobs"));
  await blobs.init();
  const ctx = {
    dataDir: dir,
    workspacesDir: join(dir, "workspaces"),
    blobs,
    store: new StoreGate(),
    locks: new WorkspaceLocks(),
    builder: "docker-socket",
    log: () => {},
  } as unknown as AgentContext;
  const put = (path: string, content: string): Entry => {
    const h = sha256(content);
    if (!blobs.has(h)) {
      const w = blobs.receive(h, Buffer.byteLength(content));
      w.write(Buffer.from(content));
      w.finish();
    }
    return { path, type: "file", mode: 0o644, size: Buffer.byteLength(content), hash: h };
  };
  /** A synced workspace holding `files`, last used `daysAgo` days ago. */
  const workspace = async (user: string, project: string, files: Record<string, string>, daysAgo: number) => {
    const ws = new Workspace(ctx.workspacesDir, user, project);
    const entries = Object.entries(files)
      .sort()
      .map(([p, c]) => put(p, c));
    await ws.update(manifestDigest(entries), entries, blobs);
    const then = new Date(Date.now() - daysAgo * DAY);
    await utimes(join(ws.dir, "info.json"), then, then);
    return ws;
  };
  return { dir, ctx, blobs, workspace };
}

const big = (c: string) => c.repeat(20_000); // 20 kB+: more than a block, so sizes differ

test("idle workspaces and the blobs only they name go; shared blobs and busy workspaces stay", async (t) => {
  const { ctx, blobs, workspace } = await setup(t);
  const old = await workspace("ann", "old", { "a.txt": big("a"), "shared.txt": big("s") }, 10);
  const recent = await workspace("bob", "recent", { "b.txt": big("b"), "shared.txt": big("s") }, 1);
  const busy = await workspace("cid", "busy", { "c.txt": big("c") }, 30);
  // An orphan: a blob no workspace names (its workspace was removed by hand).
  const orphan = sha256(big("o"));
  const w = blobs.receive(orphan, 20_000);
  w.write(Buffer.from(big("o")));
  w.finish();
  const release = ctx.locks.tryAcquire("cid/busy", "sync from cid@laptop");
  assert.ok(release);

  const before = new Date(Date.now() - 7 * DAY);
  const dry = await gc(ctx, { t: "gc", dryRun: true, olderThanSeconds: 7 * 86400 });
  assert.deepEqual(
    dry.workspaces.map((x) => `${x.user}/${x.project}`),
    ["ann/old"],
  );
  assert.deepEqual(dry.skipped, [{ user: "cid", project: "busy", reason: "in use (sync from cid@laptop)" }]);
  // a.txt's blob (only ann/old names it) and the orphan; shared.txt's stays for bob.
  assert.equal(dry.blobs.count, 2);
  const blocks = (p: string) => lstatSync(p).blocks * 512;
  assert.equal(dry.blobs.bytes, blocks(blobs.path(sha256(big("a")))) + blocks(blobs.path(orphan)));
  assert.ok(
    dry.workspaces[0] && dry.workspaces[0].bytes > 0,
    "the workspace's own files (manifests, info) count",
  );
  assert.equal(dry.freed, dry.blobs.bytes + (dry.workspaces[0]?.bytes ?? 0));
  // The dry run removed nothing and left no lock behind.
  assert.ok(existsSync(old.dir) && blobs.has(orphan));
  assert.equal(ctx.locks.holder("ann/old"), undefined);

  const real = await gc(ctx, { t: "gc", dryRun: false, olderThanSeconds: 7 * 86400 });
  assert.deepEqual(
    { ...real, dryRun: true, disk: dry.disk },
    { ...dry, disk: dry.disk },
    "the collection removes what the dry run listed",
  );
  assert.ok(!existsSync(old.dir), "ann/old is gone");
  assert.ok(!existsSync(join(ctx.workspacesDir, "ann")), "and its empty user folder");
  assert.ok(existsSync(recent.dir) && existsSync(busy.dir));
  assert.ok(!blobs.has(orphan) && !existsSync(blobs.path(orphan)));
  assert.ok(blobs.has(sha256(big("s"))) && blobs.has(sha256(big("c"))) && blobs.has(sha256(big("b"))));
  assert.equal(ctx.locks.holder("ann/old"), undefined, "its lock was released");
  release?.();

  // Once unlocked, cid/busy is idle too, and so is the blob only it names.
  const again = await planGc(ctx, before);
  releaseAll(again);
  assert.deepEqual(
    again.workspaces.map((x) => `${x.user}/${x.project}`),
    ["cid/busy"],
  );
  assert.deepEqual(again.blobs, [sha256(big("c"))]);
});

test("a collection waits for a running sync's use of the store, and syncs wait for it", async (t) => {
  const { ctx, workspace } = await setup(t);
  await workspace("ann", "old", { "a.txt": "a" }, 10);
  const leave = await ctx.store.enter();
  let done = false;
  const run = ctx.store.exclusive(async () => {
    const p = await planGc(ctx, new Date());
    await runGc(ctx, p);
    done = true;
  });
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(done, false, "gc waits while a sync uses the store");
  leave();
  await run;
  assert.equal(done, true);
});

test("sizes: buildctl's human sizes and totals, --keep-cache's syntax", () => {
  assert.equal(parseHumanSize("0B"), 0);
  assert.equal(parseHumanSize("4.096kB"), 4096);
  assert.equal(parseHumanSize("1.5GB"), 1.5e9);
  assert.equal(parseHumanSize("2MiB"), 2 * 1024 * 1024);
  assert.equal(parseHumanSize("lots"), undefined);
  assert.deepEqual(
    parseBuildctlTotals(
      "ID\tRECLAIMABLE\tSIZE\nabc\ttrue\t1.2MB\nShared:\t\t0B\nPrivate:\t1.2MB\nReclaimable:\t1.2MB\nTotal:\t\t1.5MB\n",
    ),
    { total: 1.5e6, reclaimable: 1.2e6 },
  );
  assert.equal(byteSize("10GB"), 10e9);
  assert.equal(byteSize("2GiB"), 2 * 1024 ** 3);
  assert.equal(byteSize("0"), 0);
  for (const bad of ["10 gigs", "-1GB", "GB", "1e9"]) assert.throws(() => byteSize(bad), /Expected a size/);
});

test("--older-than's ages take days; timeouts still do not", () => {
  assert.equal(parseDuration("7d", { days: true }), 7 * 86400);
  assert.equal(parseDuration("1d12h", { days: true }), 36 * 3600);
  assert.equal(parseDuration("36h", { days: true }), 36 * 3600);
  for (const bad of ["1.5d", "7 days", "d", "1d30", "7d1d"])
    assert.equal(parseDuration(bad, { days: true }), undefined, bad);
  assert.equal(parseDuration("7d"), undefined);
});

test("server status warns above 80% of the data volume, naming gc", () => {
  assert.equal(diskWarning({ total: 100, free: 20 }, "snapdeploy"), undefined);
  assert.match(
    diskWarning({ total: 100, free: 19 }, "snapdeploy") ?? "",
    /81% full: .*snapdeploy gc --dry-run,/,
  );
  assert.match(diskWarning({ total: 100, free: 5 }, "team") ?? "", /95% full: .*gc --dry-run -n team/);
  assert.equal(diskWarning({ total: 0, free: 0 }, "x"), undefined);
});

test("the periodic gc's schedule from the agent's environment: unset, 0 or garbage means none", () => {
  const env = (o: Record<string, string>) => o as NodeJS.ProcessEnv;
  assert.deepEqual(gcScheduleFromEnv(env({ [GC_ENV.every]: "86400", [GC_ENV.olderThan]: "604800" })), {
    everySeconds: 86400,
    olderThanSeconds: 604800,
  });
  assert.deepEqual(
    gcScheduleFromEnv(
      env({ [GC_ENV.every]: "60", [GC_ENV.olderThan]: "0", [GC_ENV.keepCache]: "5000000000" }),
    ),
    { everySeconds: 60, olderThanSeconds: 0, keepCacheBytes: 5e9 },
  );
  assert.equal(gcScheduleFromEnv(env({})), undefined);
  assert.equal(gcScheduleFromEnv(env({ [GC_ENV.every]: "0", [GC_ENV.olderThan]: "60" })), undefined);
  assert.equal(gcScheduleFromEnv(env({ [GC_ENV.every]: "1h", [GC_ENV.olderThan]: "60" })), undefined);
  assert.equal(gcScheduleFromEnv(env({ [GC_ENV.every]: "60" })), undefined);
});

test("a periodic gc interval longer than a timer can hold (about 24.8 days) is held to the longest one", () => {
  const env = (o: Record<string, string>) => o as NodeJS.ProcessEnv;
  const s = gcScheduleFromEnv(env({ [GC_ENV.every]: String(90 * 86400), [GC_ENV.olderThan]: "0" }));
  assert.equal(s?.everySeconds, MAX_GC_EVERY_SECONDS);
  assert.ok(MAX_GC_EVERY_SECONDS * 1000 <= 2 ** 31 - 1);
  assert.ok((MAX_GC_EVERY_SECONDS + 1) * 1000 > 2 ** 31 - 1);
});
