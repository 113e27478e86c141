/** snapdeploy sync: scan the working tree and sync it to your workspace on the build server. */
import type { Command } from "commander";
import path from "node:path";
import { toName } from "../../config/config.js";
import { scanPhase } from "../../pipeline/scan.js";
import { bytes, seconds } from "../../ui/format.js";
import { UserError } from "../../errors.js";
import { VERSION } from "../../version.js";
import { commandContext } from "../context.js";
import { addLegacyServerNamespace, addWorkspaceOptions, serverNamespace } from "./build.js";

export function registerSync(program: Command) {
  addLegacyServerNamespace(
    addWorkspaceOptions(
      program
        .command("sync")
        .description(
          "sync the working tree (honouring .dockerignore, never .git) to your workspace on the build server",
        ),
    ),
  ).action(async (opts, cmd: Command) => {
    const c = await commandContext(cmd);
    const t0 = performance.now();
    const [{ resolveUser }, { syncSnapshot }, cluster] = await Promise.all([
      import("../../config/user.js"),
      import("../../pipeline/sync.js"),
      c.access(),
    ]);
    const user = resolveUser({ flag: opts.user, config: c.config.user, kubeUser: cluster.user });
    const project = opts.project ?? c.config.project ?? toName(path.basename(c.dir));
    if (!project)
      throw new UserError("usage", `cannot derive a project name from ${c.dir}`, {
        hint: "pass --project NAME",
      });
    const namespace = serverNamespace(c, opts);
    const {
      scan,
      digest,
      result: r,
      transport,
      scannedAt: tScan,
    } = await syncSnapshot(
      cluster,
      { user, project, serverNamespace: namespace, allowSecrets: c.config.context.allowSecrets },
      c.reporter,
      () => scanPhase(c.dir, c.reporter),
    );
    const t1 = performance.now();
    const where = `${user}/${project}`;
    const summary = r.noop
      ? `${where} is up to date (${scan.stats.files} files, snapshot ${digest.slice(0, 12)}) in ${seconds(t1 - t0)}`
      : `synced ${where}: ${r.added} added, ${r.changed} changed, ${r.removed} removed; sent ${r.blobs} blobs, ${bytes(r.blobBytes)} (${bytes(r.sentBytes)} on the wire) in ${seconds(t1 - t0)} (scan ${seconds(tScan - t0)})`;
    for (const line of r.sample) c.reporter.info(`  ${line}`);
    c.reporter.result(summary, {
      user,
      project,
      snapshot: digest,
      noop: r.noop,
      added: r.added,
      changed: r.changed,
      removed: r.removed,
      blobs: r.blobs,
      blobBytes: r.blobBytes,
      sentBytes: r.sentBytes,
      files: scan.stats.files,
      seconds: { total: (t1 - t0) / 1000, scan: (tScan - t0) / 1000 },
      client: VERSION,
      transport,
    });
  });
}
