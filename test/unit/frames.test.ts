/**
 * The frame codec of the protocol (protocol/frames.ts) and the message connection over it
 * (protocol/connection.ts): frames split over chunks or merged into one, oversized and
 * unknown frames, and a stream that ends inside a frame.
 */
import assert from "node:assert/strict";
import { Duplex, PassThrough } from "node:stream";
import { test } from "node:test";
import { Connection, RemoteError } from "../../src/protocol/connection.js";
import {
  encodeFrame,
  FRAME_DATA,
  FRAME_JSON,
  type Frame,
  FrameDecoder,
  MAX_FRAME,
  ProtocolError,
} from "../../src/protocol/frames.js";

const json = (msg: unknown) => encodeFrame(FRAME_JSON, Buffer.from(JSON.stringify(msg)));
const data = (bytes: string) => encodeFrame(FRAME_DATA, Buffer.from(bytes));
const shown = (frames: Frame[]) =>
  frames.map((f) => (f.kind === FRAME_JSON ? f.msg : { data: f.data.toString() }));

test("frames merged into one chunk come out whole and in order", () => {
  const all = Buffer.concat([json({ t: "a", n: 1 }), data("xyz"), data(""), json({ t: "b" })]);
  assert.deepEqual(shown(new FrameDecoder().push(all)), [
    { t: "a", n: 1 },
    { data: "xyz" },
    { data: "" },
    { t: "b" },
  ]);
});

test("frames split at every byte come out once, when their last byte arrives", () => {
  const all = Buffer.concat([json({ t: "a", s: "é" }), data("hello"), json({ t: "b" })]);
  const decoder = new FrameDecoder();
  const out: Frame[] = [];
  const completedAt: number[] = [];
  for (let i = 0; i < all.length; i++) {
    const frames = decoder.push(all.subarray(i, i + 1));
    if (frames.length) completedAt.push(i);
    out.push(...frames);
  }
  assert.deepEqual(shown(out), [{ t: "a", s: "é" }, { data: "hello" }, { t: "b" }]);
  const first = json({ t: "a", s: "é" }).length;
  assert.deepEqual(completedAt, [first - 1, first + 5 + 5 - 1, all.length - 1]);
});

test("a frame split across uneven chunks, with the next frame's header in the same chunk", () => {
  const a = data("a".repeat(1000));
  const b = json({ t: "b" });
  const all = Buffer.concat([a, b]);
  const decoder = new FrameDecoder();
  assert.deepEqual(decoder.push(all.subarray(0, 3)), []); // inside the header
  assert.deepEqual(decoder.push(all.subarray(3, 500)), []);
  const frames = decoder.push(all.subarray(500, a.length + 2));
  assert.equal(frames.length, 1);
  assert.equal((frames[0] as { data: Buffer }).data.toString(), "a".repeat(1000));
  assert.deepEqual(shown(decoder.push(all.subarray(a.length + 2))), [{ t: "b" }]);
});

test("an oversized frame is refused from its header, before its payload is buffered", () => {
  const head = Buffer.alloc(5);
  head.writeUInt8(FRAME_DATA, 0);
  head.writeUInt32BE(MAX_FRAME + 1, 1);
  assert.throws(
    () => new FrameDecoder().push(head),
    (e: unknown) => e instanceof ProtocolError && /exceeds/.test(e.message),
  );
  head.writeUInt32BE(MAX_FRAME, 1);
  assert.deepEqual(new FrameDecoder().push(head), []); // the limit itself is allowed
});

test("unknown kinds, malformed JSON and messages without a type are protocol errors", () => {
  assert.throws(() => new FrameDecoder().push(encodeFrame(3, Buffer.alloc(0))), /unknown frame kind 3/);
  assert.throws(() => new FrameDecoder().push(encodeFrame(FRAME_JSON, Buffer.from("{"))), /malformed JSON/);
  assert.throws(() => new FrameDecoder().push(json({ x: 1 })), /without a type/);
  assert.throws(() => new FrameDecoder().push(json(null)), /without a type/);
});

/** A connection reading `input` (then its end); what it sends is dropped. */
function reading(input: Buffer[]): Connection {
  const stream = new Duplex({
    read() {
      for (const b of input) this.push(b);
      this.push(null);
    },
    write(_chunk, _enc, cb) {
      cb();
    },
  });
  return new Connection(stream);
}

test("a stream that ends inside a frame: the frames before it arrive, then the connection fails", async () => {
  const whole = json({ t: "one" });
  const cut = data("truncated").subarray(0, 8);
  const conn = reading([whole, cut]);
  assert.deepEqual(await conn.expect("one"), { t: "one" });
  await assert.rejects(conn.next(), (e: unknown) => e instanceof ProtocolError && /closed/.test(e.message));
});

test("expect: a data frame, another message type, or an error message from the peer", async () => {
  await assert.rejects(reading([data("x")]).expect("a"), /expected a message "a", got data/);
  await assert.rejects(reading([json({ t: "b" })]).expect("a"), /expected "a", got "b"/);
  await assert.rejects(
    reading([json({ t: "error", code: "input", message: "bad", hint: "fix it", step: "s" })]).expect(),
    (e: unknown) =>
      e instanceof RemoteError &&
      e.code === "input" &&
      e.message === "bad" &&
      e.hint === "fix it" &&
      e.detail.step === "s",
  );
});

test("a connection over a loopback stream delivers what it sends, messages and data", async () => {
  const loop = new PassThrough();
  const conn = new Connection(loop);
  await conn.send({ t: "ping" });
  await conn.sendData(Buffer.from("blob"));
  assert.deepEqual(await conn.expect("ping"), { t: "ping" });
  const f = await conn.next();
  assert.equal(f.kind, FRAME_DATA);
  assert.equal((f as { data: Buffer }).data.toString(), "blob");
  // A peer sending garbage ends the connection with a protocol error.
  loop.write(Buffer.from([9, 0, 0, 0, 0]));
  await assert.rejects(conn.next(), /unknown frame kind 9/);
});
