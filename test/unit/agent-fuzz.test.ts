/**
 * Hostile input for the agent, property-based (fast-check, fixed seeds, a bounded number of
 * cases; `npm run bench -- fuzz` runs many more): the frame decoder on random and malformed
 * bytes, and whole sessions against the real agent in this process (test/helpers/agent-fuzz.ts
 * says what is sent and checked). Also the counterexamples the properties found, as plain tests.
 */
import assert from "node:assert/strict";
import net from "node:net";
import { test } from "node:test";
import fc from "fast-check";
import { Connection } from "../../src/protocol/connection.js";
import { PROTOCOL_VERSION } from "../../src/protocol/constants.js";
import {
  encodeFrame,
  FRAME_DATA,
  FRAME_JSON,
  type Frame,
  FrameDecoder,
  ProtocolError,
} from "../../src/protocol/frames.js";
import type { ClientMessage } from "../../src/protocol/messages.js";
import { fuzzSessions, startAgent } from "../helpers/fuzz/run.js";

/** Splits `buf` at the given fractions. */
function split(buf: Buffer, cuts: number[]): Buffer[] {
  const at = [...new Set(cuts.map((c) => Math.floor(c * buf.length)))].sort((a, b) => a - b);
  const out: Buffer[] = [];
  let prev = 0;
  for (const c of [...at, buf.length]) {
    out.push(buf.subarray(prev, c));
    prev = c;
  }
  return out;
}

const shown = (frames: Frame[]) =>
  frames.map((f) => (f.kind === FRAME_JSON ? f.msg : f.data.toString("hex")));

test("frame decoder: any split of valid frames decodes to the same frames", () => {
  const frame = fc.oneof(
    fc
      .record({ t: fc.string({ minLength: 1, maxLength: 8 }), v: fc.jsonValue({ maxDepth: 2 }) })
      .map((m) => ({
        buf: encodeFrame(FRAME_JSON, Buffer.from(JSON.stringify(m))),
        m: JSON.parse(JSON.stringify(m)) as unknown,
      })),
    fc.uint8Array({ maxLength: 64 }).map((d) => ({
      buf: encodeFrame(FRAME_DATA, Buffer.from(d)),
      m: Buffer.from(d).toString("hex") as unknown,
    })),
  );
  fc.assert(
    fc.property(
      fc.array(frame, { maxLength: 8 }),
      fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { maxLength: 6 }),
      (frames, cuts) => {
        const d = new FrameDecoder();
        const got: Frame[] = [];
        for (const part of split(Buffer.concat(frames.map((f) => f.buf)), cuts)) got.push(...d.push(part));
        assert.deepEqual(
          shown(got),
          frames.map((f) => f.m),
        );
      },
    ),
    { seed: 7, numRuns: 500 },
  );
});

test("frame decoder: random bytes give frames or a ProtocolError, never anything else", () => {
  fc.assert(
    fc.property(
      fc.array(
        fc.oneof(
          fc.uint8Array({ maxLength: 32 }),
          fc.constantFrom(
            Uint8Array.from([1, 0, 0, 0, 2]),
            Uint8Array.from([2, 0xff, 0xff, 0xff, 0xff]),
            Uint8Array.from([1, 0, 0, 0, 4, 110, 117, 108, 108]),
          ),
        ),
        { maxLength: 10 },
      ),
      (chunks) => {
        const d = new FrameDecoder();
        try {
          for (const c of chunks)
            for (const f of d.push(Buffer.from(c))) {
              if (f.kind === FRAME_JSON) assert.equal(typeof f.msg.t, "string");
              else assert.ok(Buffer.isBuffer(f.data));
            }
        } catch (e) {
          assert.ok(e instanceof ProtocolError, `not a ProtocolError: ${(e as Error).stack}`);
        }
      },
    ),
    { seed: 11, numRuns: 2000 },
  );
});

test("sessions of hostile input: the agent answers with errors the CLI shows, writes only in its folders, never throws", async () => {
  await fuzzSessions({ numRuns: 400, seed: 20261202 });
});

test('an { t: "error" } sent as an operation is a protocol error, not an internal one', async (t) => {
  // Found by the session property: the agent reported "internal: unknown error".
  const agent = await startAgent();
  t.after(() => agent.stop());
  const sock = net.connect(agent.socket);
  const conn = new Connection(sock);
  await conn.send({ t: "hello", protocol: PROTOCOL_VERSION, client: "test" });
  await conn.expect("hello");
  await conn.send({ t: "error" } as unknown as ClientMessage);
  const f = await conn.next();
  assert.equal(f.kind, FRAME_JSON);
  const msg: Record<string, unknown> = f.kind === FRAME_JSON ? f.msg : {};
  assert.equal(msg.code, "protocol");
  assert.match(String(msg.message), /sent an error message where the build server expected an operation/);
  sock.destroy();
});
