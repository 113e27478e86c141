/** The check operation: is the snapshot's image in the registry already? */
import type { CheckReply, Message } from "../../protocol/messages.js";
import type { AgentContext } from "../context.js";
import { validateName, validateRef } from "../validate.js";
import { Workspace } from "../workspace.js";

/**
 * Does the registry already have this snapshot's tag? If not, says why the cache
 * missed when the workspace's last build explains it (same files, other settings).
 */
export async function check(ctx: AgentContext, op: Message): Promise<CheckReply> {
  const ref = validateRef(op.ref);
  const found = await ctx.registry.lookup(ref);
  if (found) return { t: "check", exists: true, digest: found.digest, labels: found.labels };
  const user = validateName("user", op.user);
  const project = validateName("project", op.project);
  const last = (await new Workspace(ctx.workspacesDir, user, project).info())?.lastBuild;
  let reason: string | undefined;
  if (!last) reason = "first build in this workspace";
  else if (last.manifest === op.manifest) {
    const now = (op.settings ?? {}) as Record<string, unknown>;
    const changed = Object.keys({ ...now, ...last.settings }).filter(
      (k) => JSON.stringify(now[k]) !== JSON.stringify(last.settings[k]),
    );
    reason = changed.length
      ? `same files, but ${changed.join(", ")} changed`
      : "same files and settings, but the tag is gone from the registry";
  }
  return { t: "check", exists: false, reason, lastRef: last?.ref };
}
