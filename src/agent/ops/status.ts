/** The status operation: the agent's version, disk, blob count and workspaces. */
import { promises as fs } from "node:fs";
import type { Status } from "../../protocol/messages.js";
import type { AgentContext } from "../context.js";
import { Workspace } from "../workspace.js";

export async function status(ctx: AgentContext): Promise<Status> {
  const disk = await fs.statfs(ctx.dataDir);
  const workspaces = [];
  for (const user of await fs.readdir(ctx.workspacesDir).catch(() => [] as string[])) {
    for (const project of await fs.readdir(`${ctx.workspacesDir}/${user}`).catch(() => [] as string[])) {
      const info = await new Workspace(ctx.workspacesDir, user, project).info();
      if (info) workspaces.push(info);
    }
  }
  return {
    t: "status",
    agent: ctx.version,
    builder: ctx.builder,
    disk: { total: disk.blocks * disk.bsize, free: disk.bavail * disk.bsize },
    blobs: ctx.blobs.count,
    workspaces,
  };
}
