/**
 * The agent's blob-stream decoder (agent/blob-stream.ts) into a real blob store in a
 * temporary directory: raw and deflated batches, records split across frames, and what
 * it refuses (a blob not asked for, a wrong size or hash, a stream that ends inside a
 * record, a bad or oversized batch).
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type TestContext, test } from "node:test";
import { deflateRawSync } from "node:zlib";
import { BlobStreamDecoder } from "../../src/agent/blob-stream.js";
import { BlobMismatch, BlobStore } from "../../src/agent/blobs.js";
import { InvalidInput } from "../../src/agent/errors.js";
import { BATCH_DEFLATE, BATCH_RAW, BLOB_HEADER, MAX_BATCH } from "../../src/protocol/constants.js";

const sha256 = (b: Buffer) => createHash("sha256").update(b).digest("hex");

async function store(t: TestContext): Promise<BlobStore> {
  const dir = await mkdtemp(join(tmpdir(), "snapdeploy-blobs-"));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const s = new BlobStore(join(dir, "blobs"));
  await s.init();
  return s;
}

/** A blob record: header (sha256, u64 BE size) + content; `hash` overrides the name. */
function record(content: Buffer, hash = sha256(content), size = content.length): Buffer {
  const head = Buffer.alloc(BLOB_HEADER);
  Buffer.from(hash, "hex").copy(head, 0);
  head.writeBigUInt64BE(BigInt(size), 32);
  return Buffer.concat([head, content]);
}
const raw = (b: Buffer) => Buffer.concat([Buffer.from([BATCH_RAW]), b]);
const deflated = (b: Buffer) => Buffer.concat([Buffer.from([BATCH_DEFLATE]), deflateRawSync(b)]);

function decoder(s: BlobStore, blobs: Buffer[]) {
  const wanted = new Set(blobs.map(sha256));
  const sizes = new Map(blobs.map((b) => [sha256(b), b.length]));
  return { d: new BlobStreamDecoder(s, wanted, sizes), wanted };
}

test("raw and deflated batches, records split across frames and headers split too, all stored", async (t) => {
  const s = await store(t);
  const a = Buffer.from("alpha");
  const b = Buffer.alloc(3 * 1024 * 1024, 7); // larger than the writer's in-memory limit
  const c = Buffer.alloc(0);
  const stream = Buffer.concat([record(a), record(b), record(c)]);
  const { d, wanted } = decoder(s, [a, b, c]);
  // Cut inside a's header, inside b's content (several frames), then the rest.
  const cuts = [10, 60];
  for (let end = 60 + MAX_BATCH / 2; end < stream.length; end += MAX_BATCH / 2) cuts.push(end);
  cuts.push(stream.length);
  let at = 0;
  for (const [i, end] of cuts.entries()) {
    const part = stream.subarray(at, end);
    d.push(i % 2 ? deflated(part) : raw(part));
    at = end;
  }
  assert.equal(d.end(), stream.length);
  assert.equal(wanted.size, 0);
  for (const blob of [a, b, c]) {
    assert.ok(s.has(sha256(blob)));
    assert.deepEqual(await readFile(s.path(sha256(blob))), blob);
  }
  assert.deepEqual(await readdir(s.tmp), []);
});

test("a blob not asked for, asked for twice, or of another size than the manifest's is refused", async (t) => {
  const s = await store(t);
  const a = Buffer.from("alpha");
  const other = Buffer.from("other");
  assert.throws(
    () => decoder(s, [a]).d.push(raw(record(other))),
    (e) => e instanceof InvalidInput && /not asked for/.test(e.message),
  );
  const twice = decoder(s, [a]).d;
  assert.throws(() => twice.push(raw(Buffer.concat([record(a), record(a)]))), /not asked for/);
  assert.throws(
    () => decoder(s, [a]).d.push(raw(record(a, sha256(a), 4))),
    /has size 4, the manifest says 5/,
  );
});

test("content that does not match its hash never enters the store", async (t) => {
  const s = await store(t);
  const a = Buffer.from("alpha");
  const { d } = decoder(s, [a]);
  const forged = record(Buffer.from("alphX"), sha256(a));
  assert.throws(
    () => d.push(raw(forged)),
    (e) => e instanceof BlobMismatch && /does not match its hash/.test(e.message),
  );
  assert.equal(s.has(sha256(a)), false);
  assert.deepEqual(await readdir(s.tmp), []);
});

test("a stream that ends inside a record or its header is refused, and the partial blob dropped", async (t) => {
  const s = await store(t);
  const big = Buffer.alloc(2 * 1024 * 1024, 1);
  const inBlob = decoder(s, [big]).d;
  inBlob.push(raw(record(big).subarray(0, BLOB_HEADER + 1000)));
  assert.throws(
    () => inBlob.end(),
    (e) => e instanceof BlobMismatch && new RegExp(`inside blob ${sha256(big)}`).test(e.message),
  );
  inBlob.abort();
  assert.deepEqual(await readdir(s.tmp), []);
  const inHeader = decoder(s, [big]).d;
  inHeader.push(raw(record(big).subarray(0, 20)));
  assert.throws(() => inHeader.end(), /inside blob \(header\)/);
  assert.equal(s.has(sha256(big)), false);
});

test("bad batches: unknown encoding, oversized raw or inflated batch, corrupt deflate", async (t) => {
  const s = await store(t);
  const d = decoder(s, []).d;
  assert.throws(
    () => d.push(Buffer.from([7, 1, 2])),
    (e) => e instanceof InvalidInput && /unknown blob batch encoding 7/.test(e.message),
  );
  assert.throws(() => d.push(raw(Buffer.alloc(MAX_BATCH + 1))), /exceeds/);
  assert.throws(() => d.push(deflated(Buffer.alloc(MAX_BATCH + 1))), /could not be inflated/);
  assert.throws(() => d.push(Buffer.from([BATCH_DEFLATE, 0xff, 0xff, 0xff])), /could not be inflated/);
});
