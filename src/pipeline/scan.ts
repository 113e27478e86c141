/** The scan as the "scan" phase: its progress and counts go to the reporter. */
import { type Snapshot, scanSnapshot } from "../context/scan.js";
import type { Reporter } from "../ui/reporter.js";

/** Scans `root` as the "scan" phase; warnings go to the reporter. */
export function scanPhase(root: string, reporter: Reporter): Promise<Snapshot> {
  const phase = reporter.phase("scan");
  const scanning = scanSnapshot({
    root,
    onWarning: (m) => reporter.warn(m),
    onProgress: (s) => phase.update({ files: s.files, bytes: s.bytes }),
  });
  scanning.then(
    (s) => phase.end({ files: s.stats.files, bytes: s.stats.bytes }),
    () => phase.fail(),
  );
  return scanning;
}
