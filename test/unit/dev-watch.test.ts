/** The tree watcher on a real directory with the real native watcher. */
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { test } from "node:test";
import { type ChangeBatch, watchTree } from "../../src/dev/watch.js";

function tree(): string {
  const root = mkdtempSync(path.join(tmpdir(), "snapdeploy-watch-"));
  mkdirSync(path.join(root, "app"));
  mkdirSync(path.join(root, ".git"));
  mkdirSync(path.join(root, "node_modules"));
  writeFileSync(path.join(root, "app", "a.py"), "a\n");
  writeFileSync(path.join(root, ".dockerignore"), "node_modules\n*.log\n");
  return root;
}

/** Collects batches; `next()` resolves with the next one (or fails after `ms`). */
function collector(ms = 5000) {
  const batches: ChangeBatch[] = [];
  const waiters: ((b: ChangeBatch) => void)[] = [];
  return {
    onBatch(b: ChangeBatch) {
      const w = waiters.shift();
      if (w) w(b);
      else batches.push(b);
    },
    next(): Promise<ChangeBatch> {
      const b = batches.shift();
      if (b) return Promise.resolve(b);
      return new Promise((resolve, reject) => {
        const t = setTimeout(() => reject(new Error(`no batch within ${ms} ms`)), ms);
        waiters.push((x) => {
          clearTimeout(t);
          resolve(x);
        });
      });
    },
    pending: () => batches.length,
  };
}

test("edits arrive as one debounced batch; .git and .dockerignore'd paths never do", async (t) => {
  const root = tree();
  const c = collector();
  const w = await watchTree(root, { onBatch: c.onBatch, debounceMs: 100 });
  // The watcher closes before its tree goes (hooks run in the order they were added).
  t.after(async () => {
    await w.close();
    rmSync(root, { recursive: true, force: true });
  });
  writeFileSync(path.join(root, ".git", "index"), "x");
  writeFileSync(path.join(root, "node_modules", "dep.js"), "x");
  writeFileSync(path.join(root, "build.log"), "x");
  writeFileSync(path.join(root, "app", "a.py"), "a2\n");
  writeFileSync(path.join(root, "app", "b.py"), "b\n");
  writeFileSync(path.join(root, "app", "a.py"), "a3\n");
  const b = await c.next();
  assert.deepEqual(b, { changed: ["app/a.py", "app/b.py"], deleted: [] });
  rmSync(path.join(root, "app", "b.py"));
  assert.deepEqual(await c.next(), { changed: [], deleted: ["app/b.py"] });
});

test("a change of .dockerignore reloads the rules and is itself reported", async (t) => {
  const root = tree();
  const c = collector();
  const w = await watchTree(root, { onBatch: c.onBatch, debounceMs: 100 });
  // The watcher closes before its tree goes (hooks run in the order they were added).
  t.after(async () => {
    await w.close();
    rmSync(root, { recursive: true, force: true });
  });
  writeFileSync(path.join(root, ".dockerignore"), "node_modules\n");
  assert.deepEqual(await c.next(), { changed: [".dockerignore"], deleted: [] });
  writeFileSync(path.join(root, "build.log"), "now in the context\n");
  assert.deepEqual(await c.next(), { changed: ["build.log"], deleted: [] });
});

test("close() stops delivery", async (t) => {
  const root = tree();
  t.after(() => rmSync(root, { recursive: true, force: true }));
  const c = collector(600);
  const w = await watchTree(root, { onBatch: c.onBatch, debounceMs: 50 });
  await w.close();
  writeFileSync(path.join(root, "app", "a.py"), "after close\n");
  await assert.rejects(c.next(), /no batch/);
});
