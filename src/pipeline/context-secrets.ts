/** The warning about likely secrets in a build context; never a failure. */
import { findLikelySecrets, readHead, secretsWarning } from "../context/secrets.js";
import type { Snapshot } from "../context/scan.js";
import type { Reporter } from "../ui/reporter.js";

/** Warnings given in this process: `dev` rebuilds often, and says the same thing once. */
const given = new Set<string>();

/** Warns (once per process for the same files) when `scan` holds likely secrets not in `allow`. */
export async function warnLikelySecrets(scan: Snapshot, allow: string[], reporter: Reporter): Promise<void> {
  try {
    const found = await findLikelySecrets(scan.files(), allow, (p) => readHead(scan.root, p));
    const message = secretsWarning(found);
    if (!message || given.has(message)) return;
    given.add(message);
    reporter.warn(message);
  } catch {
    // A warning that cannot be computed is no reason to stop a deploy.
  }
}
