/**
 * The blob stream's choice between raw and deflated batches (src/sync/packing.ts), driven
 * by a clock the test moves: the rates are what a real stream would measure.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { PROBE_EVERY, Packing } from "../../src/sync/packing.js";
import { isLoopbackUrl } from "../../src/util/net.js";

const MB = 1024 * 1024;
const BATCH = 256 * 1024;

/** A Packing whose clock the test sets, with deflate measured at `rate` bytes/s and `ratio`. */
function measured(mode: "auto" | "always" | "never", rate: number, ratio: number) {
  let now = 0;
  const p = new Packing(mode, () => now);
  const done = p.deflating(BATCH);
  now += BATCH / rate;
  done(Math.round(BATCH * ratio));
  return {
    p,
    /** Acknowledgements at `rate` bytes/s for `seconds`, with `inFlight` bytes unacknowledged. */
    link(rate: number, seconds: number, inFlight: number) {
      let acked = 0;
      for (let t = 0; t < seconds; t += 0.05) {
        now += 0.05;
        acked += rate * 0.05;
        p.acked(acked, acked + inFlight);
      }
    },
  };
}

/** How many of the next n batches shouldTry deflates. */
function deflatedOf(p: Packing, n: number): number {
  let k = 0;
  for (let i = 0; i < n; i++) if (p.shouldTry()) k++;
  return k;
}

test("the first batch is deflated: it measures what deflate does with this content", () => {
  assert.equal(new Packing("auto").shouldTry(), true);
});

test("a link that keeps up (never saturated) gets raw batches, with a probe now and then", () => {
  const { p, link } = measured("auto", 30 * MB, 0.3);
  link(50 * MB, 1, 64 * 1024);
  assert.equal(deflatedOf(p, 4 * PROBE_EVERY), 4);
});

test("a saturated fast link gets raw batches: deflate would be the bottleneck", () => {
  const { p, link } = measured("auto", 30 * MB, 0.3);
  link(40 * MB, 1, 4 * MB);
  assert.deepEqual(p.figures().linkRate > 35 * MB, true);
  assert.equal(deflatedOf(p, 4 * PROBE_EVERY), 4);
});

test("a saturated slow link (a laptop's uplink) gets deflated batches", () => {
  const { p, link } = measured("auto", 30 * MB, 0.3);
  link(2 * MB, 1, 4 * MB);
  assert.equal(deflatedOf(p, 4 * PROBE_EVERY), 4 * PROBE_EVERY);
});

test("content that does not compress is sent raw even on a slow link", () => {
  const { p, link } = measured("auto", 30 * MB, 0.99);
  link(2 * MB, 1, 4 * MB);
  assert.equal(deflatedOf(p, 4 * PROBE_EVERY), 4);
});

test("a link found faster while unsaturated raises the estimate: the stream goes raw again", () => {
  const { p, link } = measured("auto", 30 * MB, 0.3);
  link(2 * MB, 1, 4 * MB);
  assert.equal(p.shouldTry(), true);
  link(100 * MB, 1, 64 * 1024);
  assert.ok(p.figures().linkRate > 90 * MB, `link ${p.figures().linkRate}`);
  assert.equal(deflatedOf(p, 4 * PROBE_EVERY), 4);
});

test('"always" deflates whatever compresses, and probes what did not', () => {
  const good = measured("always", 30 * MB, 0.3);
  assert.equal(deflatedOf(good.p, 2 * PROBE_EVERY), 2 * PROBE_EVERY);
  const poor = measured("always", 30 * MB, 0.99);
  assert.equal(deflatedOf(poor.p, 2 * PROBE_EVERY), 2);
});

test('"never" deflates nothing, even on a slow link', () => {
  const { p, link } = measured("never", 30 * MB, 0.3);
  link(2 * MB, 1, 4 * MB);
  assert.equal(deflatedOf(p, 4 * PROBE_EVERY), 0);
});

test("an API server at a loopback address is this machine", () => {
  for (const url of [
    "https://127.0.0.1:6443",
    "https://localhost:6443",
    "https://[::1]:6443",
    "http://127.1.2.3",
    "https://api.localhost",
  ])
    assert.equal(isLoopbackUrl(url), true, url);
  for (const url of [
    "https://10.0.0.1:6443",
    "https://kube.example.com",
    "https://128.0.0.1",
    "https://localhost.example.com",
    "not a url",
  ])
    assert.equal(isLoopbackUrl(url), false, url);
});
