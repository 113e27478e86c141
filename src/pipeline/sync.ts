/**
 * scan → sync, without a build: the working tree to the user's workspace on the build
 * server. The connection is opened while the tree is scanned: the scan is mostly local
 * CPU work, the connection mostly waiting for the network.
 */
import type { Snapshot } from "../context/scan.js";
import type { ClusterAccess } from "../kube/access.js";
import { type Transport, withAgent } from "../server/connect.js";
import type { SyncResult } from "../sync/client.js";
import type { Reporter } from "../ui/reporter.js";
import { warnLikelySecrets } from "./context-secrets.js";
import { syncPhase } from "./phases.js";

export interface SyncRequest {
  user: string;
  project: string;
  serverNamespace: string;
  /** Globs of files that look like secrets but may be sent without a warning (context.allowSecrets). */
  allowSecrets?: string[];
}

export interface SyncReport {
  scan: Snapshot;
  /** The manifest digest of what was synced. */
  digest: string;
  result: SyncResult;
  transport: Transport;
  /** performance.now() when the scan was done. */
  scannedAt: number;
}

export async function syncSnapshot(
  cluster: ClusterAccess,
  req: SyncRequest,
  reporter: Reporter,
  /**
   * Starts the scan. It is called once the connection to the build server is being
   * dialled, so the scan's work (mostly CPU on one thread) overlaps the network round
   * trips rather than delaying them; its failure is reported through the session.
   */
  startScan: () => Promise<Snapshot>,
): Promise<SyncReport> {
  let scannedAt = 0;
  let scanning: Promise<Snapshot> | undefined;
  const syncing = withAgent(cluster, req.serverNamespace, async (s) => {
    const scan = await (scanning as Promise<Snapshot>);
    const digest = scan.digest;
    scannedAt = performance.now();
    // The look for likely secrets (a warning, never a gate; CPU work over every path) runs
    // once the request is sent, while the build server works on it.
    let warned: Promise<void> | undefined;
    const warn = () => {
      warned ??= warnLikelySecrets(scan, req.allowSecrets ?? [], reporter);
      return warned;
    };
    const result = await syncPhase(
      s.conn,
      scan,
      { ...req, inline: s.inlineSync, sameHost: s.sameHost, volume: s.volume },
      reporter,
      warn,
    );
    await warn();
    return { scan, digest, result, transport: s.transport, scannedAt };
  });
  // withAgent has run up to its first wait for the network: the connection is being dialled.
  scanning = startScan();
  scanning.catch(() => {});
  return await syncing;
}
