/**
 * The sync as a phase (and any promise as one): it reports its start, its progress and its
 * end (with counts) to the reporter, and fails its phase when it fails. The scan's is in
 * scan.ts, which loads nothing else (the scan starts before the rest of a command loads).
 */
import os from "node:os";
import type { Snapshot } from "../context/scan.js";
import type { Connection } from "../protocol/connection.js";
import { type SyncResult, syncTree } from "../sync/client.js";
import type { Phase, Reporter } from "../ui/reporter.js";

/** Awaits `work` as one phase: ended with the counts of its value, or failed. */
export async function inPhase<T>(phase: Phase, work: Promise<T>, counts: (v: T) => object = () => ({})) {
  try {
    const v = await work;
    phase.end(counts(v));
    return v;
  } catch (e) {
    phase.fail();
    throw e;
  }
}

/** Syncs the scanned tree to the workspace `user/project` as the "sync" phase. */
export async function syncPhase(
  conn: Connection,
  scan: Snapshot,
  req: { user: string; project: string; inline?: boolean; sameHost?: boolean; volume?: string },
  reporter: Reporter,
  /** Called once the request is sent, while the build server works on it (SyncHooks.onSent). */
  onSent?: () => void,
): Promise<SyncResult> {
  const phase = reporter.phase("sync");
  const work = syncTree(
    conn,
    {
      root: scan.root,
      user: req.user,
      project: req.project,
      digest: scan.digest,
      entries: scan.entries,
      text: scan.manifestText,
      client: `${req.user}@${os.hostname()}`,
      inline: req.inline,
      volume: req.volume,
      // Deflate trades CPU for bytes: on a link through this machine's own CPU it only costs.
      packing: req.sameHost ? "never" : "auto",
    },
    {
      onWaiting: (holder) =>
        reporter.info(`waiting: workspace ${req.user}/${req.project} is locked by ${holder}`),
      onProgress: (p) => phase.update(p),
      onSent,
    },
  );
  return await inPhase(phase, work, (r) => ({ files: r.blobs, bytes: r.sentBytes, totalBytes: r.blobBytes }));
}
