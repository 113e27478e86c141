/**
 * Whether the blob stream deflates its next batch. Deflate pays on a slow link (a laptop's
 * uplink to a cluster far away: a node_modules tree goes over in a third of the bytes)
 * and costs on a fast one, where the link takes raw bytes faster than deflate makes
 * compressed ones: level 1 does 30-40 MB/s of source text per core, and the agent has to
 * inflate it again. So both are measured as the stream goes:
 *
 * - the link: the rate acknowledgements arrive at while the link is saturated (more than
 *   SATURATED bytes sent and not yet acknowledged); an acknowledgement that arrives
 *   faster with less queued only says the link is at least that fast;
 * - deflate: the raw bytes it took in per second of the time some batch was being
 *   deflated (batches are deflated a few at a time in the thread pool), and what it saves.
 *
 * A batch is deflated when the link is slower than what deflate saves per second, with a
 * margin of two (deflate's CPU is not free for the sender's other work): link <
 * rate * (1 - ratio) / 2. Until the link is known to be saturated it is taken to keep up
 * with raw batches. Every PROBE_EVERY-th batch is deflated anyway, to keep deflate's
 * figures for the content at hand (an archive does not compress; source text does).
 * "always" (a sync's inline blobs: a few MB sent before any acknowledgement) deflates
 * whatever compresses by more than 1/16.
 */

export type Clock = () => number;

/** Bytes in flight above which the link is taken to be the bottleneck. */
const SATURATED = 2 * 1024 * 1024;
/** The shortest time a link rate is measured over: acknowledgements arrive in bursts. */
const SPAN = 0.1;
/** Weight of a new sample in the moving averages. */
const ALPHA = 0.3;
export const PROBE_EVERY = 32;
/** A ratio above this saves too little to be worth the agent's time to inflate. */
const POOR = 15 / 16;

export class Packing {
  /** Raw bytes per second one batch's deflate achieved; 0 until measured. */
  private deflateRate = 0;
  /** Compressed size over raw size of the deflated batches; -1 until measured. */
  private ratio = -1;
  /** Wire bytes per second the link drains while saturated; 0 until measured. */
  private linkRate = 0;
  private batches = 0;
  /** The acknowledgements since `at`, and whether the link was saturated at each. */
  private span: { at: number; bytes: number; saturated: boolean } | undefined;
  /** Deflate's busy time (some batch in the thread pool) and what it took in. */
  private inFlight = 0;
  private busySince = 0;
  private busy = 0;
  private rawDeflated = 0;

  constructor(
    /**
     * "auto": measured as above; "always": every batch that compresses (the inline path);
     * "never": none (the link runs through this machine's CPU: see sameHost in server/connect.ts).
     */
    readonly mode: "auto" | "always" | "never" = "auto",
    private readonly now: Clock = () => performance.now() / 1000,
  ) {}

  /** Whether to deflate the next batch. */
  shouldTry(): boolean {
    const n = this.batches++;
    if (this.mode === "never") return false;
    if (this.deflateRate === 0 || n % PROBE_EVERY === 0) return true;
    if (this.mode === "always") return this.ratio < POOR;
    if (this.linkRate === 0) return false;
    return this.linkRate < (this.deflateRate * (1 - this.ratio)) / 2;
  }

  /** A batch's deflate starts; call the returned function when it is done. */
  deflating(raw: number): (packed: number) => void {
    const started = this.now();
    if (this.inFlight++ === 0) this.busySince = started;
    return (packed) => {
      const at = this.now();
      if (--this.inFlight === 0) this.busy += at - this.busySince;
      this.rawDeflated += raw;
      const busy = this.busy + (this.inFlight ? at - this.busySince : 0);
      this.deflateRate = this.rawDeflated / Math.max(busy, 1e-4);
      const ratio = Math.min(1, packed / raw);
      this.ratio = this.ratio < 0 ? ratio : this.ratio + ALPHA * (ratio - this.ratio);
    };
  }

  /** The agent acknowledged `acked` wire bytes when `sent` had been sent. */
  acked(acked: number, sent: number): void {
    const at = this.now();
    const span = this.span;
    if (!span) {
      this.span = { at, bytes: acked, saturated: true };
      return;
    }
    if (sent - acked < SATURATED) span.saturated = false;
    if (at - span.at < SPAN) return;
    const rate = (acked - span.bytes) / (at - span.at);
    if (span.saturated) this.linkRate = this.linkRate ? this.linkRate + ALPHA * (rate - this.linkRate) : rate;
    else if (this.linkRate && rate > this.linkRate) this.linkRate = rate;
    this.span = { at, bytes: acked, saturated: sent - acked >= SATURATED };
  }

  /** What was measured, for --debug: bytes per second and the ratio. */
  figures(): { linkRate: number; deflateRate: number; ratio: number } {
    return { linkRate: this.linkRate, deflateRate: this.deflateRate, ratio: this.ratio };
  }
}
