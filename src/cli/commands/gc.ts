/** snapdeploy gc: frees the build server's volume (idle workspaces, unreferenced blobs, builder cache). */
import { type Command, InvalidArgumentError, Option } from "commander";
import type { GcReply } from "../../protocol/messages.js";
import { ago, bytes } from "../../ui/format.js";
import { AGE_SYNTAX, parseDuration } from "../../util/duration.js";
import { commandContext } from "../context.js";
import { namespaceName } from "../flags.js";

/** An age such as 7d, 36h, 1d12h (util/duration.ts with days), in seconds. */
export function age(v: string): number {
  const s = parseDuration(v, { days: true });
  if (s === undefined) throw new InvalidArgumentError(`Expected ${AGE_SYNTAX}.`);
  return s;
}

/** A size in bytes: 10GB, 500MB, 2GiB, 0 (decimal units are powers of 1000, binary ones of 1024). */
export function byteSize(v: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*(B|kB|KB|MB|GB|TB|KiB|MiB|GiB|TiB)?$/.exec(v);
  if (!m) throw new InvalidArgumentError("Expected a size like 10GB, 500MB, 2GiB or 0.");
  const unit = m[2] ?? "B";
  const power = "BKMGT".indexOf((unit[0] as string).toUpperCase());
  return Math.floor(Number(m[1]) * (unit.includes("i") ? 1024 : 1000) ** power);
}

export function registerGc(program: Command) {
  program
    .command("gc")
    .description(
      "free the build server's volume: workspaces unused for --older-than, blobs no workspace names, the builder's cache beyond --keep-cache",
    )
    .addOption(
      new Option("--older-than <age>", "remove workspaces unused this long: 7d, 36h, 1d12h")
        .argParser(age)
        .default(7 * 86400, "7d"),
    )
    .addOption(
      new Option(
        "--keep-cache <size>",
        "prune the builder's layer cache down to this: 10GB, 500MB, 0 (BuildKit or Docker chooses what goes, least recently used first)",
      )
        .argParser(byteSize)
        .default(10e9, "10GB"),
    )
    .option("--dry-run", "only list what would go and the space it frees")
    .addOption(
      new Option(
        "-n, --namespace <ns>",
        "namespace of the build server (default: server.namespace, else snapdeploy)",
      ).argParser(namespaceName),
    )
    .action(async (opts, cmd: Command) => {
      const c = await commandContext(cmd);
      const namespace = opts.namespace ?? c.config.server.namespace;
      const { serverGc } = await import("../../server/gc.js");
      const r = await serverGc(await c.access(), namespace, {
        dryRun: Boolean(opts.dryRun),
        olderThanSeconds: opts.olderThan as number,
        keepCacheBytes: opts.keepCache as number,
      });
      c.reporter.result(describeGc(r, namespace), r);
    });
}

export function describeGc(r: GcReply, namespace: string): string {
  const verb = r.dryRun ? "would remove" : "removed";
  const lines = [`build server in ${namespace}${r.dryRun ? " (dry run: nothing removed)" : ""}:`];
  for (const w of r.workspaces)
    lines.push(
      `  ${verb} workspace ${w.user}/${w.project} (last used ${ago(w.lastUsed)}): ${bytes(w.bytes)}`,
    );
  if (!r.workspaces.length) lines.push("  no idle workspaces");
  for (const s of r.skipped) lines.push(`  kept workspace ${s.user}/${s.project}: ${s.reason}`);
  lines.push(`  ${verb} ${r.blobs.count} blobs no workspace names: ${bytes(r.blobs.bytes)}`);
  lines.push(`  ${r.dryRun ? "frees" : "freed"} ${bytes(r.freed)} (workspaces and blobs)`);
  if (r.cache) {
    const c = r.cache;
    lines.push(
      `  builder cache (${c.builder}): ${bytes(c.size)}, kept down to ${bytes(c.keep)}: ${r.dryRun ? "frees up to" : "freed"} ${bytes(c.freed)}`,
    );
  }
  lines.push(`  registry tags: not pruned (snapshot tags stay in the registry)`);
  const used = r.disk.total - r.disk.free;
  lines.push(
    `  disk: ${bytes(used)} used, ${bytes(r.disk.free)} free of ${bytes(r.disk.total)}${r.dryRun ? " (now)" : ""}`,
  );
  return lines.join("\n");
}
