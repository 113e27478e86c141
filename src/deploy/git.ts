/** The git commit a snapshot came from, and whether the tree had uncommitted changes. */
import { execFile } from "node:child_process";

export interface GitInfo {
  commit?: string;
  dirty?: boolean;
}

/** The output of `git ARGS` in `dir`, or undefined when git fails or is not installed. */
function git(dir: string, args: string[]): Promise<string | undefined> {
  return new Promise((resolve) => {
    execFile("git", ["-C", dir, ...args], { encoding: "utf8", maxBuffer: 64 << 20 }, (err, stdout) =>
      resolve(err ? undefined : stdout),
    );
  });
}

/**
 * The commit and whether the tree is dirty, both asked of git at once and without blocking:
 * a deploy starts this before its build and awaits it before the rollout, so `git status`
 * on a large repository runs while the build server works.
 */
export async function gitInfo(dir: string): Promise<GitInfo> {
  const [head, status] = await Promise.all([
    git(dir, ["rev-parse", "HEAD"]),
    git(dir, ["status", "--porcelain", "--untracked-files=normal"]),
  ]);
  if (head === undefined) return {};
  return { commit: head.trim(), dirty: status === undefined ? undefined : status.trim() !== "" };
}

export function describeCommit(g: GitInfo): string {
  if (!g.commit) return "no git commit";
  return `${g.commit.slice(0, 12)}${g.dirty ? "+dirty" : ""}`;
}
