/**
 * The content-addressed blob store shared by every user and project on the build
 * server: blobs/<first two hex>/<sha256>. A blob enters the store only after its
 * bytes hashed to its name (written to tmp/, then renamed), so a blob in the store
 * is always whole and correct; interrupted uploads leave only tmp/ files, which
 * init() removes.
 */
import { createHash } from "node:crypto";
import { closeSync, promises as fs, openSync, renameSync, rmSync, writeFileSync, writeSync } from "node:fs";
import path from "node:path";

const SMALL = 1024 * 1024;

export class BlobStore {
  private readonly known = new Set<string>();
  readonly tmp: string;

  constructor(readonly dir: string) {
    this.tmp = path.join(path.dirname(dir), "tmp");
  }

  /** Creates the folders, drops leftovers of interrupted uploads, indexes what is stored. */
  async init(): Promise<void> {
    await fs.rm(this.tmp, { recursive: true, force: true });
    await fs.mkdir(this.tmp, { recursive: true });
    await fs.mkdir(this.dir, { recursive: true });
    // All 256 fan-out folders up front: no mkdir per received blob.
    await Promise.all(
      Array.from({ length: 256 }, (_, i) =>
        fs.mkdir(path.join(this.dir, i.toString(16).padStart(2, "0")), { recursive: true }),
      ),
    );
    for (const sub of await fs.readdir(this.dir)) {
      for (const name of await fs.readdir(path.join(this.dir, sub))) this.known.add(name);
    }
  }

  get count(): number {
    return this.known.size;
  }

  has(hash: string): boolean {
    return this.known.has(hash);
  }

  path(hash: string): string {
    return path.join(this.dir, hash.slice(0, 2), hash);
  }

  /** Starts receiving one blob; the bytes must hash to `hash` and number exactly `size`. */
  receive(hash: string, size: number): BlobWriter {
    return new BlobWriter(this, hash, size);
  }

  /** Called by BlobWriter once a verified blob is in place. */
  added(hash: string) {
    this.known.add(hash);
  }

  /** Every stored blob's hash. */
  hashes(): string[] {
    return [...this.known];
  }

  /** Removes a blob (garbage collection; the caller holds the store exclusively, see StoreGate). */
  remove(hash: string): void {
    rmSync(this.path(hash), { force: true });
    this.known.delete(hash);
  }
}

/**
 * Syncs use the store shared; garbage collection alone. A sync relies on the blobs it did
 * not ask for (the store had them) until its tree is materialized, so the collection of
 * unreferenced blobs waits for running syncs and holds new ones back while it runs.
 */
export class StoreGate {
  private active = 0;
  private exclusiveRun: Promise<void> | undefined;
  private drained: (() => void)[] = [];

  /** Shared use: resolves with its release once no collection runs. */
  async enter(): Promise<() => void> {
    while (this.exclusiveRun) await this.exclusiveRun;
    this.active++;
    let left = false;
    return () => {
      if (left) return;
      left = true;
      if (--this.active === 0) for (const w of this.drained.splice(0)) w();
    };
  }

  /** Runs `fn` once no shared use is left, holding new ones back until it ends. */
  async exclusive<T>(fn: () => Promise<T>): Promise<T> {
    while (this.exclusiveRun) await this.exclusiveRun;
    let end = () => {};
    this.exclusiveRun = new Promise<void>((r) => {
      end = r;
    });
    try {
      while (this.active > 0) await new Promise<void>((r) => this.drained.push(r));
      return await fn();
    } finally {
      this.exclusiveRun = undefined;
      end();
    }
  }
}

export class BlobMismatch extends Error {
  override name = "BlobMismatch";
  constructor(
    message: string,
    /** The blob whose content did not hash to its name, when that is what failed. */
    readonly blob?: string,
  ) {
    super(message);
  }
}

/**
 * Receives one blob. Synchronous on purpose: the agent handles the blob stream one
 * frame (at most MAX_BATCH bytes) at a time, and for the small files most trees consist
 * of, a synchronous write and rename cost a fraction of two trips through libuv's
 * thread pool. The event loop is held for about a millisecond per frame.
 */
let tmpSeq = 0;

export class BlobWriter {
  private readonly hasher = createHash("sha256");
  private readonly chunks: Buffer[] = [];
  private received = 0;
  private fd: number | undefined;
  private readonly tmpPath: string;

  constructor(
    private readonly store: BlobStore,
    readonly hash: string,
    readonly size: number,
  ) {
    // Unique without randomness (a syscall per blob): tmp/ belongs to this agent process,
    // which empties it when it starts.
    this.tmpPath = path.join(store.tmp, `${hash}.${++tmpSeq}`);
  }

  get remaining(): number {
    return this.size - this.received;
  }

  write(chunk: Buffer): void {
    this.received += chunk.length;
    if (this.received > this.size)
      throw new BlobMismatch(`blob ${this.hash} is longer than its declared ${this.size} bytes`);
    this.hasher.update(chunk);
    if (this.size <= SMALL) {
      this.chunks.push(chunk);
      return;
    }
    this.fd ??= openSync(this.tmpPath, "w", 0o644);
    for (let off = 0; off < chunk.length; ) off += writeSync(this.fd, chunk, off);
  }

  /** Verifies the bytes and moves the blob into the store. */
  finish(): void {
    if (this.received !== this.size)
      throw new BlobMismatch(`blob ${this.hash} ended after ${this.received} of ${this.size} bytes`);
    const actual = this.hasher.digest("hex");
    if (actual !== this.hash) {
      this.abort();
      throw new BlobMismatch(
        `blob content does not match its hash ${this.hash} (got ${actual}); the file changed while it was sent`,
        this.hash,
      );
    }
    if (this.fd !== undefined) {
      closeSync(this.fd);
      this.fd = undefined;
    } else
      writeFileSync(
        this.tmpPath,
        this.chunks.length === 1 ? (this.chunks[0] as Buffer) : Buffer.concat(this.chunks),
        { mode: 0o644 },
      );
    renameSync(this.tmpPath, this.store.path(this.hash));
    this.store.added(this.hash);
  }

  abort(): void {
    if (this.fd !== undefined) {
      try {
        closeSync(this.fd);
      } catch {
        // already unusable; the file goes below
      }
      this.fd = undefined;
    }
    rmSync(this.tmpPath, { force: true });
  }
}
