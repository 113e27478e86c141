/**
 * The build server's whole output for one command, kept in a file while a live face
 * shows only the current step: `<cache>/logs/remote-<time>-<pid>.log`. The file is made
 * on the first line; the newest KEEP files are kept, older ones removed.
 */
import { closeSync, mkdirSync, openSync, readdirSync, readFileSync, rmSync, writeSync } from "node:fs";
import path from "node:path";
import { cacheDir } from "../util/cache.js";

const KEEP = 20;

export class RemoteLog {
  private fd: number | undefined;
  private failed = false;
  /** The file, once a line was written to it. */
  path: string | undefined;

  constructor(private readonly dir = cacheDir("logs")) {}

  write(line: string): void {
    if (this.failed) return;
    try {
      if (this.fd === undefined) this.open();
      writeSync(this.fd as number, `${line}\n`);
    } catch {
      // Only a convenience: a cache folder that cannot be written loses the copy, not the build.
      this.failed = true;
      this.path = undefined;
    }
  }

  /** The last `n` lines written. */
  tail(n: number): string[] {
    if (!this.path) return [];
    try {
      return readFileSync(this.path, "utf8").split("\n").slice(0, -1).slice(-n);
    } catch {
      return [];
    }
  }

  close(): void {
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
  }

  private open() {
    mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    const stamp = new Date().toISOString().replace(/[-:]/g, "").replace(/\..*/, "");
    const file = path.join(this.dir, `remote-${stamp}-${process.pid}.log`);
    this.fd = openSync(file, "a", 0o600);
    this.path = file;
    const old = readdirSync(this.dir)
      .filter((f) => /^remote-.*\.log$/.test(f))
      .sort()
      .slice(0, -KEEP);
    for (const f of old) rmSync(path.join(this.dir, f), { force: true });
  }
}
