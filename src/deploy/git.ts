/** The git commit a snapshot came from, and whether the tree had uncommitted changes. */
import { spawnSync } from "node:child_process";

export interface GitInfo {
  commit?: string;
  dirty?: boolean;
}

export function gitInfo(dir: string): GitInfo {
  const head = spawnSync("git", ["-C", dir, "rev-parse", "HEAD"], { encoding: "utf8" });
  if (head.status !== 0) return {};
  const status = spawnSync("git", ["-C", dir, "status", "--porcelain", "--untracked-files=normal"], {
    encoding: "utf8",
  });
  return { commit: head.stdout.trim(), dirty: status.status === 0 ? status.stdout.trim() !== "" : undefined };
}

export function describeCommit(g: GitInfo): string {
  if (!g.commit) return "no git commit";
  return `${g.commit.slice(0, 12)}${g.dirty ? "+dirty" : ""}`;
}
